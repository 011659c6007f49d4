// Helpers of the CUDA backend tests: skipping without a device, CPU-made inputs with the awkward
// values (NaN, infinities, signed zeros, subnormals, out-of-range), and comparing a CUDA result
// with the CPU result of the same op.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/tensor.h"

#ifdef FABRIC_WITH_CUDA
#include "kernels/cuda/cuda_check.h"
#endif

namespace fabric::test {

inline int cuda_devices(std::string* why = nullptr) {
#ifdef FABRIC_WITH_CUDA
  return cuda::device_count(why);
#else
  if (why) *why = "this build has no CUDA backend (FABRIC_CUDA=OFF or no nvcc)";
  return 0;
#endif
}

inline const Device kGpu = Device::cuda(0);

// Seeded N(0, 2) values with the floats every conversion and op must get right (NaN,
// infinities, signed zeros, subnormals, fp16/fp8 overflow, out-of-range for integers) scattered
// at seed-dependent positions, so two seeds pair specials with ordinary values and each other.
inline std::vector<float> awkward_floats(size_t n, uint64_t seed = 7) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> specials = {
      0.0f,    -0.0f,  1.0f,    -1.0f,    0.5f,     -2.5f,    2.5f,        3.0f,    NAN,    inf,
      -inf,    1e-40f, -1e-42f, 1e-8f,    65504.0f, 65520.0f, 70000.0f,    1e30f,   -1e30f, 300.0f,
      448.0f,  464.0f, 500.0f,  57344.0f, 61440.0f, -61440.f, 127.9f,      -128.5f, 255.5f, 256.0f,
      -129.0f, 1e10f,  -3e9f,   2.1e9f,   -1e20f,   0.1f,     1.00390625f, 3.14159f};
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  if (n >= 2 * specials.size()) {
    for (float sp : specials) v[rng() % n] = sp;
  } else {
    for (size_t i = 0; i < n; ++i) v[i] = specials[(i + seed) % specials.size()];
  }
  return v;
}

// A CPU tensor of `dtype` made from awkward_floats by the CPU's own conversion.
inline Tensor awkward_tensor(const Shape& shape, DType dtype, uint64_t seed = 7) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return from_vector<float>(awkward_floats(static_cast<size_t>(n), seed), shape).to(dtype);
}

// Seeded values uniform in [lo, hi), as `dtype` on the CPU.
inline Tensor uniform_tensor(const Shape& shape, DType dtype, float lo, float hi,
                             uint64_t seed = 11) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> ud(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = ud(rng);
  return from_vector<float>(v, shape).to(dtype);
}

inline Tensor random_ints(const Shape& shape, DType dtype, int64_t lo, int64_t hi,
                          uint64_t seed = 13) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> ud(lo, hi);
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t& x : v) x = ud(rng);
  return from_vector<int64_t>(v, shape).to(dtype);
}

struct Tolerance {
  double atol = 0;
  double rtol = 0;  // both 0: bit-exact (NaN matches any NaN, zeros must agree in sign)
};

// Compares `got` (any device) with `want` (CPU): same shape and dtype, and each element equal
// within `tol`. Reports at most a few mismatches.
inline void expect_matches(const Tensor& want, const Tensor& got, Tolerance tol,
                           const std::string& what) {
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  const Tensor g = got.to(Device::cpu());
  int bad = 0;
  if (is_floating(want.dtype())) {
    const std::vector<double> w = want.to_vector<double>(), h = g.to_vector<double>();
    for (size_t i = 0; i < w.size() && bad < 5; ++i) {
      bool ok;
      if (std::isnan(w[i]) || std::isnan(h[i])) {
        ok = std::isnan(w[i]) && std::isnan(h[i]);
      } else if (std::isinf(w[i]) || std::isinf(h[i]) || (tol.atol == 0 && tol.rtol == 0)) {
        ok = w[i] == h[i] && std::signbit(w[i]) == std::signbit(h[i]);
      } else {
        ok = std::fabs(w[i] - h[i]) <= tol.atol + tol.rtol * std::fabs(w[i]);
      }
      if (!ok) {
        ++bad;
        ADD_FAILURE() << what << ": element " << i << ": CPU " << w[i] << ", CUDA " << h[i];
      }
    }
  } else {
    const std::vector<int64_t> w = want.to_vector<int64_t>(), h = g.to_vector<int64_t>();
    for (size_t i = 0; i < w.size() && bad < 5; ++i) {
      if (w[i] != h[i]) {
        ++bad;
        ADD_FAILURE() << what << ": element " << i << ": CPU " << w[i] << ", CUDA " << h[i];
      }
    }
  }
}

// Whether two tensors, on any devices, hold the same dtype, shape and bytes.
inline bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.sizes() != b.sizes()) return false;
  const Tensor ca = a.to(Device::cpu()).contiguous(), cb = b.to(Device::cpu()).contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), static_cast<size_t>(ca.nbytes())) == 0;
}

// One ulp-ish tolerance of each dtype's rounding, for ops whose fp32 math may differ by a few
// fp32 ulp between the CPU's polynomials and CUDA's libdevice.

inline Tolerance transcendental_tolerance(DType t) {
  switch (t) {
    case DType::bfloat16:
      return {1e-6, 8e-3};
    case DType::float16:
      return {1e-6, 1e-3};
    case DType::float64:
      return {1e-14, 1e-13};
    default:
      return {1e-6, 1e-5};
  }
}

// The same op made on the CPU and on cuda:0: the CUDA result is on the GPU and matches the CPU's
// within `tol`, or, where the CPU raises (a value that overflows the dtype, say), CUDA raises the
// same error: argument checks do not depend on the device.
inline void expect_same_outcome(const std::function<Tensor()>& on_cpu,
                                const std::function<Tensor()>& on_gpu, Tolerance tol,
                                const std::string& what) {
  Tensor want;
  try {
    want = on_cpu();
  } catch (const Error& cpu_error) {
    std::string gpu_error = "no error";
    try {
      (void)on_gpu();
    } catch (const Error& e) {
      gpu_error = e.what();
    }
    EXPECT_EQ(gpu_error, std::string(cpu_error.what()))
        << what << ": the CPU raised; CUDA must too";
    return;
  }
  const Tensor got = on_gpu();
  EXPECT_EQ(got.device(), kGpu) << what;
  expect_matches(want, got, tol, what);
}

// Runs `fn` on CPU inputs and on the same inputs moved to cuda:0 (expect_same_outcome).
inline void check_op(const std::string& what, const std::vector<Tensor>& inputs,
                     const std::function<Tensor(const std::vector<Tensor>&)>& fn, Tolerance tol) {
  std::vector<Tensor> gpu;
  for (const Tensor& t : inputs) gpu.push_back(t.to(kGpu));
  expect_same_outcome([&] { return fn(inputs); }, [&] { return fn(gpu); }, tol, what);
}

// A few rounding units of `t`'s output (relative; float32's is `fp32_rel`), with the same amount
// times `abs_scale` as an absolute floor for results that cancel towards zero (folded sums, losses).
inline Tolerance rounding_tolerance(DType t, double abs_scale = 1, double fp32_rel = 2e-5) {
  switch (t) {
    case DType::float64:
      return {1e-12 * abs_scale, 1e-12};
    case DType::float16:
      return {2e-3 * abs_scale, 2e-3};
    case DType::bfloat16:
      return {1.6e-2 * abs_scale, 1.6e-2};
    default:
      return {fp32_rel * abs_scale, fp32_rel};
  }
}

}  // namespace fabric::test

// Skips the test where no CUDA device is usable, naming why.
#define FABRIC_REQUIRE_CUDA()                                 \
  do {                                                        \
    std::string fabric_why_;                                  \
    if (::fabric::test::cuda_devices(&fabric_why_) == 0)      \
      GTEST_SKIP() << "needs a CUDA device: " << fabric_why_; \
  } while (0)
