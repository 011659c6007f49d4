// nn::TransformerEncoderLayer and nn::TransformerEncoder: torch.nn's (1.13) encoder stack, with
// torch's state_dict keys (self_attn.*, linear1, linear2, norm1, norm2; layers.<i>.*), so that
// BERT-style models written against torch port key by key.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nn/activation.h"
#include "nn/containers.h"
#include "nn/linear.h"
#include "nn/multihead_attention.h"
#include "nn/normalization.h"

namespace fabric::nn {

struct TransformerEncoderLayerOptions {
  int64_t d_model = 0;
  int64_t nhead = 1;
  int64_t dim_feedforward = 2048;
  double dropout = 0.1;  // on the attention weights, after attention, in and after the MLP
  std::string activation = "relu";  // "relu" or "gelu" (the exact, erf GELU)
  double layer_norm_eps = 1e-5;
  bool batch_first = false;  // (N, S, E) instead of (S, N, E)
  bool norm_first = false;   // pre-LayerNorm (x + f(norm(x))) instead of post (norm(x + f(x)))
  Generator* generator = nullptr;  // every dropout's; null: the default generator
};

// Self-attention and a feed-forward block, each with a residual and a LayerNorm. Keys:
// self_attn.{in_proj_weight, in_proj_bias, out_proj.weight, out_proj.bias}, linear1.*,
// linear2.*, norm1.*, norm2.*.
class TransformerEncoderLayer : public Module {
 public:
  using Options = TransformerEncoderLayerOptions;
  explicit TransformerEncoderLayer(const TransformerEncoderLayerOptions& options);
  // src (S, N, E), (N, S, E) with batch_first, or unbatched (S, E) -> the same shape.
  // src_mask (S, S) or (N * nhead, S, S); src_key_padding_mask (N, S) (unbatched: (S)); both bool
  // (true: may not attend) or floating (added), as MultiheadAttention's masks.
  Tensor forward(const Tensor& src, const Tensor& src_mask,
                 const Tensor& src_key_padding_mask = Tensor());
  Tensor forward(const Tensor& src) override;
  std::string type_name() const override { return "TransformerEncoderLayer"; }
  const TransformerEncoderLayerOptions& options() const { return options_; }

  // Typed handles on the children; forward calls the registered children by name, so a layer a
  // conversion swapped in (register_module under the same name) is the one that runs, and the
  // handle follows it (null when the new child is of another type).
  std::shared_ptr<MultiheadAttention> self_attn;
  std::shared_ptr<Linear> linear1;
  std::shared_ptr<Dropout> dropout;
  std::shared_ptr<Linear> linear2;
  std::shared_ptr<LayerNorm> norm1, norm2;
  std::shared_ptr<Dropout> dropout1, dropout2;

  void child_replaced(const std::string& name, const std::shared_ptr<Module>& now) override;

 private:
  Tensor self_attention_block(const Tensor& x, const Tensor& mask, const Tensor& padding);
  Tensor feed_forward_block(const Tensor& x);

  TransformerEncoderLayerOptions options_;
};

struct TransformerEncoderOptions {
  TransformerEncoderLayerOptions layer;
  int64_t num_layers = 1;
  // Applied to the last layer's output when set (torch's `norm`, usually a LayerNorm(d_model));
  // registered as the child "norm", so encoders built from the same options share it.
  std::shared_ptr<Module> norm = nullptr;
};

// num_layers copies of one TransformerEncoderLayer: each its own parameters, all starting from
// the same values, as torch's deep copies of the layer it is given. Keys: layers.<i>.*, norm.*.
class TransformerEncoder : public Module {
 public:
  using Options = TransformerEncoderOptions;
  explicit TransformerEncoder(const TransformerEncoderOptions& options);
  // src and masks as TransformerEncoderLayer::forward; every layer gets the same masks.
  Tensor forward(const Tensor& src, const Tensor& mask,
                 const Tensor& src_key_padding_mask = Tensor());
  Tensor forward(const Tensor& src) override;
  std::string type_name() const override { return "TransformerEncoder"; }

  std::shared_ptr<ModuleList> layers;

 private:
  TransformerEncoderOptions options_;
};

}  // namespace fabric::nn
