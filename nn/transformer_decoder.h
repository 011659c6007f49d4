// nn::TransformerDecoderLayer and nn::TransformerDecoder: torch.nn's (1.13) decoder stack, with
// torch's state_dict keys (self_attn.*, multihead_attn.*, linear1, linear2, norm1..3;
// layers.<i>.*), so that seq2seq models written against torch port key by key.
#pragma once
#include <memory>
#include <string>

#include "nn/activation.h"
#include "nn/containers.h"
#include "nn/linear.h"
#include "nn/multihead_attention.h"
#include "nn/normalization.h"

namespace fabric::nn {

// The same options as TransformerEncoderLayerOptions (torch's constructors take the same
// arguments).
struct TransformerDecoderLayerOptions {
  int64_t d_model = 0;
  int64_t nhead = 1;
  int64_t dim_feedforward = 2048;
  double dropout = 0.1;  // on the attention weights, after each attention, in and after the MLP
  std::string activation = "relu";  // "relu" or "gelu" (the exact, erf GELU)
  double layer_norm_eps = 1e-5;
  bool batch_first = false;  // (N, T, E) instead of (T, N, E)
  bool norm_first = false;   // pre-LayerNorm (x + f(norm(x))) instead of post (norm(x + f(x)))
  Generator* generator = nullptr;  // every dropout's; null: the default generator
};

// Self-attention over the target, cross-attention from the target to the encoder's output
// (`memory`) and a feed-forward block, each with a residual and a LayerNorm. Keys:
// self_attn.{in_proj_weight, in_proj_bias, out_proj.weight, out_proj.bias}, multihead_attn.{...},
// linear1.*, linear2.*, norm1.*, norm2.*, norm3.*.
class TransformerDecoderLayer : public Module {
 public:
  using Options = TransformerDecoderLayerOptions;
  explicit TransformerDecoderLayer(const TransformerDecoderLayerOptions& options);
  // tgt (T, N, E), memory (S, N, E); (N, T, E) / (N, S, E) with batch_first; or unbatched (T, E) /
  // (S, E) -> shaped as tgt. tgt_mask (T, T) or (N * nhead, T, T), memory_mask (T, S) or
  // (N * nhead, T, S); tgt_key_padding_mask (N, T), memory_key_padding_mask (N, S) ((T), (S)
  // unbatched). Masks are bool (true: may not attend) or floating (added), as MultiheadAttention's.
  // There is no single-input forward: a decoder layer always needs memory.
  Tensor forward(const Tensor& tgt, const Tensor& memory, const Tensor& tgt_mask = Tensor(),
                 const Tensor& memory_mask = Tensor(),
                 const Tensor& tgt_key_padding_mask = Tensor(),
                 const Tensor& memory_key_padding_mask = Tensor());
  std::string type_name() const override { return "TransformerDecoderLayer"; }
  const TransformerDecoderLayerOptions& options() const { return options_; }

  // Typed handles to the children; null once one is replaced by a module of another type
  // (forward always calls the registered child).
  std::shared_ptr<MultiheadAttention> self_attn, multihead_attn;
  std::shared_ptr<Linear> linear1;
  std::shared_ptr<Dropout> dropout;
  std::shared_ptr<Linear> linear2;
  std::shared_ptr<LayerNorm> norm1, norm2, norm3;
  std::shared_ptr<Dropout> dropout1, dropout2, dropout3;

 protected:
  void child_replaced(const std::string& name, const std::shared_ptr<Module>& now) override;

 private:
  // No single-input forward (a decoder layer always needs memory): Module's forward(x) is hidden on
  // purpose, named privately so that the hiding is declared (not a -Woverloaded-virtual slip).
  // Called on this class, forward(x) does not compile; through a Module& or operator() it throws
  // NotImplementedError naming the type.
  using Module::forward;
  MultiheadAttention& attention(const std::string& name) const;
  Tensor self_attention_block(const Tensor& x, const Tensor& mask, const Tensor& padding);
  Tensor cross_attention_block(const Tensor& x, const Tensor& memory, const Tensor& mask,
                               const Tensor& padding);
  Tensor feed_forward_block(const Tensor& x);

  TransformerDecoderLayerOptions options_;
};

struct TransformerDecoderOptions {
  TransformerDecoderLayerOptions layer;
  int64_t num_layers = 1;
  // Applied to the last layer's output when set (torch's `norm`, usually a LayerNorm(d_model));
  // registered as the child "norm".
  std::shared_ptr<Module> norm = nullptr;
};

// num_layers copies of one TransformerDecoderLayer: each its own parameters, all starting from
// the same values, as torch's deep copies of the layer it is given. Keys: layers.<i>.*, norm.*.
class TransformerDecoder : public Module {
 public:
  using Options = TransformerDecoderOptions;
  explicit TransformerDecoder(const TransformerDecoderOptions& options);
  // tgt, memory and masks as TransformerDecoderLayer::forward; every layer gets the same memory
  // and masks.
  Tensor forward(const Tensor& tgt, const Tensor& memory, const Tensor& tgt_mask = Tensor(),
                 const Tensor& memory_mask = Tensor(),
                 const Tensor& tgt_key_padding_mask = Tensor(),
                 const Tensor& memory_key_padding_mask = Tensor());
  std::string type_name() const override { return "TransformerDecoder"; }

  std::shared_ptr<ModuleList> layers;

 private:
  // No single-input forward (a decoder always needs memory): Module's forward(x) is hidden on
  // purpose, named privately so that the hiding is declared (not a -Woverloaded-virtual slip).
  // Called on this class, forward(x) does not compile; through a Module& or operator() it throws
  // NotImplementedError naming the type.
  using Module::forward;
  TransformerDecoderOptions options_;
};

}  // namespace fabric::nn
