// Harness cases for the indexing, joining and mask ops (embedding, index_select, gather,
// scatter_add, cat, stack, split, chunk, tril, triu, one_hot, masked_fill) against naive float64
// references.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "tests/ops/op_harness.h"

namespace fabric::harness {
namespace {

const std::vector<DType> kAllFloat = {DType::float64, DType::float32, DType::bfloat16,
                                      DType::float16};
const std::vector<DType> kOne = {
    DType::float64};  // integer-only cases: the dtype loop does not apply

template <typename F>
void for_each_index(const Shape& shape, F&& f) {
  const int64_t n = numel_of(shape);
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    f(idx);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

int64_t wrap(int64_t d, size_t n) { return d < 0 ? d + static_cast<int64_t>(n) : d; }

RefTensor ref_index_select(const RefTensor& a, int64_t dim, const RefTensor& index) {
  dim = wrap(dim, a.shape.size());
  Shape os = a.shape;
  os[dim] = index.numel();
  RefTensor out{os, {}};
  for_each_index(os, [&](std::vector<int64_t> i) {
    i[dim] = static_cast<int64_t>(index.v[i[dim]]);
    out.v.push_back(a.at(i));
  });
  return out;
}

RefTensor ref_gather(const RefTensor& a, int64_t dim, const RefTensor& index) {
  dim = wrap(dim, a.shape.size());
  RefTensor out{index.shape, {}};
  for_each_index(index.shape, [&](std::vector<int64_t> i) {
    const double k = index.at(i);
    i[dim] = static_cast<int64_t>(k);
    out.v.push_back(a.at(i));
  });
  return out;
}

RefTensor ref_scatter_add(const RefTensor& a, int64_t dim, const RefTensor& index,
                          const RefTensor& src) {
  dim = wrap(dim, a.shape.size());
  RefTensor out = a;
  for_each_index(index.shape, [&](std::vector<int64_t> i) {
    const double s = src.at(i);
    const double k = index.at(i);
    i[dim] = static_cast<int64_t>(k);
    out.v[out.index(i)] += s;
  });
  return out;
}

RefTensor ref_cat(const std::vector<RefTensor>& in, int64_t dim) {
  std::vector<const RefTensor*> kept;
  for (const auto& t : in)
    if (!(t.shape.size() == 1 && t.shape[0] == 0)) kept.push_back(&t);
  if (kept.empty()) return in[0];
  dim = wrap(dim, kept[0]->shape.size());
  Shape os = kept[0]->shape;
  os[dim] = 0;
  for (auto* t : kept) os[dim] += t->shape[dim];
  RefTensor out{os, {}};
  for_each_index(os, [&](std::vector<int64_t> i) {
    for (auto* t : kept) {
      if (i[dim] < t->shape[dim]) {
        out.v.push_back(t->at(i));
        return;
      }
      i[dim] -= t->shape[dim];
    }
  });
  return out;
}

RefTensor ref_stack(const std::vector<RefTensor>& in, int64_t dim) {
  dim = wrap(dim, in[0].shape.size() + 1);
  Shape os = in[0].shape;
  os.insert(os.begin() + dim, static_cast<int64_t>(in.size()));
  RefTensor out{os, {}};
  for_each_index(os, [&](std::vector<int64_t> i) {
    const int64_t k = i[dim];
    i.erase(i.begin() + dim);
    out.v.push_back(in[k].at(i));
  });
  return out;
}

// The piece [start, start + len) of `a` along dim.
RefTensor ref_narrow(const RefTensor& a, int64_t dim, int64_t start, int64_t len) {
  Shape os = a.shape;
  os[dim] = len;
  RefTensor out{os, {}};
  for_each_index(os, [&](std::vector<int64_t> i) {
    i[dim] += start;
    out.v.push_back(a.at(i));
  });
  return out;
}

RefTensor ref_tri(const RefTensor& a, int64_t k, bool lower) {
  RefTensor out = a;
  const size_t n = a.shape.size();
  for_each_index(a.shape, [&](const std::vector<int64_t>& i) {
    const int64_t d = i[n - 1] - i[n - 2];
    if (lower ? d > k : d < k) out.v[out.index(i)] = 0;
  });
  return out;
}

RefTensor ref_one_hot(const RefTensor& idx, int64_t nc) {
  if (nc < 0) nc = static_cast<int64_t>(*std::max_element(idx.v.begin(), idx.v.end())) + 1;
  Shape os = idx.shape;
  os.push_back(nc);
  RefTensor out{os, std::vector<double>(numel_of(os), 0.0)};
  for (int64_t i = 0; i < idx.numel(); ++i) out.v[i * nc + static_cast<int64_t>(idx.v[i])] = 1;
  return out;
}

// The element of `t` that broadcasting to `idx`'s shape puts there (dims aligned on the right,
// size-1 dims repeated).
double broadcast_at(const RefTensor& t, const std::vector<int64_t>& idx) {
  std::vector<int64_t> i(t.shape.size());
  const size_t lead = idx.size() - t.shape.size();
  for (size_t d = 0; d < t.shape.size(); ++d) i[d] = t.shape[d] == 1 ? 0 : idx[lead + d];
  return t.at(i);
}

// x and mask broadcast together; `value` (or the 0-dim value tensor) where the mask is set.
RefTensor ref_masked_fill(const RefTensor& x, const RefTensor& mask, double value) {
  const Shape s = broadcast_shapes(x.shape, mask.shape, "ref_masked_fill");
  RefTensor out{s, {}};
  for_each_index(s, [&](const std::vector<int64_t>& i) {
    out.v.push_back(broadcast_at(mask, i) != 0 ? value : broadcast_at(x, i));
  });
  return out;
}

// A bool input of one fixed value everywhere (all-true / all-false masks).
InputSpec BoolFilled(Shape s, bool v) {
  InputSpec spec = B(std::move(s));
  spec.values.assign(static_cast<size_t>(numel_of(spec.shape)), v ? 1.0 : 0.0);
  return spec;
}

}  // namespace

std::vector<OpCase> index_op_cases() {
  std::vector<OpCase> c;
  // ---- embedding / index_select (copies: exact in every dtype) ----
  auto emb = [](const std::vector<Tensor>& t) { return embedding(t[0], t[1]); };
  auto emb_ref = [](const std::vector<RefTensor>& t) {
    RefTensor r = ref_index_select(t[0], 0, RefTensor{{t[1].numel()}, t[1].v});
    Shape s = t[1].shape;
    s.push_back(t[0].shape[1]);
    r.shape = s;
    return r;
  };
  c.push_back({"embedding/2d_indices",
               {F({10, 4}), Idx({2, 3}, 10)},
               emb,
               emb_ref,
               kAllFloat,
               1,
               true,
               true});
  c.push_back({"embedding/int32",
               {F({7, 3}), Idx({5}, 7, DType::int32)},
               emb,
               emb_ref,
               kAllFloat,
               1,
               true,
               true});
  c.push_back(
      {"embedding/0d_index", {F({6, 5}), Idx({}, 6)}, emb, emb_ref, kAllFloat, 1, true, true});
  c.push_back(
      {"embedding/empty", {F({6, 5}), Idx({0}, 6)}, emb, emb_ref, kAllFloat, 1, true, true});
  c.push_back({"embedding/int_table",
               {I({8, 3}, -50, 50), Idx({4, 2}, 8)},
               emb,
               emb_ref,
               kOne,
               1,
               true,
               true});
  for (int64_t dim : {0, 1, -1}) {
    const Shape s = {4, 5, 3};
    const int64_t n = s[wrap(dim, 3)];
    c.push_back(
        {"index_select/dim" + std::to_string(dim),
         {F(s), Idx({7}, n)},
         [dim](const std::vector<Tensor>& t) { return index_select(t[0], dim, t[1]); },
         [dim](const std::vector<RefTensor>& t) { return ref_index_select(t[0], dim, t[1]); },
         kAllFloat,
         1,
         true,
         true});
  }
  c.push_back({"index_select/empty_index",
               {F({4, 3}), Idx({0}, 4)},
               [](const std::vector<Tensor>& t) { return index_select(t[0], 0, t[1]); },
               [](const std::vector<RefTensor>& t) { return ref_index_select(t[0], 0, t[1]); },
               kAllFloat,
               1,
               true,
               true});
  c.push_back({"index_select/int32_index_int_data",
               {I({6, 4}, -9, 9), Idx({3}, 4, DType::int32)},
               [](const std::vector<Tensor>& t) { return index_select(t[0], 1, t[1]); },
               [](const std::vector<RefTensor>& t) { return ref_index_select(t[0], 1, t[1]); },
               kOne,
               1,
               true,
               true});
  // ---- gather / scatter_add ----
  auto gather_case = [&](std::string name, InputSpec a, int64_t dim, InputSpec idx,
                         std::vector<DType> dts) {
    c.push_back({"gather/" + name,
                 {a, idx},
                 [dim](const std::vector<Tensor>& t) { return gather(t[0], dim, t[1]); },
                 [dim](const std::vector<RefTensor>& t) { return ref_gather(t[0], dim, t[1]); },
                 dts,
                 1,
                 true,
                 true});
  };
  gather_case("dim1", F({4, 5}), 1, Idx({4, 3}, 5), kAllFloat);
  gather_case("dim0_longer_index", F({4, 5}), 0, Idx({6, 5}, 4), kAllFloat);
  gather_case("3d_dim-2_smaller_index", F({3, 4, 5}), -2, Idx({2, 6, 3}, 4), kAllFloat);
  gather_case("1d", F({7}), 0, Idx({9}, 7), kAllFloat);
  gather_case("int_data", I({3, 4}, -10, 10), 1, Idx({3, 4}, 4), kOne);
  auto scatter_case = [&](std::string name, InputSpec a, int64_t dim, InputSpec idx, InputSpec src,
                          std::vector<DType> dts, bool exact) {
    c.push_back(
        {"scatter_add/" + name,
         {a, idx, src},
         [dim](const std::vector<Tensor>& t) { return scatter_add(t[0], dim, t[1], t[2]); },
         [dim](const std::vector<RefTensor>& t) { return ref_scatter_add(t[0], dim, t[1], t[2]); },
         dts,
         1,
         true,
         exact});
  };
  scatter_case("dim1", F({4, 5}), 1, Idx({4, 3}, 5), F({4, 3}), kAllFloat, false);
  scatter_case("dim0_collisions", F({3, 4}), 0, Idx({6, 4}, 3), F({6, 4}), kAllFloat, false);
  // src larger than index: only the index's part of src is read. (Its gradient would have the
  // index's shape, which PyTorch's autograd rejects too, so only the forward is checked.)
  scatter_case("src_larger_than_index", F({3, 4}), 0, Idx({6, 4}, 3), F({6, 5}), kAllFloat, false);
  c.back().grad_check = false;
  scatter_case("3d", F({2, 3, 4}), 2, Idx({2, 2, 7}, 4), F({2, 2, 7}), kAllFloat, false);
  scatter_case("int", I({3, 4}, -5, 5), 1, Idx({3, 6}, 4), I({3, 6}, -5, 5), kOne, true);
  // ---- cat / stack ----
  auto cat_case = [&](std::string name, std::vector<InputSpec> in, int64_t dim,
                      std::vector<DType> dts, bool exact) {
    c.push_back({"cat/" + name, in, [dim](const std::vector<Tensor>& t) { return cat(t, dim); },
                 [dim](const std::vector<RefTensor>& t) { return ref_cat(t, dim); }, dts, 1, true,
                 exact});
  };
  cat_case("dim0", {F({2, 3}), F({4, 3})}, 0, kAllFloat, true);
  cat_case("dim1_three", {F({2, 3}), F({2, 1}), F({2, 4})}, 1, kAllFloat, true);
  cat_case("dim-1_3d", {F({2, 3, 2}), F({2, 3, 5})}, -1, kAllFloat, true);
  cat_case("with_empty_piece", {F({2, 0}), F({2, 3})}, 1, kAllFloat, true);
  cat_case("legacy_empty_skipped", {F({2, 3}), F({0}), F({1, 3})}, 0, kAllFloat, true);
  cat_case("int", {I({2, 2}, -9, 9), I({3, 2}, -9, 9)}, 0, kOne, true);
  // float and int64 operands promote to the float dtype; int values are exact in every float dtype.
  cat_case("promote_int_to_float", {F({2, 2}), I({1, 2}, -9, 9)}, 0, kAllFloat, true);
  auto stack_case = [&](std::string name, std::vector<InputSpec> in, int64_t dim,
                        std::vector<DType> dts) {
    c.push_back({"stack/" + name, in, [dim](const std::vector<Tensor>& t) { return stack(t, dim); },
                 [dim](const std::vector<RefTensor>& t) { return ref_stack(t, dim); }, dts, 1, true,
                 true});
  };
  stack_case("dim0", {F({2, 3}), F({2, 3}), F({2, 3})}, 0, kAllFloat);
  stack_case("dim1", {F({2, 3}), F({2, 3})}, 1, kAllFloat);
  stack_case("dim-1", {F({2, 3}), F({2, 3})}, -1, kAllFloat);
  stack_case("0d", {F({}), F({}), F({})}, 0, kAllFloat);
  stack_case("int", {I({4}, -3, 3), I({4}, -3, 3)}, 1, kOne);
  // ---- split / chunk: each piece is a view; check a few pieces ----
  auto piece_case = [&](std::string name, Shape s, int64_t dim, int64_t piece, int64_t start,
                        int64_t len, std::function<std::vector<Tensor>(const Tensor&)> fn) {
    c.push_back({name,
                 {F(s)},
                 [fn, piece](const std::vector<Tensor>& t) { return fn(t[0])[piece]; },
                 [dim, start, len](const std::vector<RefTensor>& t) {
                   return ref_narrow(t[0], dim, start, len);
                 },
                 kAllFloat,
                 1,
                 true,
                 true});
  };
  piece_case("split/size3_first", {7, 4}, 0, 0, 0, 3,
             [](const Tensor& a) { return split(a, 3, 0); });
  piece_case("split/size3_last_smaller", {7, 4}, 0, 2, 6, 1,
             [](const Tensor& a) { return split(a, 3, 0); });
  piece_case("split/dim1", {3, 5}, 1, 1, 2, 2, [](const Tensor& a) { return split(a, 2, 1); });
  piece_case("split/sizes", {3, 6}, 1, 1, 2, 4, [](const Tensor& a) {
    return split(a, std::vector<int64_t>{2, 4}, -1);
  });
  piece_case("split/sizes_zero_piece", {5, 2}, 0, 1, 1, 0, [](const Tensor& a) {
    return split(a, std::vector<int64_t>{1, 0, 4}, 0);
  });
  piece_case("chunk/3_of_7", {7, 2}, 0, 2, 6, 1, [](const Tensor& a) { return chunk(a, 3, 0); });
  piece_case("chunk/2_of_5_dim1", {3, 5}, 1, 1, 3, 2,
             [](const Tensor& a) { return chunk(a, 2, 1); });
  // ---- tril / triu ----
  for (int64_t k : {0, 1, -2}) {
    for (bool lower : {true, false}) {
      const std::string nm = std::string(lower ? "tril" : "triu") + "/k" + std::to_string(k);
      auto run = [k, lower](const std::vector<Tensor>& t) {
        return lower ? tril(t[0], k) : triu(t[0], k);
      };
      auto ref = [k, lower](const std::vector<RefTensor>& t) { return ref_tri(t[0], k, lower); };
      c.push_back({nm, {F({4, 5})}, run, ref, kAllFloat, 1, true, true});
      c.push_back({nm + "_batched", {F({2, 3, 4, 4})}, run, ref, kAllFloat, 1, true, true});
      c.push_back({nm + "_int", {I({3, 6}, -9, 9)}, run, ref, kOne, 1, true, true});
      c.push_back({nm + "_bool", {B({5, 3})}, run, ref, kOne, 1, true, true});
    }
  }
  // ---- one_hot ----
  c.push_back({"one_hot/infer",
               {Idx({2, 3}, 5)},
               [](const std::vector<Tensor>& t) { return one_hot(t[0]); },
               [](const std::vector<RefTensor>& t) { return ref_one_hot(t[0], -1); },
               kOne,
               1,
               true,
               true});
  c.push_back({"one_hot/explicit",
               {Idx({7}, 4)},
               [](const std::vector<Tensor>& t) { return one_hot(t[0], 6); },
               [](const std::vector<RefTensor>& t) { return ref_one_hot(t[0], 6); },
               kOne,
               1,
               true,
               true});
  c.push_back({"one_hot/0d",
               {Idx({}, 4)},
               [](const std::vector<Tensor>& t) { return one_hot(t[0], 4); },
               [](const std::vector<RefTensor>& t) { return ref_one_hot(t[0], 4); },
               kOne,
               1,
               true,
               true});
  // ---- masked_fill ----
  using V = std::vector<Tensor>;
  using R = std::vector<RefTensor>;
  auto fill_case = [&](std::string nm, std::vector<InputSpec> in, double value) {
    c.push_back({"masked_fill/" + nm, std::move(in),
                 [value](const V& t) { return masked_fill(t[0], t[1], value); },
                 [value](const R& t) { return ref_masked_fill(t[0], t[1], value); }});
  };
  fill_case("same", {F({3, 4}), B({3, 4})}, 0.5);
  fill_case("mask_row_broadcast", {F({2, 3, 4}), B({4})}, -1.25);
  fill_case("key_padding_mask", {F({2, 2, 3, 5}), B({2, 1, 1, 5})}, -1e4);
  fill_case("mask_broadcasts_x", {F({1, 3}), B({2, 3})}, 3.0);
  fill_case("all_true", {F({3, 4}), BoolFilled({3, 4}, true)}, 2.0);
  fill_case("all_false", {F({3, 4}), BoolFilled({3, 4}, false)}, 2.0);
  fill_case("empty", {F({0, 3}), B({3})}, 1.0);
  // -inf makes the finite-difference objective -inf; the next row checks the gradient through it.
  constexpr double inf = std::numeric_limits<double>::infinity();
  fill_case("neg_inf", {F({3, 4}), B({3, 4})}, -inf);
  c.back().grad_check = false;
  // Causal attention scores: -inf above the diagonal, then softmax over the keys.
  c.push_back({"masked_fill/neg_inf_then_softmax",
               {F({2, 4, 4})},
               [](const V& t) {
                 Tensor above = logical_not(causal_mask(4, 4, t[0].device()));
                 return softmax(masked_fill(t[0], above, -inf), -1);
               },
               [](const R& t) {
                 RefTensor out = t[0];
                 for (int64_t r = 0; r < 8; ++r) {
                   const int64_t i = r % 4;
                   double m = -inf, s = 0;
                   for (int64_t j = 0; j <= i; ++j) m = std::max(m, t[0].v[r * 4 + j]);
                   for (int64_t j = 0; j <= i; ++j) s += std::exp(t[0].v[r * 4 + j] - m);
                   for (int64_t j = 0; j < 4; ++j)
                     out.v[r * 4 + j] = j <= i ? std::exp(t[0].v[r * 4 + j] - m) / s : 0.0;
                 }
                 return out;
               }});
  // A 0-dim value tensor: its gradient is the sum over the filled positions.
  auto value_tensor_run = [](const V& t) { return masked_fill(t[0], t[1], t[2]); };
  auto value_tensor_ref = [](const R& t) { return ref_masked_fill(t[0], t[1], t[2].v[0]); };
  c.push_back({"masked_fill/value_tensor",
               {F({3, 4}), B({3, 4}), F({})},
               value_tensor_run,
               value_tensor_ref});
  c.push_back({"masked_fill/value_tensor_broadcast",
               {F({2, 3, 4}), B({3, 1}), F({})},
               value_tensor_run,
               value_tensor_ref});
  c.push_back({"masked_fill/int",
               {I({3, 4}, -9, 9), B({4})},
               [](const V& t) { return masked_fill(t[0], t[1], 7); },
               [](const R& t) { return ref_masked_fill(t[0], t[1], 7); },
               kOne,
               1,
               true,
               true});
  c.push_back({"masked_fill/bool",
               {B({3, 4}), B({3, 1})},
               [](const V& t) { return masked_fill(t[0], t[1], true); },
               [](const R& t) { return ref_masked_fill(t[0], t[1], 1); },
               kOne,
               1,
               true,
               true});
  // Copies of floating data compare within the dtype's tolerance (they are exact in practice) so
  // that the harness also checks their gradients; integer-only results compare exactly.
  for (OpCase& oc : c) {
    for (const InputSpec& in : oc.inputs)
      if (in.kind == InputSpec::Kind::floating) oc.exact = false;
  }
  return c;
}

TEST(OpHarness, Index) { run_cases(index_op_cases()); }
TEST(OpHarnessCuda, Index) { run_cases_on_cuda(index_op_cases()); }

}  // namespace fabric::harness
