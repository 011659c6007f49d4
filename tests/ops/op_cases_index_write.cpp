// Harness cases for the index-write ops (index_add, index_copy, index_fill, scatter,
// scatter_reduce, masked_select, masked_scatter, nonzero, index, index_put, take_along_dim)
// against naive float64 references, or against their own float64 run where the torch fixture
// (test_index_write_torch.cpp) pins the values.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "tests/ops/op_harness.h"

namespace fabric::harness {
namespace {

using TV = std::vector<Tensor>;
using RV = std::vector<RefTensor>;

const std::vector<DType> kAllFloat = {DType::float64, DType::float32, DType::bfloat16,
                                      DType::float16};
const std::vector<DType> kOne = {DType::float64};  // integer-only cases

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

// An index input holding exactly `values` (unique per line where a gradient check needs it:
// a position written twice keeps only the last write, so the overwritten source has no
// derivative and torch's rule, like ours, would still give it one).
InputSpec IdxV(Shape s, int64_t n, std::vector<double> values) {
  InputSpec spec = Idx(std::move(s), n);
  spec.values = std::move(values);
  return spec;
}

// scatter / scatter_reduce along dim, visiting the index in row-major order ("assign": the last
// write wins, as the kernels' line order gives).
RefTensor ref_scatter(const RefTensor& a, int64_t dim, const RefTensor& index, const RefTensor* src,
                      double value, const std::string& reduce, bool include_self) {
  RefTensor out = a;
  std::vector<double> count(a.v.size(), include_self ? 1.0 : 0.0);
  constexpr double inf = std::numeric_limits<double>::infinity();
  const double init = reduce == "prod" ? 1 : reduce == "amax" ? -inf : reduce == "amin" ? inf : 0;
  auto target = [&](std::vector<int64_t> i) {
    i[dim] = static_cast<int64_t>(index.at(i));
    return out.index(i);
  };
  if (!include_self) for_each_index(index.shape, [&](const auto& i) { out.v[target(i)] = init; });
  for_each_index(index.shape, [&](const std::vector<int64_t>& i) {
    const double s = src ? src->at(i) : value;
    double& o = out.v[target(i)];
    count[target(i)] += 1;
    if (reduce == "sum" || reduce == "mean")
      o += s;
    else if (reduce == "prod")
      o *= s;
    else if (reduce == "amax")
      o = std::max(o, s);
    else if (reduce == "amin")
      o = std::min(o, s);
    else
      o = s;
  });
  if (reduce == "mean")
    for (size_t k = 0; k < out.v.size(); ++k) out.v[k] /= std::max(1.0, count[k]);
  return out;
}

// index_add / index_copy / index_fill: position i of source (or of the filled rows) lands at
// i with i[dim] replaced by index[i[dim]].
RefTensor ref_index_write(const RefTensor& a, int64_t dim, const RefTensor& index,
                          const RefTensor* source, double alpha_or_value, bool add) {
  RefTensor out = a;
  Shape s = a.shape;
  s[dim] = index.numel();
  for_each_index(s, [&](const std::vector<int64_t>& i) {
    std::vector<int64_t> j = i;
    j[dim] = static_cast<int64_t>(index.v[i[dim]]);
    double& o = out.v[out.index(j)];
    if (!source)
      o = alpha_or_value;
    else if (add)
      o += alpha_or_value * source->at(i);
    else
      o = source->at(i);
  });
  return out;
}

RefTensor ref_masked_select(const RefTensor& a, const RefTensor& mask) {
  const Shape s = broadcast_shapes(a.shape, mask.shape, "ref_masked_select");
  RefTensor out{{0}, {}};
  auto at = [&](const RefTensor& t, const std::vector<int64_t>& i) {
    std::vector<int64_t> j(t.shape.size());
    const size_t lead = i.size() - t.shape.size();
    for (size_t d = 0; d < t.shape.size(); ++d) j[d] = t.shape[d] == 1 ? 0 : i[lead + d];
    return t.at(j);
  };
  for_each_index(s, [&](const std::vector<int64_t>& i) {
    if (at(mask, i) != 0) out.v.push_back(at(a, i));
  });
  out.shape = {static_cast<int64_t>(out.v.size())};
  return out;
}

RefTensor ref_nonzero(const RefTensor& a) {
  RefTensor out{{0, static_cast<int64_t>(a.shape.size())}, {}};
  for_each_index(a.shape, [&](const std::vector<int64_t>& i) {
    if (a.at(i) == 0) return;
    for (int64_t k : i) out.v.push_back(static_cast<double>(k));
    ++out.shape[0];
  });
  return out;
}

}  // namespace

std::vector<OpCase> index_write_op_cases() {
  std::vector<OpCase> c;
  // ---- index_add / index_copy / index_fill ----
  auto add_case = [&](std::string nm, InputSpec a, int64_t dim, InputSpec idx, InputSpec src,
                      double alpha) {
    c.push_back({"index_add/" + nm,
                 {a, idx, src},
                 [dim, alpha](const TV& t) { return index_add(t[0], dim, t[1], t[2], alpha); },
                 [dim, alpha](const RV& t) {
                   return ref_index_write(t[0], dim < 0 ? dim + t[0].shape.size() : dim, t[1],
                                          &t[2], alpha, true);
                 }});
  };
  add_case("dim0_duplicates", F({4, 3}), 0, Idx({6}, 4), F({6, 3}), 1.0);
  add_case("dim1_alpha", F({2, 5, 3}), 1, Idx({4}, 5), F({2, 4, 3}), -0.5);
  add_case("dim-1", F({3, 4}), -1, Idx({2}, 4), F({3, 2}), 2.0);
  add_case("int32_index", F({5, 2}), 0, Idx({3}, 5, DType::int32), F({3, 2}), 1.0);
  add_case("empty_index", F({3, 2}), 0, Idx({0}, 3), F({0, 2}), 1.0);
  auto copy_case = [&](std::string nm, InputSpec a, int64_t dim, InputSpec idx, InputSpec src) {
    c.push_back({"index_copy/" + nm,
                 {a, idx, src},
                 [dim](const TV& t) { return index_copy(t[0], dim, t[1], t[2]); },
                 [dim](const RV& t) { return ref_index_write(t[0], dim, t[1], &t[2], 0, false); }});
  };
  copy_case("dim0", F({5, 3}), 0, IdxV({3}, 5, {4, 0, 2}), F({3, 3}));
  copy_case("dim2", F({2, 3, 4}), 2, IdxV({2}, 4, {3, 1}), F({2, 3, 2}));
  auto fill_case = [&](std::string nm, InputSpec a, int64_t dim, InputSpec idx, double value) {
    c.push_back({"index_fill/" + nm,
                 {a, idx},
                 [dim, value](const TV& t) { return index_fill(t[0], dim, t[1], value); },
                 [dim, value](const RV& t) {
                   return ref_index_write(t[0], dim, t[1], nullptr, value, false);
                 }});
  };
  fill_case("dim0_duplicates", F({4, 3}), 0, Idx({5}, 4), -1.5);
  fill_case("dim1", F({2, 5, 2}), 1, Idx({2}, 5), 3.0);
  // ---- scatter ----
  auto scatter_case = [&](std::string nm, InputSpec a, int64_t dim, InputSpec idx, InputSpec src) {
    c.push_back({"scatter/" + nm,
                 {a, idx, src},
                 [dim](const TV& t) { return scatter(t[0], dim, t[1], t[2]); },
                 [dim](const RV& t) { return ref_scatter(t[0], dim, t[1], &t[2], 0, "", true); }});
  };
  scatter_case("dim1_unique", F({3, 5}), 1, IdxV({3, 2}, 5, {4, 0, 1, 3, 2, 1}), F({3, 2}));
  scatter_case("dim0", F({4, 3}), 0, IdxV({2, 3}, 4, {0, 1, 2, 3, 3, 0}), F({2, 3}));
  scatter_case("3d_dim2_src_larger", F({2, 2, 4}), 2, IdxV({2, 2, 2}, 4, {0, 3, 1, 2, 2, 0, 3, 1}),
               F({2, 2, 3}));
  c.back().grad_check = false;  // src larger than index: torch has no gradient of that shape
  scatter_case("duplicates_last_wins", F({3, 4}), 1, Idx({3, 6}, 4), F({3, 6}));
  c.back().grad_check = false;  // an overwritten src element has no derivative
  scatter_case("int", I({3, 4}, -9, 9), 0, Idx({2, 4}, 3), I({2, 4}, -9, 9));
  c.back().dtypes = kOne;
  c.back().exact = true;
  c.push_back({"scatter/value",
               {F({3, 4}), Idx({3, 3}, 4)},
               [](const TV& t) { return scatter(t[0], 1, t[1], Scalar(0.75)); },
               [](const RV& t) { return ref_scatter(t[0], 1, t[1], nullptr, 0.75, "", true); }});
  // ---- scatter_reduce: every reduction, with and without self (random floats: no ties) ----
  for (const char* reduce : {"sum", "prod", "mean", "amax", "amin"}) {
    for (bool self : {true, false}) {
      const std::string nm = std::string(reduce) + (self ? "" : "_exclude_self");
      auto run = [reduce, self](const TV& t) {
        return scatter_reduce(t[0], 0, t[1], t[2], reduce, self);
      };
      auto ref = [reduce, self](const RV& t) {
        return ref_scatter(t[0], 0, t[1], &t[2], 0, reduce, self);
      };
      c.push_back({"scatter_reduce/" + nm,
                   {F({4, 3}), Idx({6, 3}, 4), F({6, 3})},
                   run,
                   ref,
                   kAllFloat,
                   2.0});
      c.push_back({"scatter_reduce/" + nm + "_dim2_3d",
                   {F({2, 3, 4}), Idx({2, 3, 5}, 4), F({2, 3, 5})},
                   [reduce, self](const TV& t) {
                     return scatter_reduce(t[0], 2, t[1], t[2], reduce, self);
                   },
                   [reduce, self](const RV& t) {
                     return ref_scatter(t[0], 2, t[1], &t[2], 0, reduce, self);
                   },
                   kAllFloat,
                   2.0});
    }
  }
  // prod through zeros: one zero in a group, two zeros, and a zero in self.
  c.push_back({"scatter_reduce/prod_zeros",
               {V({3, 2}, {0, 1.5, -0.5, 2, 1.25, 0.75}), IdxV({4, 2}, 3, {0, 1, 0, 1, 1, 2, 2, 2}),
                V({4, 2}, {1.5, 0, -2, 0, 0, 0.5, 0.25, -1})},
               [](const TV& t) { return scatter_reduce(t[0], 0, t[1], t[2], "prod", true); },
               [](const RV& t) { return ref_scatter(t[0], 0, t[1], &t[2], 0, "prod", true); }});
  c.push_back({"scatter_reduce/int_amax_exclude_self",
               {I({3, 4}, -9, 9), Idx({5, 4}, 3), I({5, 4}, -9, 9)},
               [](const TV& t) { return scatter_reduce(t[0], 0, t[1], t[2], "amax", false); },
               [](const RV& t) { return ref_scatter(t[0], 0, t[1], &t[2], 0, "amax", false); },
               kOne,
               1,
               true,
               true});
  // ---- masked_select / masked_scatter / nonzero ----
  c.push_back({"masked_select/same",
               {F({3, 4}), B({3, 4})},
               [](const TV& t) { return masked_select(t[0], t[1]); },
               [](const RV& t) { return ref_masked_select(t[0], t[1]); }});
  c.push_back({"masked_select/broadcast_both",
               {F({2, 1, 4}), B({3, 1})},
               [](const TV& t) { return masked_select(t[0], t[1]); },
               [](const RV& t) { return ref_masked_select(t[0], t[1]); }});
  c.push_back({"masked_scatter/broadcast_mask",
               {F({2, 3, 4}), B({3, 4}), F({30})},
               [](const TV& t) { return masked_scatter(t[0], t[1], t[2]); }});
  c.push_back({"nonzero/float",
               {V({2, 3}, {0, 1.5, 0, -2, 0, 0.25})},
               [](const TV& t) { return nonzero(t[0]); },
               [](const RV& t) { return ref_nonzero(t[0]); },
               kAllFloat,
               1,
               true,
               true});
  c.push_back({"nonzero/bool_3d",
               {B({2, 3, 4})},
               [](const TV& t) { return nonzero(t[0]); },
               [](const RV& t) { return ref_nonzero(t[0]); },
               kOne,
               1,
               true,
               true});
  c.push_back({"nonzero/int",
               {I({4}, 0, 1)},
               [](const TV& t) { return nonzero(t[0]); },
               [](const RV& t) { return ref_nonzero(t[0]); },
               kOne,
               1,
               true,
               true});
  // ---- index / index_put (values pinned by the torch fixture; here: dtypes, layouts, grads) ----
  const Tensor none;
  c.push_back({"index/adjacent_middle",
               {F({2, 4, 5, 3}), Idx({2, 3}, 4), Idx({3}, 5)},
               [none](const TV& t) {
                 return index(t[0], {none, t[1], t[2]});
               }});
  c.push_back({"index/separated", {F({4, 2, 5}), Idx({3}, 4), Idx({2, 1}, 5)}, [none](const TV& t) {
                 return index(t[0], {t[1], none, t[2]});
               }});
  c.push_back({"index/bool_mask_then_int", {F({3, 4, 2}), B({3, 4}), Idx({1}, 2)}, [](const TV& t) {
                 return index(t[0], {t[1], t[2]});
               }});
  c.push_back({"index_put/accumulate_duplicates",
               {F({4, 3}), Idx({5}, 4), F({5, 3})},
               [](const TV& t) { return index_put(t[0], {t[1]}, t[2], true); }});
  c.push_back({"index_put/assign_broadcast_values",
               {F({3, 4, 2}), IdxV({2}, 3, {2, 0}), IdxV({2}, 4, {1, 3}), F({2})},
               [](const TV& t) {
                 return index_put(t[0], {t[1], t[2]}, t[3], false);
               }});
  c.push_back({"index_put/bool_mask", {F({3, 4}), B({3, 4}), F({})}, [](const TV& t) {
                 return index_put(t[0], {t[1]}, t[2], false);
               }});
  // ---- take_along_dim ----
  c.push_back({"take_along_dim/broadcast", {F({3, 1, 5}), Idx({1, 4, 2}, 5)}, [](const TV& t) {
                 return take_along_dim(t[0], t[1], -1);
               }});
  c.push_back({"take_along_dim/flat", {F({3, 4}), Idx({7}, 12)}, [](const TV& t) {
                 return take_along_dim(t[0], t[1]);
               }});
  // Copies compare within the dtype's tolerance so that their gradients are checked too.
  for (OpCase& oc : c)
    for (const InputSpec& in : oc.inputs)
      if (in.kind == InputSpec::Kind::floating) oc.exact = false;
  return c;
}

TEST(OpHarness, IndexWrite) { run_cases(index_write_op_cases()); }
TEST(OpHarnessCuda, IndexWrite) { run_cases_on_cuda(index_write_op_cases()); }

}  // namespace fabric::harness
