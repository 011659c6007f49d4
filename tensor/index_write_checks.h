// Argument checks and the scatter launch the index-write ops share (ops_index_write.cpp,
// ops_advanced_index.cpp): index dtypes, index ranges (checked before a kernel reads through an
// index, or armed for a device that checks as it runs), and one call into the scatter kernel.
#pragma once
#include <string>

#include "tensor/index_write_kernels.h"
#include "tensor/shape.h"
#include "tensor/tensor.h"

namespace fabric::index_write {

std::string describe(const Tensor& t);  // "(2, 3) float32"
int64_t dim_or_one(const Tensor& t, int64_t d);
// int64 only, or int64/int32 where torch accepts int32 too (index_add).
void check_index_dtype(const char* op, const Tensor& index, bool allow_int32);

// The contiguous index with its values checked against [0, size) (error: "<op>: index 7 is out
// of range for <what> (valid: 0 to 4)"); `check` is the armed id where the device's kernels check
// as they run (CUDA), 0 where it was checked here (the CPU).
struct CheckedIndex {
  Tensor index;
  uint64_t check = 0;
};
CheckedIndex checked_index(const char* op, const Tensor& index, int64_t size,
                           const std::string& what);
// As checked_index, but always checked here, before returning (on CUDA this waits for the
// device): for ops whose kernels cannot defer the check.
void check_index_range_now(const char* op, const Tensor& index, int64_t size,
                           const std::string& what);

// scatter/scatter_reduce's shape rule: index has the dims of `a` (and of src), is no larger than
// src anywhere and no larger than `a` except along dim. Returns the wrapped dim.
int64_t check_scatter_shapes(const char* op, const Tensor& a, int64_t dim, const Tensor& index,
                             const Tensor* src);

// data (contiguous) (op)= other at the (checked) index along dim; other may be any strided view
// (a stride-0 scalar too) at least the index's size.
void run_scatter(const Tensor& data, int64_t dim, const CheckedIndex& index, const Tensor& other,
                 ScatterReduceOp op);

}  // namespace fabric::index_write
