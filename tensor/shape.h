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

int64_t numel_of(const Shape& s);
Strides contiguous_strides(const Shape& s);
std::string shape_str(const Shape& s);  // "(2, 3)"

// Broadcasts two shapes as NumPy/PyTorch do; throws ShapeError naming `op` and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

// Wraps a possibly negative dim into [0, ndim); throws IndexError naming `op`. A 0-dim tensor
// accepts dims 0 and -1, as PyTorch does.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);

}  // namespace fabric
