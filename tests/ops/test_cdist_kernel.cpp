// cdist outside torch's matmul case runs its own kernels (cdist_kernels.h): one autograd node
// (CdistBackward0, as torch), and neither the forward nor the backward builds the (P, R, M)
// tensor of every pairwise difference that the old composition, norm(x1[:, None] - x2[None]),
// allocated (1 GiB at 2048 x 2048 x 64 floats). Values and gradients are checked by the harness
// rows (op_cases_products.cpp) and the torch fixture (test_products_torch.cpp); its refused
// double backward by test_double_backward.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/allocator.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace fabric {
namespace {

struct CdistKernelCase {
  const char* name;
  double p;
};

std::vector<CdistKernelCase> cdist_kernel_cases() {
  return {{"p0", 0.0},          {"p0_5", 0.5},      {"p1", 1.0},
          {"p2_few_rows", 2.0},  // at most 25 rows: torch's _cdist_forward, not the matmul
          {"p3", 3.0},          {"p_inf", INFINITY}};
}

TEST(CdistKernel, OneNodeAndNoPairwiseDifferenceTensor) {
  constexpr int64_t kRows1 = 24, kRows2 = 20, kFeatures = 512;
  constexpr int64_t kDiffBytes = kRows1 * kRows2 * kFeatures * 4;
  manual_seed(0);
  for (const CdistKernelCase& c : cdist_kernel_cases()) {
    SCOPED_TRACE(c.name);
    const Tensor x1 = randn({kRows1, kFeatures}).set_requires_grad(true);
    const Tensor x2 = randn({kRows2, kFeatures}).set_requires_grad(true);
    cpu_allocator().reset_peak();
    const int64_t before = cpu_allocator().stats().allocated_bytes;
    {
      const Tensor out = cdist(x1, x2, c.p);
      EXPECT_EQ(grad_fn_name(out), "CdistBackward0");
      sum(out).backward();
    }
    const int64_t scratch = cpu_allocator().stats().peak_allocated_bytes - before;
    EXPECT_LT(scratch, kDiffBytes / 4) << "bytes allocated beyond the inputs";
    EXPECT_TRUE(x1.grad().defined() && x2.grad().defined());
  }
}

}  // namespace
}  // namespace fabric
