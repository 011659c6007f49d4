// The CPU upsample2d backward kernel against the gather it replaced (kept here as the reference:
// each input element sums (wh * wc) * dy over the outputs that read it, in (oh, ow) order), bit
// for bit, for every dtype and mode it serves, odd and uneven sizes, and 1 and 2 threads.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tensor/device.h"
#include "tensor/upsample_kernels.h"
#include "tests/common/omp_threads.h"

namespace fabric {
namespace {

template <typename T>
using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

// acc + p * g rounded once where the CPU has FMA, as the kernel spells it out: the old kernel's
// `acc += p * g` left that to the compiler, which fused it for float (so float32, float16 and
// bfloat16 match the old kernel's bits) but not for double in the last build.
template <typename A>
A mul_add(A p, A g, A acc) {
#ifdef __FMA__
  return std::fma(p, g, acc);
#else
  return acc + p * g;
#endif
}

// The kernel as it was before the row-accumulating rewrite.
template <typename T>
std::vector<T> reference_backward(const UpsampleDesc& d, const std::vector<T>& dy) {
  using A = acc_t<T>;
  std::vector<UpsampleTaps<A>> rows(d.OH), cols(d.OW);
  for (int64_t o = 0; o < d.OH; ++o) rows[o] = upsample_taps<A>(d, true, o);
  for (int64_t o = 0; o < d.OW; ++o) cols[o] = upsample_taps<A>(d, false, o);
  std::vector<T> dx(static_cast<size_t>(d.planes * d.H * d.W));
  for (int64_t p = 0; p < d.planes; ++p)
    for (int64_t h = 0; h < d.H; ++h) {
      int64_t oh0, oh1;
      upsample_readers<A>(d, true, h, oh0, oh1);
      const T* gp = dy.data() + p * d.OH * d.OW;
      for (int64_t c = 0; c < d.W; ++c) {
        int64_t ow0, ow1;
        upsample_readers<A>(d, false, c, ow0, ow1);
        A acc = 0;
        for (int64_t oh = oh0; oh < oh1; ++oh) {
          const A wh = upsample_weight(rows[oh], h);
          for (int64_t ow = ow0; ow < ow1; ++ow)
            acc =
                mul_add(wh * upsample_weight(cols[ow], c), static_cast<A>(gp[oh * d.OW + ow]), acc);
        }
        dx[(p * d.H + h) * d.W + c] = static_cast<T>(acc);
      }
    }
  return dx;
}

template <typename T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, double>) return DType::float64;
  if constexpr (std::is_same_v<T, float>) return DType::float32;
  if constexpr (std::is_same_v<T, Half>) return DType::float16;
  return DType::bfloat16;
}

// NaN's sign and payload depend on which operand the compiler hands the FPU first, which even two
// builds of the same gather do not agree on; everything else must be the same bits.
template <typename T>
bool same_bits_or_both_nan(T a, T b) {
  using A = acc_t<T>;
  if (std::isnan(static_cast<A>(a)) && std::isnan(static_cast<A>(b))) return true;
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// Gradients with every sign, some exact ties, a few NaNs, infinities and signed zeros.
template <typename T>
std::vector<T> gradient(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> normal(0.0, 3.0);
  std::uniform_int_distribution<int> pick(0, 199);
  std::vector<T> g(static_cast<size_t>(n));
  for (auto& v : g) {
    const int r = pick(gen);
    double x = normal(gen);
    if (r == 0) x = std::numeric_limits<double>::quiet_NaN();
    if (r == 1) x = std::numeric_limits<double>::infinity();
    if (r == 2) x = -0.0;
    if (r == 3) x = 0.0;
    if (r >= 4 && r < 40) x = std::round(x);
    g[&v - g.data()] = static_cast<T>(x);
  }
  return g;
}

struct Geometry {
  int64_t planes, H, W, OH, OW;
  double scale_h, scale_w;  // <= 0: the output size was given
};

// Doubling (the vectorised path) and everything around it: odd sizes, other factors, sizes given,
// shrinking, identity, single rows and columns, 1-d (H = OH = 1), and sizes past the parallel
// threshold.
const std::vector<Geometry>& geometries() {
  static const std::vector<Geometry> g = {
      {3, 5, 7, 10, 14, 2.0, 2.0}, {2, 7, 9, 14, 18, 0, 0},         {1, 1, 33, 1, 66, 0, 2.0},
      {2, 5, 7, 11, 13, 0, 0},     {2, 6, 5, 9, 7, 1.5, 1.5},       {2, 4, 5, 12, 15, 3.0, 3.0},
      {2, 9, 7, 3, 4, 0, 0},       {2, 8, 10, 4, 5, 0.5, 0.5},      {2, 5, 7, 5, 7, 0, 0},
      {2, 1, 1, 3, 5, 0, 0},       {2, 6, 1, 12, 2, 2.0, 2.0},      {2, 6, 4, 1, 1, 0, 0},
      {2, 3, 2, 7, 8, 2.3, 4.1},   {6, 65, 97, 130, 194, 2.0, 2.0}, {5, 63, 65, 95, 131, 0, 0},
  };
  return g;
}

template <typename T>
void expect_bitwise_as_reference() {
  uint32_t seed = 1;
  for (const Geometry& g : geometries())
    for (const bool bilinear : {false, true})
      for (const bool align : {false, true}) {
        if (!bilinear && align) continue;  // nearest has no align_corners
        UpsampleDesc d;
        d.planes = g.planes;
        d.H = g.H;
        d.W = g.W;
        d.OH = g.OH;
        d.OW = g.OW;
        d.scale_h = g.scale_h;
        d.scale_w = g.scale_w;
        d.bilinear = bilinear;
        d.align_corners = align;
        d.dtype = dtype_of<T>();
        const std::vector<T> dy = gradient<T>(d.planes * d.OH * d.OW, seed++);
        const std::vector<T> want = reference_backward(d, dy);
        for (const int threads : {1, 2}) {
          const OmpThreads scope(threads);
          std::vector<T> dx(want.size(), static_cast<T>(12345.0));
          upsample2d_backward_stub(Device::cpu())(d, dy.data(), dx.data());
          const std::string what =
              std::string(bilinear ? "bilinear" : "nearest") + (align ? " align_corners" : "") +
              " (" + std::to_string(g.H) + ", " + std::to_string(g.W) + ") -> (" +
              std::to_string(g.OH) + ", " + std::to_string(g.OW) + "), " +
              std::string(dtype_name(d.dtype)) + ", " + std::to_string(threads) + " threads";
          size_t mismatches = 0, first = 0;
          for (size_t i = 0; i < dx.size(); ++i)
            if (!same_bits_or_both_nan(dx[i], want[i]) && mismatches++ == 0) first = i;
          EXPECT_EQ(mismatches, 0u)
              << what << ": first at " << first << ": got "
              << static_cast<double>(static_cast<acc_t<T>>(dx[first])) << ", want "
              << static_cast<double>(static_cast<acc_t<T>>(want[first]));
        }
      }
}

TEST(UpsampleBackwardKernel, BitwiseAsTheOrderedGatherFloat32) {
  expect_bitwise_as_reference<float>();
}
TEST(UpsampleBackwardKernel, BitwiseAsTheOrderedGatherFloat64) {
  expect_bitwise_as_reference<double>();
}
TEST(UpsampleBackwardKernel, BitwiseAsTheOrderedGatherFloat16) {
  expect_bitwise_as_reference<Half>();
}
TEST(UpsampleBackwardKernel, BitwiseAsTheOrderedGatherBFloat16) {
  expect_bitwise_as_reference<BFloat16>();
}

}  // namespace
}  // namespace fabric
