// The geometry an elementwise kernel iterates: operands broadcast to one shape, byte strides
// (0 on broadcast dims), adjacent dims coalesced so a contiguous operation is one flat loop.
// Built by the op layer from tensors; kernels see only this value type and raw pointers.
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>

#include "tensor/dtype.h"
#include "tensor/tensor.h"

namespace fabric {

inline constexpr int kMaxLoopDims = 12;
inline constexpr int kMaxLoopOperands = 5;

struct LoopOperand {
  char* data = nullptr;
  DType dtype = DType::float32;
  std::array<int64_t, kMaxLoopDims> strides{};  // bytes; innermost dim last
};

struct StridedLoop {
  int ndim = 0;                                 // after coalescing; 0 means one element
  std::array<int64_t, kMaxLoopDims> sizes{};    // innermost dim last
  int num_operands = 0;                         // operand 0 is the output
  std::array<LoopOperand, kMaxLoopOperands> ops{};

  int64_t numel() const {
    int64_t n = 1;
    for (int d = 0; d < ndim; ++d) n *= sizes[d];
    return n;
  }
  // True when every operand advances by its itemsize (or 0: a broadcast scalar) in a 1-D loop.
  bool is_flat() const;
  bool operand_is_scalar(int i) const;  // stride 0 along every dim
};

// Builds the loop for `out` (already of the broadcast shape) and inputs broadcast to it.
// Throws ShapeError naming `op` when an input does not broadcast to out's shape.
StridedLoop make_strided_loop(const char* op, const Tensor& out, std::initializer_list<const Tensor*> inputs);

// Calls fn(offsets...) is not offered: kernels walk the loop with for_each_row below.
// Splits [0, numel) into rows of the innermost dim and calls row(ptrs, n, strides) for each,
// with ptrs pointing at the row's first element of each operand. Parallel over rows/chunks
// with OpenMP when the loop is large (grain ~32K elements).
template <typename RowFn>
void for_each_row(const StridedLoop& loop, RowFn&& row);

}  // namespace fabric

#include "tensor/strided_loop_impl.h"
