// Bilinear upsampling's per-element arithmetic (tensor/upsample_math.h), the one definition that
// kernels/cpu/upsample.cpp and kernels/cuda/upsample_kernels.cu both compile:
// - each form, compiled here for the host, rounds as its spec: lerp = fma(l0, x0, l1 * x1), the
//   gather step fma(wh * wc, g, acc) (one rounding per fma and per product, against a float128
//   reference; where the host has no FMA the sums round on their own);
// - the CPU kernels give those functions' bits element for element: the forward is
//   bilinear() of the taps (float32, float64, and float16 computed in float32), the backward the
//   (oh, ow)-ordered gather of gather_step()s, whatever the CPU's vectorised paths do.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "tensor/upsample_kernels.h"
#include "tensor/upsample_math.h"

namespace fabric {
namespace {

template <typename T>
std::vector<T> pseudo_random(size_t n, uint32_t seed) {
  std::vector<T> v(n);
  uint32_t s = seed;
  for (T& x : v) {
    s = s * 1664525u + 1013904223u;
    x = static_cast<T>(static_cast<float>(s >> 8) / static_cast<float>(1u << 24) * 6.0f - 2.7f);
  }
  return v;
}

template <typename T>
bool same_bits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

template <typename A>
A round_to(__float128 x) {
  return static_cast<A>(x);
}

// The spec of lerp and gather_step in float128, rounded where they round.
template <typename A>
A reference_mul_add(A p, A g, A acc) {
  using Q = __float128;
#if defined(__FMA__)
  return round_to<A>(Q(p) * Q(g) + Q(acc));
#else
  return round_to<A>(Q(acc) + Q(round_to<A>(Q(p) * Q(g))));
#endif
}
template <typename A>
A reference_lerp(A l0, A x0, A l1, A x1) {
  return reference_mul_add(l0, x0, round_to<A>(__float128(l1) * __float128(x1)));
}

template <typename A>
void expect_forms_match_reference() {
  constexpr size_t n = 4096;
  const std::vector<A> x = pseudo_random<A>(4 * n, 21), w = pseudo_random<A>(2 * n, 22);
  int64_t lerp_bad = 0, step_bad = 0, bilinear_bad = 0;
  for (size_t i = 0; i < n; ++i) {
    // Weights as the taps give them: l0 = 1 - l1 with l1 in [0, 1].
    const A l1 = w[2 * i] < A(0) ? -w[2 * i] / A(3) : w[2 * i] / A(3), l0 = A(1) - l1;
    const A m1 = w[2 * i + 1] < A(0) ? -w[2 * i + 1] / A(3) : w[2 * i + 1] / A(3), m0 = A(1) - m1;
    const A* q = x.data() + 4 * i;
    lerp_bad += !same_bits(upsample::lerp(l0, q[0], l1, q[1]), reference_lerp(l0, q[0], l1, q[1]));
    step_bad +=
        !same_bits(upsample::gather_step(l0, m1, q[2], q[3]),
                   reference_mul_add(round_to<A>(__float128(l0) * __float128(m1)), q[2], q[3]));
    const A want = reference_lerp(m0, reference_lerp(l0, q[0], l1, q[1]), m1,
                                  reference_lerp(l0, q[2], l1, q[3]));
    bilinear_bad += !same_bits(upsample::bilinear(m0, m1, l0, l1, q[0], q[1], q[2], q[3]), want);
  }
  EXPECT_EQ(lerp_bad, 0);
  EXPECT_EQ(step_bad, 0);
  EXPECT_EQ(bilinear_bad, 0);
}

TEST(UpsampleMath, FormsRoundAsTheirSpecFloat) { expect_forms_match_reference<float>(); }
TEST(UpsampleMath, FormsRoundAsTheirSpecDouble) { expect_forms_match_reference<double>(); }

struct Case {
  int64_t H, W, OH, OW;
  bool align_corners;
  double scale_h = 0, scale_w = 0;
};

const std::vector<Case>& cases() {
  static const std::vector<Case> c = {{5, 7, 13, 17, false},   {13, 17, 5, 7, false},
                                      {6, 9, 11, 23, true},    {16, 16, 32, 32, false},
                                      {50, 60, 33, 47, false}, {7, 3, 9, 5, false},
                                      {9, 40, 19, 80, true},   {8, 10, 20, 25, false, 2.5, 2.5}};
  return c;
}

UpsampleDesc desc_of(const Case& c, DType dtype) {
  UpsampleDesc d;
  d.planes = 3;
  d.H = c.H;
  d.W = c.W;
  d.OH = c.OH;
  d.OW = c.OW;
  d.bilinear = true;
  d.align_corners = c.align_corners;
  d.scale_h = c.scale_h;
  d.scale_w = c.scale_w;
  d.dtype = dtype;
  return d;
}

// T: the tensor's dtype, A: the type it computes in.
template <typename T, typename A>
void expect_cpu_forward_is_bilinear(DType dtype) {
  for (const Case& c : cases()) {
    const UpsampleDesc d = desc_of(c, dtype);
    SCOPED_TRACE(std::to_string(c.H) + "x" + std::to_string(c.W) + " -> " + std::to_string(c.OH) +
                 "x" + std::to_string(c.OW));
    const std::vector<T> x = pseudo_random<T>(static_cast<size_t>(3 * c.H * c.W), 31);
    std::vector<T> y(static_cast<size_t>(3 * c.OH * c.OW));
    upsample2d_forward_stub(Device::cpu())(d, x.data(), y.data());
    int64_t bad = 0;
    for (int64_t p = 0; p < 3; ++p)
      for (int64_t oh = 0; oh < c.OH; ++oh)
        for (int64_t ow = 0; ow < c.OW; ++ow) {
          const UpsampleTaps<A> r = upsample_taps<A>(d, true, oh),
                                k = upsample_taps<A>(d, false, ow);
          const T* xp = x.data() + p * c.H * c.W;
          auto at = [&](int64_t h, int64_t w) { return static_cast<A>(xp[h * c.W + w]); };
          const T want =
              static_cast<T>(upsample::bilinear(r.l0, r.l1, k.l0, k.l1, at(r.i0, k.i0),
                                                at(r.i0, k.i1), at(r.i1, k.i0), at(r.i1, k.i1)));
          bad += !same_bits(y[(p * c.OH + oh) * c.OW + ow], want);
        }
    EXPECT_EQ(bad, 0);
  }
}

TEST(UpsampleMath, CpuForwardGivesTheSharedBilinearBits) {
  expect_cpu_forward_is_bilinear<float, float>(DType::float32);
  expect_cpu_forward_is_bilinear<double, double>(DType::float64);
  expect_cpu_forward_is_bilinear<Half, float>(DType::float16);
}

template <typename A>
void expect_cpu_backward_is_gather(DType dtype) {
  for (const Case& c : cases()) {
    const UpsampleDesc d = desc_of(c, dtype);
    SCOPED_TRACE(std::to_string(c.H) + "x" + std::to_string(c.W) + " -> " + std::to_string(c.OH) +
                 "x" + std::to_string(c.OW));
    const std::vector<A> g = pseudo_random<A>(static_cast<size_t>(3 * c.OH * c.OW), 32);
    std::vector<A> dx(static_cast<size_t>(3 * c.H * c.W));
    upsample2d_backward_stub(Device::cpu())(d, g.data(), dx.data());
    int64_t bad = 0;
    for (int64_t p = 0; p < 3; ++p)
      for (int64_t h = 0; h < c.H; ++h)
        for (int64_t w = 0; w < c.W; ++w) {
          A acc = 0;
          for (int64_t oh = 0; oh < c.OH; ++oh) {
            const A wh = upsample_weight(upsample_taps<A>(d, true, oh), h);
            if (wh == A(0) && upsample_taps<A>(d, true, oh).i0 != h &&
                upsample_taps<A>(d, true, oh).i1 != h)
              continue;  // not a reader of row h
            for (int64_t ow = 0; ow < c.OW; ++ow) {
              const UpsampleTaps<A> k = upsample_taps<A>(d, false, ow);
              if (k.i0 != w && k.i1 != w) continue;  // not a reader of column w
              acc = upsample::gather_step(wh, upsample_weight(k, w), g[(p * c.OH + oh) * c.OW + ow],
                                          acc);
            }
          }
          bad += !same_bits(dx[(p * c.H + h) * c.W + w], acc);
        }
    EXPECT_EQ(bad, 0);
  }
}

TEST(UpsampleMath, CpuBackwardGivesTheSharedGatherBits) {
  expect_cpu_backward_is_gather<float>(DType::float32);
  expect_cpu_backward_is_gather<double>(DType::float64);
}

}  // namespace
}  // namespace fabric
