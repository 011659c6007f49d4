// The thread-local autocast state, per device type (spec §3): enabled flag, lower-precision
// dtype, weight-cast cache and nesting depth. Ops consult it where they are entered (see
// apply_autocast); precision/ only switches it on and off with RAII guards.
#pragma once
#include <initializer_list>
#include <memory>

#include "tensor/device.h"
#include "tensor/dtype.h"
#include "tensor/op_record.h"
#include "tensor/tensor.h"

namespace fabric {

enum class AutocastPolicy : uint8_t { none, lower, fp32, fp32_out, promote };

AutocastPolicy autocast_policy(OpId op, DeviceType device);

struct AutocastState {
  bool enabled = false;
  DType dtype = DType::bfloat16;  // CPU default bf16, CUDA default fp16
  bool cache_enabled = true;
  int nesting = 0;
};

AutocastState& autocast_state(DeviceType device);
bool autocast_enabled(DeviceType device);

// Enters/exits an autocast region; leaving the outermost region clears the cast cache.
// (precision/'s guards call these.)
void autocast_enter(DeviceType device, bool enabled, DType dtype, bool cache_enabled);
void autocast_exit(DeviceType device);
void autocast_clear_cache();

// For its life, the calling thread's weight-cast cache is an empty one of its own; the old one
// comes back at the end. Casts made inside are shared among the scope's own uses only: a
// checkpointed segment's recompute casts a weight once for all its uses, as the forward did
// without checkpointing, without running through the enclosing forward's casts.
class PrivateAutocastCache {
 public:
  PrivateAutocastCache();
  ~PrivateAutocastCache();
  PrivateAutocastCache(const PrivateAutocastCache&) = delete;
  PrivateAutocastCache& operator=(const PrivateAutocastCache&) = delete;

 private:
  struct Saved;
  std::unique_ptr<Saved> saved_;
};

// Applies `op`'s policy to its tensor inputs in place (undefined tensors are skipped), returning
// whether the op must produce float32 output (fp32_out). No-op when autocast is off for the
// inputs' device. Casts go through to(dtype), so autograd records them.
bool apply_autocast(OpId op, std::initializer_list<Tensor*> inputs);

}  // namespace fabric
