// The CPU scatter kernel's strip walk (kernels/cpu/index_write.cpp): when dim is not the index's
// innermost dim, adjacent lines are walked side by side, position along dim outermost. Every
// destination must still fold its elements in index order, so each result here is compared
// exactly with a naive element-by-element loop in the same dtype (same order, same rounding):
// every reduction, include_self both ways, NaN, repeated indices (assign: the last write wins),
// strips of odd widths, index narrower than self, a strided src, a middle dim, and shapes large
// enough to split into parallel strips.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/shape.h"
#include "tests/common/omp_threads.h"

namespace fabric {
namespace {

void set_threads(int n) { OmpThreads::set(n); }  // tests/common/omp_threads.h
int max_threads() { return OmpThreads::max_threads(); }

// Row-major offsets of `pos` in `shape`.
int64_t offset_of(const std::vector<int64_t>& pos, const Shape& shape) {
  int64_t off = 0;
  for (size_t k = 0; k < shape.size(); ++k) off = off * shape[k] + pos[k];
  return off;
}

template <typename T>
T identity(const std::string& r) {
  if (r == "prod") return T(1);
  if (r == "amax")
    return std::numeric_limits<T>::has_infinity ? -std::numeric_limits<T>::infinity()
                                                : std::numeric_limits<T>::lowest();
  if (r == "amin")
    return std::numeric_limits<T>::has_infinity ? std::numeric_limits<T>::infinity()
                                                : std::numeric_limits<T>::max();
  return T(0);
}

template <typename T>
T fold(const std::string& r, T have, T v) {
  if (r == "sum" || r == "mean") return static_cast<T>(have + v);
  if (r == "prod") return static_cast<T>(have * v);
  if (r == "amax") return std::isnan(static_cast<double>(v)) ? v : std::max(have, v);
  if (r == "amin") return std::isnan(static_cast<double>(v)) ? v : std::min(have, v);
  return v;  // assign
}

// torch's scatter_reduce (reduce "assign": scatter) by a plain loop over the index's elements
// in row-major order, in T.
template <typename T>
std::vector<T> naive(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src,
                     const std::string& r, bool include_self) {
  std::vector<T> out = self.contiguous().to_vector<T>();
  const std::vector<T> s = src.contiguous().to_vector<T>();
  const std::vector<int64_t> idx = index.contiguous().to_vector<int64_t>();
  const Shape is = index.sizes(), ss = src.sizes(), as = self.sizes();
  std::vector<int64_t> count(out.size(), include_self ? 1 : 0);
  std::vector<bool> seen(out.size(), false);
  std::vector<int64_t> pos(is.size(), 0);
  for (size_t e = 0; e < idx.size(); ++e) {
    int64_t rem = static_cast<int64_t>(e);
    for (int64_t k = static_cast<int64_t>(is.size()) - 1; k >= 0; --k) {
      pos[k] = rem % is[k];
      rem /= is[k];
    }
    const T v = s[offset_of(pos, ss)];
    std::vector<int64_t> at = pos;
    at[dim] = idx[e];
    const int64_t o = offset_of(at, as);
    if (!include_self && !seen[o] && r != "assign") out[o] = identity<T>(r);
    seen[o] = true;
    out[o] = fold(r, out[o], v);
    ++count[o];
  }
  if (r == "mean")
    for (size_t o = 0; o < out.size(); ++o)
      if (seen[o]) out[o] = static_cast<T>(out[o] / static_cast<T>(std::max<int64_t>(count[o], 1)));
  return out;
}

template <typename T>
void expect_same(const std::vector<T>& got, const std::vector<T>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    const bool both_nan =
        std::isnan(static_cast<double>(got[i])) && std::isnan(static_cast<double>(want[i]));
    if (!both_nan) ASSERT_EQ(got[i], want[i]) << what << " element " << i;
  }
}

template <typename T>
void check_all_reductions(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src,
                          const std::string& what) {
  for (const char* r : {"sum", "prod", "mean", "amax", "amin"})
    for (const bool include_self : {true, false}) {
      if (!is_floating(self.dtype()) && std::string(r) == "mean") continue;  // floor division
      const Tensor got = scatter_reduce(self, dim, index, src, r, include_self);
      expect_same(got.contiguous().to_vector<T>(), naive<T>(self, dim, index, src, r, include_self),
                  what + " " + r + (include_self ? " include_self" : " exclude_self"));
    }
  expect_same(scatter(self, dim, index, src).contiguous().to_vector<T>(),
              naive<T>(self, dim, index, src, "assign", true), what + " scatter");
}

// Random values with some NaNs and many ties (values from a small set).
Tensor values(const Shape& shape, DType dt, bool with_nan) {
  Tensor v = div(floor(mul(randn(shape, {.dtype = DType::float64}), 4.0)), 4.0);
  if (with_nan)
    v = where(lt(rand(shape, {.dtype = DType::float64}), Scalar(0.01)),
              full(Shape{}, std::nan(""), {.dtype = DType::float64}), v);
  return v.to(dt);
}

struct Layout {
  Shape self, index;
  int64_t dim;
};

// Index shapes where dim is not the innermost: strip widths 1, 5, 37 (odd), 33 of 40 columns,
// a middle dim, a strip wide enough to split across threads.
std::vector<Layout> strip_layouts() {
  return {{{7, 1}, {50, 1}, 0},       {{7, 5}, {50, 5}, 0},         {{9, 37}, {60, 37}, 0},
          {{5, 40}, {20, 33}, 0},     {{4, 9, 70}, {4, 30, 70}, 1}, {{3, 6, 5}, {2, 11, 4}, 1},
          {{300, 96}, {4096, 96}, 0}, {{6, 8}, {6, 8}, 1}};
}

TEST(ScatterStrips, MatchesNaiveLoopInOrderForEveryReduction) {
  manual_seed(19);
  for (const Layout& l : strip_layouts()) {
    for (const DType dt : {DType::float32, DType::float64, DType::int64}) {
      const bool flt = is_floating(dt);
      // Small integers: products of a destination's values stay within int64.
      const Tensor self = flt ? values(l.self, dt, true) : randint(-3, 4, l.self).to(dt);
      const Tensor src = flt ? values(l.index, dt, true) : randint(-3, 4, l.index).to(dt);
      const Tensor index = randint(0, l.self[l.dim], l.index);
      const std::string what =
          shape_str(l.index) + " dim " + std::to_string(l.dim) + " " + std::string(dtype_name(dt));
      if (dt == DType::float32)
        check_all_reductions<float>(self, l.dim, index, src, what);
      else if (dt == DType::float64)
        check_all_reductions<double>(self, l.dim, index, src, what);
      else
        check_all_reductions<int64_t>(self, l.dim, index, src, what);
    }
  }
}

TEST(ScatterStrips, StridedSourceAndThreadCountsGiveTheSameResult) {
  manual_seed(20);
  // src a transposed view: non-unit strides along the strip.
  const Tensor self = values({40, 24}, DType::float32, true);
  const Tensor src = values({24, 500}, DType::float32, true).transpose(0, 1);
  const Tensor index = randint(0, 40, {500, 24});
  check_all_reductions<float>(self, 0, index, src, "transposed src");
  const int threads = max_threads();
  for (const int t : {1, 2, 3}) {
    set_threads(t);
    const Tensor big_self = values({1000, 130}, DType::float32, false);
    const Tensor big_src = values({8192, 130}, DType::float32, false);
    const Tensor big_index = randint(0, 1000, {8192, 130});
    const Tensor got = scatter_reduce(big_self, 0, big_index, big_src, "amax");
    expect_same(got.to_vector<float>(), naive<float>(big_self, 0, big_index, big_src, "amax", true),
                "threads " + std::to_string(t));
  }
  set_threads(threads);
}

}  // namespace
}  // namespace fabric
