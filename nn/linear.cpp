// Linear and Embedding.
#include "nn/linear.h"

#include <cmath>

#include "autograd/grad_mode.h"
#include "nn/init.h"
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

Embedding::Embedding(const EmbeddingOptions& options) : options_(options) {
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
  weight = register_parameter("weight", empty({options.num_embeddings, options.embedding_dim}));
  reset_parameters();
}

void Embedding::reset_parameters(Generator* gen) {
  init::normal_(weight, 0.0, 1.0, gen);
  if (options_.padding_idx) init::zeros_(weight.select(0, *options_.padding_idx));
}

Tensor Embedding::forward(const Tensor& indices) {
  if (!options_.padding_idx || !grad_enabled() || !weight.requires_grad())
    return embedding(weight, indices);
  // The padding row must get no gradient from this lookup (torch's padding_idx). Its positions
  // read the same values through a detached weight, so the forward result is unchanged.
  Tensor keep = ne(indices, Scalar(*options_.padding_idx)).unsqueeze(-1);
  return where(keep, embedding(weight, indices), embedding(weight.detach(), indices));
}

std::string Embedding::extra_repr() const {
  std::string s = detail::cat(options_.num_embeddings, ", ", options_.embedding_dim);
  if (options_.padding_idx) s += detail::cat(", padding_idx=", *options_.padding_idx);
  return s;
}

}  // namespace fabric::nn
