// The double quantization's offset is bitsandbytes' absmax.mean(): torch's CPU float32 mean, bit
// for bit (torch_mean_rows.h, from tools/fixtures/make_torch_mean_rows.py), where a mean summed
// in double (what quantize_4bit took before) differs in the last bit for some lengths; and the
// offset quantize_4bit records is that mean (the helper's examples: 3 and 10 blocks).
#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <vector>

#include "precision/quant_4bit.h"
#include "precision/torch_cpu_mean.h"
#include "tensor/factory.h"
#include "tests/precision/torch_mean_rows.h"

namespace fabric::precision {
namespace {

TEST(TorchCpuMean, MatchesTorch113BitForBit) {
  int differs_from_double = 0;
  for (const TorchMeanRow& row : kTorchMeanRows) {
    std::vector<float> x(static_cast<size_t>(row.n));
    double sum = 0.0;
    for (int64_t i = 0; i < row.n; ++i) {
      x[size_t(i)] = 1.0f / static_cast<float>(i % 97 + 3) + static_cast<float>(i % 5);
      sum += x[size_t(i)];
    }
    const float mean = torch_cpu_mean_float32(x.data(), row.n);
    EXPECT_EQ(std::bit_cast<uint32_t>(mean), row.mean_bits) << "n = " << row.n;
    if (std::bit_cast<uint32_t>(static_cast<float>(sum / double(row.n))) != row.mean_bits)
      ++differs_from_double;
  }
  EXPECT_GT(differs_from_double, 0) << "the rows do not tell the two sums apart";
  EXPECT_EQ(torch_cpu_mean_float32(nullptr, 0), 0.0f);
}

// Blocks of 64 whose absmax are the given values (each block's peak, the rest small).
Tensor blocks_with_absmax(const std::vector<float>& peaks) {
  std::vector<float> x(peaks.size() * 64, 0.001f);
  for (size_t b = 0; b < peaks.size(); ++b) x[b * 64 + 7] = -peaks[b];
  return from_vector(x, {int64_t(x.size())});
}

TEST(TorchCpuMean, DoubleQuantizationCentresOnTorchsMean) {
  // torch.mean(torch.tensor([0.126, 1.856, 1.56])) and of ten 0.3s, as printed by torch 1.13.
  EXPECT_EQ(quantize_4bit(blocks_with_absmax({0.126f, 1.856f, 1.56f}), 64, "nf4", true)
                .state.nested_offset,
            1.1806665658950806f);
  EXPECT_EQ(quantize_4bit(blocks_with_absmax(std::vector<float>(10, 0.3f)), 64, "nf4", true)
                .state.nested_offset,
            0.29999998211860657f);
}

}  // namespace
}  // namespace fabric::precision
