// torch.nn.init's formulas over fabric's random fills (tensor/factory.h).
#include "nn/init.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "autograd/grad_mode.h"
#include "nn/householder_qr.h"
#include "tensor/factory.h"
#include "tensor/random.h"
#include "tensor/warning.h"

namespace fabric::nn::init {

namespace {

// Enabled EmptyInitGuards alive on this thread.
thread_local int empty_init_depth = 0;

void check_floating(const char* fn, const Tensor& t) {
  FABRIC_CHECK(t.defined(), ValueError, "nn::init::", fn, ": undefined tensor");
  FABRIC_CHECK(t.is_floating_point(), DTypeError, "nn::init::", fn,
               ": expects a floating tensor, got ", dtype_name(t.dtype()));
}

// torch's kaiming_*_ on a tensor with a zero in its shape: a warning, and the tensor untouched.
const Tensor& warn_zero_element_init(const Tensor& t) {
  warn("Initializing zero-element tensors is a no-op");
  return t;
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

EmptyInitGuard::EmptyInitGuard(bool enabled) : enabled_(enabled) {
  if (enabled_) ++empty_init_depth;
}

EmptyInitGuard::~EmptyInitGuard() {
  if (enabled_) --empty_init_depth;
}

bool empty_init_enabled() { return empty_init_depth > 0; }

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
  FABRIC_CHECK(t.defined(), ValueError,
               "nn::init::calculate_fan_in_and_fan_out: got an undefined tensor");
  FABRIC_CHECK(t.dim() >= 2, ValueError,
               "nn::init: fan in and fan out can not be computed for a tensor with fewer than 2 "
               "dimensions (shape ",
               shape_str(t.sizes()), ")");
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

Tensor uniform_(const Tensor& t, double a, double b, Generator* gen) {
  if (empty_init_enabled()) return t;
  check_floating("uniform_", t);
  NoGradGuard no_grad;
  Tensor h = t;
  fabric::uniform_(h, a, b, gen);
  return t;
}

Tensor normal_(const Tensor& t, double mean, double std, Generator* gen) {
  if (empty_init_enabled()) return t;
  check_floating("normal_", t);
  NoGradGuard no_grad;
  Tensor h = t;
  fabric::normal_(h, mean, std, gen);
  return t;
}

Tensor constant_(const Tensor& t, double value) {
  if (empty_init_enabled()) return t;
  FABRIC_CHECK(t.defined(), ValueError, "nn::init::constant_: undefined tensor");
  NoGradGuard no_grad;
  Tensor h = t;
  h.fill_(value);
  return t;
}

Tensor zeros_(const Tensor& t) {
  FABRIC_CHECK(t.defined(), ValueError, "nn::init::zeros_: undefined tensor");
  return constant_(t, 0.0);
}
Tensor ones_(const Tensor& t) {
  FABRIC_CHECK(t.defined(), ValueError, "nn::init::ones_: undefined tensor");
  return constant_(t, 1.0);
}

Tensor kaiming_uniform_(const Tensor& t, double a, FanMode mode, std::string_view nonlinearity,
                        Generator* gen) {
  if (empty_init_enabled()) return t;
  check_floating("kaiming_uniform_", t);
  if (t.numel() == 0) return warn_zero_element_init(t);
  const int64_t fan = fan_of("kaiming_uniform_", t, mode);
  const double gain = calculate_gain(nonlinearity, a);
  const double bound = std::sqrt(3.0) * (gain / std::sqrt(static_cast<double>(fan)));
  return uniform_(t, -bound, bound, gen);
}

Tensor kaiming_normal_(const Tensor& t, double a, FanMode mode, std::string_view nonlinearity,
                       Generator* gen) {
  if (empty_init_enabled()) return t;
  check_floating("kaiming_normal_", t);
  if (t.numel() == 0) return warn_zero_element_init(t);
  const int64_t fan = fan_of("kaiming_normal_", t, mode);
  const double std = calculate_gain(nonlinearity, a) / std::sqrt(static_cast<double>(fan));
  return normal_(t, 0.0, std, gen);
}

Tensor xavier_uniform_(const Tensor& t, double gain, Generator* gen) {
  if (empty_init_enabled()) return t;
  check_floating("xavier_uniform_", t);
  auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  const double std = gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out));
  const double bound = std::sqrt(3.0) * std;
  return uniform_(t, -bound, bound, gen);
}

Tensor xavier_normal_(const Tensor& t, double gain, Generator* gen) {
  if (empty_init_enabled()) return t;
  check_floating("xavier_normal_", t);
  auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  return normal_(t, 0.0, gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out)), gen);
}

Tensor trunc_normal_(const Tensor& t, double mean, double std, double a, double b, Generator* gen) {
  if (empty_init_enabled()) return t;
  check_floating("trunc_normal_", t);
  // a == b is torch's too: every value is clamped to it.
  FABRIC_CHECK(std > 0 && a <= b, ValueError,
               "nn::init::trunc_normal_: expects std > 0 and a <= b, got std=", std, ", a=", a,
               ", b=", b);
  if (mean < a - 2 * std || mean > b + 2 * std)  // torch's warning; the values still come
    warn(
        "mean is more than 2 std from [a, b] in nn.init.trunc_normal_. The distribution of "
        "values may be incorrect.");
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

Tensor orthogonal_(const Tensor& t, double gain, Generator* gen) {
  if (empty_init_enabled()) return t;
  check_floating("orthogonal_", t);
  FABRIC_CHECK(t.dim() >= 2, ValueError,
               "nn::init::orthogonal_: only tensors with 2 or more dimensions are supported, got "
               "shape ",
               shape_str(t.sizes()));
  if (t.numel() == 0) return t;
  const int64_t rows = t.size(0), cols = t.numel() / rows;
  // torch: a standard normal (rows, cols) draw, transposed when wide so that QR sees a tall
  // matrix; q's columns flipped by the signs of r's diagonal make the result unique (Haar).
  Tensor draws = empty({rows, cols}, {.dtype = DType::float64});
  fabric::normal_(draws, 0.0, 1.0, gen);
  std::vector<double> a = draws.to_vector<double>();
  const bool wide = rows < cols;
  const int64_t m = wide ? cols : rows, n = wide ? rows : cols;
  if (wide) a = draws.t().contiguous().to_vector<double>();
  ThinQR qr = householder_qr(a, m, n);
  for (int64_t j = 0; j < n; ++j) {
    const double d = qr.r[j * n + j];
    const double sign = d > 0 ? 1.0 : (d < 0 ? -1.0 : 0.0);  // torch.sign: 0 stays 0
    for (int64_t i = 0; i < m; ++i) qr.q[i * n + j] *= sign * gain;
  }
  Tensor q = from_vector(qr.q, {m, n}, {.dtype = DType::float64});
  if (wide) q = q.t().contiguous();
  NoGradGuard no_grad;
  Tensor h = t;
  h.copy_(q.reshape(t.sizes()));
  return t;
}

Tensor eye_(const Tensor& t) {
  if (empty_init_enabled()) return t;
  FABRIC_CHECK(t.defined(), ValueError, "nn::init::eye_: undefined tensor");
  FABRIC_CHECK(t.dim() == 2, ValueError,
               "nn::init::eye_: only tensors with 2 dimensions are supported, got shape ",
               shape_str(t.sizes()));
  NoGradGuard no_grad;
  Tensor h = t;
  h.zero_();
  for (int64_t i = 0; i < std::min(t.size(0), t.size(1)); ++i) h.select(0, i).select(0, i).fill_(1);
  return t;
}

Tensor dirac_(const Tensor& t, int64_t groups) {
  if (empty_init_enabled()) return t;
  FABRIC_CHECK(t.defined(), ValueError, "nn::init::dirac_: undefined tensor");
  FABRIC_CHECK(
      t.dim() >= 3 && t.dim() <= 5, ValueError,
      "nn::init::dirac_: only tensors with 3, 4, or 5 dimensions are supported, got shape ",
      shape_str(t.sizes()));
  FABRIC_CHECK(groups > 0 && t.size(0) % groups == 0, ValueError, "nn::init::dirac_: dim 0 (",
               t.size(0), ") must be divisible by groups (", groups, ")");
  const int64_t out_per_group = t.size(0) / groups;
  const int64_t min_dim = std::min(out_per_group, t.size(1));
  NoGradGuard no_grad;
  Tensor h = t;
  h.zero_();
  // The centre tap of output channel g * out_per_group + d reads input channel d: an identity
  // convolution per group.
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t d = 0; d < min_dim; ++d) {
      Tensor tap = h.select(0, g * out_per_group + d).select(0, d);
      for (int64_t k = 2; k < t.dim(); ++k) tap = tap.select(0, t.size(k) / 2);
      tap.fill_(1);
    }
  }
  return t;
}

Tensor sparse_(const Tensor& t, double sparsity, double std, Generator* gen) {
  if (empty_init_enabled()) return t;
  check_floating("sparse_", t);
  FABRIC_CHECK(t.dim() == 2, ValueError,
               "nn::init::sparse_: only tensors with 2 dimensions are supported, got shape ",
               shape_str(t.sizes()));
  // torch takes any finite fraction: above 1 it zeroes every row (the count is capped at `rows`
  // below, in double). A negative or NaN one would zero an arbitrary slice in torch and is refused
  // here, as an infinite one is there (OverflowError).
  FABRIC_CHECK(
      sparsity >= 0 && std::isfinite(sparsity), ValueError,
      "nn::init::sparse_: sparsity must be a finite non-negative fraction of the rows, got ",
      sparsity);
  const int64_t rows = t.size(0), cols = t.size(1);
  const double zeros_wanted = std::ceil(sparsity * static_cast<double>(rows));
  const int64_t num_zeros =
      zeros_wanted >= static_cast<double>(rows) ? rows : static_cast<int64_t>(zeros_wanted);
  normal_(t, 0.0, std, gen);
  if (num_zeros == 0 || t.numel() == 0) return t;
  // torch zeroes the first num_zeros rows of a random permutation per column; the rows holding
  // the num_zeros smallest of `rows` uniform keys are such a subset.
  Tensor keys = empty({cols, rows}, {.dtype = DType::float64});
  fabric::uniform_(keys, 0.0, 1.0, gen);
  const std::vector<double> k = keys.to_vector<double>();
  std::vector<double> mask(rows * cols, 1.0);
  std::vector<int64_t> order(rows);
  for (int64_t c = 0; c < cols; ++c) {
    std::iota(order.begin(), order.end(), 0);
    const double* key = k.data() + c * rows;
    std::partial_sort(order.begin(), order.begin() + num_zeros, order.end(),
                      [key](int64_t x, int64_t y) { return key[x] < key[y]; });
    for (int64_t i = 0; i < num_zeros; ++i) mask[order[i] * cols + c] = 0.0;
  }
  NoGradGuard no_grad;
  Tensor h = t;
  h.mul_(from_vector(mask, {rows, cols}, {.dtype = DType::float64}).to(t.dtype()).to(t.device()));
  return t;
}

}  // namespace fabric::nn::init
