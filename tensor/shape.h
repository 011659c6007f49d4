// Shapes and strides (in elements), and the small rules on them: numel, contiguity,
// broadcasting and dim wrapping, each failing with the op's name in the message.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace fabric {

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;

// The element count; throws ShapeError when it overflows int64 (a shape holding a 0 has 0
// elements whatever its other dims, as in PyTorch).
int64_t numel_of(const Shape& s);
Strides contiguous_strides(const Shape& s);
std::string shape_str(const Shape& s);  // "(2, 3)"

// Broadcasts two shapes as NumPy/PyTorch do; throws ShapeError naming `op` and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

// Wraps a possibly negative dim into [0, ndim); throws IndexError naming `op`. A 0-dim tensor
// accepts dims 0 and -1, as PyTorch does.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);

// Size arithmetic that cannot wrap: a * b and a + b, or ShapeError naming `op` and both operands
// when the result does not fit int64. Signed overflow is undefined behaviour, and a wrapped size
// would pass every later check (a negative or tiny count) and reach the kernels.
[[noreturn]] void throw_size_overflow(const char* op, int64_t a, char sign, int64_t b);
inline int64_t checked_size_mul(int64_t a, int64_t b, const char* op) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) [[unlikely]]
    throw_size_overflow(op, a, '*', b);
  return r;
}
inline int64_t checked_size_add(int64_t a, int64_t b, const char* op) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) [[unlikely]]
    throw_size_overflow(op, a, '+', b);
  return r;
}

}  // namespace fabric
