// The CPU gather / scatter_add kernels (kernels/cpu/index.cpp) walk the index as
// kernels/cpu/index_line_walk.h does: line by line when dim is the index's innermost dim, else
// strips of adjacent lines with the position along dim outermost. scatter_add must still add
// each destination's elements in index order (torch's serial CPU loop), so every result here is
// compared bit for bit with a plain row-major loop in the same dtype: dim 0, a middle dim and the
// last dim, strips of odd widths, index narrower than self, transposed and stepped views of
// self/src/index, many repeated indices, float32/float64/int64, and 1, 2 and 3 threads.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/shape.h"
#include "tests/common/omp_threads.h"

namespace fabric {
namespace {

std::vector<int64_t> row_major_strides(const Shape& shape) {
  std::vector<int64_t> st(shape.size(), 1);
  for (int64_t k = static_cast<int64_t>(shape.size()) - 2; k >= 0; --k)
    st[k] = st[k + 1] * shape[k + 1];
  return st;
}

// Calls visit(e, self_offset, src_offset) for every index element e in row-major order, with
// self's offset at that position but position[dim] = index[e], and src's offset at the position
// (both row-major in their own shapes).
template <typename Visit>
void walk_in_order(const Shape& self_shape, const Shape& src_shape, int64_t dim,
                   const Tensor& index, Visit&& visit) {
  const std::vector<int64_t> idx = index.contiguous().to_vector<int64_t>();
  const Shape is = index.sizes();
  const std::vector<int64_t> a_st = row_major_strides(self_shape),
                             s_st = row_major_strides(src_shape);
  for (size_t e = 0; e < idx.size(); ++e) {
    int64_t rem = static_cast<int64_t>(e), a_off = 0, s_off = 0;
    for (int64_t k = static_cast<int64_t>(is.size()) - 1; k >= 0; --k) {
      const int64_t p = rem % is[k];
      rem /= is[k];
      a_off += (k == dim ? idx[e] : p) * a_st[k];
      s_off += p * s_st[k];
    }
    visit(e, a_off, s_off);
  }
}

template <typename T>
std::vector<T> naive_gather(const Tensor& self, int64_t dim, const Tensor& index) {
  const std::vector<T> a = self.contiguous().to_vector<T>();
  std::vector<T> out(static_cast<size_t>(index.numel()));
  walk_in_order(self.sizes(), index.sizes(), dim, index,
                [&](size_t e, int64_t a_off, int64_t) { out[e] = a[a_off]; });
  return out;
}

template <typename T>
std::vector<T> naive_scatter_add(const Tensor& self, int64_t dim, const Tensor& index,
                                 const Tensor& src) {
  std::vector<T> out = self.contiguous().to_vector<T>();
  const std::vector<T> s = src.contiguous().to_vector<T>();
  walk_in_order(self.sizes(), src.sizes(), dim, index, [&](size_t, int64_t a_off, int64_t s_off) {
    out[a_off] = static_cast<T>(out[a_off] + s[s_off]);
  });
  return out;
}

// Bit for bit (no NaNs here, but -0.0 vs 0.0 and the last rounding bit both count).
template <typename T>
void expect_bits(const Tensor& got_t, const std::vector<T>& want, const std::string& what) {
  const std::vector<T> got = got_t.contiguous().to_vector<T>();
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_EQ(std::memcmp(&got[i], &want[i], sizeof(T)), 0)
        << what << " element " << i << ": got " << got[i] << ", want " << want[i];
}

// Values whose sums round differently in another order (floats), or small integers.
Tensor values(const Shape& shape, DType dt) {
  if (is_floating(dt)) return randn(shape, {.dtype = DType::float64}).to(dt);
  return randint(-1000, 1000, shape).to(dt);
}

template <typename T>
void check_both(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src,
                const std::string& what) {
  expect_bits<T>(gather(self, dim, index), naive_gather<T>(self, dim, index), what + " gather");
  expect_bits<T>(scatter_add(self, dim, index, src), naive_scatter_add<T>(self, dim, index, src),
                 what + " scatter_add");
}

void check_dtype(DType dt, const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src,
                 const std::string& what) {
  const std::string w = what + " " + std::string(dtype_name(dt));
  if (dt == DType::float32)
    check_both<float>(self, dim, index, src, w);
  else if (dt == DType::float64)
    check_both<double>(self, dim, index, src, w);
  else
    check_both<int64_t>(self, dim, index, src, w);
}

struct Layout {
  Shape self, index;
  int64_t dim;
};

// Strip widths 1, 5, 37 (odd), 33 of 40 columns (index narrower than self), a middle dim with
// index narrower in every other dim, the last dim (the line-by-line walk), and a strip wide and
// long enough to split across threads.
std::vector<Layout> layouts() {
  return {{{7, 1}, {50, 1}, 0},   {{7, 5}, {50, 5}, 0},         {{9, 37}, {60, 37}, 0},
          {{5, 40}, {20, 33}, 0}, {{4, 9, 70}, {4, 30, 70}, 1}, {{3, 6, 5}, {2, 11, 4}, 1},
          {{6, 8}, {6, 30}, 1},   {{1000, 130}, {8192, 130}, 0}};
}

const DType kDTypes[] = {DType::float32, DType::float64, DType::int64};

TEST(GatherStrips, MatchesPlainLoopBitForBitAtEveryThreadCount) {
  for (const int t : {1, 2, 3}) {
    const OmpThreads scoped(t);
    manual_seed(31);
    for (const Layout& l : layouts())
      for (const DType dt : kDTypes) {
        // Few rows along dim: many indices repeat, so each destination sums many values.
        const Tensor self = values(l.self, dt), src = values(l.index, dt);
        const Tensor index = randint(0, l.self[l.dim], l.index);
        check_dtype(
            dt, self, l.dim, index, src,
            shape_str(l.index) + " dim " + std::to_string(l.dim) + " threads " + std::to_string(t));
      }
  }
}

TEST(GatherStrips, StridedSelfSrcAndIndexMatchThePlainLoop) {
  for (const int t : {1, 2, 3}) {
    const OmpThreads scoped(t);
    manual_seed(32);
    const std::string th = " threads " + std::to_string(t);
    for (const DType dt : kDTypes) {
      // self and src transposed views: non-unit strides across the strip.
      const Tensor self_t = values({70, 40}, dt).transpose(0, 1);  // (40, 70)
      const Tensor src_t = values({70, 900}, dt).transpose(0, 1);  // (900, 70)
      const Tensor index = randint(0, 40, {900, 70});
      check_dtype(dt, self_t, 0, index, src_t, "transposed self/src" + th);
      // A transposed index: dim 0 is then its innermost dim (the line walk, strided writes).
      const Tensor index_t = randint(0, 40, {70, 900}).transpose(0, 1);
      check_dtype(dt, self_t, 0, index_t, src_t, "transposed index" + th);
      // Stepped views along the strip dim, index narrower than self and src.
      const Tensor self_s = values({30, 130}, dt).slice(1, 0, 130, 2);  // (30, 65)
      const Tensor src_s = values({500, 150}, dt).slice(1, 1, 150, 3);  // (500, 50)
      const Tensor index_s = randint(0, 30, {400, 48});
      check_dtype(dt, self_s, 0, index_s, src_s, "stepped views" + th);
      // A middle dim of a permuted (non-contiguous) 3-d self and src.
      const Tensor self_p = values({5, 8, 6}, dt).permute({2, 1, 0});  // (6, 8, 5)
      const Tensor src_p = values({5, 40, 6}, dt).permute({2, 1, 0});  // (6, 40, 5)
      const Tensor index_p = randint(0, 8, {6, 40, 5});
      check_dtype(dt, self_p, 1, index_p, src_p, "permuted middle dim" + th);
    }
  }
}

}  // namespace
}  // namespace fabric
