// The fused update kernels called directly: float32 (AVX-512, masked tails, OpenMP chunks) against
// a scalar float32 reference of the same formulas on random data and odd lengths, float64 against
// a double reference, and bf16/fp16 against the float32 formula rounded once.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "kernels/cpu/convert.h"
#include "tensor/optim_kernels.h"

namespace fabric {
namespace {

// Scalar reference of one Adam step in type T (float or double), written from the formulas.
template <class T>
void ref_adam(std::vector<T>& p, const std::vector<T>& grad, std::vector<T>& m, std::vector<T>& v,
              std::vector<T>& vmax, const AdamKernelArgs& a) {
  const double bc1 = 1 - std::pow(a.beta1, a.step), bc2 = 1 - std::pow(a.beta2, a.step);
  const T step_size = static_cast<T>(a.lr / bc1), bc2_sqrt = static_cast<T>(std::sqrt(bc2));
  const T b1c = static_cast<T>(1 - a.beta1), b2 = static_cast<T>(a.beta2), b2c = static_cast<T>(1 - a.beta2);
  const T wd = static_cast<T>(a.weight_decay), decay = static_cast<T>(1 - a.lr * a.weight_decay);
  const T eps = static_cast<T>(a.eps);
  for (size_t i = 0; i < p.size(); ++i) {
    T g = a.maximize ? -grad[i] : grad[i];
    if (a.decoupled_weight_decay) {
      p[i] = p[i] * decay;
    } else {
      g = g + wd * p[i];
    }
    m[i] = m[i] + b1c * (g - m[i]);
    v[i] = b2 * v[i] + b2c * g * g;
    T second = v[i];
    if (a.amsgrad) second = vmax[i] = std::max(vmax[i], v[i]);
    p[i] = p[i] - step_size * m[i] / (std::sqrt(second) / bc2_sqrt + eps);
  }
}

template <class T>
void ref_sgd(std::vector<T>& p, const std::vector<T>& grad, std::vector<T>& buf, const SgdKernelArgs& a) {
  for (size_t i = 0; i < p.size(); ++i) {
    T g = a.maximize ? -grad[i] : grad[i];
    g = g + static_cast<T>(a.weight_decay) * p[i];
    if (a.momentum != 0) {
      buf[i] = a.first_step ? g : static_cast<T>(a.momentum) * buf[i] + static_cast<T>(1 - a.dampening) * g;
      g = a.nesterov ? g + static_cast<T>(a.momentum) * buf[i] : buf[i];
    }
    p[i] = p[i] - static_cast<T>(a.lr) * g;
  }
}

template <class T>
std::vector<T> random_vec(size_t n, std::mt19937& rng, double lo, double hi) {
  std::uniform_real_distribution<double> d(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(d(rng));
  return v;
}

template <class T>
void expect_near_rel(const std::vector<T>& a, const std::vector<T>& b, double rel, const std::string& what) {
  ASSERT_EQ(a.size(), b.size());
  int failures = 0;
  for (size_t i = 0; i < a.size() && failures < 5; ++i) {
    const double x = a[i], y = b[i];
    if (!(std::abs(x - y) <= rel * std::max(1.0, std::abs(y)))) {
      ADD_FAILURE() << what << " [" << i << " of " << a.size() << "]: " << x << " vs " << y;
      ++failures;
    }
  }
}

const int64_t kLengths[] = {1, 7, 15, 16, 17, 33, 1000, 100003};

template <class T>
void check_adam(DType dt, double rel, const AdamKernelArgs& args, int steps) {
  for (int64_t n : kLengths) {
    std::mt19937 rng(1234 + static_cast<unsigned>(n));
    std::vector<T> p = random_vec<T>(n, rng, -2, 2), m(n, 0), v(n, 0), vmax(n, 0);
    std::vector<T> rp = p, rm = m, rv = v, rvmax = vmax;
    for (int s = 1; s <= steps; ++s) {
      const std::vector<T> g = random_vec<T>(n, rng, -1, 1);
      AdamKernelArgs a = args;
      a.step = s;
      adam_step_stub(Device::cpu())(dt, n, p.data(), g.data(), m.data(), v.data(),
                                    args.amsgrad ? vmax.data() : nullptr, a);
      ref_adam(rp, g, rm, rv, rvmax, a);
    }
    const std::string what = std::string(dtype_name(dt)) + " adam n=" + std::to_string(n);
    expect_near_rel(p, rp, rel, what + " param");
    expect_near_rel(m, rm, rel, what + " exp_avg");
    expect_near_rel(v, rv, rel, what + " exp_avg_sq");
    if (args.amsgrad) expect_near_rel(vmax, rvmax, rel, what + " max_exp_avg_sq");
  }
}

TEST(FusedAdam, Float32MatchesScalarReference) {
  check_adam<float>(DType::float32, 1e-6, {.lr = 1e-2, .weight_decay = 0.01, .decoupled_weight_decay = true}, 4);
  check_adam<float>(DType::float32, 1e-6, {.lr = 3e-3, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6,
                                           .weight_decay = 0.1, .amsgrad = true, .maximize = true}, 3);
  check_adam<float>(DType::float32, 1e-6, {.lr = 1e-3, .beta1 = 0.2}, 3);  // 1 - beta1 >= 0.5
}

TEST(FusedAdam, Float64MatchesDoubleReference) {
  check_adam<double>(DType::float64, 1e-12, {.lr = 1e-2, .weight_decay = 0.01, .decoupled_weight_decay = true}, 4);
  check_adam<double>(DType::float64, 1e-12, {.lr = 1e-2, .weight_decay = 0.05, .amsgrad = true}, 4);
}

template <class T>
void check_sgd(DType dt, double rel, SgdKernelArgs args, int steps) {
  for (int64_t n : kLengths) {
    std::mt19937 rng(99 + static_cast<unsigned>(n));
    std::vector<T> p = random_vec<T>(n, rng, -2, 2), buf(n, 0);
    std::vector<T> rp = p, rbuf = buf;
    for (int s = 0; s < steps; ++s) {
      const std::vector<T> g = random_vec<T>(n, rng, -1, 1);
      args.first_step = s == 0;
      sgd_step_stub(Device::cpu())(dt, n, p.data(), g.data(), args.momentum != 0 ? buf.data() : nullptr, args);
      ref_sgd(rp, g, rbuf, args);
    }
    const std::string what = std::string(dtype_name(dt)) + " sgd n=" + std::to_string(n);
    expect_near_rel(p, rp, rel, what + " param");
    expect_near_rel(buf, rbuf, rel, what + " momentum_buffer");
  }
}

TEST(FusedSGD, MatchesScalarReference) {
  check_sgd<float>(DType::float32, 1e-6, {.lr = 0.05}, 3);
  check_sgd<float>(DType::float32, 1e-6, {.lr = 0.05, .momentum = 0.9, .dampening = 0.1, .weight_decay = 1e-3}, 3);
  check_sgd<float>(DType::float32, 1e-6, {.lr = 0.05, .momentum = 0.9, .nesterov = true, .maximize = true}, 3);
  check_sgd<double>(DType::float64, 1e-12, {.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-2, .nesterov = true}, 3);
}

// bf16/fp16: one step computed in float from the 16-bit inputs, each stored tensor rounded once.
template <class H>
void check_half_adam(DType dt) {
  for (int64_t n : {int64_t{1}, int64_t{31}, int64_t{100003}}) {
    std::mt19937 rng(7);
    const std::vector<float> pf = random_vec<float>(n, rng, -2, 2), gf = random_vec<float>(n, rng, -1, 1);
    const std::vector<float> mf = random_vec<float>(n, rng, -0.1, 0.1), vf = random_vec<float>(n, rng, 0, 0.01);
    auto to_h = [](const std::vector<float>& x) {
      std::vector<H> h(x.size());
      for (size_t i = 0; i < x.size(); ++i) h[i] = H(x[i]);
      return h;
    };
    auto to_f = [](const std::vector<H>& h) {
      std::vector<float> x(h.size());
      for (size_t i = 0; i < h.size(); ++i) x[i] = static_cast<float>(h[i]);
      return x;
    };
    std::vector<H> p = to_h(pf), g = to_h(gf), m = to_h(mf), v = to_h(vf);
    std::vector<float> rp = to_f(p), rg = to_f(g), rm = to_f(m), rv = to_f(v), rvmax(n, 0);
    const AdamKernelArgs a{.lr = 1e-2, .weight_decay = 0.01, .step = 3, .decoupled_weight_decay = true};
    adam_step_stub(Device::cpu())(dt, n, p.data(), g.data(), m.data(), v.data(), nullptr, a);
    ref_adam(rp, rg, rm, rv, rvmax, a);
    // The kernel must equal the float result rounded once (up to one 16-bit ulp for fma vs mul+add
    // differences that straddle a rounding boundary).
    const double ulp = dt == DType::bfloat16 ? 1.0 / 128 : 1.0 / 1024;
    expect_near_rel(to_f(p), to_f(to_h(rp)), ulp, std::string(dtype_name(dt)) + " param");
    expect_near_rel(to_f(m), to_f(to_h(rm)), ulp, std::string(dtype_name(dt)) + " exp_avg");
    expect_near_rel(to_f(v), to_f(to_h(rv)), ulp, std::string(dtype_name(dt)) + " exp_avg_sq");
    // And most elements are bit-identical to the once-rounded float result.
    const auto kp = to_f(p), rr = to_f(to_h(rp));
    int64_t same = 0;
    for (int64_t i = 0; i < n; ++i) same += kp[i] == rr[i];
    EXPECT_GE(same, n * 9 / 10) << dtype_name(dt);
  }
}

TEST(FusedAdam, HalfPrecisionComputesInFloat32) {
  check_half_adam<BFloat16>(DType::bfloat16);
  check_half_adam<Half>(DType::float16);
}

TEST(FusedSGD, Bfloat16) {
  const int64_t n = 50;
  std::vector<BFloat16> p(n), g(n), buf(n);
  std::vector<float> rp(n), rg(n), rbuf(n);
  for (int64_t i = 0; i < n; ++i) {
    p[i] = BFloat16(0.1f * static_cast<float>(i) - 2.0f);
    g[i] = BFloat16(std::sin(static_cast<float>(i)));
    rp[i] = static_cast<float>(p[i]);
    rg[i] = static_cast<float>(g[i]);
  }
  const SgdKernelArgs a{.lr = 0.1, .momentum = 0.9, .first_step = true};
  sgd_step_stub(Device::cpu())(DType::bfloat16, n, p.data(), g.data(), buf.data(), a);
  ref_sgd(rp, rg, rbuf, a);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(static_cast<float>(p[i]), static_cast<float>(BFloat16(rp[i]))) << i;
    EXPECT_EQ(static_cast<float>(buf[i]), static_cast<float>(BFloat16(rbuf[i]))) << i;
  }
}

TEST(FusedKernels, RejectUnsupportedDtypes) {
  std::vector<int64_t> x(4);
  EXPECT_THROW(adam_step_stub(Device::cpu())(DType::int64, 4, x.data(), x.data(), x.data(), x.data(), nullptr, {}),
               DTypeError);
  EXPECT_THROW(sgd_step_stub(Device::cpu())(DType::int64, 4, x.data(), x.data(), nullptr, {}), DTypeError);
  std::vector<float> f(4);
  EXPECT_THROW(adam_step_stub(Device::cpu())(DType::float32, 4, f.data(), f.data(), f.data(), f.data(), nullptr,
                                             {.amsgrad = true}),
               ValueError);
}

}  // namespace
}  // namespace fabric
