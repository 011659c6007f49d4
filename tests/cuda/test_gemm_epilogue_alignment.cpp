// The rule that keeps under-aligned bias and aux pointers out of cuBLASLt's epilogues
// (kernels/cuda/gemm_cublaslt.h): plain host arithmetic, checked without a device. The GPU side
// (such a bias still matching the CPU) is CudaGemm.BiasViewsAtAnyAlignmentMatchTheCpu.
#include <gtest/gtest.h>

#include <cstdint>

#include "kernels/cuda/gemm_cublaslt.h"

namespace fabric {
namespace {

TEST(CudaGemmEpilogueRules, BiasAndAuxTakeTheFusedEpilogueOnlyWhen16ByteAligned) {
  alignas(256) static char buffer[512];
  using cuda::detail::epilogue_pointers_aligned;
  EXPECT_TRUE(epilogue_pointers_aligned(nullptr, nullptr));  // no bias, no aux
  EXPECT_TRUE(epilogue_pointers_aligned(buffer, nullptr));
  EXPECT_TRUE(epilogue_pointers_aligned(buffer + 16, buffer + 32));
  EXPECT_TRUE(epilogue_pointers_aligned(nullptr, buffer + 48));
  // A bf16 / f16 bias one element into its buffer, a float one, two, or a double one.
  for (int offset : {2, 4, 8}) {
    EXPECT_FALSE(epilogue_pointers_aligned(buffer + offset, nullptr)) << "bias at +" << offset;
    EXPECT_FALSE(epilogue_pointers_aligned(buffer, buffer + offset)) << "aux at +" << offset;
    EXPECT_FALSE(epilogue_pointers_aligned(nullptr, buffer + 16 + offset)) << "aux at +" << offset;
  }
}

}  // namespace
}  // namespace fabric
