#include "nn/norm_base.h"

#include "nn/init.h"
#include "tensor/factory.h"

namespace fabric::nn {

NormBase::NormBase(const char* layer, int64_t num_features, double eps, bool affine,
                   bool track_running_stats) {
  FABRIC_CHECK(num_features > 0, ValueError, layer, ": num_features must be > 0, got ",
               num_features);
  FABRIC_CHECK(eps >= 0, ValueError, layer, ": eps must be >= 0, got ", eps);
  const Shape c = {num_features};
  if (affine) {
    weight = register_parameter("weight", empty(c));
    bias = register_parameter("bias", empty(c));
  }
  if (track_running_stats) {
    running_mean = register_buffer("running_mean", zeros(c));
    running_var = register_buffer("running_var", ones(c));
    num_batches_tracked =
        register_buffer("num_batches_tracked", zeros({}, {.dtype = DType::int64}));
  }
  reset_parameters();
}

void NormBase::reset_running_stats() {
  if (!running_mean.defined()) return;
  running_mean.zero_();
  running_var.fill_(1);
  num_batches_tracked.zero_();
}

// torch's _load_from_state_dict for a state without version metadata: a missing counter is 0,
// whatever else is missing (running_mean and running_var are then reported, not the counter).
void NormBase::prepare_loaded_state(const std::string& prefix, StateDict& state) const {
  if (!num_batches_tracked.defined() || state.contains(prefix + "num_batches_tracked")) return;
  state.insert(prefix + "num_batches_tracked", zeros({}, {.dtype = DType::int64}));
}

void NormBase::reset_parameters() {
  reset_running_stats();
  if (weight.defined()) init::ones_(weight);
  if (bias.defined()) init::zeros_(bias);
}

}  // namespace fabric::nn
