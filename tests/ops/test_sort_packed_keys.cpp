// sort through the packed-key radix path (kernels/cpu/sort.cpp: dtypes whose keys fit 32 bits)
// against a stable sort of positions by torch's order (NaN the largest and all NaNs equal, -0.0
// equal to 0.0, equal values in input order, descending too): indices exactly, values bit for
// bit, on rows short enough to compare and long enough to radix-sort, heavy with duplicates,
// signed zeros, infinities and NaNs, at 1 and 2 threads. float64 and int64 keep the comparison
// path and serve as a control.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/omp_threads.h"

namespace fabric {
namespace {

const std::vector<DType> kDTypes = {DType::float32, DType::bfloat16, DType::float16,
                                    DType::int32,   DType::int8,     DType::uint8,
                                    DType::bool_,   DType::float64,  DType::int64};

// rows x n values in dt: few distinct values (ties everywhere), and for floating dtypes NaNs of
// both signs, +-0, +-inf and numbers that differ only in their low mantissa bits.
Tensor sample(int64_t rows, int64_t n, DType dt, int seed) {
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<double> floats = {std::nan(""), -std::nan(""),    -0.0, 0.0,   inf,    -inf,
                                      1.0,          1.0 + 1.0 / 1024, -2.5, 3e-39, -1e-30, 70000.0,
                                      5.0};
  std::vector<double> v(static_cast<size_t>(rows * n));
  uint64_t x = 0x9E3779B97F4A7C15ull * (seed + 1);
  for (double& e : v) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    if (is_floating(dt))
      e = floats[x % floats.size()];
    else if (dt == DType::bool_)
      e = static_cast<double>(x % 2);
    else if (dt == DType::uint8)
      e = static_cast<double>(x % 256);
    else
      e = static_cast<double>(static_cast<int64_t>(x % 255) - 128);  // int8's range, negatives
  }
  const Tensor t = from_vector(v, {rows, n}, {.dtype = DType::float64});
  return dt == DType::bool_ ? ne(t, 0.0) : t.to(dt);
}

// The expected permutation of each row (positions), from the values as double.
std::vector<int64_t> reference_order(const Tensor& x, bool descending) {
  const int64_t rows = x.size(0), n = x.size(1);
  const std::vector<double> v = x.to(DType::float64).to_vector<double>();
  auto less = [](double a, double b) { return !std::isnan(a) && (std::isnan(b) || a < b); };
  std::vector<int64_t> out;
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), int64_t{0});
    const double* row = v.data() + r * n;
    std::stable_sort(order.begin(), order.end(), [&](int64_t i, int64_t j) {
      return descending ? less(row[j], row[i]) : less(row[i], row[j]);
    });
    out.insert(out.end(), order.begin(), order.end());
  }
  return out;
}

void check_sort(const Tensor& x, bool descending, const std::string& what) {
  const auto [values, indices] = sort(x, -1, descending);
  const std::vector<int64_t> got = indices.to_vector<int64_t>();
  const std::vector<int64_t> want = reference_order(x, descending);
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want[i]) {
      ADD_FAILURE() << what << ": position " << i << " holds index " << got[i] << ", expected "
                    << want[i];
      return;
    }
  }
  EXPECT_TRUE(bits_equal(values, gather(x, 1, indices))) << what << ": values";
}

TEST(SortPackedKeys, MatchesAStableSortInTorchsOrder) {
  for (DType dt : kDTypes) {
    for (int64_t n : {1, 5, 127, 128, 129, 513, 1000}) {
      const Tensor x = sample(3, n, dt, static_cast<int>(n));
      for (bool desc : {false, true}) {
        check_sort(x, desc,
                   std::string(dtype_name(dt)) + " n=" + std::to_string(n) +
                       (desc ? " descending" : " ascending"));
      }
    }
  }
}

TEST(SortPackedKeys, SameResultAtOneAndTwoThreads) {
  for (DType dt : {DType::float32, DType::bfloat16, DType::int8}) {
    const Tensor x = sample(97, 301, dt, 7);  // 29K elements: the rows split between threads
    for (bool desc : {false, true}) {
      const std::string what = std::string(dtype_name(dt)) + (desc ? " descending" : "");
      Tensor v1, i1, v2, i2;
      {
        OmpThreads scope(1);
        std::tie(v1, i1) = sort(x, -1, desc);
      }
      {
        OmpThreads scope(2);
        std::tie(v2, i2) = sort(x, -1, desc);
      }
      EXPECT_TRUE(bits_equal(i1, i2)) << what;
      EXPECT_TRUE(bits_equal(v1, v2)) << what;
      check_sort(x, desc, what + " (2 threads)");
    }
  }
}

TEST(SortPackedKeys, OtherDimsAndStridedInputs) {
  const Tensor x = sample(300, 7, DType::float32, 3);
  const auto [v0, i0] = sort(x, 0);  // along dim 0: the op makes rows of the columns
  const auto [vt, it] = sort(x.t().contiguous(), -1);
  EXPECT_TRUE(bits_equal(i0, it.t().contiguous()));
  EXPECT_TRUE(bits_equal(v0, vt.t().contiguous()));
}

}  // namespace
}  // namespace fabric
