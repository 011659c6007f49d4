// torch.nn.init's formulas over fabric's random fills (tensor/factory.h).
#include "nn/init.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "autograd/grad_mode.h"
#include "tensor/factory.h"
#include "tensor/random.h"

namespace fabric::nn::init {

namespace {

void check_floating(const char* fn, const Tensor& t) {
  FABRIC_CHECK(t.defined(), ValueError, "nn::init::", fn, ": undefined tensor");
  FABRIC_CHECK(t.is_floating_point(), DTypeError, "nn::init::", fn,
               ": expects a floating tensor, got ", dtype_name(t.dtype()));
}

int64_t fan_of(const char* fn, const Tensor& t, FanMode mode) {
  auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  return mode == FanMode::fan_in ? fan_in : fan_out;
}

// Inverse error function: Giles' single-precision approximation refined by two Newton steps
// (erf is exact in libm), accurate to double rounding on (-1, 1).
double erfinv(double y) {
  if (y <= -1.0) return -INFINITY;
  if (y >= 1.0) return INFINITY;
  double w = -std::log((1.0 - y) * (1.0 + y)), x;
  if (w < 5.0) {
    w -= 2.5;
    double p = 2.81022636e-08;
    p = 3.43273939e-07 + p * w;
    p = -3.5233877e-06 + p * w;
    p = -4.39150654e-06 + p * w;
    p = 0.00021858087 + p * w;
    p = -0.00125372503 + p * w;
    p = -0.00417768164 + p * w;
    p = 0.246640727 + p * w;
    p = 1.50140941 + p * w;
    x = p * y;
  } else {
    w = std::sqrt(w) - 3.0;
    double p = -0.000200214257;
    p = 0.000100950558 + p * w;
    p = 0.00134934322 + p * w;
    p = -0.00367342844 + p * w;
    p = 0.00573950773 + p * w;
    p = -0.0076224613 + p * w;
    p = 0.00943887047 + p * w;
    p = 1.00167406 + p * w;
    p = 2.83297682 + p * w;
    x = p * y;
  }
  const double two_over_sqrt_pi = 1.1283791670955126;
  for (int i = 0; i < 2; ++i) x -= (std::erf(x) - y) / (two_over_sqrt_pi * std::exp(-x * x));
  return x;
}

}  // namespace

double calculate_gain(std::string_view nl, std::optional<double> param) {
  if (nl == "linear" || nl == "conv1d" || nl == "conv2d" || nl == "conv3d" ||
      nl == "conv_transpose1d" || nl == "conv_transpose2d" || nl == "conv_transpose3d" ||
      nl == "sigmoid") {
    return 1.0;
  }
  if (nl == "tanh") return 5.0 / 3.0;
  if (nl == "relu") return std::sqrt(2.0);
  if (nl == "leaky_relu") {
    const double slope = param.value_or(0.01);
    return std::sqrt(2.0 / (1.0 + slope * slope));
  }
  if (nl == "selu") return 3.0 / 4.0;
  throw ValueError(
      detail::cat("nn::init::calculate_gain: unsupported nonlinearity \"", nl,
                  "\" (expected linear, conv1d/2d/3d, conv_transpose1d/2d/3d, sigmoid, tanh, relu, "
                  "leaky_relu or selu)"));
}

std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& t) {
  FABRIC_CHECK(t.dim() >= 2, ValueError,
               "nn::init: fan in and fan out can not be computed for a tensor with fewer than 2 "
               "dimensions (shape ",
               shape_str(t.sizes()), ")");
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

Tensor uniform_(const Tensor& t, double a, double b, Generator* gen) {
  check_floating("uniform_", t);
  NoGradGuard no_grad;
  Tensor h = t;
  fabric::uniform_(h, a, b, gen);
  return t;
}

Tensor normal_(const Tensor& t, double mean, double std, Generator* gen) {
  check_floating("normal_", t);
  NoGradGuard no_grad;
  Tensor h = t;
  fabric::normal_(h, mean, std, gen);
  return t;
}

Tensor constant_(const Tensor& t, double value) {
  FABRIC_CHECK(t.defined(), ValueError, "nn::init::constant_: undefined tensor");
  NoGradGuard no_grad;
  Tensor h = t;
  h.fill_(value);
  return t;
}

Tensor zeros_(const Tensor& t) { return constant_(t, 0.0); }
Tensor ones_(const Tensor& t) { return constant_(t, 1.0); }

Tensor kaiming_uniform_(const Tensor& t, double a, FanMode mode, std::string_view nonlinearity,
                        Generator* gen) {
  check_floating("kaiming_uniform_", t);
  if (t.numel() == 0) return t;  // torch: initializing a zero-element tensor is a no-op
  const int64_t fan = fan_of("kaiming_uniform_", t, mode);
  const double gain = calculate_gain(nonlinearity, a);
  const double bound = std::sqrt(3.0) * (gain / std::sqrt(static_cast<double>(fan)));
  return uniform_(t, -bound, bound, gen);
}

Tensor kaiming_normal_(const Tensor& t, double a, FanMode mode, std::string_view nonlinearity,
                       Generator* gen) {
  check_floating("kaiming_normal_", t);
  if (t.numel() == 0) return t;
  const int64_t fan = fan_of("kaiming_normal_", t, mode);
  const double std = calculate_gain(nonlinearity, a) / std::sqrt(static_cast<double>(fan));
  return normal_(t, 0.0, std, gen);
}

Tensor xavier_uniform_(const Tensor& t, double gain, Generator* gen) {
  check_floating("xavier_uniform_", t);
  auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  const double std = gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out));
  const double bound = std::sqrt(3.0) * std;
  return uniform_(t, -bound, bound, gen);
}

Tensor xavier_normal_(const Tensor& t, double gain, Generator* gen) {
  check_floating("xavier_normal_", t);
  auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  return normal_(t, 0.0, gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out)), gen);
}

Tensor trunc_normal_(const Tensor& t, double mean, double std, double a, double b, Generator* gen) {
  check_floating("trunc_normal_", t);
  FABRIC_CHECK(std > 0 && a < b, ValueError,
               "nn::init::trunc_normal_: expects std > 0 and a < b, got std=", std, ", a=", a,
               ", b=", b);
  auto norm_cdf = [](double x) { return (1.0 + std::erf(x / std::sqrt(2.0))) / 2.0; };
  const double l = norm_cdf((a - mean) / std), u = norm_cdf((b - mean) / std);
  // torch's method: uniform in [2l-1, 2u-1], then the inverse CDF of the standard normal.
  Tensor draws = empty(t.sizes(), {.dtype = DType::float64});
  fabric::uniform_(draws, 2 * l - 1, 2 * u - 1, gen);
  std::vector<double> v = draws.to_vector<double>();
  for (double& x : v) x = std::clamp(mean + std * std::sqrt(2.0) * erfinv(x), a, b);
  NoGradGuard no_grad;
  Tensor h = t;
  h.copy_(from_vector(v, t.sizes(), {.dtype = DType::float64}));
  return t;
}

}  // namespace fabric::nn::init
