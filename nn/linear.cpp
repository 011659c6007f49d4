// Linear and Embedding.
#include "nn/linear.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <vector>

#include "autograd/grad_mode.h"
#include "nn/init.h"
#include "nn/py_repr.h"
#include "tensor/factory.h"
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

void Embedding::renorm_rows(const Tensor& indices) {
  NoGradGuard no_grad;
  std::vector<int64_t> rows = indices.to(Device::cpu()).to(DType::int64).to_vector<int64_t>();
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  const double max_norm = *options_.max_norm, p = options_.norm_type;
  for (int64_t r : rows) {
    FABRIC_CHECK(r >= 0 && r < options_.num_embeddings, IndexError, "Embedding: index ", r,
                 " is out of range for num_embeddings ", options_.num_embeddings);
    Tensor row = weight.select(0, r);
    const double n = norm(row, p).item<double>();
    if (n > max_norm) row.mul_(Scalar(max_norm / (n + 1e-7)));
  }
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
  // The value stays exactly `rows` (rows - rows.detach() is zero); the gradient is scaled by s.
  const Tensor fixed = rows.detach();
  return add(fixed, mul(sub(rows, fixed), s));
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
