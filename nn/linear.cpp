// Linear and Embedding.
#include "nn/linear.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "nn/init.h"
#include "nn/py_repr.h"
#include "tensor/factory.h"
#include "tensor/index_write_checks.h"
#include "tensor/ops.h"

namespace fabric::nn {

Linear::Linear(const LinearOptions& options) : options_(options) {
  FABRIC_CHECK(options.in_features >= 0 && options.out_features >= 0, ValueError,
               "Linear: in_features and out_features must be >= 0, got in_features=",
               options.in_features, ", out_features=", options.out_features);
  weight = register_parameter("weight", empty({options.out_features, options.in_features}));
  if (options.bias) bias = register_parameter("bias", empty({options.out_features}));
  reset_parameters();
}

void Linear::reset_parameters(Generator* gen) {
  init::kaiming_uniform_(weight, std::sqrt(5.0), init::FanMode::fan_in, "leaky_relu", gen);
  if (bias.defined()) {
    const int64_t fan_in = weight.size(1);
    const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
    init::uniform_(bias, -bound, bound, gen);
  }
}

Tensor Linear::forward(const Tensor& x) { return linear(x, weight, bias); }

std::string Linear::extra_repr() const {
  return detail::cat("in_features=", options_.in_features, ", out_features=", options_.out_features,
                     ", bias=", bias.defined() ? "True" : "False");
}

Embedding::Embedding(const EmbeddingOptions& options) : Embedding(options, Tensor()) {}

Embedding::Embedding(const EmbeddingOptions& options, const Tensor& pretrained)
    : options_(options) {
  FABRIC_CHECK(options.num_embeddings >= 0 && options.embedding_dim >= 0, ValueError,
               "Embedding: num_embeddings and embedding_dim must be >= 0, got ",
               options.num_embeddings, " and ", options.embedding_dim);
  if (options.padding_idx) {
    int64_t p = *options.padding_idx;
    FABRIC_CHECK(p < options.num_embeddings && p >= -options.num_embeddings, IndexError,
                 "Embedding: padding_idx ", p, " must be within num_embeddings ",
                 options.num_embeddings);
    if (p < 0) p += options.num_embeddings;
    options_.padding_idx = p;
  }
  if (pretrained.defined()) {
    weight = register_parameter("weight", pretrained);
    return;
  }
  weight = register_parameter("weight", empty({options.num_embeddings, options.embedding_dim}));
  reset_parameters();
}

std::shared_ptr<Embedding> Embedding::from_pretrained(const Tensor& embeddings,
                                                      const EmbeddingPretrainedOptions& options) {
  FABRIC_CHECK(embeddings.defined() && embeddings.dim() == 2, ValueError,
               "Embedding.from_pretrained: embeddings are expected to be 2-dimensional, got shape ",
               embeddings.defined() ? shape_str(embeddings.sizes()) : "undefined");
  FABRIC_CHECK(embeddings.is_floating_point(), DTypeError,
               "Embedding.from_pretrained: embeddings must be floating point, got ",
               dtype_name(embeddings.dtype()));
  // torch wraps the tensor itself in a Parameter: the layer and the caller share its storage.
  Tensor shared = embeddings.detach();
  auto layer =
      std::shared_ptr<Embedding>(new Embedding({.num_embeddings = embeddings.size(0),
                                                .embedding_dim = embeddings.size(1),
                                                .padding_idx = options.padding_idx,
                                                .max_norm = options.max_norm,
                                                .norm_type = options.norm_type,
                                                .scale_grad_by_freq = options.scale_grad_by_freq},
                                               shared));
  layer->weight.set_requires_grad(!options.freeze);
  return layer;
}

void Embedding::reset_parameters(Generator* gen) {
  init::normal_(weight, 0.0, 1.0, gen);
  if (options_.padding_idx) init::zeros_(weight.select(0, *options_.padding_idx));
}

// torch's embedding_renorm_ as a few whole-tensor ops on the rows looked up, so nothing is read
// back but the indices (their sort and unique run on the host: there is no device unique yet):
// each unique row's norm along dim 1, the scale max_norm / (norm + 1e-7) in double where the norm
// is above max_norm (1 elsewhere, which leaves a row's bits as they are; on the CPU a 16-bit row's
// rounded to its dtype), applied in the dtype's compute type (float for float32/float16/bfloat16,
// double for float64) as `row *= scale` does,
// in place through the scatter kernel. The same bits as scaling one row at a time.
void Embedding::renorm_rows(const Tensor& indices) {
  NoGradGuard no_grad;
  std::vector<int64_t> rows = indices.to(Device::cpu()).to(DType::int64).to_vector<int64_t>();
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  if (rows.empty()) return;
  // The first bad one in ascending order, as the row-by-row check named (before touching any row).
  const auto bad = rows.front() < 0
                       ? rows.begin()
                       : std::lower_bound(rows.begin(), rows.end(), options_.num_embeddings);
  FABRIC_CHECK(bad == rows.end(), IndexError, "Embedding: index ", bad == rows.end() ? 0 : *bad,
               " is out of range for num_embeddings ", options_.num_embeddings);
  const double max_norm = *options_.max_norm;
  const int64_t k = static_cast<int64_t>(rows.size());
  const Tensor ids = from_vector(rows, {k}, {.dtype = DType::int64}).to(weight.device());
  const Tensor picked = index_select(weight.detach(), 0, ids);  // (k, embedding_dim), contiguous
  const Tensor norms = norm(picked, options_.norm_type, {1}).to(DType::float64);
  const Tensor scale =
      where(gt(norms, max_norm),
            div(full({k}, max_norm, {.dtype = DType::float64, .device = weight.device()}),
                add(norms, 1e-7)),
            1.0);
  const DType compute = weight.dtype() == DType::float64 ? DType::float64 : DType::float32;
  // On the CPU torch's `row *= scale` casts the number to a 16-bit row's dtype first (its
  // wrapped scalar); its CUDA renorm kernel scales in float.
  const bool half_like = weight.dtype() == DType::bfloat16 || weight.dtype() == DType::float16;
  const Tensor scale_as = half_like && weight.device().is_cpu() ? scale.to(weight.dtype()) : scale;
  const Tensor row_scale = scale_as.to(compute).unsqueeze(1).expand(picked.sizes());
  const index_write::CheckedIndex at{ids.unsqueeze(1).expand(picked.sizes()), 0};
  // float32/float64 rows are multiplied in place (the scatter's prod: one product per element, as
  // `row *= scale`); the 16-bit floats compute in float32, round once back and are written over
  // the rows.
  const bool in_place = compute == weight.dtype();
  const Tensor values =
      in_place ? row_scale : mul(picked.to(compute), row_scale).to(weight.dtype());
  const ScatterReduceOp op = in_place ? ScatterReduceOp::prod : ScatterReduceOp::assign;
  Tensor target = weight.detach();
  if (target.is_contiguous()) {
    index_write::run_scatter(target, 0, at, values, op);
  } else {
    Tensor dense = target.contiguous();
    index_write::run_scatter(dense, 0, at, values, op);
    target.copy_(dense);
  }
  weight.storage()->bump_version();  // an in-place write, as torch's embedding_renorm_
}

Tensor Embedding::scale_grad_by_count(const Tensor& rows, const Tensor& indices) const {
  const std::vector<int64_t> idx = indices.to(Device::cpu()).to(DType::int64).to_vector<int64_t>();
  std::unordered_map<int64_t, int64_t> counts;
  for (int64_t i : idx) ++counts[i];
  std::vector<double> scale;
  scale.reserve(idx.size());
  for (int64_t i : idx) scale.push_back(1.0 / static_cast<double>(counts[i]));
  Shape shape = indices.sizes();
  shape.push_back(1);
  const Tensor s =
      from_vector(scale, shape, {.dtype = DType::float64}).to(rows.dtype()).to(rows.device());
  // The gradient arriving at the rows is scaled by s, by a hook, as torch's embedding_backward
  // scales it. With create_graph the scaled gradient's own derivative is 1 (torch's double backward
  // gathers without the counts), so a second derivative is scaled once, by the hook's next run:
  // scaling the value's derivative (rows.detach() + (rows - detach) * s) put s^2 into a Hessian.
  Tensor out = rows;
  register_hook(out, [s](const Tensor& g) {
    if (!grad_enabled()) return mul(g, s);
    return add(g, sub(mul(g, s), g).detach());
  });
  return out;
}

Tensor Embedding::forward(const Tensor& indices) {
  if (options_.max_norm) renorm_rows(indices);
  const bool recording = grad_enabled() && weight.requires_grad();
  Tensor out;
  if (!options_.padding_idx || !recording) {
    out = embedding(weight, indices);
  } else {
    // The padding row must get no gradient from this lookup (torch's padding_idx). Its positions
    // read the same values through a detached weight, so the forward result is unchanged.
    Tensor keep = ne(indices, Scalar(*options_.padding_idx)).unsqueeze(-1);
    out = where(keep, embedding(weight, indices), embedding(weight.detach(), indices));
  }
  if (options_.scale_grad_by_freq && recording) out = scale_grad_by_count(out, indices);
  return out;
}

std::string Embedding::extra_repr() const {
  std::string s = detail::cat(options_.num_embeddings, ", ", options_.embedding_dim);
  if (options_.padding_idx) s += detail::cat(", padding_idx=", *options_.padding_idx);
  if (options_.max_norm) s += ", max_norm=" + py_float(*options_.max_norm);
  if (options_.norm_type != 2.0) s += ", norm_type=" + py_float(options_.norm_type);
  if (options_.scale_grad_by_freq) s += ", scale_grad_by_freq=True";
  return s;
}

}  // namespace fabric::nn
