// binary_cross_entropy's input check made inside a kernel, on a device whose kernels check values
// as they run (CUDA; tensor/deferred_check.h): the op arms a value-count check and launches this
// instead of reading a count back, so a bad input surfaces at the device's next synchronisation.
#pragma once
#include <cstdint>

#include "tensor/dispatch_stub.h"
#include "tensor/dtype.h"

namespace fabric {

// Tests each of the `numel` contiguous elements of `x` (a floating dtype, not fp8) for lying in
// [0, 1]; NaN fails, as in torch's kernel. Failures are counted under the armed check `check_id`.
using CheckUnitIntervalFn = void (*)(const void* x, DType dtype, int64_t numel, uint64_t check_id);
FABRIC_DECLARE_STUB(check_unit_interval_stub, CheckUnitIntervalFn);

}  // namespace fabric
