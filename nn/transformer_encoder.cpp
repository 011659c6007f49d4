// TransformerEncoderLayer and TransformerEncoder, as torch 1.13's non-fast path computes them.
#include "nn/transformer_encoder.h"

#include "tensor/ops.h"

namespace fabric::nn {

TransformerEncoderLayer::TransformerEncoderLayer(const TransformerEncoderLayerOptions& o)
    : options_(o) {
  FABRIC_CHECK(o.activation == "relu" || o.activation == "gelu", ValueError,
               "TransformerEncoderLayer: activation should be relu or gelu, not ", o.activation);
  FABRIC_CHECK(o.dim_feedforward > 0, ValueError,
               "TransformerEncoderLayer: dim_feedforward must be positive, got ",
               o.dim_feedforward);
  // torch's registration order, which is the printout's and the state_dict's order.
  self_attn = register_module<MultiheadAttention>("self_attn", {.embed_dim = o.d_model,
                                                                .num_heads = o.nhead,
                                                                .dropout = o.dropout,
                                                                .batch_first = o.batch_first,
                                                                .generator = o.generator});
  linear1 = register_module<Linear>("linear1",
                                    {.in_features = o.d_model, .out_features = o.dim_feedforward});
  dropout = register_module<Dropout>("dropout", {.p = o.dropout, .generator = o.generator});
  linear2 = register_module<Linear>("linear2",
                                    {.in_features = o.dim_feedforward, .out_features = o.d_model});
  norm1 = register_module<LayerNorm>("norm1",
                                     {.normalized_shape = {o.d_model}, .eps = o.layer_norm_eps});
  norm2 = register_module<LayerNorm>("norm2",
                                     {.normalized_shape = {o.d_model}, .eps = o.layer_norm_eps});
  dropout1 = register_module<Dropout>("dropout1", {.p = o.dropout, .generator = o.generator});
  dropout2 = register_module<Dropout>("dropout2", {.p = o.dropout, .generator = o.generator});
}

void TransformerEncoderLayer::child_replaced(const std::string& name,
                                             const std::shared_ptr<Module>& now) {
  auto update = [&](const char* child_name, auto& handle) {
    if (name == child_name)
      handle =
          std::dynamic_pointer_cast<typename std::decay_t<decltype(handle)>::element_type>(now);
  };
  update("self_attn", self_attn), update("linear1", linear1), update("dropout", dropout);
  update("linear2", linear2), update("norm1", norm1), update("norm2", norm2);
  update("dropout1", dropout1), update("dropout2", dropout2);
}

Tensor TransformerEncoderLayer::self_attention_block(const Tensor& x, const Tensor& mask,
                                                     const Tensor& padding) {
  auto* attention = dynamic_cast<MultiheadAttention*>(&child("self_attn"));
  FABRIC_CHECK(attention != nullptr, ValueError, "TransformerEncoderLayer: child self_attn is a ",
               child("self_attn").type_name(),
               ", expected a MultiheadAttention (it takes key, value and masks)");
  // The weights are not needed, which lets the attention run through scaled_dot_product_attention.
  // Called through its hooks (FSDP units, checkpointing), as torch's self.self_attn(x, x, x, ...).
  Tensor y =
      attention->call_forward({x, padding, mask}, [attention](const std::vector<Tensor>& in) {
        return attention->forward(in[0], in[0], in[0], in[1], /*need_weights=*/false, in[2]).first;
      });
  return child("dropout1")(y);
}

Tensor TransformerEncoderLayer::feed_forward_block(const Tensor& x) {
  Tensor h = child("linear1")(x);
  h = options_.activation == "relu" ? relu(h) : gelu(h);
  return child("dropout2")(child("linear2")(child("dropout")(h)));
}

Tensor TransformerEncoderLayer::forward(const Tensor& src, const Tensor& src_mask,
                                        const Tensor& src_key_padding_mask) {
  Module &norm_1 = child("norm1"), &norm_2 = child("norm2");
  Tensor x = src;
  if (options_.norm_first) {
    x = add(x, self_attention_block(norm_1(x), src_mask, src_key_padding_mask));
    return add(x, feed_forward_block(norm_2(x)));
  }
  x = norm_1(add(x, self_attention_block(x, src_mask, src_key_padding_mask)));
  return norm_2(add(x, feed_forward_block(x)));
}

Tensor TransformerEncoderLayer::forward(const Tensor& src) { return forward(src, Tensor()); }

TransformerEncoder::TransformerEncoder(const TransformerEncoderOptions& o) : options_(o) {
  FABRIC_CHECK(o.num_layers > 0, ValueError,
               "TransformerEncoder: num_layers must be positive, got ", o.num_layers);
  layers = register_module("layers", std::make_shared<ModuleList>());
  auto first = std::make_shared<TransformerEncoderLayer>(o.layer);
  layers->push_back(first);
  for (int64_t i = 1; i < o.num_layers; ++i) {
    // torch deep-copies the one layer it is given: same starting values, separate tensors.
    auto copy = std::make_shared<TransformerEncoderLayer>(o.layer);
    copy->load_state_dict(first->state_dict());
    layers->push_back(copy);
  }
  if (o.norm) register_module("norm", o.norm);
}

Tensor TransformerEncoder::forward(const Tensor& src, const Tensor& mask,
                                   const Tensor& src_key_padding_mask) {
  FABRIC_CHECK(!src_key_padding_mask.defined() || src_key_padding_mask.dtype() == DType::bool_ ||
                   src_key_padding_mask.is_floating_point(),
               DTypeError,
               "TransformerEncoder: src_key_padding_mask must be bool or floating, got ",
               dtype_name(src_key_padding_mask.dtype()));
  const bool masked = mask.defined() || src_key_padding_mask.defined();
  Tensor x = src;
  for (const ModulePtr& m : *layers) {
    // Every layer through its hooks and checkpointing (FSDP units gather there), masks or not.
    if (auto* layer = dynamic_cast<TransformerEncoderLayer*>(m.get())) {
      x = layer->call_forward(
          {x, mask, src_key_padding_mask},
          [layer](const std::vector<Tensor>& in) { return layer->forward(in[0], in[1], in[2]); });
    } else {
      FABRIC_CHECK(!masked, ValueError, "TransformerEncoder: layer ", m->type_name(),
                   " is not a TransformerEncoderLayer and takes no masks");
      x = (*m)(x);
    }
  }
  if (options_.norm) x = child("norm")(x);
  return x;
}

Tensor TransformerEncoder::forward(const Tensor& src) { return forward(src, Tensor()); }

}  // namespace fabric::nn
