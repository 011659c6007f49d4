// nn::Transformer: torch.nn.Transformer (1.13), the encoder-decoder of "Attention Is All You Need",
// with torch's keys (encoder.layers.<i>.*, encoder.norm.*, decoder.layers.<i>.*, decoder.norm.*),
// init and argument checks.
#pragma once
#include <memory>
#include <string>

#include "nn/transformer_decoder.h"
#include "nn/transformer_encoder.h"

namespace fabric::nn {

// torch's defaults (the paper's base model). torch's custom_encoder / custom_decoder are not
// offered: build a TransformerEncoder and a TransformerDecoder for that.
struct TransformerOptions {
  int64_t d_model = 512;
  int64_t nhead = 8;
  int64_t num_encoder_layers = 6;
  int64_t num_decoder_layers = 6;
  int64_t dim_feedforward = 2048;
  double dropout = 0.1;
  std::string activation = "relu";  // "relu" or "gelu"
  double layer_norm_eps = 1e-5;
  bool batch_first = false;  // (N, S, E) / (N, T, E) instead of (S, N, E) / (T, N, E)
  bool norm_first = false;
  Generator* generator = nullptr;  // every dropout's; null: the default generator
};

// An encoder (num_encoder_layers layers + LayerNorm) and a decoder (num_decoder_layers layers +
// LayerNorm). After construction every parameter with more than one dimension is redrawn by
// xavier_uniform_, as torch's _reset_parameters does; biases and LayerNorms keep their init.
class Transformer : public Module {
 public:
  using Options = TransformerOptions;
  explicit Transformer(const TransformerOptions& options = {});
  // src (S, N, E), tgt (T, N, E) ((N, S, E), (N, T, E) with batch_first; (S, E), (T, E)
  // unbatched) -> shaped as tgt. src_mask (S, S), tgt_mask (T, T), memory_mask (T, S) (or with
  // N * nhead in front); *_key_padding_mask (N, S), (N, T), (N, S). Masks as MultiheadAttention's.
  // The encoder's output is the decoder's memory.
  Tensor forward(const Tensor& src, const Tensor& tgt, const Tensor& src_mask = Tensor(),
                 const Tensor& tgt_mask = Tensor(), const Tensor& memory_mask = Tensor(),
                 const Tensor& src_key_padding_mask = Tensor(),
                 const Tensor& tgt_key_padding_mask = Tensor(),
                 const Tensor& memory_key_padding_mask = Tensor());
  // A causal mask for a sequence of sz: float32 (sz, sz), -inf above the diagonal (a position may
  // not attend to later ones) and 0 elsewhere, as torch's.
  static Tensor generate_square_subsequent_mask(int64_t sz, Device device = Device::cpu());
  // Redraws every parameter with dim > 1 by xavier_uniform_ (torch's _reset_parameters).
  void reset_parameters(Generator* gen = nullptr);
  std::string type_name() const override { return "Transformer"; }
  const TransformerOptions& options() const { return options_; }

  std::shared_ptr<TransformerEncoder> encoder;
  std::shared_ptr<TransformerDecoder> decoder;

 protected:
  void child_replaced(const std::string& name, const std::shared_ptr<Module>& now) override;

 private:
  // No single-input forward (a Transformer takes src and tgt): Module's forward(x) is hidden on
  // purpose, named privately so that the hiding is declared (not a -Woverloaded-virtual slip).
  // Called on this class, forward(x) does not compile; through a Module& or operator() it throws
  // NotImplementedError naming the type.
  using Module::forward;
  TransformerOptions options_;
};

}  // namespace fabric::nn
