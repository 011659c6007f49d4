// The merge of Welford statistics that layer_norm's CUDA kernel folds across the lanes of a row
// (kernels/cuda/welford.cuh), on the CPU: the xor butterfly merges (a, b) in one lane and (b, a)
// in its partner, so the merge must give the same bits in either order, and the right statistics.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <type_traits>

#include "kernels/cuda/welford.cuh"

namespace fabric {
namespace {

using cuda::Welford;
using cuda::WelfordCombine;

// Welford's statistics of `n` values drawn around `center`, and their float64 truth.
template <typename A>
Welford<A> stats_of(std::mt19937& rng, int n, double center, double* sum, double* sum_sq) {
  std::uniform_real_distribution<double> u(center - 3, center + 3);
  Welford<A> w{0, 0, 0};
  for (int i = 0; i < n; ++i) {
    const A v = static_cast<A>(u(rng));
    *sum += v;
    *sum_sq += static_cast<double>(v) * v;
    w.n += A(1);
    const A d = v - w.mean;
    w.mean += d / w.n;
    w.m2 += d * (v - w.mean);
  }
  return w;
}

template <typename A>
void check_merges(uint32_t seed) {
  using Bits = std::conditional_t<sizeof(A) == 8, uint64_t, uint32_t>;
  std::mt19937 rng(seed);
  const WelfordCombine<A> merge;
  for (int trial = 0; trial < 2000; ++trial) {
    double sum = 0, sum_sq = 0;
    const int na = 1 + static_cast<int>(rng() % 9);
    const int nb = trial % 3 == 0 ? na : 1 + static_cast<int>(rng() % 9);
    const Welford<A> a = stats_of<A>(rng, na, 0.37 * (trial % 11), &sum, &sum_sq);
    const Welford<A> b = stats_of<A>(rng, nb, -0.51 * (trial % 7), &sum, &sum_sq);
    const Welford<A> ab = merge(a, b), ba = merge(b, a);
    ASSERT_EQ(ab.n, ba.n);
    ASSERT_EQ(std::bit_cast<Bits>(ab.mean), std::bit_cast<Bits>(ba.mean))
        << "trial " << trial << ": mean " << ab.mean << " vs " << ba.mean;
    ASSERT_EQ(std::bit_cast<Bits>(ab.m2), std::bit_cast<Bits>(ba.m2))
        << "trial " << trial << ": m2 " << ab.m2 << " vs " << ba.m2;
    const double n = na + nb, mean = sum / n, m2 = sum_sq - n * mean * mean;
    const double tol = sizeof(A) == 8 ? 1e-9 : 1e-3;
    EXPECT_NEAR(ab.mean, mean, tol * (1 + std::abs(mean))) << "trial " << trial;
    EXPECT_NEAR(ab.m2, m2, tol * (1 + std::abs(m2)) * 10) << "trial " << trial;
  }
  // An empty side gives the other back, in either order.
  const Welford<A> one{A(3), A(1.5), A(0.25)}, none{A(0), A(0), A(0)};
  EXPECT_EQ(merge(one, none).mean, one.mean);
  EXPECT_EQ(merge(none, one).m2, one.m2);
}

TEST(CudaWelfordMerge, EitherOrderGivesTheSameBitsAndTheRightStatistics) {
  check_merges<float>(7);
  check_merges<double>(11);
}

}  // namespace
}  // namespace fabric
