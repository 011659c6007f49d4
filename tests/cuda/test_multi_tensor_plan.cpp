// The multi-tensor launch plans (kernels/cuda/multi_tensor_plan.h) checked on the host: every
// chunk of every non-empty tensor in exactly one block, in order, no launch over its limits, a
// tensor split across launches keeping its chunks, and GPT-2's 148 parameters in a few launches.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cuda/multi_tensor_plan.h"
#include "tensor/error.h"

namespace fabric {
namespace {

using cuda::MultiTensorLaunch;
using cuda::plan_multi_tensor;

void check_plan(const std::vector<int64_t>& sizes, int max_tensors, int max_blocks, int64_t chunk,
                const std::string& what) {
  const std::vector<MultiTensorLaunch> plan =
      plan_multi_tensor(sizes, max_tensors, max_blocks, chunk);
  std::vector<std::pair<int, int64_t>> seen;  // (tensor, chunk) in plan order
  for (const MultiTensorLaunch& l : plan) {
    EXPECT_FALSE(l.blocks.empty()) << what;
    EXPECT_LE(static_cast<int>(l.tensors.size()), max_tensors) << what;
    EXPECT_LE(static_cast<int>(l.blocks.size()), max_blocks) << what;
    for (const MultiTensorLaunch::Block& b : l.blocks) {
      ASSERT_GE(b.slot, 0) << what;
      ASSERT_LT(b.slot, static_cast<int>(l.tensors.size())) << what;
      seen.emplace_back(l.tensors[static_cast<size_t>(b.slot)], b.chunk);
    }
  }
  std::vector<std::pair<int, int64_t>> want;
  for (int t = 0; t < static_cast<int>(sizes.size()); ++t) {
    for (int64_t c = 0; c * chunk < sizes[t]; ++c) want.emplace_back(t, c);
  }
  EXPECT_EQ(seen, want) << what;
}

TEST(CudaMultiTensorPlan, EveryChunkOnceInOrderWithinTheLimits) {
  const std::vector<std::vector<int64_t>> lists = {{},
                                                   {0},
                                                   {1},
                                                   {0, 0, 5},
                                                   {10, 0, 3},
                                                   {100},
                                                   {99, 1, 1, 1, 1, 1, 1, 1, 1, 200},
                                                   {7, 8, 9, 10, 11, 12, 13},
                                                   {1000, 1, 1000, 1}};
  for (const auto& sizes : lists) {
    for (const int max_tensors : {1, 2, 3, 24}) {
      for (const int max_blocks : {1, 2, 5, 320}) {
        for (const int64_t chunk : {1, 4, 16, 65536}) {
          check_plan(sizes, max_tensors, max_blocks, chunk,
                     "list of " + std::to_string(sizes.size()) + ", " +
                         std::to_string(max_tensors) + " tensors, " + std::to_string(max_blocks) +
                         " blocks, chunk " + std::to_string(chunk));
        }
      }
    }
  }
}

TEST(CudaMultiTensorPlan, Gpt2ParametersInAFewLaunches) {
  // GPT-2 124M's 148 parameters (C 768, 12 layers, vocab 50304, T 1024) as the model lists them.
  const int64_t C = 768;
  std::vector<int64_t> sizes = {50304 * C, 1024 * C};
  for (int l = 0; l < 12; ++l) {
    for (const int64_t n : {C, C, 3 * C * C, 3 * C, C * C, C, C, C, 4 * C * C, 4 * C, 4 * C * C, C})
      sizes.push_back(n);
  }
  sizes.insert(sizes.end(), {C, C});
  ASSERT_EQ(sizes.size(), 148u);
  const auto plan = plan_multi_tensor(sizes, 24, 320, 65536);
  check_plan(sizes, 24, 320, 65536, "GPT-2");
  EXPECT_LE(plan.size(), 8u);  // 1,906 chunks of 65,536: at least 6 launches of 320 blocks
  EXPECT_GE(plan.size(), 6u);
}

TEST(CudaMultiTensorPlan, LimitsMustBePositive) {
  EXPECT_THROW(plan_multi_tensor({1}, 0, 1, 1), ValueError);
  EXPECT_THROW(plan_multi_tensor({1}, 1, 0, 1), ValueError);
  EXPECT_THROW(plan_multi_tensor({1}, 1, 1, 0), ValueError);
}

}  // namespace
}  // namespace fabric
