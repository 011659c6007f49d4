// Linear and Embedding: the two lookup/projection layers, initialised as torch.nn does.
#pragma once
#include <optional>

#include "nn/module.h"

namespace fabric::nn {

struct LinearOptions {
  int64_t in_features = 0;
  int64_t out_features = 0;
  bool bias = true;
};

// y = x W^T + b. weight (out_features, in_features) ~ kaiming_uniform_(a = sqrt(5)), i.e.
// U(-1/sqrt(in), 1/sqrt(in)); bias ~ U(-1/sqrt(in), 1/sqrt(in)). Keys: weight, bias.
class Linear : public Module {
 public:
  using Options = LinearOptions;
  explicit Linear(const LinearOptions& options);
  // (..., in_features) -> (..., out_features)
  Tensor forward(const Tensor& x) override;
  // Draws fresh values as torch's Linear.reset_parameters does.
  void reset_parameters(Generator* gen = nullptr);
  std::string type_name() const override { return "Linear"; }
  std::string extra_repr() const override;
  const LinearOptions& options() const { return options_; }

  Tensor weight;  // (out_features, in_features)
  Tensor bias;    // (out_features), undefined when bias = false

 private:
  LinearOptions options_;
};

struct EmbeddingOptions {
  int64_t num_embeddings = 0;
  int64_t embedding_dim = 0;
  // A row that is zero-initialised and gets no gradient (negative values count from the end).
  std::optional<int64_t> padding_idx = std::nullopt;
};

// A lookup table: weight (num_embeddings, embedding_dim) ~ N(0, 1). Key: weight.
class Embedding : public Module {
 public:
  using Options = EmbeddingOptions;
  explicit Embedding(const EmbeddingOptions& options);
  // integer indices (...) -> (..., embedding_dim)
  Tensor forward(const Tensor& indices) override;
  void reset_parameters(Generator* gen = nullptr);
  std::string type_name() const override { return "Embedding"; }
  std::string extra_repr() const override;
  const EmbeddingOptions& options() const { return options_; }

  Tensor weight;  // (num_embeddings, embedding_dim)

 private:
  EmbeddingOptions options_;
};

}  // namespace fabric::nn
