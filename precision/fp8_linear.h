// FP8Linear (Transformer Engine's te.Linear on this runtime) and the fp8 autocast region: inside
// the region the layer runs fp8_linear with its own delayed-scaling meta; outside it is a plain
// linear in the fallback dtype. The region updates the metas where spec §8 says.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "nn/linear.h"
#include "nn/module.h"
#include "precision/context_guard.h"
#include "precision/fp8_meta.h"
#include "precision/fp8_recipe.h"
#include "tensor/tensor.h"

namespace fabric::precision {

struct FP8LinearOptions {
  int64_t in_features = 0;
  int64_t out_features = 0;
  bool bias = true;
  DelayedScaling recipe = {};
  // Compute dtype outside an fp8 region when autocast is off; nullopt: the weight's dtype.
  std::optional<DType> fallback_dtype = std::nullopt;
};

// y = x W^T + b with weight (out, in) and bias (out) in the weights dtype (keys weight, bias), and
// one FP8Meta(num_gemms = 1, recipe). The meta's four tensors are persistent buffers of a child
// module "_extra_state" (keys _extra_state.scale_fwd, _extra_state.amax_history_fwd,
// _extra_state.scale_bwd, _extra_state.amax_history_bwd), so state_dict / load_state_dict and
// Fabric::save / load carry them; they alias the live meta and always stay float32.
class FP8Linear : public nn::Module {
 public:
  using Options = FP8LinearOptions;
  // Fresh parameters, initialised as nn::Linear does.
  explicit FP8Linear(const FP8LinearOptions& options);
  // Takes over `linear`'s parameter handles (same tensors, so optimizers built on the Linear and
  // tied weights keep working) and its requires_grad flags.
  static std::shared_ptr<FP8Linear> from_linear(const nn::Linear& linear,
                                                const DelayedScaling& recipe = {},
                                                std::optional<DType> fallback_dtype = std::nullopt);

  // In an fp8 region: x is cast to the compute dtype (the autocast dtype when autocast is on for
  // x's device, else the fallback dtype) and fp8_linear(meta, 0, x, weight, bias) runs; the meta
  // is noted for the region's forward update and the following backward update. Outside: plain
  // linear with x, weight and bias in the compute dtype.
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "FP8Linear"; }
  std::string extra_repr() const override;
  const FP8LinearOptions& options() const { return options_; }
  // The compute dtype used when autocast is off.
  DType fallback_dtype() const;

  FP8Meta& fp8_meta() { return *meta_; }
  const FP8Meta& fp8_meta() const { return *meta_; }
  // Replaces the recipe, keeping the scales; a different amax_history_len cuts or zero-pads the
  // histories as Transformer Engine does (FP8Meta::set_recipe). ValueError for an invalid recipe.
  void set_recipe(const DelayedScaling& recipe);
  // Restores a meta checkpoint (FP8Meta::load_state_dict) and rebinds the buffers to it.
  void load_fp8_state(const FP8MetaState& state);
  // The four meta tensors (scale_fwd, amax_history_fwd, scale_bwd, amax_history_bwd).
  std::vector<Tensor> meta_tensors() const;

  Tensor weight;  // (out_features, in_features)
  Tensor bias;    // (out_features), undefined when bias = false

 protected:
  // A checkpoint's amax histories of another length (rows) are cut or zero-padded to this
  // layer's amax_history_len. Transformer Engine adopts the checkpoint's recipe and then resizes
  // the histories to the fp8_autocast recipe at the next forward; here the layer's own recipe is
  // the one its forward uses, and a module state_dict carries no recipe, so resizing on load
  // gives the state TE reaches. Other shape mismatches are left for load_state_dict to report.
  void prepare_loaded_state(const std::string& prefix, nn::StateDict& state) const override;

 private:
  struct AdoptTag {};
  FP8Linear(AdoptTag, const FP8LinearOptions& options, const Tensor& weight, const Tensor& bias);
  void bind_meta_buffers();
  // Module::to(dtype) converts buffers too; the meta must stay float32.
  void ensure_meta_float32();

  FP8LinearOptions options_;
  std::shared_ptr<FP8Meta> meta_;
  std::shared_ptr<nn::Module> extra_state_;
};

// True inside an enabled fp8 region on this thread (TE's FP8GlobalStateManager.is_fp8_enabled).
bool fp8_enabled();
// te.fp8_autocast(enabled) for the scope, nestable; an inner disabled region turns FP8 off inside
// it. When the outermost region exits with grad mode on, the forward metas of every FP8Linear that
// ran in it are updated once, and those layers are queued for fp8_update_backward_metas().
ContextGuard fp8_autocast(bool enabled = true);
// Updates the backward metas of the queued layers (what ran in fp8 regions with grad mode on since
// the last call) and clears the queue; returns how many metas were updated.
int64_t fp8_update_backward_metas();

}  // namespace fabric::precision
