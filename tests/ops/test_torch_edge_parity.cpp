// Edge values where torch 1.13 defines the result and an outside-in probe found fabric apart:
// tanh and relu keep -0.0 (tanh is odd; relu is torch's clamp_min(x, 0), which returns x on the
// tie), nan_to_num casts its replacements as torch static_casts them, and index_fill takes negative
// indices.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

const std::vector<DType> kFloating = {DType::float64, DType::float32, DType::bfloat16,
                                      DType::float16};

// n >= 4 elements (vector bodies and tails) with -0.0 and +0.0 at both ends.
Tensor zeros_at_the_ends(int64_t n, DType dt) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = 0.01 * static_cast<double>(i - n / 2);
  v.front() = -0.0;
  v[1] = 0.0;
  v[static_cast<size_t>(n - 2)] = 0.0;
  v.back() = -0.0;
  return from_vector(v, {n}, {.dtype = DType::float64}).to(dt);
}

TEST(TorchEdgeParity, TanhIsOddAtZeroAndEverywhere) {
  for (DType dt : kFloating) {
    for (int64_t n : {int64_t{4}, int64_t{17}, int64_t{100}}) {
      const Tensor x = zeros_at_the_ends(n, dt);
      const std::vector<double> xv = x.to_vector<double>();
      const std::vector<double> pos = tanh(x).to_vector<double>();
      const std::vector<double> neg = tanh(fabric::neg(x)).to_vector<double>();
      for (int64_t i = 0; i < n; ++i) {
        const size_t k = static_cast<size_t>(i);
        EXPECT_EQ(std::signbit(pos[k]), std::signbit(xv[k])) << dtype_name(dt) << " tanh at " << i;
        EXPECT_EQ(pos[k], -neg[k]) << dtype_name(dt) << " tanh(-x) = -tanh(x) at " << i;
        EXPECT_NE(std::signbit(pos[k]), std::signbit(neg[k])) << dtype_name(dt) << " at " << i;
      }
    }
  }
}

TEST(TorchEdgeParity, ReluKeepsNegativeZeroAndNaN) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (DType dt : kFloating) {
    for (int64_t n : {int64_t{4}, int64_t{17}}) {
      Tensor x = zeros_at_the_ends(n, dt);
      const std::vector<double> r = relu(x).to_vector<double>();
      EXPECT_TRUE(r.front() == 0.0 && std::signbit(r.front())) << dtype_name(dt) << " relu(-0.0)";
      EXPECT_TRUE(r[1] == 0.0 && !std::signbit(r[1])) << dtype_name(dt) << " relu(+0.0)";
      EXPECT_TRUE(std::signbit(r.back())) << dtype_name(dt) << " relu(-0.0) in the tail";
    }
    const Tensor n =
        from_vector(std::vector<double>{nan, -1.0}, {2}, {.dtype = DType::float64}).to(dt);
    EXPECT_TRUE(std::isnan(relu(n).to_vector<double>()[0])) << dtype_name(dt);
  }
}

TEST(TorchEdgeParity, NanToNumCastsReplacementsPastTheRangeToInf) {
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor x64 =
      from_vector(std::vector<double>{nan, inf, -inf, 1.5}, {4}, {.dtype = DType::float64});
  // torch.nan_to_num(torch.tensor([nan, inf, -inf, 1.5], dtype=torch.float16), 1e6, 1e6, -1e6)
  // is [inf, inf, -inf, 1.5]; float32 with 1e39 likewise; float16 with 70000.5 for nan too.
  for (DType dt : {DType::float16, DType::bfloat16, DType::float32}) {
    const double big = dt == DType::float16 ? 1e6 : 1e39;
    const Tensor r = nan_to_num(x64.to(dt), big, big, -big);
    EXPECT_EQ(r.dtype(), dt);
    EXPECT_EQ(r.to_vector<double>(), (std::vector<double>{inf, inf, -inf, 1.5})) << dtype_name(dt);
  }
  // In range, the replacement rounds to the dtype (float16 0.1 is 0.0999755859375).
  const Tensor h = nan_to_num(x64.to(DType::float16), 0.1, 2.0, -2.0);
  EXPECT_EQ(h.to_vector<double>(), (std::vector<double>{0.0999755859375, 2.0, -2.0, 1.5}));
}

// torch.index_fill counts negative indices from the end (its index_add/index_copy refuse them):
// torch.arange(1., 7).view(2, 3).index_fill(1, torch.tensor([1, -1]), -1) is
// [[1, -1, -1], [4, -1, -1]].
TEST(TorchEdgeParity, IndexFillWrapsNegativeIndices) {
  const Tensor a =
      from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3}, {.dtype = DType::float32});
  const Tensor idx = from_vector(std::vector<int64_t>{1, -1}, {2}, {.dtype = DType::int64});
  EXPECT_EQ(index_fill(a, 1, idx, -1).to_vector<double>(),
            (std::vector<double>{1, -1, -1, 4, -1, -1}));
  const Tensor first = from_vector(std::vector<int64_t>{-3}, {1}, {.dtype = DType::int64});
  EXPECT_EQ(index_fill(a, -1, first, 2.5).to_vector<double>(),
            (std::vector<double>{2.5, 2, 3, 2.5, 5, 6}));
  EXPECT_EQ(index_fill(a, 0, from_vector(std::vector<int64_t>{-1}, {1}, {.dtype = DType::int64}), 0)
                .to_vector<double>(),
            (std::vector<double>{1, 2, 3, 0, 0, 0}));
  try {
    index_fill(a, 1, from_vector(std::vector<int64_t>{-4}, {1}, {.dtype = DType::int64}), 0);
    ADD_FAILURE() << "index -4 of a dim of size 3 did not raise";
  } catch (const IndexError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("index_fill: index -4"), std::string::npos) << msg;
    EXPECT_NE(msg.find("valid: -3 to 2"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace fabric
