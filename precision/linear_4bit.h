// Linear4bit: bitsandbytes' 4-bit linear (spec §6) — a frozen packed NF4/FP4 weight with its quant
// state, dequantized to the compute dtype on every forward; gradients reach the input, not the weight.
#pragma once
#include <string>

#include "nn/linear.h"
#include "nn/module.h"
#include "precision/quant_4bit.h"

namespace fabric::precision {

struct Linear4bitOptions {
  int64_t in_features = 0;
  int64_t out_features = 0;
  bool bias = true;
  std::string quant_type = "fp4";  // "nf4" | "fp4" (bitsandbytes' Linear4bit default)
  bool compress_statistics = true; // double quantization of absmax (Params4bit's default)
  int64_t blocksize = 64;
  DType compute_dtype = DType::bfloat16;
};

// State-dict names. Module names can't hold '.', so the quant-state tensors are registered as
// `weight_absmax`, ...; bnb_state_dict()/load_bnb_state_dict() (bitsandbytes_precision.h) map
// them to bitsandbytes' dotted keys `weight.absmax`, `weight.quant_state.bitsandbytes__nf4`, ...
class Linear4bit : public nn::Module {
 public:
  using Options = Linear4bitOptions;
  // A freshly initialised layer (torch's Linear init), quantized at once.
  explicit Linear4bit(const Linear4bitOptions& options);
  // Quantizes `linear`'s weight (cast to float16 first, as Fabric's 4-bit layers do); the bias
  // is copied (float32, trainable unless frozen by the caller).
  static std::shared_ptr<Linear4bit> from_linear(const nn::Linear& linear, const std::string& quant_type,
                                                 bool compress_statistics, DType compute_dtype,
                                                 int64_t blocksize = 64);

  // (..., in_features) -> (..., out_features) in x's dtype, computed in compute_dtype.
  Tensor forward(const Tensor& x) override;
  // The weight as the layer sees it: dequantized, (out_features, in_features), compute dtype.
  // This and the other getters describe the loaded weights right after a load_state_dict or
  // Fabric::load (they re-read a changed quant state first, as forward does).
  Tensor dequantized_weight() const;
  std::string type_name() const override { return "Linear4bit"; }
  bool ddp_broadcasts_buffers() const override { return false; }  // fixed by the quantization
  std::string extra_repr() const override;
  const Linear4bitOptions& options() const { return options_; }
  const QuantState4bit& quant_state() const { return synced_state(); }
  // Bytes held by the quantized weight: packed codes + absmax (+ nested absmax) + code tables.
  int64_t quantized_weight_bytes() const;
  // Re-reads the quant state from the registered tensors (after load_state_dict replaced them),
  // checked against everything forward needs (quant type, shape, blocksize, dtype, double
  // quantization, the lengths of the packed weight, absmax and nested absmax): a ValueError,
  // ShapeError or DTypeError naming `prefix` + the entry's key otherwise, with the layer's state
  // left as it was. `prefix`: the layer's key prefix in the loaded state dict, for messages.
  void sync_quant_state(const std::string& prefix = "");

  Tensor weight;  // uint8 ((out * in + 1) / 2, 1), frozen
  Tensor bias;    // (out_features) float32, undefined when bias = false

 private:
  // A float weight of the original (out_features, in_features) shape in a loaded state dict (the
  // unconverted model's checkpoint) is quantized, as at conversion, before it loads.
  // A quantized checkpoint's quant state is checked there too (check_loaded_quant_state), before
  // anything is copied.
  void prepare_loaded_state(const std::string& prefix, nn::StateDict& state) const override;
  void check_loaded_quant_state(const std::string& prefix, const nn::StateDict& state) const;
  Linear4bit(const Linear4bitOptions& options, int);  // an empty shell for from_linear
  void set_quantized(Quantized4bit q);

  // The state the registered tensors hold: blob (the quant_state JSON), packed weight, absmax and
  // nested absmax / code (undefined when not nested), each checked (see sync_quant_state).
  QuantState4bit checked_quant_state(const std::string& prefix, const Tensor& blob,
                                     const Tensor& packed, const Tensor& absmax,
                                     const Tensor& nested_absmax, const Tensor& nested_code) const;
  // state_, re-read first when a load changed the registered tensors. The getters are const, and a
  // plain load_state_dict has no hook after the copy, so the re-read happens lazily here (hence
  // the mutable members below); it is not synchronised: a layer is not read from two threads
  // while another loads into it.
  const QuantState4bit& synced_state() const;
  // Reads the registered tensors into state_ (the const part of sync_quant_state).
  void read_quant_state(const std::string& prefix) const;

  Linear4bitOptions options_;
  mutable QuantState4bit state_;
  // The quant_state blob state_ was read from, and its storage version then: a load_state_dict
  // writes into it (a new version) or, for a blob of another length, replaces it (a new tensor);
  // a load of statistics of another length replaces absmax / nested absmax (new tensors too).
  bool quant_state_changed() const;
  mutable Tensor synced_blob_;
  mutable uint64_t synced_version_ = 0;
};

// The quant_state JSON blob we write is padded to this many bytes (bitsandbytes writes it
// unpadded; a load of either replaces a blob of another length).
inline constexpr size_t kQuantStateJsonBytes = 256;

// The JSON blob bitsandbytes stores under `weight.quant_state.bitsandbytes__{nf4|fp4}`, as uint8.
Tensor quant_state_json_tensor(const QuantState4bit& state);
// Parses that blob back into a state (absmax tensors are left undefined).
QuantState4bit parse_quant_state_json(const Tensor& blob);

}  // namespace fabric::precision
