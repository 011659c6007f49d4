// Dispatch stubs for the kernels behind copies, conversions and fills (every device registers
// its own). Operand 0 of the loop is the destination.
#pragma once
#include "tensor/dispatch_stub.h"
#include "tensor/scalar.h"
#include "tensor/strided_loop.h"

namespace fabric {

// dst <- convert(src); fp8 destinations saturate when `saturate_fp8` (Transformer Engine casts).
using CopyFn = void (*)(const StridedLoop& loop, bool saturate_fp8);
FABRIC_DECLARE_STUB(copy_stub, CopyFn);

using FillFn = void (*)(const StridedLoop& loop, const Scalar& value);
FABRIC_DECLARE_STUB(fill_stub, FillFn);

// Copies nbytes between devices (either side may be the CPU). Registered by the CUDA backend.
using CrossDeviceCopyFn = void (*)(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes);
FABRIC_DECLARE_STUB(cross_device_copy_stub, CrossDeviceCopyFn);

}  // namespace fabric
