// pow(tensor, scalar) on float16 and bfloat16 against torch 1.13's bits
// (tests/ops/pow_half_torch_rows.h, from tools/fixtures/make_pow_half_rows.py): torch rounds the
// exponent to the dtype (bfloat16 pow(x, 0.1) is pow(x, 0.10009765625)), rounds every operation to
// the dtype (bfloat16 x^3 = (x*x)*x, x^-2 = 1/(x*x)), and takes std::pow for float16 even at 0.5
// and -0.5, where a square root would give -0 and NaN for -0 and -inf.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/ops/pow_half_torch_rows.h"

namespace fabric {
namespace {

template <typename H>
void check_row(const PowHalfTorchRow& r) {
  std::vector<H> base;
  for (uint16_t b : r.base_bits) base.push_back(H::from_bits(b));
  const int64_t n = static_cast<int64_t>(base.size());
  const DType dt = dtype_v<H>;
  const Tensor x = from_vector(base, {n}, {.dtype = dt});
  const Tensor y = pow(x, Scalar(r.exponent));
  ASSERT_EQ(y.dtype(), dt);
  const H* got = y.contiguous().data<H>();
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t g = got[i].x, w = r.result_bits[static_cast<size_t>(i)];
    const bool g_nan = std::isnan(static_cast<float>(got[i]));
    const bool w_nan = std::isnan(static_cast<float>(H::from_bits(w)));
    if (g_nan && w_nan) continue;  // NaN payloads are not torch's contract
    ASSERT_EQ(g, w) << r.dtype << " pow(" << static_cast<float>(base[static_cast<size_t>(i)])
                    << ", " << r.exponent << ") = " << static_cast<float>(got[i]) << ", torch "
                    << static_cast<float>(H::from_bits(w));
  }
}

TEST(PowHalfTorch, ScalarExponentBitForBit) {
  int rows = 0;
  for (const PowHalfTorchRow& r : pow_half_torch_rows()) {
    if (std::string(r.dtype) == "float16")
      check_row<Half>(r);
    else
      check_row<BFloat16>(r);
    ++rows;
  }
  EXPECT_EQ(rows, 24);
}

}  // namespace
}  // namespace fabric
