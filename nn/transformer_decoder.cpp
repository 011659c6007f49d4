// TransformerDecoderLayer and TransformerDecoder, as torch 1.13 computes them.
#include "nn/transformer_decoder.h"

#include "tensor/ops.h"

namespace fabric::nn {

TransformerDecoderLayer::TransformerDecoderLayer(const TransformerDecoderLayerOptions& o)
    : options_(o) {
  FABRIC_CHECK(o.activation == "relu" || o.activation == "gelu", ValueError,
               "TransformerDecoderLayer: activation should be relu or gelu, not ", o.activation);
  FABRIC_CHECK(o.dim_feedforward > 0, ValueError,
               "TransformerDecoderLayer: dim_feedforward must be positive, got ",
               o.dim_feedforward);
  const MultiheadAttentionOptions attention_options = {.embed_dim = o.d_model,
                                                       .num_heads = o.nhead,
                                                       .dropout = o.dropout,
                                                       .batch_first = o.batch_first,
                                                       .generator = o.generator};
  const DropoutOptions dropout_options = {.p = o.dropout, .generator = o.generator};
  const LayerNormOptions norm_options = {.normalized_shape = {o.d_model}, .eps = o.layer_norm_eps};
  // torch's registration order, which is the printout's and the state_dict's order.
  self_attn = register_module<MultiheadAttention>("self_attn", attention_options);
  multihead_attn = register_module<MultiheadAttention>("multihead_attn", attention_options);
  linear1 = register_module<Linear>("linear1",
                                    {.in_features = o.d_model, .out_features = o.dim_feedforward});
  dropout = register_module<Dropout>("dropout", dropout_options);
  linear2 = register_module<Linear>("linear2",
                                    {.in_features = o.dim_feedforward, .out_features = o.d_model});
  norm1 = register_module<LayerNorm>("norm1", norm_options);
  norm2 = register_module<LayerNorm>("norm2", norm_options);
  norm3 = register_module<LayerNorm>("norm3", norm_options);
  dropout1 = register_module<Dropout>("dropout1", dropout_options);
  dropout2 = register_module<Dropout>("dropout2", dropout_options);
  dropout3 = register_module<Dropout>("dropout3", dropout_options);
}

void TransformerDecoderLayer::child_replaced(const std::string& name,
                                             const std::shared_ptr<Module>& now) {
  auto update = [&](const char* child_name, auto& handle) {
    if (name == child_name)
      handle =
          std::dynamic_pointer_cast<typename std::decay_t<decltype(handle)>::element_type>(now);
  };
  update("self_attn", self_attn), update("multihead_attn", multihead_attn);
  update("linear1", linear1), update("linear2", linear2), update("dropout", dropout);
  update("norm1", norm1), update("norm2", norm2), update("norm3", norm3);
  update("dropout1", dropout1), update("dropout2", dropout2), update("dropout3", dropout3);
}

MultiheadAttention& TransformerDecoderLayer::attention(const std::string& name) const {
  auto* mha = dynamic_cast<MultiheadAttention*>(&child(name));
  FABRIC_CHECK(mha != nullptr, ValueError, "TransformerDecoderLayer: child ", name, " is a ",
               child(name).type_name(),
               ", expected a MultiheadAttention (it takes key, value and masks)");
  return *mha;
}

Tensor TransformerDecoderLayer::self_attention_block(const Tensor& x, const Tensor& mask,
                                                     const Tensor& padding) {
  // The weights are not needed, which lets the attention run through scaled_dot_product_attention.
  // Called through its hooks (FSDP units, checkpointing), as torch's self.self_attn(x, x, x, ...).
  MultiheadAttention* a = &attention("self_attn");
  Tensor y = a->call_forward({x, padding, mask}, [a](const std::vector<Tensor>& in) {
    return a->forward(in[0], in[0], in[0], in[1], /*need_weights=*/false, in[2]).first;
  });
  return child("dropout1")(y);
}

Tensor TransformerDecoderLayer::cross_attention_block(const Tensor& x, const Tensor& memory,
                                                      const Tensor& mask, const Tensor& padding) {
  // Queries from the target, keys and values from the encoder's output.
  MultiheadAttention* a = &attention("multihead_attn");
  Tensor y = a->call_forward({x, memory, padding, mask}, [a](const std::vector<Tensor>& in) {
    return a->forward(in[0], in[1], in[1], in[2], /*need_weights=*/false, in[3]).first;
  });
  return child("dropout2")(y);
}

Tensor TransformerDecoderLayer::feed_forward_block(const Tensor& x) {
  Tensor h = child("linear1")(x);
  h = options_.activation == "relu" ? relu(h) : gelu(h);
  return child("dropout3")(child("linear2")(child("dropout")(h)));
}

Tensor TransformerDecoderLayer::forward(const Tensor& tgt, const Tensor& memory,
                                        const Tensor& tgt_mask, const Tensor& memory_mask,
                                        const Tensor& tgt_key_padding_mask,
                                        const Tensor& memory_key_padding_mask) {
  FABRIC_CHECK(tgt.defined() && memory.defined(), ValueError,
               "TransformerDecoderLayer: forward needs both tgt and memory");
  Module &n1 = child("norm1"), &n2 = child("norm2"), &n3 = child("norm3");
  Tensor x = tgt;
  if (options_.norm_first) {
    x = add(x, self_attention_block(n1(x), tgt_mask, tgt_key_padding_mask));
    x = add(x, cross_attention_block(n2(x), memory, memory_mask, memory_key_padding_mask));
    return add(x, feed_forward_block(n3(x)));
  }
  x = n1(add(x, self_attention_block(x, tgt_mask, tgt_key_padding_mask)));
  x = n2(add(x, cross_attention_block(x, memory, memory_mask, memory_key_padding_mask)));
  return n3(add(x, feed_forward_block(x)));
}

TransformerDecoder::TransformerDecoder(const TransformerDecoderOptions& o) : options_(o) {
  FABRIC_CHECK(o.num_layers > 0, ValueError,
               "TransformerDecoder: num_layers must be positive, got ", o.num_layers);
  layers = register_module("layers", std::make_shared<ModuleList>());
  auto first = std::make_shared<TransformerDecoderLayer>(o.layer);
  layers->push_back(first);
  for (int64_t i = 1; i < o.num_layers; ++i) {
    // torch deep-copies the one layer it is given: same starting values, separate tensors.
    auto copy = std::make_shared<TransformerDecoderLayer>(o.layer);
    copy->load_state_dict(first->state_dict());
    layers->push_back(copy);
  }
  if (o.norm) register_module("norm", o.norm);
}

Tensor TransformerDecoder::forward(const Tensor& tgt, const Tensor& memory, const Tensor& tgt_mask,
                                   const Tensor& memory_mask, const Tensor& tgt_key_padding_mask,
                                   const Tensor& memory_key_padding_mask) {
  Tensor x = tgt;
  for (int64_t i = 0; i < static_cast<int64_t>(layers->size()); ++i) {
    auto layer = std::dynamic_pointer_cast<TransformerDecoderLayer>((*layers)[i]);
    FABRIC_CHECK(layer != nullptr, ValueError, "TransformerDecoder: layers.", i, " is a ",
                 (*layers)[i]->type_name(),
                 ", expected a TransformerDecoderLayer (it takes memory and masks)");
    // Through the layer's hooks and checkpointing (FSDP units gather there), as torch's mod(...).
    TransformerDecoderLayer* l = layer.get();
    x = l->call_forward(
        {x, memory, tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask},
        [l](const std::vector<Tensor>& in) {
          return l->forward(in[0], in[1], in[2], in[3], in[4], in[5]);
        });
  }
  if (options_.norm) x = child("norm")(x);
  return x;
}

}  // namespace fabric::nn
