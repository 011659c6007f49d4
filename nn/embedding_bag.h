// nn::EmbeddingBag and its functional form: torch.nn.EmbeddingBag (1.13) — sums, means or maxima of
// bags of embeddings without materialising the (bags, bag length, dim) lookups of an Embedding.
// Where the weight's device has the fused kernel (the CPU), each bag's rows are reduced in one
// pass and recorded as one node (EmbeddingBagBackward0); elsewhere a composition of embedding,
// index_add and max, whose gradients come from those ops' rules.
#pragma once
#include <optional>
#include <string>

#include "nn/module.h"

namespace fabric::nn {

// torch.nn.functional.embedding_bag. input: 2-D (B, N), each row a bag (offsets undefined), or 1-D
// with offsets: bag b is input[offsets[b] : offsets[b + 1]] (the last runs to the end, or, with
// include_last_offset, offsets has B + 1 entries and its last ends the last bag). Integer inputs.
// mode "sum", "mean" or "max"; an empty bag gives zeros. per_sample_weights (input's shape, "sum"
// only) scales each looked-up row. Entries equal to padding_idx are left out of their bag (and of
// the mean's count). Offsets must start at 0, not decrease and not pass the input's length.
// Returns (B, embedding_dim).
Tensor embedding_bag(const Tensor& weight, const Tensor& input, const Tensor& offsets = Tensor(),
                     const std::string& mode = "mean", const Tensor& per_sample_weights = Tensor(),
                     bool include_last_offset = false,
                     std::optional<int64_t> padding_idx = std::nullopt);

struct EmbeddingBagOptions {
  int64_t num_embeddings = 0;
  int64_t embedding_dim = 0;
  std::string mode = "mean";  // "sum", "mean" or "max"
  // Left out of every bag; its row is zero-initialised (negative values count from the end).
  std::optional<int64_t> padding_idx = std::nullopt;
  bool include_last_offset = false;
};

// weight (num_embeddings, embedding_dim) ~ N(0, 1). Key: weight. Prints as torch:
// "EmbeddingBag(10, 3, mode=sum, padding_idx=0)". (torch's max_norm, scale_grad_by_freq and
// sparse are not offered.)
class EmbeddingBag : public Module {
 public:
  using Options = EmbeddingBagOptions;
  explicit EmbeddingBag(const EmbeddingBagOptions& options);
  // 2-D input (B, N): each row a bag.
  Tensor forward(const Tensor& input) override;
  // 1-D input with offsets (or 2-D input, offsets undefined), optional per_sample_weights.
  Tensor forward(const Tensor& input, const Tensor& offsets,
                 const Tensor& per_sample_weights = Tensor());
  void reset_parameters(Generator* gen = nullptr);
  std::string type_name() const override { return "EmbeddingBag"; }
  std::string extra_repr() const override;
  const EmbeddingBagOptions& options() const { return options_; }

  Tensor weight;  // (num_embeddings, embedding_dim)

 private:
  EmbeddingBagOptions options_;
};

}  // namespace fabric::nn
