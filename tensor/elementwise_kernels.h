// Dispatch stubs for the elementwise kernels (binary, comparison, unary, where, clamp, addcmul).
// Operand 0 of every loop is the output. The op layer has already promoted the inputs to one
// compute dtype, so a kernel sees a single dtype per loop (bool outputs of comparisons aside) —
// except that on the CPU an add/sub/mul/div loop may have one input of the float32/float64 output
// dtype and one narrower float input, which the kernel widens (exactly) as it loads it.
#pragma once
#include <cstdint>

#include "tensor/dispatch_stub.h"
#include "tensor/scalar.h"
#include "tensor/strided_loop.h"

namespace fabric {

// out = a op b, of one dtype (but for the CPU's widened inputs above). add/sub compute a +- alpha*b. logical_and/or run on bool.
// Integer dtypes wrap on overflow; div and float pow are for floating dtypes only (true
// division promotes integers in the op layer).
enum class BinaryOp : uint8_t {
  add,
  sub,
  mul,
  div,
  maximum,
  minimum,
  pow,
  logical_and,
  logical_or
};

// Loop operands: (out, a, b), or (out, a) when `b_scalar` is given: b is then that value,
// taken in the compute precision (float for fp16/bf16, as PyTorch's opmath does; wrapped to
// the dtype for integers).
using BinaryFn = void (*)(BinaryOp op, const StridedLoop& loop, const Scalar& alpha,
                          const Scalar* b_scalar);
FABRIC_DECLARE_STUB(binary_stub, BinaryFn);

enum class CompareOp : uint8_t { eq, ne, lt, le, gt, ge };
// out (bool) = a cmp b, a and b of one dtype; loop (out, a, b) or (out, a) with `b_scalar`
// (first cast to the dtype of a, as PyTorch casts a wrapped scalar to the common dtype).
using CompareFn = void (*)(CompareOp op, const StridedLoop& loop, const Scalar* b_scalar);
FABRIC_DECLARE_STUB(compare_stub, CompareFn);

// out = f(a), out and a of one dtype. gelu_erf/gelu_tanh are GELU's two forms; logical_not runs
// on bool. Floating-only ops (exp ... reciprocal, log1p/expm1/erf) see floating dtypes;
// neg/abs/relu and floor/ceil/round (half to even)/trunc/sign also integers (identity for the
// rounding ops; sign(NaN) = 0 and sign(-0) = +0, as torch's (0 < x) - (x < 0)).
enum class UnaryOp : uint8_t {
  neg,
  abs,
  exp,
  log,
  sqrt,
  rsqrt,
  tanh,
  sigmoid,
  relu,
  gelu_erf,
  gelu_tanh,
  silu,
  sin,
  cos,
  reciprocal,
  log1p,
  expm1,
  erf,
  floor,
  ceil,
  round,
  trunc,
  sign,
  logical_not
};
using UnaryFn = void (*)(UnaryOp op, const StridedLoop& loop);
FABRIC_DECLARE_STUB(unary_stub, UnaryFn);

// out = cond ? a : b; loop (out, cond (bool), a, b), out/a/b of one dtype.
using WhereFn = void (*)(const StridedLoop& loop);
FABRIC_DECLARE_STUB(where_stub, WhereFn);

// out = min(max(a, lo), hi) with either bound absent (nullptr); NaN in a or a bound propagates.
using ClampFn = void (*)(const StridedLoop& loop, const Scalar* lo, const Scalar* hi);
FABRIC_DECLARE_STUB(clamp_stub, ClampFn);

// out = self + value * t1 * t2; loop (out, self, t1, t2) of one dtype.
using AddcmulFn = void (*)(const StridedLoop& loop, const Scalar& value);
FABRIC_DECLARE_STUB(addcmul_stub, AddcmulFn);

}  // namespace fabric
