// Dispatch stubs for the elementwise math family beyond elementwise_kernels.h (trigonometric,
// hyperbolic and logarithm ops, erfinv; atan2, fmod, remainder) and for prod/cumprod. Kept apart
// so adding them rebuilt nothing else; the ops are in ops_unary_math.cpp, ops_binary_math.cpp and
// ops_prod.cpp, the kernels in kernels/cpu/elementwise_math.cpp, kernels/cpu/prod_cumprod.cpp and
// kernels/cuda/math_kernels.cu.
#pragma once
#include <cstdint>

#include "tensor/dispatch_stub.h"
#include "tensor/reduce_kernels.h"
#include "tensor/strided_loop.h"

namespace fabric {

// out = f(a), loop (out, a) of one floating dtype (the op layer promotes integers); bf16/fp16
// compute in float. erfinv(+-1) = +-inf, NaN outside [-1, 1], as torch.
enum class MathUnaryOp : uint8_t {
  tan,
  asin,
  acos,
  atan,
  sinh,
  cosh,
  asinh,
  acosh,
  atanh,
  log2,
  log10,
  erfinv
};
using MathUnaryFn = void (*)(MathUnaryOp op, const StridedLoop& loop);
FABRIC_DECLARE_STUB(math_unary_stub, MathUnaryFn);

// out = f(a, b), loop (out, a, b) of one dtype. atan2 is floating only. fmod is C's fmod (the
// sign of a), remainder Python's % (the sign of b); on integers both are exact and the op layer
// has already refused a zero divisor (an integer division by zero has no value).
enum class MathBinaryOp : uint8_t { atan2, fmod, remainder };
using MathBinaryFn = void (*)(MathBinaryOp op, const StridedLoop& loop);
FABRIC_DECLARE_STUB(math_binary_stub, MathBinaryFn);

// Products along len of a contiguous (outer, len, inner) input whose dtype is the output's:
// prod writes (outer, inner) (len 0 gives 1), cumprod the running products (outer, len, inner).
// Floats accumulate as reduce_acc_dtype says except float32, which uses double as torch's CPU
// (acc_type<float, false>); integers accumulate in int64 and wrap.
using ProdFn = void (*)(const ScanGeometry& g);
FABRIC_DECLARE_STUB(prod_stub, ProdFn);
FABRIC_DECLARE_STUB(cumprod_stub, ProdFn);

}  // namespace fabric
