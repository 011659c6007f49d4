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
  // Each forward first renormalises the rows it looks up, in place and without gradient, to a
  // norm_type-norm of at most max_norm (torch's embedding_renorm_: scaled by
  // max_norm / (norm + 1e-7) when above).
  std::optional<double> max_norm = std::nullopt;
  double norm_type = 2.0;
  // Each row's gradient is divided by how often the row occurs in the forward's indices.
  bool scale_grad_by_freq = false;
};

// Embedding::from_pretrained's options (torch's keyword arguments).
struct EmbeddingPretrainedOptions {
  bool freeze = true;  // the weight does not require grad
  std::optional<int64_t> padding_idx = std::nullopt;
  std::optional<double> max_norm = std::nullopt;
  double norm_type = 2.0;
  bool scale_grad_by_freq = false;
};

// A lookup table: weight (num_embeddings, embedding_dim) ~ N(0, 1). Key: weight.
class Embedding : public Module {
 public:
  using Options = EmbeddingOptions;
  explicit Embedding(const EmbeddingOptions& options);
  // torch's Embedding.from_pretrained: the layer's weight is `embeddings` itself (shared storage,
  // its padding row left as given), requiring grad unless frozen. ValueError unless 2-D.
  static std::shared_ptr<Embedding> from_pretrained(const Tensor& embeddings,
                                                    const EmbeddingPretrainedOptions& options = {});
  // integer indices (...) -> (..., embedding_dim)
  Tensor forward(const Tensor& indices) override;
  void reset_parameters(Generator* gen = nullptr);
  std::string type_name() const override { return "Embedding"; }
  std::string extra_repr() const override;
  const EmbeddingOptions& options() const { return options_; }

  Tensor weight;  // (num_embeddings, embedding_dim)

 private:
  // Checks the options; from_pretrained then registers its own weight instead of a fresh one.
  Embedding(const EmbeddingOptions& options, const Tensor& pretrained);
  // torch's embedding_renorm_ over the rows `indices` looks up.
  void renorm_rows(const Tensor& indices);
  // The looked-up rows, their gradient divided by each index's count in `indices`.
  Tensor scale_grad_by_count(const Tensor& rows, const Tensor& indices) const;

  EmbeddingOptions options_;
};

}  // namespace fabric::nn
