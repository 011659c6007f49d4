// The 16-lane SLEEF logf_u10 (kernels/cpu/vec_sleef_log.h) against its 8-lane twin in
// softmax_torch_row.h (checked against Debian's libsleef, torch's): the same bits on normal,
// subnormal and special inputs. And torch.log through the op: torch 1.13's bits, whose kernel maps
// every element (tail and strided ones included) through Sleef_logf8_u10.
#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/softmax_torch_row.h"
#include "kernels/cpu/vec_sleef_log.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/fnv1a.h"

namespace fabric::cpu {
namespace {

using testing::fnv1a;

TEST(VecSleefLog, SixteenLanesGiveTheEightLaneTwinsBits) {
  std::vector<float> in;
  for (uint32_t b = 0; b < 0x80000000u; b += 65537) in.push_back(std::bit_cast<float>(b));
  for (uint32_t b = 0x80000000u; b < 0xFFFFFFFFu - 65537u * 64; b += 65537u * 64)
    in.push_back(std::bit_cast<float>(b));  // negatives and NaNs: NaN
  for (float v : {0.0f, -0.0f, 1.0f, std::numeric_limits<float>::infinity(),
                  -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::min(),
                  std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::max()})
    in.push_back(v);
  while (in.size() % 16 != 0) in.push_back(2.0f);
  size_t differ = 0;
  for (size_t i = 0; i < in.size(); i += 16) {
    alignas(64) float wide[16], narrow[16];
    _mm512_storeu_ps(wide, vec::logf_u10_ps(_mm512_loadu_ps(in.data() + i)));
    _mm256_storeu_ps(narrow, torch_softmax::logf_u10(_mm256_loadu_ps(in.data() + i)));
    _mm256_storeu_ps(narrow + 8, torch_softmax::logf_u10(_mm256_loadu_ps(in.data() + i + 8)));
    for (int k = 0; k < 16; ++k)
      if (std::bit_cast<uint32_t>(wide[k]) != std::bit_cast<uint32_t>(narrow[k])) ++differ;
  }
  EXPECT_EQ(differ, 0u) << "of " << in.size();
}

// torch 1.13, one thread:
//   bits = torch.arange(0, 0x7f800000, 4099, dtype=torch.int64).to(torch.int32)
//   x = torch.cat([bits.view(torch.float32),
//                  torch.tensor([0.0, -0.0, inf, -1.0, nan, 1.0, 2.0, 0.5])])  # 521866 values
//   FNV-1a of torch.log(x)'s bytes: 0x82cd7986af1a96ca; of torch.log(x[:-8][::3]):
//   0x81ca5328b465f847; of torch.log(x[:-8].to(torch.bfloat16)): 0xe5fe1b2a37da2978 (without
//   the NaNs: torch's vectorised float -> bfloat16 cast writes NaN as 0xFFFF, fabric as 0x7FC0)
TEST(VecSleefLog, LogGivesTorchsBits) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> values;
  for (uint32_t b = 0; b < 0x7f800000u; b += 4099) values.push_back(std::bit_cast<float>(b));
  for (float v :
       {0.0f, -0.0f, inf, -1.0f, std::numeric_limits<float>::quiet_NaN(), 1.0f, 2.0f, 0.5f})
    values.push_back(v);
  const auto n = static_cast<int64_t>(values.size());
  const Tensor x = from_vector<float>(values, {n});
  ASSERT_EQ(x.numel(), 521866);
  EXPECT_EQ(fnv1a(log(x)), 0x82cd7986af1a96caull);
  EXPECT_EQ(fnv1a(log(x.slice(0, 0, n - 8, 3))), 0x81ca5328b465f847ull);
  EXPECT_EQ(fnv1a(log(x.narrow(0, 0, n - 8).to(DType::bfloat16))), 0xe5fe1b2a37da2978ull);
}

}  // namespace
}  // namespace fabric::cpu
