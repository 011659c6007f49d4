// What BatchNorm and InstanceNorm share (torch's _NormBase): the per-channel affine parameters and
// the running statistics, their registration under torch's keys and their reset.
#pragma once
#include <cstdint>

#include "nn/module.h"

namespace fabric::nn {

class NormBase : public Module {
 public:
  void reset_running_stats();
  // Running statistics to their start, weight to ones and bias to zeros.
  void reset_parameters();

  Tensor weight, bias;                                    // (C), or undefined
  Tensor running_mean, running_var, num_batches_tracked;  // or undefined

  // A state that carries this layer's running_mean but no num_batches_tracked (a checkpoint from
  // before torch 0.4.1 or made by hand) loads with the counter 0, as torch fills it for a state
  // dict without a version.
  void prepare_loaded_state(const std::string& prefix, StateDict& state) const override;

 protected:
  // Registers weight and bias (when affine) and running_mean, running_var and the int64 0-dim
  // num_batches_tracked (when tracked); ValueError naming `layer` for num_features <= 0 or eps < 0.
  NormBase(const char* layer, int64_t num_features, double eps, bool affine,
           bool track_running_stats);
};

}  // namespace fabric::nn
