// adaptive_max_pool1d and lp_pool1d/lp_pool2d: compositions (no kernels, no rules of their own),
// so autograd, double backward and every device come from the ops they are made of.
#include <cmath>
#include <optional>
#include <tuple>
#include <vector>

#include "tensor/ops.h"

namespace fabric {
namespace {

// The window checks of the 2-d pools these delegate to, said in the caller's name: positive
// kernel and stride (`kernel`, `stride`: the last dims' values), each window inside the input.
void check_windows(const char* op, const Tensor& x, const std::vector<int64_t>& kernel,
                   const std::vector<int64_t>& stride) {
  const size_t n = kernel.size();
  const int64_t first = x.dim() - static_cast<int64_t>(n);  // the first pooled dim
  for (size_t i = 0; i < n; ++i) {
    FABRIC_CHECK(kernel[i] > 0, ValueError, op, ": kernel_size must be positive, got ",
                 shape_str(kernel));
    FABRIC_CHECK(stride[i] > 0, ValueError, op, ": stride must be positive, got ",
                 shape_str(stride));
    FABRIC_CHECK(first >= 0 && x.size(first + static_cast<int64_t>(i)) >= kernel[i], ShapeError, op,
                 ": output size is too small: input ", shape_str(x.sizes()),
                 " is smaller than kernel_size ", shape_str(kernel), " (no padding)");
  }
}

}  // namespace

// The 2-d pool on the input viewed with a unit height: H*W positions are then L positions.
std::tuple<Tensor, Tensor> adaptive_max_pool1d(const Tensor& x, int64_t output_size) {
  FABRIC_CHECK(x.defined(), ValueError, "adaptive_max_pool1d: undefined input");
  FABRIC_CHECK(x.dim() == 2 || x.dim() == 3, ShapeError,
               "adaptive_max_pool1d: expected a 2-D (C, L) or 3-D (N, C, L) input, got ",
               shape_str(x.sizes()));
  const DType d = x.dtype();
  FABRIC_CHECK(
      d == DType::float32 || d == DType::float64 || d == DType::bfloat16 || d == DType::float16,
      DTypeError, "adaptive_max_pool1d: input ", shape_str(x.sizes()), " ", dtype_name(d),
      " has an unsupported dtype; supported: float64, float32, bfloat16, float16");
  FABRIC_CHECK(output_size >= 0, ValueError,
               "adaptive_max_pool1d: output_size must be non-negative, got ", output_size);
  auto [values, indices] = adaptive_max_pool2d(x.unsqueeze(-2), {1, output_size});
  return {values.squeeze(-2), indices.squeeze(-2)};
}

// torch's Python: avg_pool of x^p (no padding), sign(out) * relu(|out|) * kernel area, ^(1/p).
Tensor lp_pool2d(const Tensor& x, double norm_type, std::vector<int64_t> kernel,
                 std::vector<int64_t> stride) {
  FABRIC_CHECK(x.defined(), ValueError, "lp_pool2d: undefined input");
  FABRIC_CHECK(norm_type != 0.0 && !std::isnan(norm_type), ValueError,
               "lp_pool2d: norm_type must be non-zero (the power p of the p-norm pooled), got ",
               norm_type);
  FABRIC_CHECK(kernel.size() == 1 || kernel.size() == 2, ValueError,
               "lp_pool2d: kernel_size must have 1 or 2 elements, got ", shape_str(kernel));
  if (x.dim() >= 2) {
    const std::vector<int64_t> k2{kernel[0], kernel.back()};
    check_windows("lp_pool2d", x, k2,
                  stride.empty() ? k2 : std::vector<int64_t>{stride[0], stride.back()});
  }
  const int64_t area = kernel[0] * kernel.back();
  Tensor out = avg_pool2d(pow(x, norm_type), kernel, stride, {0, 0});
  return pow(mul(mul(sign(out), relu(abs(out))), static_cast<double>(area)), 1.0 / norm_type);
}

Tensor lp_pool1d(const Tensor& x, double norm_type, int64_t kernel, std::optional<int64_t> stride) {
  FABRIC_CHECK(x.defined(), ValueError, "lp_pool1d: undefined input");
  FABRIC_CHECK(norm_type != 0.0 && !std::isnan(norm_type), ValueError,
               "lp_pool1d: norm_type must be non-zero (the power p of the p-norm pooled), got ",
               norm_type);
  FABRIC_CHECK(x.dim() == 2 || x.dim() == 3, ShapeError,
               "lp_pool1d: expected a 2-D (C, L) or 3-D (N, C, L) input, got ",
               shape_str(x.sizes()));
  check_windows("lp_pool1d", x, {kernel}, {stride.value_or(kernel)});
  return lp_pool2d(x.unsqueeze(-2), norm_type, {1, kernel}, {1, stride.value_or(kernel)})
      .squeeze(-2);
}

}  // namespace fabric
