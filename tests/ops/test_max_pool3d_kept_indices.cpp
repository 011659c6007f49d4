// max_pool3d keeps its forward's argmax positions for the backward (max_pool3d_saved.h), as
// torch's max_pool3d_with_indices: the backward scatters grad to them into one buffer of x's size.
// The old backward found them again from x (a second forward) and ran scatter_add on a fresh
// zeros tensor; the old forward also wrote int64 positions it then dropped, with or without a
// backward to come. Values, ties, NaNs and gradients: OpHarness.Pooling3d and Pooling3dTorch.*.
#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "tensor/allocator.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace fabric {
namespace {

struct KeptIndicesCase {
  const char* name;
  bool requires_grad;
  // The scratch the measured step may allocate, in bytes of x (the output is x's 1/8 here).
  double max_scratch_of_x;
  std::function<void(const Tensor& x)> step;
};

std::vector<KeptIndicesCase> kept_indices_cases() {
  return {
      // Only the (1/8-sized) output: no int64 positions, which nothing would read.
      {"forward_without_grad", false, 0.2,
       [](const Tensor& x) {
         max_pool3d(x, {2, 2, 2});
       }},
      {"forward_under_no_grad", true, 0.2,
       [](const Tensor& x) {
         NoGradGuard no_grad;
         max_pool3d(x, {2, 2, 2});
       }},
      // Output, kept positions, ones and x's gradient: one buffer of x's size, no second scatter.
      {"forward_and_backward", true, 1.75,
       [](const Tensor& x) {
         sum(max_pool3d(x, {2, 2, 2})).backward();
       }},
  };
}

TEST(MaxPool3dKeptIndices, NoPositionsWithoutGradAndNoSecondPassInBackward) {
  manual_seed(0);
  for (const KeptIndicesCase& c : kept_indices_cases()) {
    SCOPED_TRACE(c.name);
    const Tensor x = randn({2, 4, 8, 16, 16}).set_requires_grad(c.requires_grad);
    const double x_bytes = static_cast<double>(x.numel() * 4);
    cpu_allocator().reset_peak();
    const int64_t before = cpu_allocator().stats().allocated_bytes;
    c.step(x);
    const int64_t scratch = cpu_allocator().stats().peak_allocated_bytes - before;
    EXPECT_LT(scratch, c.max_scratch_of_x * x_bytes) << "bytes allocated beyond the input";
  }
}

}  // namespace
}  // namespace fabric
