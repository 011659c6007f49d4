// Transformer: torch 1.13's nn.Transformer, an encoder and a decoder wired through memory.
#include "nn/transformer_model.h"

#include <limits>

#include "nn/init.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::nn {
namespace {

// torch's Transformer builds its encoder and decoder layers from the same arguments.
template <typename LayerOptions>
LayerOptions layer_options(const TransformerOptions& o) {
  return {.d_model = o.d_model,
          .nhead = o.nhead,
          .dim_feedforward = o.dim_feedforward,
          .dropout = o.dropout,
          .activation = o.activation,
          .layer_norm_eps = o.layer_norm_eps,
          .batch_first = o.batch_first,
          .norm_first = o.norm_first,
          .generator = o.generator};
}

// The LayerNorm(d_model) that torch's Transformer puts after each stack.
std::shared_ptr<Module> final_norm(const TransformerOptions& o) {
  return std::make_shared<LayerNorm>(
      LayerNormOptions{.normalized_shape = {o.d_model}, .eps = o.layer_norm_eps});
}

}  // namespace

Transformer::Transformer(const TransformerOptions& o) : options_(o) {
  // The decoder layer checks these too, but naming Transformer's own option is clearer.
  FABRIC_CHECK(o.num_encoder_layers > 0 && o.num_decoder_layers > 0, ValueError,
               "Transformer: num_encoder_layers and num_decoder_layers must be positive, got ",
               o.num_encoder_layers, " and ", o.num_decoder_layers);
  encoder = register_module<TransformerEncoder>(
      "encoder", {.layer = layer_options<TransformerEncoderLayerOptions>(o),
                  .num_layers = o.num_encoder_layers,
                  .norm = final_norm(o)});
  decoder = register_module<TransformerDecoder>(
      "decoder", {.layer = layer_options<TransformerDecoderLayerOptions>(o),
                  .num_layers = o.num_decoder_layers,
                  .norm = final_norm(o)});
  reset_parameters();
}

void Transformer::reset_parameters(Generator* gen) {
  for (const Tensor& p : parameters())
    if (p.dim() > 1) init::xavier_uniform_(p, 1.0, gen);
}

void Transformer::child_replaced(const std::string& name, const std::shared_ptr<Module>& now) {
  if (name == "encoder") encoder = std::dynamic_pointer_cast<TransformerEncoder>(now);
  if (name == "decoder") decoder = std::dynamic_pointer_cast<TransformerDecoder>(now);
}

Tensor Transformer::forward(const Tensor& src, const Tensor& tgt, const Tensor& src_mask,
                            const Tensor& tgt_mask, const Tensor& memory_mask,
                            const Tensor& src_key_padding_mask, const Tensor& tgt_key_padding_mask,
                            const Tensor& memory_key_padding_mask) {
  FABRIC_CHECK(src.defined() && tgt.defined(), ValueError,
               "Transformer: forward needs both src and tgt");
  // torch's checks, before anything runs.
  FABRIC_CHECK((src.dim() == 2 || src.dim() == 3) && tgt.dim() == src.dim(), ShapeError,
               "Transformer: src and tgt must both be batched (3-D) or both unbatched (2-D), got "
               "src ",
               shape_str(src.sizes()), " and tgt ", shape_str(tgt.sizes()));
  if (src.dim() == 3) {
    const int batch_dim = options_.batch_first ? 0 : 1;
    FABRIC_CHECK(src.size(batch_dim) == tgt.size(batch_dim), ShapeError,
                 "Transformer: the batch number of src and tgt must be equal, got src ",
                 shape_str(src.sizes()), " and tgt ", shape_str(tgt.sizes()), " (batch dim ",
                 batch_dim, options_.batch_first ? ", batch_first)" : ")");
  }
  FABRIC_CHECK(src.size(-1) == options_.d_model && tgt.size(-1) == options_.d_model, ShapeError,
               "Transformer: the feature number of src and tgt must be equal to d_model (",
               options_.d_model, "), got src ", shape_str(src.sizes()), " and tgt ",
               shape_str(tgt.sizes()));
  FABRIC_CHECK(encoder && decoder, ValueError,
               "Transformer: encoder and decoder must be a TransformerEncoder and a "
               "TransformerDecoder, got ",
               child("encoder").type_name(), " and ", child("decoder").type_name());
  // Both through their hooks and checkpointing, as torch's self.encoder(...) and self.decoder(...).
  TransformerEncoder* enc = encoder.get();
  TransformerDecoder* dec = decoder.get();
  Tensor memory = enc->call_forward({src, src_mask, src_key_padding_mask},
                                    [enc](const std::vector<Tensor>& in) {
                                      return enc->forward(in[0], in[1], in[2]);
                                    });  // shaped as src
  return dec->call_forward(
      {tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask},
      [dec](const std::vector<Tensor>& in) {
        return dec->forward(in[0], in[1], in[2], in[3], in[4], in[5]);
      });
}

Tensor Transformer::generate_square_subsequent_mask(int64_t sz, Device device) {
  FABRIC_CHECK(sz >= 0, ValueError,
               "Transformer::generate_square_subsequent_mask: sz must be non-negative, got ", sz);
  const double inf = std::numeric_limits<double>::infinity();
  return triu(full({sz, sz}, Scalar(-inf), {.dtype = DType::float32, .device = device}), 1);
}

}  // namespace fabric::nn
