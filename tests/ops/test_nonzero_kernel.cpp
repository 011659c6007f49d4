// nonzero's direct CPU kernel and masked_select's compaction (nonzero_kernels.h) against a plain
// reference loop: dtypes with their own idea of zero (NaN is nonzero, -0.0 is not), 0 to 4 dims,
// empty, all-zero and all-set inputs, strided inputs, and sizes of several chunks at 1, 2 and 3
// threads (the same bits at each). masked_select keeps its recorded graph (index()'s composition)
// when it records, and compacts directly only when nothing is recorded.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "tensor/factory.h"
#include "tensor/nonzero_kernels.h"
#include "tensor/ops.h"
#include "tests/common/omp_threads.h"

namespace fabric {
namespace {

enum class Fill { mixed, zeros, ones };

// Values of `shape` in dtype: a pseudo-random mix of zeros and nonzeros (about half set), with NaN
// and -0.0 among them for the float dtypes.
Tensor make_input(const Shape& shape, DType dtype, Fill fill, uint64_t seed = 1) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  const bool is_float = dtype == DType::float32 || dtype == DType::float64 ||
                        dtype == DType::float16 || dtype == DType::bfloat16;
  std::vector<double> v(static_cast<size_t>(n));
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 7;
  for (auto& e : v) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    const int r = static_cast<int>(x % 16);
    if (fill == Fill::zeros) e = 0;
    else if (fill == Fill::ones) e = r % 2 ? 3 : 1;
    else if (is_float && r == 0) e = std::numeric_limits<double>::quiet_NaN();
    else if (is_float && r == 1) e = -0.0;
    else e = r < 9 ? 0 : r - 8;
  }
  return from_vector(v, shape, {.dtype = DType::float64}).to(dtype);
}

// The coordinates of every nonzero element of t, row-major, read through float64.
std::vector<int64_t> reference_nonzero(const Tensor& t) {
  const std::vector<double> v = t.to(DType::float64).contiguous().to_vector<double>();
  std::vector<int64_t> out;
  for (int64_t i = 0; i < static_cast<int64_t>(v.size()); ++i) {
    if (!(v[i] != 0)) continue;  // NaN != 0 holds; -0.0 == 0
    std::vector<int64_t> coord(static_cast<size_t>(t.dim()));
    for (int64_t k = t.dim() - 1, rest = i; k >= 0; --k) {
      coord[k] = rest % t.size(k);
      rest /= t.size(k);
    }
    out.insert(out.end(), coord.begin(), coord.end());
  }
  return out;
}

void expect_matches_reference(const Tensor& t, const std::string& what) {
  const Tensor got = nonzero(t);
  const std::vector<int64_t> want = reference_nonzero(t);
  ASSERT_EQ(got.dtype(), DType::int64) << what;
  ASSERT_EQ(got.dim(), 2) << what;
  EXPECT_EQ(got.size(1), t.dim()) << what;
  EXPECT_EQ(got.size(0) * t.dim(), static_cast<int64_t>(want.size())) << what;
  if (t.dim() == 0) {
    EXPECT_EQ(got.size(0), t.to(DType::float64).item<double>() != 0 ? 1 : 0) << what;
    return;
  }
  EXPECT_EQ(got.contiguous().to_vector<int64_t>(), want) << what;
}

const std::vector<DType> kDTypes = {DType::bool_,   DType::float32,  DType::float64,
                                    DType::float16, DType::bfloat16, DType::int64,
                                    DType::int32,   DType::int8,     DType::uint8};

TEST(NonzeroKernel, CpuHasTheKernel) {
  EXPECT_NE(nonzero_count_stub.find(Device::cpu()), nullptr);
  EXPECT_NE(nonzero_write_stub.find(Device::cpu()), nullptr);
  EXPECT_NE(masked_compact_stub.find(Device::cpu()), nullptr);
}

TEST(NonzeroKernel, MatchesReferenceAcrossDTypesAndRanks) {
  const std::vector<Shape> shapes = {{}, {0}, {1}, {7}, {3, 0, 2}, {5, 7}, {3, 4, 5}, {2, 3, 4, 5}};
  for (DType dtype : kDTypes)
    for (const Shape& shape : shapes)
      for (Fill fill : {Fill::mixed, Fill::zeros, Fill::ones})
        for (uint64_t seed : {1, 2, 3})
          expect_matches_reference(make_input(shape, dtype, fill, seed),
                                   std::string(dtype_name(dtype)) + " " + shape_str(shape) +
                                       " fill " + std::to_string(static_cast<int>(fill)) +
                                       " seed " + std::to_string(seed));
}

TEST(NonzeroKernel, NaNCountsAndNegativeZeroDoesNot) {
  for (DType dtype : {DType::float32, DType::float64, DType::float16, DType::bfloat16}) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const Tensor t = from_vector<double>({-0.0, nan, 0.0, 1e-3, -2}, {5}).to(dtype);
    EXPECT_EQ(nonzero(t).reshape({-1}).to_vector<int64_t>(), (std::vector<int64_t>{1, 3, 4}))
        << dtype_name(dtype);
  }
}

TEST(NonzeroKernel, ManyChunksAtAnyThreadCount) {
  // Several chunks, rows that cross chunk boundaries (carries in the coordinate walk), and a
  // count that is not a multiple of anything.
  const std::vector<Shape> shapes = {{5 * kNonzeroChunk + 123}, {3, 70001}, {7, 3, 11111},
                                     {2, 3, 5, 7919}};
  for (DType dtype : {DType::bool_, DType::float32, DType::int64, DType::uint8, DType::float16}) {
    for (const Shape& shape : shapes) {
      const Tensor t = make_input(shape, dtype, Fill::mixed, 5);
      const std::string what = std::string(dtype_name(dtype)) + " " + shape_str(shape);
      expect_matches_reference(t, what);
      Tensor first;
      for (int threads : {1, 2, 3}) {
        OmpThreads guard(threads);
        const Tensor got = nonzero(t);
        if (!first.defined()) first = got;
        EXPECT_TRUE(bits_equal(got, first)) << what << " at " << threads << " threads";
      }
    }
  }
}

TEST(NonzeroKernel, StridedInputs) {
  const Tensor base = make_input({300, 701}, DType::float32, Fill::mixed, 9);
  expect_matches_reference(base.t(), "transposed");
  expect_matches_reference(base.narrow(1, 3, 500), "narrowed");
  expect_matches_reference(base.select(1, 4), "a column");
  const Tensor mask = make_input({4, 1, 5}, DType::bool_, Fill::mixed, 4).expand({4, 3, 5});
  expect_matches_reference(mask, "expanded");
}

TEST(NonzeroKernel, MaskedSelectMatchesReference) {
  for (DType dtype : {DType::float32, DType::float64, DType::float16, DType::int64, DType::int8,
                      DType::bool_}) {
    for (const Shape& shape : std::vector<Shape>{{0}, {6}, {3, 4}, {3, 70001}, {}}) {
      const Tensor a = make_input(shape, dtype, Fill::ones, 3);
      for (Fill fill : {Fill::mixed, Fill::zeros, Fill::ones}) {
        const Tensor mask = make_input(shape, DType::bool_, fill, 6);
        const std::vector<double> av = a.to(DType::float64).contiguous().to_vector<double>();
        const std::vector<double> mv = mask.to(DType::float64).contiguous().to_vector<double>();
        std::vector<double> want;
        for (size_t i = 0; i < av.size(); ++i)
          if (mv[i] != 0) want.push_back(av[i]);
        const std::string what = std::string(dtype_name(dtype)) + " " + shape_str(shape);
        for (int threads : {1, 2, 3}) {
          OmpThreads guard(threads);
          const Tensor got = masked_select(a, mask);
          ASSERT_EQ(got.dtype(), dtype) << what;
          ASSERT_EQ(got.dim(), 1) << what;
          EXPECT_EQ(got.to(DType::float64).to_vector<double>(), want) << what;
        }
      }
    }
  }
}

TEST(NonzeroKernel, MaskedSelectBroadcastsAndReadsStridedInputs) {
  const Tensor a = make_input({5, 300}, DType::float32, Fill::ones, 2).t();  // (300, 5)
  const Tensor mask = make_input({5}, DType::bool_, Fill::mixed, 8);
  const Tensor got = masked_select(a, mask);
  const Tensor want = index(a.contiguous().reshape({-1}),
                            {mask.expand({300, 5}).contiguous().reshape({-1})});
  EXPECT_TRUE(bits_equal(got, want));
  // The mask broadcasting the values.
  const Tensor row = make_input({7}, DType::float64, Fill::ones, 3);
  const Tensor mask2 = make_input({4, 7}, DType::bool_, Fill::mixed, 1);
  EXPECT_TRUE(bits_equal(masked_select(row, mask2),
                         index(row.expand({4, 7}).contiguous().reshape({-1}),
                               {mask2.reshape({-1})})));
}

TEST(NonzeroKernel, MaskedSelectRecordsTheSameNodeAndGradient) {
  Tensor a = randn({4, 6}, {.dtype = DType::float64, .requires_grad = true});
  const Tensor mask = make_input({4, 6}, DType::bool_, Fill::mixed, 2);
  const Tensor out = masked_select(a, mask);
  ASSERT_TRUE(out.requires_grad());
  EXPECT_EQ(grad_fn_name(out), "MaskedSelectBackward0");  // torch's node
  sum(out).backward();
  EXPECT_EQ(a.grad().to_vector<double>(), mask.to(DType::float64).to_vector<double>());
  {
    NoGradGuard no_grad;
    const Tensor plain = masked_select(a, mask);
    EXPECT_FALSE(plain.requires_grad());
    EXPECT_TRUE(bits_equal(plain, out.detach()));
  }
}

TEST(NonzeroKernel, MaskedSelectGradientSumsOverTheBroadcastAndDifferentiatesAgain) {
  // A row broadcast over the mask's rows: each element's gradient counts its selected copies.
  Tensor row = from_vector(std::vector<double>{1, 2, 3}, {3}).set_requires_grad(true);
  const Tensor mask = from_vector(std::vector<double>{1, 0, 1, 1, 0, 0}, {2, 3}).to(DType::bool_);
  Tensor out = masked_select(row, mask);
  EXPECT_EQ(out.to_vector<double>(), (std::vector<double>{1, 3, 1}));
  sum(mul(out, from_vector(std::vector<double>{10, 20, 30}, {3}))).backward();
  EXPECT_EQ(row.grad().to_vector<double>(), (std::vector<double>{40, 0, 20}));
  // d/da sum(masked_select(a)^2) = 2 a on the mask, recorded; its sum's gradient is 2 on the mask.
  Tensor a = from_vector(std::vector<double>{1, -2, 3, 4, 5, -6}, {2, 3}).set_requires_grad(true);
  const std::vector<Tensor> g =
      grad({sum(pow(masked_select(a, mask), 2.0))}, {a}, {}, std::nullopt, /*create_graph=*/true);
  EXPECT_EQ(g[0].to_vector<double>(), (std::vector<double>{2, 0, 6, 8, 0, 0}));
  sum(g[0]).backward();
  EXPECT_EQ(a.grad().to_vector<double>(), (std::vector<double>{2, 0, 2, 2, 0, 0}));
}

}  // namespace
}  // namespace fabric
