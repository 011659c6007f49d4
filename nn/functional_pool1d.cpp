// The 1-d pools as the 2-d ones over (N, C, 1, L), with torch's argument checks named for the 1-d
// op.
#include "nn/functional_pool1d.h"

#include "tensor/error.h"
#include "tensor/ops.h"
#include "tensor/shape.h"

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

// The windowed pools' input checks the 2-d op would make, here so that they name the 1-d op and
// the caller's shape: every size but a 3-D input's batch non-zero, and L + 2 * padding holding
// one window.
void check_pool_input(const char* op, const Tensor& x, int64_t kernel_size, int64_t stride,
                      int64_t padding) {
  const Shape& shape = x.sizes();
  const size_t first = shape.size() == 3 ? 1 : 0;
  bool nonempty = true;
  for (size_t i = first; i < shape.size(); ++i) nonempty = nonempty && shape[i] > 0;
  FABRIC_CHECK(nonempty, ShapeError, op,
               ": expected a 2-D or 3-D (batch mode) input with non-zero sizes but an optional "
               "zero batch, got ",
               shape_str(shape));
  // 2 * padding <= kernel_size (checked_stride); adding it to a huge L may not fit.
  const int64_t padded = checked_size_add(shape.back(), 2 * padding, op);
  FABRIC_CHECK(padded >= kernel_size, ShapeError, op, ": output size is too small: input ",
               shape_str(shape), " with kernel_size ", kernel_size, ", stride ", stride,
               ", padding ", padding);
}

// Checks torch's pooling arguments and returns the stride (kernel_size when unset).
int64_t checked_stride(const char* op, int64_t kernel_size, std::optional<int64_t> stride,
                       int64_t padding) {
  const int64_t s = stride.value_or(kernel_size);
  FABRIC_CHECK(kernel_size > 0, ValueError, op, ": kernel_size must be positive, got ",
               kernel_size);
  FABRIC_CHECK(s > 0, ValueError, op, ": stride must be positive, got ", s);
  FABRIC_CHECK(padding >= 0, ValueError, op, ": pad must be non-negative, but got padding ",
               padding);
  FABRIC_CHECK(padding <= kernel_size / 2, ValueError, op,
               ": pad should be at most half of kernel size, got padding ", padding,
               " and kernel_size ", kernel_size);
  return s;
}

}  // namespace

Tensor max_pool1d(const Tensor& x, int64_t kernel_size, std::optional<int64_t> stride,
                  int64_t padding) {
  const int64_t s = checked_stride("max_pool1d", kernel_size, stride, padding);
  const Tensor x4 = with_unit_height("max_pool1d", x);
  check_pool_input("max_pool1d", x, kernel_size, s, padding);
  return fabric::max_pool2d(x4, {1, kernel_size}, {1, s}, {0, padding}).squeeze(-2);
}

std::tuple<Tensor, Tensor> max_pool1d_with_indices(const Tensor& x, int64_t kernel_size,
                                                   std::optional<int64_t> stride, int64_t padding) {
  const int64_t s = checked_stride("max_pool1d", kernel_size, stride, padding);
  const Tensor x4 = with_unit_height("max_pool1d", x);
  check_pool_input("max_pool1d", x, kernel_size, s, padding);
  // In a (1, L) plane the flat offset is the position in L.
  auto [values, indices] =
      fabric::max_pool2d_with_indices(x4, {1, kernel_size}, {1, s}, {0, padding});
  return {values.squeeze(-2), indices.squeeze(-2)};
}

Tensor avg_pool1d(const Tensor& x, int64_t kernel_size, std::optional<int64_t> stride,
                  int64_t padding) {
  const int64_t s = checked_stride("avg_pool1d", kernel_size, stride, padding);
  const Tensor x4 = with_unit_height("avg_pool1d", x);
  check_pool_input("avg_pool1d", x, kernel_size, s, padding);
  return fabric::avg_pool2d(x4, {1, kernel_size}, {1, s}, {0, padding}).squeeze(-2);
}

Tensor adaptive_avg_pool1d(const Tensor& x, int64_t output_size) {
  FABRIC_CHECK(output_size >= 0, ValueError, "adaptive_avg_pool1d: output_size must be >= 0, got ",
               output_size);
  const Tensor x4 = with_unit_height("adaptive_avg_pool1d", x);
  // adaptive_avg_pool2d's check, naming this op and the caller's shape.
  for (int64_t i = x.dim() == 3 ? 1 : 0; i < x.dim(); ++i)
    FABRIC_CHECK(x.size(i) > 0, ShapeError,
                 "adaptive_avg_pool1d: expected the input to have non-zero sizes for the "
                 "non-batch dimensions, but input ",
                 shape_str(x.sizes()), " has dimension ", i, " empty");
  return fabric::adaptive_avg_pool2d(x4, {1, output_size}).squeeze(-2);
}

}  // namespace functional
}  // namespace fabric::nn
