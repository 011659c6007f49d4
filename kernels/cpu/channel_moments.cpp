// CPU kernel of channel_moments_stub (tensor/channel_norm_kernels.h): BatchNorm1d's per-channel
// mean and squared deviations over a contiguous (rows, C) input, reading the input from memory
// once. The two plane_sums passes (a mean, then deviations from it) each stream the whole input;
// here each block of rows (~128 KiB) takes both passes while it is still in cache, and the
// blocks' statistics are merged in double with Chan et al.'s formula, so the result keeps the
// two-pass accuracy (deviations from a mean, never E[x^2] - E[x]^2) at nearly one pass's memory
// traffic. The blocks and their grouping depend on the shape only: results do not change with
// the thread count.
#include <omp.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "kernels/cpu/reduce_math.h"
#include "tensor/channel_norm_kernels.h"

namespace fabric::cpu {
namespace {

constexpr int64_t kBlockElems = 32768;  // values per block of rows: both passes hit L2
constexpr int64_t kGroups = 16;         // blocks are merged in at most this many parallel runs

// A strip of kStripVecs * 64 bytes of channels, held in registers while a block's rows stream
// through (accumulating into arrays in memory costs a store per vector and measured ~2x slower).
constexpr int kStripVecs = 4;
// 64-byte vectors of float / double (GCC/Clang vector extensions). Spelled per type: the
// attribute on a dependent alias template is silently dropped by GCC.
typedef float VecF __attribute__((vector_size(64)));
typedef double VecD __attribute__((vector_size(64)));
template <typename A>
using Vec = std::conditional_t<std::is_same_v<A, float>, VecF, VecD>;
static_assert(sizeof(Vec<float>) == 64 && sizeof(Vec<double>) == 64);
template <typename A>
constexpr int64_t kLanes = 64 / sizeof(A);

template <typename A>
Vec<A> load_vec(const A* p) {
  Vec<A> v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}
template <typename A>
void store_vec(A* p, const Vec<A>& v) {
  __builtin_memcpy(p, &v, sizeof(v));
}

// Channels [j, j + kStripVecs * kLanes) of a block: mean[] = the sum over rows / rows, then
// dev[] and m2[] = the sums of d and d * d, d = x - mean, over the same rows. Each channel adds
// its rows in row order, as the array loop of the remainder does.
template <typename A>
void strip_moments(const A* v, int64_t rows, int64_t C, int64_t j, A* mean, A* m2, A* dev) {
  constexpr int S = kStripVecs;
  constexpr int64_t L = kLanes<A>;
  Vec<A> acc[S], sq[S], mu[S];
  for (int q = 0; q < S; ++q) acc[q] = load_vec(v + j + q * L);
  for (int64_t r = 1; r < rows; ++r)
    for (int q = 0; q < S; ++q) acc[q] += load_vec(v + r * C + j + q * L);
  const A n = static_cast<A>(rows);
  for (int q = 0; q < S; ++q) {
    mu[q] = acc[q] / n;
    acc[q] = Vec<A>{};
    sq[q] = Vec<A>{};
  }
  for (int64_t r = 0; r < rows; ++r)
    for (int q = 0; q < S; ++q) {
      const Vec<A> d = load_vec(v + r * C + j + q * L) - mu[q];
      acc[q] += d;
      sq[q] += d * d;
    }
  for (int q = 0; q < S; ++q) {
    store_vec(mean + j + q * L, mu[q]);
    store_vec(dev + j + q * L, acc[q]);
    store_vec(m2 + j + q * L, sq[q]);
  }
}

// Mean and squared deviations of one block of `rows` rows of C values: mean[j] + dev[j] and
// m2[j]. Two passes over the (cached) block; the sum of deviations from the first pass's mean
// corrects its rounding, as the two plane_sums passes do.
template <typename A>
void block_moments(const A* __restrict v, int64_t rows, int64_t C, A* __restrict mean,
                   A* __restrict m2, A* __restrict dev) {
  constexpr int64_t W = kStripVecs * kLanes<A>;
  int64_t j0 = 0;
  for (; j0 + W <= C; j0 += W) strip_moments(v, rows, C, j0, mean, m2, dev);
  if (j0 < C) {  // the remaining channels, fewer than a strip
    std::copy(v + j0, v + C, mean + j0);
    for (int64_t r = 1; r < rows; ++r) {
      const A* __restrict x = v + r * C;
      for (int64_t j = j0; j < C; ++j) mean[j] += x[j];
    }
    const A n = static_cast<A>(rows);
    for (int64_t j = j0; j < C; ++j) mean[j] /= n;
    std::fill(dev + j0, dev + C, A(0));
    std::fill(m2 + j0, m2 + C, A(0));
    for (int64_t r = 0; r < rows; ++r) {
      const A* __restrict x = v + r * C;
      for (int64_t j = j0; j < C; ++j) {
        const A d = x[j] - mean[j];
        dev[j] += d;
        m2[j] += d * d;
      }
    }
  }
  // dev becomes the correction to the mean (kept apart: mean + shift rounded back to A would
  // lose what the correction recovered, at a large offset as much as the spread).
  const A n = static_cast<A>(rows);
  for (int64_t j = 0; j < C; ++j) {
    const A shift = dev[j] / n;
    m2[j] -= dev[j] * shift;
    dev[j] = shift;
  }
}

// Statistics of C channels over `count` rows so far, in double: merging float32 block means
// rounded at a large offset would cost the between-block deviations their low bits.
struct Moments {
  int64_t count = 0;
  double* mean = nullptr;
  double* m2 = nullptr;
};

// Folds the statistics of `nb` more rows (mean_b + shift_b, m2_b; shift_b may be null) into m
// (Chan, Golub and LeVeque's pairwise update).
template <typename B>
void merge(Moments& m, int64_t C, int64_t nb, const B* __restrict mean_b,
           const B* __restrict shift_b, const B* __restrict m2_b) {
  const bool first = m.count == 0;
  const double total = static_cast<double>(m.count + nb);
  const double weight_b = static_cast<double>(nb) / total;
  const double cross = static_cast<double>(m.count) * static_cast<double>(nb) / total;
  double* __restrict mean = m.mean;
  double* __restrict m2 = m.m2;
  for (int64_t j = 0; j < C; ++j) {
    const double mb = static_cast<double>(mean_b[j]) + (shift_b ? shift_b[j] : 0.0);
    if (first) {
      mean[j] = mb;
      m2[j] = m2_b[j];
      continue;
    }
    const double delta = mb - mean[j];
    mean[j] += delta * weight_b;
    m2[j] += m2_b[j] + delta * delta * cross;
  }
  m.count += nb;
}

template <typename A>
void channel_moments_acc(const ChannelMomentsArgs& a) {
  const int64_t N = a.rows, C = a.channels, sz = itemsize(a.dtype);
  const int64_t block_rows = std::max<int64_t>(1, kBlockElems / C);
  const int64_t blocks = (N + block_rows - 1) / block_rows;
  const int64_t per_group = (blocks + std::min(kGroups, blocks) - 1) / std::min(kGroups, blocks);
  const int64_t groups = (blocks + per_group - 1) / per_group;
  // Each group's mean and m2 (C each), merged in group order at the end.
  std::vector<double> group_stats(static_cast<size_t>(groups * 2 * C));
  std::vector<int64_t> group_count(static_cast<size_t>(groups));
  auto run_group = [&](int64_t g) {
    std::vector<A> block(static_cast<size_t>(3 * C));  // mean, m2, shift of one block
    A* mean_b = block.data();
    A* m2_b = mean_b + C;
    A* shift_b = m2_b + C;
    Moments m{0, group_stats.data() + g * 2 * C, group_stats.data() + g * 2 * C + C};
    const int64_t end = std::min(N, (g + 1) * per_group * block_rows);
    for (int64_t r0 = g * per_group * block_rows; r0 < end; r0 += block_rows) {
      const int64_t rows = std::min(end - r0, block_rows), n = rows * C;
      const A* v =
          load_row<A>(static_cast<const char*>(a.x) + r0 * C * sz, a.dtype, n, scratch<A>(0, n));
      block_moments(v, rows, C, mean_b, m2_b, shift_b);
      merge(m, C, rows, mean_b, shift_b, m2_b);
    }
    group_count[g] = m.count;
  };
  if (groups > 1 && N * C >= 32768 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
    for (int64_t g = 0; g < groups; ++g) run_group(g);
  } else {
    for (int64_t g = 0; g < groups; ++g) run_group(g);
  }
  std::vector<double> total_stats(static_cast<size_t>(2 * C));
  Moments total{0, total_stats.data(), total_stats.data() + C};
  for (int64_t g = 0; g < groups; ++g)
    merge<double>(total, C, group_count[g], group_stats.data() + g * 2 * C, nullptr,
                  group_stats.data() + g * 2 * C + C);
  std::copy(total.mean, total.mean + C, static_cast<A*>(a.mean));
  std::copy(total.m2, total.m2 + C, static_cast<A*>(a.sq_dev));
}

void channel_moments_kernel(const ChannelMomentsArgs& a) {
  if (a.rows <= 0 || a.channels <= 0) return;
  if (a.dtype == DType::float64) return channel_moments_acc<double>(a);
  channel_moments_acc<float>(a);
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(channel_moments_stub, cpu, &cpu::channel_moments_kernel);
}  // namespace fabric
