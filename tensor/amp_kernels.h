// The fused loss-scaler kernel (spec §4): one pass that checks a gradient for inf/NaN and
// multiplies it by the inverse scale (torch._amp_foreach_non_finite_check_and_unscale_).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "tensor/dispatch_stub.h"
#include "tensor/strided_loop.h"
#include "tensor/tensor.h"

namespace fabric {

// `loop` has one operand (the gradient, read and written in place; float64, float32, bfloat16 or
// float16; no two elements share memory). Each element is read in its opmath type (float32 for
// the 16-bit types, float64 for float64); if it is not finite, *found (one int32 in the memory of
// the tensor's device) is set to 1 — never cleared, so one flag serves many tensors, and the
// kernel need not wait for the device. Unless inv_scale == 1 the element is then written back as
// value * inv_scale, rounded once to the tensor's dtype (float64 multiplies by inv_scale widened
// to double). inv_scale == 1 reads only.
using AmpUnscaleFn = void (*)(const StridedLoop& loop, float inv_scale, int32_t* found);
FABRIC_DECLARE_STUB(amp_unscale_stub, AmpUnscaleFn);

// The same for several contiguous tensors (data, numel) of one dtype on one device, in a few
// launches instead of one per tensor. Registered where such a kernel exists (CUDA); elsewhere
// amp_unscale_and_check_all_ runs amp_unscale_stub per tensor.
using AmpUnscaleMultiFn = void (*)(DType dtype,
                                   const std::vector<std::pair<void*, int64_t>>& tensors,
                                   float inv_scale, int32_t* found);
FABRIC_DECLARE_STUB(amp_unscale_multi_stub, AmpUnscaleMultiFn);

// AmpUnscaleMultiFn's work done by `kernel` (an AmpUnscaleFn), one flat loop per tensor.
void amp_unscale_each(AmpUnscaleFn kernel, DType dtype,
                      const std::vector<std::pair<void*, int64_t>>& tensors, float inv_scale,
                      int32_t* found);

// The op-level entry (torch._amp_foreach_non_finite_check_and_unscale_): checks every tensor
// (defined; float64/float32/bfloat16/float16; no overlapping elements, e.g. from expand) before
// touching any, then runs the kernel in place on each, whatever its strides, with one flag per
// device. Returns, per device in order of first appearance, whether any element there was inf or
// NaN: each device is waited for once, not once per tensor. `caller` names the op in errors.
std::vector<std::pair<Device, bool>> amp_unscale_and_check_all_(const std::vector<Tensor>& ts,
                                                                float inv_scale,
                                                                const char* caller = "unscale");

// One tensor: whether any of its elements was inf or NaN.
bool amp_unscale_and_check_(const Tensor& t, float inv_scale, const char* caller = "unscale");

// Whether any element of `t` is inf or NaN (the same kernel, reading only).
bool amp_has_non_finite(const Tensor& t, const char* caller = "has_non_finite");

}  // namespace fabric
