// Copies whose destination and source are contiguous along different dims (x.t().contiguous(),
// permute(...).contiguous(), copy_ into a transposed view) take the CPU copy kernel's tiled path
// from 16 elements along both dims: every dtype, edges that are not a multiple of the tile, dims
// left over outside the tiled pair, gaps in the source, converting copies, and sizes large
// enough to run on several threads. Each result is checked against index arithmetic on the
// source's values.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/tensor.h"

namespace fabric {
namespace {

// Values 0..96 repeating, rounded to the dtype (the references read the rounded values back).
Tensor pattern(const Shape& shape, DType dtype) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return remainder(arange(0, n, 1, DType::float64), 97.0).view(shape).to(dtype);
}

// x's values in row-major order of x.permute(perm), computed from x's own values.
std::vector<double> permuted_reference(const Tensor& x, const std::vector<int64_t>& perm) {
  const std::vector<double> v = x.contiguous().to(DType::float64).to_vector<double>();
  const Shape in = x.sizes();
  const int64_t nd = static_cast<int64_t>(in.size());
  std::vector<int64_t> in_stride(nd, 1), out_size(nd);
  for (int64_t d = nd - 2; d >= 0; --d) in_stride[d] = in_stride[d + 1] * in[d + 1];
  for (int64_t d = 0; d < nd; ++d) out_size[d] = in[perm[d]];
  std::vector<double> out(v.size());
  std::vector<int64_t> idx(nd, 0);
  for (size_t k = 0; k < out.size(); ++k) {
    int64_t src = 0;
    for (int64_t d = 0; d < nd; ++d) src += idx[d] * in_stride[perm[d]];
    out[k] = v[src];
    for (int64_t d = nd - 1; d >= 0; --d) {
      if (++idx[d] < out_size[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

std::vector<double> values(const Tensor& t) { return t.to(DType::float64).to_vector<double>(); }

TEST(CopyTransposed, EveryDtypeTransposesExactly) {
  for (DType dt : {DType::float64, DType::float32, DType::bfloat16, DType::float16, DType::int64,
                   DType::int32, DType::int8, DType::uint8, DType::bool_, DType::float8_e4m3fn,
                   DType::float8_e5m2}) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor x = pattern({37, 53}, dt);
    const Tensor y = x.t().contiguous();
    ASSERT_TRUE(y.is_contiguous());
    EXPECT_EQ(y.dtype(), dt);
    EXPECT_EQ(values(y), permuted_reference(x, {1, 0}));
  }
}

TEST(CopyTransposed, PermutesOfThreeAndFourDims) {
  const Tensor x = pattern({6, 40, 33}, DType::float32);
  for (const std::vector<int64_t>& perm :
       std::vector<std::vector<int64_t>>{{2, 0, 1}, {1, 2, 0}, {0, 2, 1}, {2, 1, 0}}) {
    SCOPED_TRACE(::testing::PrintToString(perm));
    EXPECT_EQ(values(x.permute(perm).contiguous()), permuted_reference(x, perm));
  }
  // Attention's (B, T, H, hs) -> (B, H, hs, T): a transpose inside two leading dims.
  const Tensor q = pattern({2, 20, 3, 17}, DType::float32);
  EXPECT_EQ(values(q.permute({0, 2, 3, 1}).contiguous()), permuted_reference(q, {0, 2, 3, 1}));
}

TEST(CopyTransposed, LargeEnoughForSeveralThreads) {
  const Tensor x = pattern({300, 257}, DType::float32);
  EXPECT_EQ(values(x.t().contiguous()), permuted_reference(x, {1, 0}));
  const Tensor w = pattern({4, 130, 70}, DType::float64);
  EXPECT_EQ(values(w.transpose(1, 2).contiguous()), permuted_reference(w, {0, 2, 1}));
}

TEST(CopyTransposed, SourceWithGapsAndCopyIntoATransposedView) {
  const Tensor base = pattern({64, 80}, DType::float32);
  const Tensor x = base.narrow(1, 3, 50);  // rows 80 apart, 50 used
  EXPECT_EQ(values(x.t().contiguous()), permuted_reference(x.contiguous(), {1, 0}));

  // The destination is the strided operand: dst.t() is (37, 53) with strides (1, 37).
  const Tensor src = pattern({37, 53}, DType::float32);
  Tensor dst = zeros({53, 37});
  dst.t().copy_(src);
  EXPECT_EQ(values(dst), permuted_reference(src, {1, 0}));
}

TEST(CopyTransposed, ConvertingCopiesRoundAsTheRowPath) {
  // Values that bfloat16 and float16 round: the tiled and the row path must agree bit for bit.
  const Tensor x = mul(randn({45, 70}), 3.0);
  for (DType dt : {DType::bfloat16, DType::float16, DType::float64, DType::int32}) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor tiled = x.t().to(dt);                // strided source, new contiguous output
    const Tensor rows = x.t().clone().to(dt);         // contiguous source: the row path
    EXPECT_EQ(values(tiled), values(rows));
  }
  Tensor into = zeros({70, 45}, {.dtype = DType::bfloat16});
  into.copy_(x.t());
  EXPECT_EQ(values(into), values(x.t().clone().to(DType::bfloat16)));
}

}  // namespace
}  // namespace fabric
