// Column sums (sum over a dim that is not the innermost) give torch 1.13's CPU bits: both of its
// column orders (cascade blocks and the 4-way split after them), its scalar path for few
// columns, bfloat16 and float64 (col_sum_torch_rows.h, tools/fixtures/make_col_sum_rows.py), at
// 1 and 2 threads; a mean is that sum divided.
#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/omp_threads.h"
#include "tests/common/order_sensitive.h"
#include "tests/ops/col_sum_torch_rows.h"

namespace fabric {
namespace {

Tensor input_of(const ColSumTorchCase& c) {
  const int64_t a = c.a ? c.a : 1;
  std::vector<float> v = order_sensitive(static_cast<size_t>(a * c.n * c.c), c.seed);
  const std::string dt = c.dtype;
  if (dt == "bfloat16")
    for (float& e : v) e = std::bit_cast<float>(std::bit_cast<uint32_t>(e) & 0xFFFF0000u);
  Tensor t = from_vector(v, c.a ? Shape{c.a, c.n, c.c} : Shape{c.n, c.c});
  if (dt == "bfloat16") return t.to(DType::bfloat16);
  if (dt == "float64") return t.to(DType::float64);
  return t;
}

std::vector<uint64_t> bits_of(const Tensor& r) {
  const Tensor t = r.contiguous();
  std::vector<uint64_t> out(static_cast<size_t>(t.numel()));
  const int64_t isz = itemsize(t.dtype());
  const auto* p = static_cast<const unsigned char*>(t.data_ptr());
  for (size_t i = 0; i < out.size(); ++i) {
    uint64_t b = 0;
    std::memcpy(&b, p + i * isz, static_cast<size_t>(isz));
    out[i] = b;
  }
  return out;
}

TEST(ColSumTorch, SumsMatchTorchBitForBit) {
  for (int threads : {1, 2}) {
    OmpThreads scope(threads);
    for (const ColSumTorchCase& c : col_sum_torch_cases()) {
      const Tensor x = input_of(c);
      const std::string what = std::string(c.dtype) + " a=" + std::to_string(c.a) +
                               " n=" + std::to_string(c.n) + " c=" + std::to_string(c.c) +
                               " threads=" + std::to_string(threads);
      EXPECT_EQ(bits_of(sum(x, {c.a ? 1 : 0})), c.bits) << what;
    }
  }
}

TEST(ColSumTorch, Float32MeanIsTheSumDivided) {
  for (const ColSumTorchCase& c : col_sum_torch_cases()) {
    if (std::string(c.dtype) != "float32") continue;
    const Tensor m = mean(input_of(c), {c.a ? 1 : 0});
    std::vector<uint64_t> want = c.bits;
    for (uint64_t& b : want)
      b = std::bit_cast<uint32_t>(std::bit_cast<float>(static_cast<uint32_t>(b)) /
                                  static_cast<float>(c.n));
    EXPECT_EQ(bits_of(m), want) << "n=" << c.n << " c=" << c.c;
  }
}

}  // namespace
}  // namespace fabric
