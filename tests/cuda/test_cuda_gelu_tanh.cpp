// GELU (tanh form) and its gradient on CUDA over [-20, 20] (past the float clamp at 16 and where
// the results underflow) and the special values: float32 against the host's evaluation of the
// same expressions (tensor/gelu_tanh_math.h; only expf's last bits differ), and every dtype
// against the CPU op; PyTorch's zeros in the left tail (forward -0, gradient g * (+0)) on both.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "tensor/activation_backward.h"
#include "tensor/factory.h"
#include "tensor/gelu_tanh_math.h"
#include "tensor/ops.h"
#include "tests/cuda/cuda_test_util.h"

namespace fabric {
namespace {

using test::kGpu;

std::vector<float> inputs() {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  constexpr float kMax = std::numeric_limits<float>::max();
  std::vector<float> xs;
  for (int i = -20 * 256; i <= 20 * 256; ++i) xs.push_back(static_cast<float>(i) / 256.0f);
  for (float x : {std::numeric_limits<float>::quiet_NaN(), kInf, -kInf, -0.0f, 1e-40f, -1e-40f,
                  1e30f, -1e30f, kMax, -kMax, -10.7f, -0.7517f, std::nextafter(-16.0f, 0.0f),
                  std::nextafter(-16.0f, -17.0f)})
    xs.push_back(x);
  return xs;
}

// |a - b| in units of the dtype's ulp at the larger magnitude (its smallest subnormal below the
// normal range), or of max(ulp, floor).
double ulps(double a, double b, DType dt, double floor = 0) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b) ? 0 : 1e30;
  if (std::isinf(a) || std::isinf(b)) return a == b ? 0 : 1e30;
  int mant = 23, emin = -126;
  if (dt == DType::bfloat16) mant = 7;
  if (dt == DType::float16) mant = 10, emin = -14;
  if (dt == DType::float64) mant = 52, emin = -1022;
  const double m = std::max(std::fabs(a), std::fabs(b));
  const int e = m == 0 ? emin : std::max(std::ilogb(m), emin);
  return std::fabs(a - b) / std::max(std::ldexp(1.0, e - mant), floor);
}

// PyTorch's zeros: gelu is -0 at x < 0 (x/2 (1 + tanh(u)) with tanh(u) = -1), the gradient
// g * (+0); a zero elsewhere has x's sign (forward) or g's (gradient, g gelu'(x) with gelu' > 0).
void expect_torch_zeros(const std::string& what, const std::vector<double>& x,
                        const std::vector<double>& y, const std::vector<double>& d, double g) {
  int bad = 0;
  for (size_t i = 0; i < x.size() && bad < 5; ++i) {
    if (y[i] == 0 && std::signbit(y[i]) != std::signbit(x[i]))
      ++bad, ADD_FAILURE() << what << ": gelu(" << x[i] << ") = " << y[i];
    if (d[i] == 0 && std::signbit(d[i]) != std::signbit(g))
      ++bad, ADD_FAILURE() << what << ": gradient at " << x[i] << " (g = " << g << ") = " << d[i];
  }
}

TEST(CudaGeluTanh, Float32IsTheSharedFormulation) {
  FABRIC_REQUIRE_CUDA();
  const std::vector<float> xs = inputs();
  const Tensor x = from_vector(xs).to(kGpu);
  const auto y = gelu(x, "tanh").to(Device::cpu()).to_vector<float>();
  for (float g : {1.0f, -1.0f}) {
    const auto d = activation_backward(ActGrad::gelu_tanh, full_like(x, g), x)
                       .to(Device::cpu())
                       .to_vector<float>();
    double worst_y = 0, worst_d = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      const float want_y = gelu_tanh::forward(xs[i]);
      const float want_d = gelu_tanh::with_torch_zero(g, g * gelu_tanh::derivative(xs[i]));
      // CUDA's expf (2 ulp) against glibc's (under 1): a few float ulps, subnormals included.
      worst_y = std::max(worst_y, ulps(y[i], want_y, DType::float32));
      worst_d = std::max(worst_d, ulps(d[i], want_d, DType::float32, std::ldexp(1.0, -26)));
      if (want_y == 0 && y[i] == 0) EXPECT_EQ(std::signbit(want_y), std::signbit(y[i])) << xs[i];
      if (want_d == 0 && d[i] == 0) EXPECT_EQ(std::signbit(want_d), std::signbit(d[i])) << xs[i];
    }
    EXPECT_LE(worst_y, 4.0) << "forward";
    EXPECT_LE(worst_d, 4.0) << "gradient, g = " << g;
  }
}

TEST(CudaGeluTanh, EveryDtypeMatchesTheCpu) {
  FABRIC_REQUIRE_CUDA();
  // The CPU's float32 vector code and CUDA's float formulation are each within ~4 ulp (forward)
  // and ~5 floored (gradient) of float64 (3 and 5 apart on the host, with glibc's expf standing in
  // for CUDA's); float64 runs the same code on both (exp: 1 ulp each); bfloat16/float16 results
  // of either are the float64 reference rounded or one code off at a rounding tie, the same tie
  // on both.
  struct Case {
    DType dt;
    double fwd, grad;
  };
  for (const Case& c : {Case{DType::float32, 8, 10}, Case{DType::float64, 3, 3},
                        Case{DType::bfloat16, 1, 1}, Case{DType::float16, 1, 1}}) {
    const std::string name(dtype_name(c.dt));
    const Tensor x = from_vector(inputs()).to(c.dt);
    const std::vector<double> xv = x.to_vector<double>();
    const auto y_cpu = gelu(x, "tanh").to_vector<double>();
    const auto y_gpu = gelu(x.to(kGpu), "tanh").to(Device::cpu()).to_vector<double>();
    for (double g : {1.0, -1.0}) {
      const Tensor gt = full_like(x, g);
      const auto d_cpu = activation_backward(ActGrad::gelu_tanh, gt, x).to_vector<double>();
      const auto d_gpu = activation_backward(ActGrad::gelu_tanh, gt.to(kGpu), x.to(kGpu))
                             .to(Device::cpu())
                             .to_vector<double>();
      int bad = 0;
      for (size_t i = 0; i < xv.size() && bad < 5; ++i) {
        // Around the derivative's zero (x = -0.7517) the CPU's 16-bit rows (an exp argument of
        // 2^-15 relative error, terms near 0.5) may be a few float16 codes off: floored at 2^-16.
        const double floor = c.dt == DType::float64   ? std::ldexp(1.0, -55)
                             : c.dt == DType::float32 ? std::ldexp(1.0, -26)
                                                      : std::ldexp(1.0, -16);
        if (ulps(y_cpu[i], y_gpu[i], c.dt) > c.fwd)
          ++bad, ADD_FAILURE() << name << " gelu(" << xv[i] << "): CPU " << y_cpu[i] << ", CUDA "
                               << y_gpu[i];
        if (ulps(d_cpu[i], d_gpu[i], c.dt, floor) > c.grad)
          ++bad, ADD_FAILURE() << name << " gradient at " << xv[i] << ", g = " << g << ": CPU "
                               << d_cpu[i] << ", CUDA " << d_gpu[i];
      }
      expect_torch_zeros(name + " CPU", xv, y_cpu, d_cpu, g);
      expect_torch_zeros(name + " CUDA", xv, y_gpu, d_gpu, g);
    }
  }
}

}  // namespace
}  // namespace fabric
