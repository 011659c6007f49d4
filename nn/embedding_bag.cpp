// EmbeddingBag: the bags are laid out on the host (where each bag starts and ends). Where the
// weight's device has the fused kernel (embedding_bag_kernels.h: the CPU), each bag's rows are
// read and reduced in one pass, and with a graph to record one node (torch's
// EmbeddingBagBackward0) gives the gradients from the kernel's argmax and bag sizes; its sum/mean
// weight gradient is a fused kernel too unless that gradient is itself recorded (create_graph).
// Elsewhere sum/mean are one index_add of the gathered rows into their bags, max a max over the
// bags padded to the longest one, and the gradients come from those ops' rules.
#include "nn/embedding_bag.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "autograd/connect_node.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "nn/init.h"
#include "tensor/embedding_bag_kernels.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/shape.h"

namespace fabric::nn {
namespace {

std::vector<int64_t> host_int64(const Tensor& t) {
  return t.detach().to(Device::cpu()).to(DType::int64).contiguous().to_vector<int64_t>();
}

// The bounds of every bag, as torch: bag b is [bounds[b], bounds[b + 1]) of the flattened input
// (a 2-D input's rows, or the given offsets, checked, the last bag running to the input's end
// unless include_last_offset makes offsets' last entry its end).
std::vector<int64_t> bag_bounds(const Tensor& input, const Tensor& offsets,
                                bool include_last_offset) {
  const int64_t n = input.numel();
  if (input.dim() == 2) {
    std::vector<int64_t> bounds(static_cast<size_t>(input.size(0)) + 1);
    for (size_t b = 0; b < bounds.size(); ++b) bounds[b] = static_cast<int64_t>(b) * input.size(1);
    return bounds;
  }
  std::vector<int64_t> starts = host_int64(offsets);
  FABRIC_CHECK(!include_last_offset || !starts.empty(), ValueError,
               "embedding_bag: include_last_offset needs at least one offset (the end of the last "
               "bag), got none");
  if (!starts.empty()) {
    FABRIC_CHECK(starts[0] == 0, ValueError,
                 "embedding_bag: offsets[0] has to be 0, i.e., the first sequence in the "
                 "mini-batch has to start from position 0. However, got ",
                 starts[0]);
    for (size_t b = 1; b < starts.size(); ++b)
      FABRIC_CHECK(starts[b] >= starts[b - 1], ValueError,
                   "embedding_bag: offsets must not decrease, got offsets[", b - 1,
                   "] = ", starts[b - 1], " and offsets[", b, "] = ", starts[b]);
    FABRIC_CHECK(starts.back() <= n, ValueError,
                 "embedding_bag: offsets[-1] can not be greater than input's length ", n,
                 " but got offsets[-1] of ", starts.back());
  }
  if (!include_last_offset) starts.push_back(n);
  return starts;
}

// Every index a bag reads (the input past the last bag's end is never read) within the table.
void check_indices(const int64_t* idx, const std::vector<int64_t>& bounds, int64_t num_embeddings) {
  for (int64_t i = bounds.front(); i < bounds.back(); ++i)
    FABRIC_CHECK(idx[i] >= 0 && idx[i] < num_embeddings, IndexError,
                 "embedding_bag: Expected idx >= 0 && idx < num_embeddings (", num_embeddings,
                 ") but found idx to be ", idx[i], " at input position ", i);
}

// The looked-up entries that count (padding_idx left out): where they sit in the flattened input,
// their index into the table, and their bag. int64 CPU tensors of one entry per kept lookup: the
// caching CPU allocator serves them again on the next call, where growing std::vectors of that
// size took fresh pages (page faults) every forward.
struct BagLayout {
  int64_t bags = 0, kept = 0;
  Tensor position, row, bag;
  std::vector<int64_t> count;  // per bag
};

BagLayout layout_bags(const int64_t* idx, const std::vector<int64_t>& bounds,
                      std::optional<int64_t> padding_idx) {
  const int64_t n = bounds.back() - bounds.front();
  BagLayout l;
  l.bags = static_cast<int64_t>(bounds.size()) - 1;
  l.count.assign(static_cast<size_t>(l.bags), 0);
  l.position = empty({n}, {.dtype = DType::int64});
  l.row = empty({n}, {.dtype = DType::int64});
  l.bag = empty({n}, {.dtype = DType::int64});
  int64_t* position = l.position.data<int64_t>();
  int64_t* row = l.row.data<int64_t>();
  int64_t* bag = l.bag.data<int64_t>();
  int64_t k = 0;
  for (int64_t b = 0; b < l.bags; ++b) {
    for (int64_t i = bounds[static_cast<size_t>(b)]; i < bounds[static_cast<size_t>(b) + 1]; ++i) {
      const int64_t r = idx[i];
      if (padding_idx && r == *padding_idx) continue;
      position[k] = i;
      row[k] = r;
      bag[k] = b;
      ++k;
      ++l.count[static_cast<size_t>(b)];
    }
  }
  l.kept = k;
  l.position = l.position.narrow(0, 0, k);
  l.row = l.row.narrow(0, 0, k);
  l.bag = l.bag.narrow(0, 0, k);
  return l;
}

Tensor index_tensor(const std::vector<int64_t>& v, Device device) {
  return from_vector(v, {static_cast<int64_t>(v.size())}).to(device);
}

// mean's divisor per bag (B, 1): its kept count, 1 for an empty bag (whose zeros stay zeros).
Tensor mean_divisor(const std::vector<int64_t>& count, DType dtype, Device device) {
  std::vector<double> divisor(count.begin(), count.end());
  for (double& d : divisor) d = std::max(d, 1.0);
  return from_vector(divisor, {static_cast<int64_t>(divisor.size()), 1}).to(dtype).to(device);
}

// ---- the composition (devices without the fused kernel) ----------------------------------------

// max over each bag: the rows padded to the longest bag with -inf, empty bags then zeroed.
Tensor bag_max(const Tensor& rows, const BagLayout& l, int64_t dim, Device device) {
  const int64_t longest = l.count.empty() ? 0 : *std::max_element(l.count.begin(), l.count.end());
  std::vector<int64_t> slot(static_cast<size_t>(l.bags * longest), 0);
  std::vector<uint8_t> filled(slot.size(), 0);
  std::vector<int64_t> next(static_cast<size_t>(l.bags), 0);
  const int64_t* bag = l.bag.data<int64_t>();
  for (int64_t k = 0; k < l.kept; ++k) {
    const size_t at = static_cast<size_t>(bag[k] * longest + next[static_cast<size_t>(bag[k])]++);
    slot[at] = k;
    filled[at] = 1;
  }
  const Tensor padded =
      index_select(rows, 0, index_tensor(slot, device)).view({l.bags, longest, dim});
  // Summing an empty dim keeps the graph to the weight (a zero gradient, as torch).
  if (longest == 0) return sum(padded, {1});
  const Tensor valid = from_vector(filled, {l.bags, longest, 1}).to(DType::bool_).to(device);
  const Tensor best =
      std::get<0>(max(where(valid, padded, -std::numeric_limits<double>::infinity()), 1));
  std::vector<uint8_t> nonempty(static_cast<size_t>(l.bags));
  for (size_t b = 0; b < nonempty.size(); ++b) nonempty[b] = l.count[b] > 0;
  return where(from_vector(nonempty, {l.bags, 1}).to(DType::bool_).to(device), best, 0.0);
}

Tensor composed_embedding_bag(const Tensor& weight, const BagLayout& l, const std::string& mode,
                              const Tensor& per_sample_weights) {
  const int64_t dim = weight.size(1);
  const Device device = weight.device();
  if (mode == "max") return bag_max(embedding(weight, l.row.to(device)), l, dim, device);

  // Each looked-up row added into its bag's row: a gather and one row-wise index_add. Without a
  // graph to record (inference), the rows are never needed whole: a block at a time, they stay in
  // blocks the caching allocator hands out again, where all of them at once (tens of MiB) would
  // take fresh pages on every call.
  const bool recording =
      grad_enabled() && (weight.requires_grad() ||
                         (per_sample_weights.defined() && per_sample_weights.requires_grad()));
  constexpr int64_t kLookupBlock = 8192;
  const int64_t block = recording ? std::max<int64_t>(l.kept, 1) : kLookupBlock;
  Tensor out;
  for (int64_t start = 0; start == 0 || start < l.kept; start += block) {
    const int64_t len = std::min(block, l.kept - start);
    const Tensor rows = embedding(weight, l.row.narrow(0, start, len).to(device));
    Tensor scaled = rows;
    if (per_sample_weights.defined()) {
      const Tensor w =
          index_select(per_sample_weights.reshape({-1}), 0,
                       l.position.narrow(0, start, len).to(per_sample_weights.device()));
      scaled = mul(rows, w.to(device).unsqueeze(1));
    }
    if (!out.defined()) out = zeros({l.bags, dim}, {.dtype = scaled.dtype(), .device = device});
    out = index_add(out, 0, l.bag.narrow(0, start, len).to(device), scaled);
  }
  if (mode == "sum") return out;
  return div(out, mean_divisor(l.count, out.dtype(), device));
}

// ---- the fused kernel's node -------------------------------------------------------------------

// What EmbeddingBagBackward0 needs: the layout is rebuilt from the indices in backward (the
// forward kernel never made it), argmax and the counts come from the kernel.
struct FusedBackward {
  EmbeddingBagMode mode;
  Tensor indices;  // flattened input, int64 CPU
  std::vector<int64_t> bounds;
  std::optional<int64_t> padding_idx;
  Tensor argmax;  // max: (B, D), -1 in empty bags
  Shape weight_shape, input_shape;
  Tensor weight, per_sample_weights;  // saved aliases: weight for psw's grad, psw for weight's
  bool weight_grad = false, psw_grad = false;

  std::vector<Tensor> operator()(const std::vector<Tensor>& grads) const {
    std::vector<Tensor> r(2);
    const Tensor& g = grads[0];  // (B, D)
    if (!g.defined()) return r;
    const Device device = g.device();
    const int64_t num = weight_shape[0], dim = weight_shape[1];
    const TensorOptions opts{.dtype = g.dtype(), .device = device};
    if (mode == EmbeddingBagMode::max) {
      // Each element's gradient to its argmax's row; empty bags' to a dump slot past the table.
      const Tensor columns = arange(Scalar(0), Scalar(dim), Scalar(1), DType::int64, device);
      const Tensor target =
          where(ge(argmax, 0), add(mul(argmax, dim), columns), Scalar(num * dim)).reshape({-1});
      const Tensor flat = index_add(zeros({num * dim + 1}, opts), 0, target, g.reshape({-1}));
      r[0] = flat.narrow(0, 0, num * dim).view({num, dim});
      return r;
    }
    // Without a graph to record (not create_graph), the weight's gradient is the fused kernel's:
    // the same bits as the index_add below, without the (lookups, dim) gather.
    const bool fuse_weight_grad = weight_grad && !grad_enabled();
    if (fuse_weight_grad) {
      r[0] = embedding_bag_backward_fused(g, indices, bounds, num, mode,
                                          per_sample_weights.defined()
                                              ? per_sample_weights.reshape({-1})
                                              : Tensor(),
                                          padding_idx.value_or(-1));
      if (r[0].defined() && !psw_grad) return r;
    }
    const BagLayout l = layout_bags(indices.data<int64_t>(), bounds, padding_idx);
    const Tensor bag = l.bag.to(device);
    const Tensor bag_grad =
        mode == EmbeddingBagMode::mean ? div(g, mean_divisor(l.count, g.dtype(), device)) : g;
    const Tensor rows_grad = index_select(bag_grad, 0, bag);  // (kept, D)
    const Tensor position = per_sample_weights.defined() ? l.position.to(device) : Tensor();
    if (weight_grad && !r[0].defined()) {
      Tensor src = rows_grad;
      if (per_sample_weights.defined())
        src = mul(rows_grad,
                  index_select(per_sample_weights.reshape({-1}), 0, position).unsqueeze(1));
      r[0] = index_add(zeros(weight_shape, opts), 0, l.row.to(device), src);
    }
    if (psw_grad) {
      const Tensor dots = sum(mul(rows_grad, embedding(weight, l.row.to(device))), {1});
      const int64_t n = indices.numel();
      r[1] = index_add(zeros({n}, opts), 0, position, dots).view(input_shape);
    }
    return r;
  }
};

SavedVersion saved_input(const Tensor& t, int input_nr) {
  SavedVersion s{t.storage(), t.storage()->version(), t.sizes(), t.dtype(), t.detach()};
  s.input_nr = input_nr;
  return s;
}

// out gets the history of one node over (weight, per_sample_weights) whose gradients are of
// recorded ops, so that they differentiate again.
Tensor record_fused(Tensor out, FusedBackward backward, const Tensor& weight,
                    const Tensor& per_sample_weights, const Tensor& input) {
  const auto needs = [](const Tensor& t) { return t.defined() && t.requires_grad(); };
  backward.weight_grad = needs(weight);
  backward.psw_grad = needs(per_sample_weights);
  // The indices are read again in backward (an int64 CPU input is not copied): writing into
  // them before then raises, as torch's saved indices do.
  std::vector<SavedVersion> saved{
      SavedVersion{input.storage(), input.storage()->version(), input.sizes(), input.dtype(), {}}};
  if (backward.psw_grad) {
    saved.push_back(saved_input(weight, 0));
    backward.weight = saved.back().alias;
  }
  if (backward.weight_grad && per_sample_weights.defined()) {
    saved.push_back(saved_input(per_sample_weights, 1));
    backward.per_sample_weights = saved.back().alias;
  } else if (backward.psw_grad) {
    backward.per_sample_weights = per_sample_weights.detach();  // only for its positions
  }
  auto node = std::make_shared<FunctionNode>("embedding_bag", std::move(backward));
  node->set_saved_versions(std::move(saved));
  node->set_supports_double_backward(true);
  add_input_edges(*node, {weight, per_sample_weights});
  set_grad_fn(out, node, 0);
  return out;
}

EmbeddingBagMode mode_of(const std::string& mode) {
  if (mode == "sum") return EmbeddingBagMode::sum;
  if (mode == "mean") return EmbeddingBagMode::mean;
  return EmbeddingBagMode::max;
}

}  // namespace

Tensor embedding_bag(const Tensor& weight, const Tensor& input, const Tensor& offsets,
                     const std::string& mode, const Tensor& per_sample_weights,
                     bool include_last_offset, std::optional<int64_t> padding_idx) {
  FABRIC_CHECK(weight.defined() && weight.dim() == 2, ShapeError,
               "embedding_bag: weight must be a 2-D table (num_embeddings, embedding_dim), got ",
               weight.defined() ? shape_str(weight.sizes()) : "undefined");
  FABRIC_CHECK(mode == "sum" || mode == "mean" || mode == "max", ValueError,
               "embedding_bag: mode has to be one of sum, mean or max, got '", mode, "'");
  FABRIC_CHECK(is_floating(weight.dtype()) && !is_fp8(weight.dtype()), DTypeError,
               "embedding_bag: weight must be float16, bfloat16, float32 or float64, got ",
               dtype_name(weight.dtype()));
  FABRIC_CHECK(input.defined() && (input.dim() == 1 || input.dim() == 2), ShapeError,
               "embedding_bag: input has to be 1D or 2D Tensor, but got ",
               input.defined() ? shape_str(input.sizes()) : "undefined");
  FABRIC_CHECK(input.dtype() == DType::int64 || input.dtype() == DType::int32, DTypeError,
               "embedding_bag: expected int64 or int32 indices, got ", dtype_name(input.dtype()));
  if (input.dim() == 2) {
    FABRIC_CHECK(!offsets.defined(), ValueError,
                 "embedding_bag: if input is 2D, then offsets has to be None, as input is treated "
                 "is a mini-batch of fixed length sequences. However, found offsets of shape ",
                 shape_str(offsets.sizes()));
  } else {
    FABRIC_CHECK(offsets.defined() && offsets.dim() == 1, ValueError,
                 "embedding_bag: offsets has to be a 1D Tensor but got ",
                 offsets.defined() ? shape_str(offsets.sizes()) : "None");
    FABRIC_CHECK(offsets.dtype() == DType::int64 || offsets.dtype() == DType::int32, DTypeError,
                 "embedding_bag: expected int64 or int32 offsets, got ",
                 dtype_name(offsets.dtype()));
  }
  if (per_sample_weights.defined()) {
    FABRIC_CHECK(per_sample_weights.sizes() == input.sizes(), ValueError,
                 "embedding_bag: If per_sample_weights (", shape_str(per_sample_weights.sizes()),
                 ") is not None, then it must have the same shape as the input (",
                 shape_str(input.sizes()), ")");
    FABRIC_CHECK(mode == "sum", NotImplementedError,
                 "embedding_bag: per_sample_weights was not None. per_sample_weights is only "
                 "supported for mode='sum' (got mode='",
                 mode, "')");
    FABRIC_CHECK(per_sample_weights.dtype() == weight.dtype(), DTypeError,
                 "embedding_bag: per_sample_weights must have weight's dtype ",
                 dtype_name(weight.dtype()), ", got ", dtype_name(per_sample_weights.dtype()));
  }
  const int64_t num = weight.size(0);
  if (padding_idx) {
    FABRIC_CHECK(*padding_idx >= -num && *padding_idx < num, ValueError,
                 "embedding_bag: padding_idx must be within the number of embeddings, ", -num,
                 " through ", num - 1, ", but got ", *padding_idx);
    if (*padding_idx < 0) *padding_idx += num;
  }
  const Tensor flat = input.detach().reshape({-1}).to(Device::cpu()).to(DType::int64).contiguous();
  const std::vector<int64_t> bounds = bag_bounds(input, offsets, include_last_offset);
  check_indices(flat.data<int64_t>(), bounds, num);

  const Device device = weight.device();
  const bool recording =
      grad_enabled() && (weight.requires_grad() ||
                         (per_sample_weights.defined() && per_sample_weights.requires_grad()));
  if (embedding_bag_available(device)) {
    const EmbeddingBagMode m = mode_of(mode);
    const Tensor psw = per_sample_weights.defined()
                           ? per_sample_weights.detach().reshape({-1}).to(device)
                           : Tensor();
    EmbeddingBagFused fused =
        embedding_bag_fused(weight.detach(), device.is_cpu() ? flat : flat.to(device), bounds, m,
                            psw, padding_idx.value_or(-1), recording);
    if (fused.out.defined()) {
      if (!recording) return fused.out;
      return record_fused(fused.out,
                          FusedBackward{.mode = m,
                                        .indices = flat,
                                        .bounds = bounds,
                                        .padding_idx = padding_idx,
                                        .argmax = fused.argmax,
                                        .weight_shape = weight.sizes(),
                                        .input_shape = input.sizes()},
                          weight, per_sample_weights, input);
    }
  }
  return composed_embedding_bag(weight, layout_bags(flat.data<int64_t>(), bounds, padding_idx),
                                mode, per_sample_weights);
}

EmbeddingBag::EmbeddingBag(const EmbeddingBagOptions& options) : options_(options) {
  FABRIC_CHECK(options.num_embeddings >= 0 && options.embedding_dim >= 0, ValueError,
               "EmbeddingBag: num_embeddings and embedding_dim must be >= 0, got ",
               options.num_embeddings, " and ", options.embedding_dim);
  FABRIC_CHECK(options.mode == "sum" || options.mode == "mean" || options.mode == "max", ValueError,
               "EmbeddingBag: mode has to be one of sum, mean or max, got '", options.mode, "'");
  if (options.padding_idx) {
    int64_t p = *options.padding_idx;
    FABRIC_CHECK(p < options.num_embeddings && p >= -options.num_embeddings, IndexError,
                 "EmbeddingBag: padding_idx ", p, " must be within num_embeddings ",
                 options.num_embeddings);
    if (p < 0) p += options.num_embeddings;
    options_.padding_idx = p;
  }
  weight = register_parameter("weight", empty({options.num_embeddings, options.embedding_dim}));
  reset_parameters();
}

void EmbeddingBag::reset_parameters(Generator* gen) {
  init::normal_(weight, 0.0, 1.0, gen);
  if (options_.padding_idx) init::zeros_(weight.select(0, *options_.padding_idx));
}

Tensor EmbeddingBag::forward(const Tensor& input) { return forward(input, Tensor(), Tensor()); }

Tensor EmbeddingBag::forward(const Tensor& input, const Tensor& offsets,
                             const Tensor& per_sample_weights) {
  return embedding_bag(weight, input, offsets, options_.mode, per_sample_weights,
                       options_.include_last_offset, options_.padding_idx);
}

std::string EmbeddingBag::extra_repr() const {
  std::string s =
      detail::cat(options_.num_embeddings, ", ", options_.embedding_dim, ", mode=", options_.mode);
  if (options_.padding_idx) s += detail::cat(", padding_idx=", *options_.padding_idx);
  return s;
}

}  // namespace fabric::nn
