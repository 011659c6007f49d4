// nn::MultiheadAttention: torch.nn.MultiheadAttention (1.13) with its packed QKV projection, its
// state_dict keys, its masks (bool = "not allowed", float = added) and its returned weights, so
// models written against torch port key by key.
#pragma once
#include <memory>
#include <string>
#include <utility>

#include "nn/linear.h"

namespace fabric::nn {

struct MultiheadAttentionOptions {
  int64_t embed_dim = 0;
  int64_t num_heads = 1;
  double dropout = 0.0;  // on the attention weights, while training
  bool bias = true;      // in_proj_bias and out_proj.bias
  // (N, L, E) inputs and outputs instead of (L, N, E).
  bool batch_first = false;
  Generator* generator = nullptr;  // the dropout's; null: the default generator
  // torch's kdim/vdim, add_bias_kv and add_zero_attn are not offered: key and value have
  // embed_dim features, which is also what keeps the single packed in_proj_weight.
};

// torch's name for out_proj's class (a Linear it keeps out of dynamic quantization); kept so that
// printouts read as torch's.
class NonDynamicallyQuantizableLinear : public Linear {
 public:
  using Linear::Linear;
  std::string type_name() const override { return "NonDynamicallyQuantizableLinear"; }
};

// Keys: in_proj_weight (3E, E), in_proj_bias (3E), out_proj.weight (E, E), out_proj.bias (E).
// Init as torch: out_proj as a Linear, then xavier_uniform_(in_proj_weight) and zero biases.
class MultiheadAttention : public Module {
 public:
  using Options = MultiheadAttentionOptions;
  explicit MultiheadAttention(const MultiheadAttentionOptions& options);

  // query (L, N, E), key and value (S, N, E); (N, L, E) / (N, S, E) with batch_first; or
  // unbatched (L, E) / (S, E). key_padding_mask (N, S) (unbatched: (S)); attn_mask (L, S) or
  // (N * num_heads, L, S) (unbatched: (num_heads, L, S)). Masks are bool (true: may not attend)
  // or floating (added to the scores). Returns (output shaped as query, weights): weights
  // (N, L, S) averaged over the heads, or (N, num_heads, L, S) without average_attn_weights,
  // without the batch dim when unbatched, and undefined when need_weights is false.
  // Called directly, forward skips the hooks, as torch's mha.forward(...); operator() below is
  // torch's mha(query, key, value, ...).
  std::pair<Tensor, Tensor> forward(const Tensor& query, const Tensor& key, const Tensor& value,
                                    const Tensor& key_padding_mask = Tensor(),
                                    bool need_weights = true, const Tensor& attn_mask = Tensor(),
                                    bool average_attn_weights = true);
  // Self-attention without masks; the output only (so it fits a Sequential).
  Tensor forward(const Tensor& x) override;
  // forward(query, key, value, ...) through the forward hooks and activation checkpointing, as
  // operator()(x) runs forward(x). The hooks see query (a pre-hook may replace it: a key or value
  // that is the same tensor as query follows, so self-attention stays self-attention) and the
  // output; the weights come out of a checkpoint with it. Inputs, for the backward hooks'
  // grad_input: query, key and value (each distinct tensor once), key_padding_mask, attn_mask.
  using Module::operator();
  std::pair<Tensor, Tensor> operator()(const Tensor& query, const Tensor& key, const Tensor& value,
                                       const Tensor& key_padding_mask = Tensor(),
                                       bool need_weights = true, const Tensor& attn_mask = Tensor(),
                                       bool average_attn_weights = true);
  // Draws fresh values as torch's MultiheadAttention._reset_parameters does.
  void reset_parameters(Generator* gen = nullptr);
  std::string type_name() const override { return "MultiheadAttention"; }
  void child_replaced(const std::string& name, const std::shared_ptr<Module>& now) override;
  const MultiheadAttentionOptions& options() const { return options_; }

  Tensor in_proj_weight;  // (3E, E): the query, key and value projections stacked
  Tensor in_proj_bias;    // (3E), undefined without bias
  // Null once replaced by something that is not a Linear (forward calls the registered child).
  std::shared_ptr<Linear> out_proj;

 private:
  MultiheadAttentionOptions options_;
};

}  // namespace fabric::nn
