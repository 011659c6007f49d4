// torch.tril_indices / torch.triu_indices (tri_indices.h). The count comes first in closed form so
// the (2, N) result is allocated once; the fill then walks the triangle row by row, as torch's CPU
// kernel does, so the order is row-major.
#include "tensor/tri_indices.h"

#include <algorithm>

#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/shape.h"

namespace fabric {
namespace {

// Checked in torch's order: row, then col, then the dtype (torch allocates before it dispatches).
void check_args(const char* op, int64_t row, int64_t col, DType dtype) {
  FABRIC_CHECK(row >= 0, ValueError, op, ": row must be non-negative, got ", row);
  FABRIC_CHECK(col >= 0, ValueError, op, ": col must be non-negative, got ", col);
  FABRIC_CHECK(dtype == DType::int64 || dtype == DType::int32, DTypeError, op,
               ": not implemented for ", dtype_name(dtype),
               " (torch 1.13 builds the indices as int64 or int32 only)");
}

// j - i spans [-(row - 1), col - 1] inside the matrix, so clamping the offset to [-row, col]
// keeps the same cells and leaves the arithmetic below no room to overflow (torch's own size
// formula wraps for offsets near the int64 limits).
int64_t clamp_offset(int64_t offset, int64_t row, int64_t col) {
  return std::clamp<int64_t>(offset, -row, col);
}

// The number of cells (i, j) with j - i <= k, for k already clamped. Rows before zero_end hold
// none, rows from full_start on hold all col, and the rows between hold i + k + 1: a trapezoid.
struct TrilRows {
  int64_t zero_end, full_start, count;
};
TrilRows tril_rows(int64_t row, int64_t col, int64_t k) {
  if (row == 0 || col == 0) return {0, 0, 0};
  const int64_t zero_end = std::clamp<int64_t>(-k, 0, row);
  // Row i is full once i + k + 1 >= col; the comparison keeps col - 1 - k in range.
  const int64_t full_start = k <= col - 1 - row ? row : std::max<int64_t>(0, col - 1 - k);
  const char* op = "tril_indices";
  int64_t count = checked_size_mul(row - full_start, col, op);
  const int64_t n = full_start - zero_end;  // >= 0 because col >= 1
  if (n > 0) {
    const int64_t first = zero_end + k + 1, last = full_start + k;
    const int64_t ends = checked_size_add(first, last, op);
    // (first + last) * n is even; halve whichever factor is even so the product cannot wrap early.
    const int64_t trapezoid =
        n % 2 == 0 ? checked_size_mul(n / 2, ends, op) : checked_size_mul(n, ends / 2, op);
    count = checked_size_add(count, trapezoid, op);
  }
  return {zero_end, full_start, count};
}

template <typename T>
void fill_tril(T* rows, T* cols, int64_t row, int64_t col, int64_t k, int64_t zero_end) {
  int64_t at = 0;
  for (int64_t i = zero_end; i < row; ++i) {
    const int64_t end = k >= col - 1 - i ? col : i + k + 1;
    for (int64_t j = 0; j < end; ++j, ++at) {
      rows[at] = static_cast<T>(i);
      cols[at] = static_cast<T>(j);
    }
  }
}

template <typename T>
void fill_triu(T* rows, T* cols, int64_t row, int64_t col, int64_t k) {
  int64_t at = 0;
  for (int64_t i = 0; i < row; ++i) {
    const int64_t start = k >= col - i ? col : std::max<int64_t>(0, i + k);
    if (start >= col) break;  // every later row starts further right
    for (int64_t j = start; j < col; ++j, ++at) {
      rows[at] = static_cast<T>(i);
      cols[at] = static_cast<T>(j);
    }
  }
}

// Allocates the (2, count) host tensor and hands fill its two rows in the dtype.
template <typename Fill>
Tensor build(int64_t count, DType dtype, Device device, Fill&& fill) {
  Tensor out = empty({2, count}, {.dtype = dtype});
  if (count > 0) {
    if (dtype == DType::int64) {
      int64_t* p = out.data<int64_t>();
      fill(p, p + count);
    } else {
      int32_t* p = out.data<int32_t>();
      fill(p, p + count);
    }
  }
  return out.to(device);
}

}  // namespace

Tensor tril_indices(int64_t row, int64_t col, int64_t offset, DType dtype, Device device) {
  check_args("tril_indices", row, col, dtype);
  const int64_t k = clamp_offset(offset, row, col);
  const TrilRows r = tril_rows(row, col, k);
  return build(r.count, dtype, device,
               [&](auto* rows, auto* cols) { fill_tril(rows, cols, row, col, k, r.zero_end); });
}

Tensor triu_indices(int64_t row, int64_t col, int64_t offset, DType dtype, Device device) {
  check_args("triu_indices", row, col, dtype);
  const int64_t k = clamp_offset(offset, row, col);
  // j - i >= k in a row x col matrix is i - j <= -k in its transpose: the same count.
  const int64_t count = tril_rows(col, row, -k).count;
  return build(count, dtype, device,
               [&](auto* rows, auto* cols) { fill_triu(rows, cols, row, col, k); });
}

}  // namespace fabric
