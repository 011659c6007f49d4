// torch's bitwise ops and integer gcd / lcm: integer and bool tensors (torch's type promotion; a
// Scalar is a wrapped number), no derivative. Shifts follow torch 1.13's x86 results: the count
// is taken modulo the width of the shifted register (32 bits for int32 and narrower, 64 for
// int64), so shifting by the dtype's width or more, or by a negative count, gives what torch gives
// rather than 0. Float tensors raise DTypeError, as torch's kernels have none.
#pragma once

#include "tensor/scalar.h"
#include "tensor/tensor.h"

namespace fabric {

Tensor bitwise_and(const Tensor& a, const Tensor& b);  // bool: logical and
Tensor bitwise_and(const Tensor& a, const Scalar& b);
Tensor bitwise_or(const Tensor& a, const Tensor& b);
Tensor bitwise_or(const Tensor& a, const Scalar& b);
Tensor bitwise_xor(const Tensor& a, const Tensor& b);
Tensor bitwise_xor(const Tensor& a, const Scalar& b);
Tensor bitwise_not(const Tensor& a);  // ~a; bool: logical not
// a << b and a >> b (arithmetic for signed dtypes); integer dtypes only.
Tensor bitwise_left_shift(const Tensor& a, const Tensor& b);
Tensor bitwise_left_shift(const Tensor& a, const Scalar& b);
Tensor bitwise_right_shift(const Tensor& a, const Tensor& b);
Tensor bitwise_right_shift(const Tensor& a, const Scalar& b);
// Greatest common divisor (non-negative; gcd(0, 0) = 0) and least common multiple |a / gcd * b|
// (0 when both are 0), wrapping in the dtype as torch's; integer dtypes only.
Tensor gcd(const Tensor& a, const Tensor& b);
Tensor lcm(const Tensor& a, const Tensor& b);

}  // namespace fabric
