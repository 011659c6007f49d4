// The fused activation backward gives the same bits whatever the operands' layout: a transposed
// (or otherwise strided) saved tensor or gradient takes the contiguous rows' formula, for every
// kind in float32, bfloat16 and float16. (torch 1.13 itself does not: its scalar kernel for
// strided rows rounds differently from its vectorised one for contiguous rows, e.g. float32 gelu
// on a 64x48 transposed input differs in ~2000 elements; we give the contiguous rows' bits.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "tensor/activation_backward.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

// Deterministic values in [-lo_hi, lo_hi], with the kinks (0, +-3, +-1) and a few signed zeros.
std::vector<float> values(int64_t n, uint32_t seed, float lo_hi) {
  std::vector<float> v(static_cast<size_t>(n));
  uint32_t s = seed;
  const float kinks[] = {0.0f, -0.0f, 3.0f, -3.0f, 1.0f, -1.0f, 20.0f};
  for (int64_t i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    const float u = static_cast<float>(s >> 8) / static_cast<float>(1u << 24);  // [0, 1)
    v[static_cast<size_t>(i)] = i % 37 < 7 ? kinks[i % 37] : (2.0f * u - 1.0f) * lo_hi;
  }
  return v;
}

std::vector<uint32_t> bits_of(const Tensor& t) {
  const std::vector<float> f = t.to_vector<float>();  // exact for bfloat16/float16
  std::vector<uint32_t> b(f.size());
  for (size_t i = 0; i < f.size(); ++i) {
    if (std::isnan(f[i])) {
      b[i] = 0x7fc00000u;  // any NaN is the same NaN here
    } else {
      std::memcpy(&b[i], &f[i], sizeof(float));
    }
  }
  return b;
}

// How many elements differ in their bits (and the first one), for a short failure message.
std::string differences(const std::vector<uint32_t>& got, const std::vector<uint32_t>& want) {
  if (got.size() != want.size()) return "sizes differ";
  int64_t n = 0, first = -1;
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i] && n++ == 0) first = static_cast<int64_t>(i);
  return n == 0 ? "" : std::to_string(n) + " elements differ, first at " + std::to_string(first);
}

struct Kind {
  ActGrad kind;
  const char* name;
  float range;  // saved values in [-range, range] (outputs of sigmoid/tanh: their own range)
};

const Kind kKinds[] = {
    {ActGrad::gelu_erf, "gelu_erf", 8.0f},
    {ActGrad::gelu_tanh, "gelu_tanh", 8.0f},
    {ActGrad::silu, "silu", 12.0f},
    {ActGrad::sigmoid, "sigmoid", 1.0f},
    {ActGrad::tanh, "tanh", 1.0f},
    {ActGrad::relu, "relu", 4.0f},
    {ActGrad::leaky_relu, "leaky_relu", 4.0f},
    {ActGrad::elu, "elu", 6.0f},
    {ActGrad::softplus, "softplus", 30.0f},
    {ActGrad::hardtanh, "hardtanh", 2.0f},
    {ActGrad::mish, "mish", 12.0f},
    {ActGrad::hardswish, "hardswish", 5.0f},
    {ActGrad::hardsigmoid, "hardsigmoid", 5.0f},
};

// (rows, cols) with cols past one 256-element gather block and not a multiple of 16 (the vector
// tail), rows odd.
constexpr int64_t kRows = 7, kCols = 301;

TEST(ActivationBackwardLayouts, TransposedViewsGiveTheContiguousBits) {
  ActivationParams prm;
  prm.alpha = 1.3;
  prm.scale = 1.05;
  prm.beta = 1.5;
  prm.threshold = 10.0;
  prm.negative_slope = 0.2;
  for (const DType dt : {DType::float32, DType::bfloat16, DType::float16}) {
    for (const Kind& k : kKinds) {
      SCOPED_TRACE(std::string(k.name) + " " + std::string(dtype_name(dt)));
      // Contiguous (rows, cols), and the same values held transposed: (cols, rows) made
      // contiguous, viewed back as (rows, cols) with strides (1, rows).
      const Tensor s = from_vector(values(kRows * kCols, 7u, k.range), {kRows, kCols}).to(dt);
      const Tensor g = from_vector(values(kRows * kCols, 11u, 2.0f), {kRows, kCols}).to(dt);
      const Tensor s_t = s.t().contiguous().t();
      const Tensor g_t = g.t().contiguous().t();
      ASSERT_FALSE(s_t.is_contiguous());
      const std::vector<uint32_t> want = bits_of(activation_backward(k.kind, g, s, prm));
      // Both operands transposed, only the saved one, only the gradient; and a strided
      // 1-D view (every other element of a longer row).
      EXPECT_EQ(differences(bits_of(activation_backward(k.kind, g_t, s_t, prm)), want), "");
      EXPECT_EQ(differences(bits_of(activation_backward(k.kind, g, s_t, prm)), want), "");
      EXPECT_EQ(differences(bits_of(activation_backward(k.kind, g_t, s, prm)), want), "");
      const Tensor s2 = stack({s.reshape({-1}), s.reshape({-1})}, 1).select(1, 1);
      ASSERT_FALSE(s2.is_contiguous());
      EXPECT_EQ(differences(bits_of(activation_backward(k.kind, g.reshape({-1}), s2, prm)), want),
                "");
    }
  }
}

}  // namespace
}  // namespace fabric
