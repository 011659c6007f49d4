// The CPU topk kernel's selection against the one it replaced (kept here as the reference: the
// row as n (value, position) pairs through std::partial_sort or std::nth_element, as torch 1.13's
// CPU topk does), on rows full of ties, NaNs and signed zeros: the same indices and the same value
// bits, for every dtype, k from 1 to n, largest and smallest, sorted or not, 1 and 2 threads.
#include <gtest/gtest.h>

#include <algorithm>
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
#include "tensor/sort_kernels.h"
#include "tests/common/omp_threads.h"

namespace fabric {
namespace {

template <typename T>
using KeyOf = std::conditional_t<std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>, float, T>;

// How a T lies in memory: bool as the byte 0 or 1 (std::vector<bool> packs bits).
template <typename T>
using Stored = std::conditional_t<std::is_same_v<T, bool>, uint8_t, T>;

template <typename K>
bool is_nan_key(K v) {
  if constexpr (std::is_floating_point_v<K>) {
    return std::isnan(v);
  } else {
    return false;
  }
}

// The selection as it was: every row's n pairs through torch's branch.
template <typename T>
std::vector<int64_t> reference_topk(const std::vector<Stored<T>>& src, int64_t slices, int64_t n,
                                    int64_t k, bool largest, bool sorted) {
  using K = KeyOf<T>;
  using Elem = std::pair<K, int64_t>;
  auto first = [largest](const Elem& x, const Elem& y) {
    return largest ? (is_nan_key(x.first) && !is_nan_key(y.first)) || x.first > y.first
                   : (!is_nan_key(x.first) && is_nan_key(y.first)) || x.first < y.first;
  };
  std::vector<int64_t> indices;
  std::vector<Elem> queue(static_cast<size_t>(n));
  for (int64_t s = 0; s < slices; ++s) {
    for (int64_t i = 0; i < n; ++i) queue[i] = {static_cast<K>(src[s * n + i]), i};
    if (k * 64 <= n) {
      std::partial_sort(queue.begin(), queue.begin() + k, queue.end(), first);
    } else {
      std::nth_element(queue.begin(), queue.begin() + k - 1, queue.end(), first);
      if (sorted) std::sort(queue.begin(), queue.begin() + k - 1, first);
    }
    for (int64_t j = 0; j < k; ++j) indices.push_back(queue[j].second);
  }
  return indices;
}

template <typename T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, double>) return DType::float64;
  if constexpr (std::is_same_v<T, float>) return DType::float32;
  if constexpr (std::is_same_v<T, Half>) return DType::float16;
  if constexpr (std::is_same_v<T, BFloat16>) return DType::bfloat16;
  if constexpr (std::is_same_v<T, int64_t>) return DType::int64;
  if constexpr (std::is_same_v<T, int32_t>) return DType::int32;
  if constexpr (std::is_same_v<T, int8_t>) return DType::int8;
  if constexpr (std::is_same_v<T, uint8_t>) return DType::uint8;
  return DType::bool_;
}

// A row of few distinct values (many ties), NaN, -0.0 and 0.0; `spread` widens the values so some
// rows have few ties and the heap's top keeps moving. NaN-heavy rows fill the top with NaNs.
template <typename T>
std::vector<Stored<T>> row_values(int64_t count, std::mt19937& gen, int spread, int nan_percent) {
  std::uniform_int_distribution<int> pick(0, 99), value(-spread, spread);
  std::vector<Stored<T>> v;
  v.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    const int r = pick(gen);
    double x = value(gen);
    if constexpr (std::is_floating_point_v<KeyOf<T>>) {
      if (r < nan_percent) x = std::numeric_limits<double>::quiet_NaN();
      if (r >= 90 && r < 95) x = -0.0;
      if (r >= 95) x = std::numeric_limits<double>::infinity() * (r % 2 ? 1 : -1);
    }
    if constexpr (std::is_same_v<T, bool>) {
      v.push_back(x > 0 ? 1 : 0);
    } else if constexpr (std::is_unsigned_v<T>) {
      v.push_back(static_cast<T>(x + spread));
    } else {
      v.push_back(static_cast<T>(x));
    }
  }
  return v;
}

template <typename T>
void expect_as_reference() {
  std::mt19937 gen(7);
  // Rows below and above the full-queue / replay boundary (k * 64 <= n), with and without a
  // partial last block of 32, and enough slices to run in parallel.
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {3, 1}, {2, 31}, {4, 64}, {3, 65}, {5, 200}, {3, 1000}, {6, 4096}, {40, 517}};
  for (const auto& [slices, n] : shapes) {
    std::vector<int64_t> ks = {1, 2, n / 64, n / 64 + 1, n / 2, n - 1, n};
    for (const int spread : {1, 3, 1000})
      for (const int nan_percent : {0, 5, 60}) {
        const std::vector<Stored<T>> src = row_values<T>(slices * n, gen, spread, nan_percent);
        for (const int64_t k : ks) {
          if (k < 1 || k > n) continue;
          for (const bool largest : {true, false})
            for (const bool sorted : {true, false}) {
              const std::vector<int64_t> want =
                  reference_topk<T>(src, slices, n, k, largest, sorted);
              for (const int threads : {1, 2}) {
                const OmpThreads scope(threads);
                std::vector<Stored<T>> values(static_cast<size_t>(slices * k));
                std::vector<int64_t> indices(static_cast<size_t>(slices * k), -1);
                SortDesc d;
                d.src = src.data();
                d.values = values.data();
                d.indices = indices.data();
                d.dtype = dtype_of<T>();
                d.slices = slices;
                d.n = n;
                d.k = k;
                d.descending = largest;
                d.topk_selection = true;
                d.sorted = sorted;
                sort_stub(Device::cpu())(d);
                const std::string what =
                    std::string(dtype_name(d.dtype)) + " (" + std::to_string(slices) + ", " +
                    std::to_string(n) + ") k=" + std::to_string(k) + " spread " +
                    std::to_string(spread) + " NaN% " + std::to_string(nan_percent) +
                    (largest ? " largest" : " smallest") + (sorted ? " sorted" : " unsorted") +
                    ", " + std::to_string(threads) + " threads";
                ASSERT_EQ(indices, want) << what;
                for (int64_t s = 0; s < slices; ++s)
                  for (int64_t j = 0; j < k; ++j) {
                    const Stored<T>& got = values[s * k + j];
                    const Stored<T>& from = src[s * n + want[s * k + j]];
                    ASSERT_EQ(std::memcmp(&got, &from, sizeof(T)), 0) << what << " value " << j;
                  }
              }
            }
        }
      }
  }
}

TEST(TopKSelectionKernel, AsTheFullQueueFloat64) { expect_as_reference<double>(); }
TEST(TopKSelectionKernel, AsTheFullQueueFloat32) { expect_as_reference<float>(); }
TEST(TopKSelectionKernel, AsTheFullQueueFloat16) { expect_as_reference<Half>(); }
TEST(TopKSelectionKernel, AsTheFullQueueBFloat16) { expect_as_reference<BFloat16>(); }
TEST(TopKSelectionKernel, AsTheFullQueueInt64) { expect_as_reference<int64_t>(); }
TEST(TopKSelectionKernel, AsTheFullQueueInt32) { expect_as_reference<int32_t>(); }
TEST(TopKSelectionKernel, AsTheFullQueueInt8) { expect_as_reference<int8_t>(); }
TEST(TopKSelectionKernel, AsTheFullQueueUInt8) { expect_as_reference<uint8_t>(); }
TEST(TopKSelectionKernel, AsTheFullQueueBool) { expect_as_reference<bool>(); }

}  // namespace
}  // namespace fabric
