// pow(tensor, scalar)'s exact forms on CUDA (kernels/cuda/pow_form.h), run on the CPU against
// the CPU kernel, the spec: the form an exponent selects and its value must give the CPU's bits
// for float32, float16 and bfloat16, specials included (float16's pow(-0, 0.5) is +0 and
// pow(-inf, 0.5) is +inf, not sqrt's -0 and NaN; bfloat16's x^3 rounds x*x to bfloat16 first;
// a float16 exponent rounds to float16 before the form is chosen).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/pow_form.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

using cuda::pow_form;
using cuda::PowForm;

std::vector<float> bases() {
  std::vector<float> v = {0.0f,     -0.0f,     INFINITY, -INFINITY, NAN,    1.0f,   -1.0f,    2.0f,
                          -2.0f,    0.5f,      -0.5f,    3.0f,      -3.0f,  1e-3f,  -1e-3f,   1e-6f,
                          65504.0f, -65504.0f, 1e30f,    6e-8f,     255.0f, -7.25f, 0.33333f, 1.5f,
                          -1.5f,    1.001f,    100.0f,   1e-20f,    -3e-21f};
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-40.0f, 40.0f);
  for (int i = 0; i < 400; ++i) v.push_back(u(rng));
  return v;
}

// The value the CUDA kernel computes for x ^ e on a tensor of T, widened to float.
template <typename T>
float cuda_pow(float x, double e_in) {
  float e = static_cast<float>(e_in);  // scalar_as<float>, as launch_binary reads it
  PowForm form = pow_form(static_cast<double>(e));
  if constexpr (!std::is_same_v<T, float>) form = cuda::half_like_pow_form<T>(e, &e);
  const float r = cuda::pow_value(form, x, e);
  if constexpr (std::is_same_v<T, float>) {
    return r;
  } else {
    return static_cast<float>(T(r));
  }
}

template <typename T>
void expect_cpu_bits(DType dt) {
  const std::vector<float> xs = bases();
  const Tensor x = from_vector<float>(xs, {static_cast<int64_t>(xs.size())}).to(dt);
  const Tensor xf = x.to(DType::float32).contiguous();  // the inputs as T holds them
  for (double e : {2.0, 3.0, 0.5, -0.5, -1.0, -2.0, 1.0, 1.7, 2.0001, 3.0004, -1.9996, 0.50001,
                   -0.50001, 0.0, 4.0}) {
    const Tensor want = pow(x, Scalar(e)).to(DType::float32).contiguous();
    const float* w = want.data<float>();
    const float* in = xf.data<float>();
    int bad = 0;
    for (int64_t i = 0; i < want.numel() && bad < 5; ++i) {
      const float got = cuda_pow<T>(in[i], e);
      const bool same = (std::isnan(got) && std::isnan(w[i])) ||
                        std::bit_cast<uint32_t>(got) == std::bit_cast<uint32_t>(w[i]);
      if (!same) {
        ++bad;
        ADD_FAILURE() << dtype_name(dt) << " pow(" << in[i] << ", " << e << "): CPU " << w[i]
                      << ", CUDA form " << got;
      }
    }
  }
}

TEST(CudaPowForm, Float32MatchesTheCpuKernel) { expect_cpu_bits<float>(DType::float32); }
TEST(CudaPowForm, Float16MatchesTheCpuKernel) { expect_cpu_bits<Half>(DType::float16); }
TEST(CudaPowForm, BFloat16MatchesTheCpuKernel) { expect_cpu_bits<BFloat16>(DType::bfloat16); }

TEST(CudaPowForm, HalfExponentsRoundToTheDtypeFirst) {
  float e = 2.0001f;
  EXPECT_EQ(cuda::half_like_pow_form<Half>(e, &e), PowForm::square);
  e = 0.5f;
  EXPECT_EQ(cuda::half_like_pow_form<Half>(e, &e), PowForm::general_via_double);
  e = 0.5f;
  EXPECT_EQ(cuda::half_like_pow_form<BFloat16>(e, &e), PowForm::sqrt);
  e = 3.0004f;
  EXPECT_EQ(cuda::half_like_pow_form<BFloat16>(e, &e), PowForm::bf16_cube);
  EXPECT_EQ(e, 3.0f);
}

}  // namespace
}  // namespace fabric
