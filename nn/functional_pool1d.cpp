// The 1-d pools as the 2-d ones over (N, C, 1, L), with torch's argument checks named for the 1-d
// op.
#include "nn/functional_pool1d.h"

#include "tensor/error.h"
#include "tensor/ops.h"

namespace fabric::nn {
inline namespace functional {

namespace {

// (C, L) or (N, C, L) -> the same with a unit height before L.
Tensor with_unit_height(const char* op, const Tensor& x) {
  FABRIC_CHECK(x.defined(), ValueError, op, ": undefined input");
  FABRIC_CHECK(x.dim() == 2 || x.dim() == 3, ShapeError, op,
               ": expected a 2D (C, L) or 3D (N, C, L) input, got shape ", shape_str(x.sizes()));
  const DType d = x.dtype();
  FABRIC_CHECK(
      d == DType::float32 || d == DType::float64 || d == DType::bfloat16 || d == DType::float16,
      DTypeError, op, ": input ", shape_str(x.sizes()), " ", dtype_name(d),
      " has an unsupported dtype; supported: float64, float32, bfloat16, float16");
  return x.unsqueeze(-2);
}

// Checks torch's pooling arguments and returns the stride (kernel_size when unset).
int64_t checked_stride(const char* op, int64_t kernel_size, std::optional<int64_t> stride,
                       int64_t padding) {
  const int64_t s = stride.value_or(kernel_size);
  FABRIC_CHECK(kernel_size > 0, ValueError, op, ": kernel_size must be positive, got ",
               kernel_size);
  FABRIC_CHECK(s > 0, ValueError, op, ": stride must be positive, got ", s);
  FABRIC_CHECK(padding >= 0 && padding <= kernel_size / 2, ValueError, op,
               ": pad should be at most half of kernel size, got padding ", padding,
               " and kernel_size ", kernel_size);
  return s;
}

}  // namespace

Tensor max_pool1d(const Tensor& x, int64_t kernel_size, std::optional<int64_t> stride,
                  int64_t padding) {
  const int64_t s = checked_stride("max_pool1d", kernel_size, stride, padding);
  const Tensor x4 = with_unit_height("max_pool1d", x);
  return fabric::max_pool2d(x4, {1, kernel_size}, {1, s}, {0, padding}).squeeze(-2);
}

Tensor avg_pool1d(const Tensor& x, int64_t kernel_size, std::optional<int64_t> stride,
                  int64_t padding) {
  const int64_t s = checked_stride("avg_pool1d", kernel_size, stride, padding);
  const Tensor x4 = with_unit_height("avg_pool1d", x);
  return fabric::avg_pool2d(x4, {1, kernel_size}, {1, s}, {0, padding}).squeeze(-2);
}

Tensor adaptive_avg_pool1d(const Tensor& x, int64_t output_size) {
  FABRIC_CHECK(output_size >= 0, ValueError, "adaptive_avg_pool1d: output_size must be >= 0, got ",
               output_size);
  const Tensor x4 = with_unit_height("adaptive_avg_pool1d", x);
  return fabric::adaptive_avg_pool2d(x4, {1, output_size}).squeeze(-2);
}

}  // namespace functional
}  // namespace fabric::nn
