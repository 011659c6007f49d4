// nll_loss's fused backward on the GPU against the CPU's, bit for bit (both compute -grad, over
// the valid count rounded to the input's dtype for "mean", with correctly rounded division), over
// the reductions, ignore_index, every target ignored, unbatched and (N, C, d...) inputs, the
// float dtypes and int64/int32 targets; and its out-of-range target error, which names the CPU's
// message at the next synchronisation.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_loss.h"
#include "tests/common/expect_error.h"
#include "tests/cuda/cuda_test_util.h"

namespace fabric {
namespace {

using test::kGpu;

struct Layout {
  Shape input, target;
  int ignore_every;  // every k-th target (from the first) is ignore_index; 1: all
};

Tensor targets(const Layout& l, int64_t ignore_index, DType dt, uint64_t seed) {
  const int64_t classes = l.input.size() == 1 ? l.input[0] : l.input[1];
  Tensor t = test::random_ints(l.target, DType::int64, 0, classes - 1, seed);
  int64_t* p = t.data<int64_t>();
  if (l.ignore_every > 0)
    for (int64_t i = 0; i < t.numel(); i += l.ignore_every) p[i] = ignore_index;
  return t.reshape(l.target).to(dt);
}

bool same_bits(const Tensor& a, const Tensor& b) {
  const Tensor ac = a.contiguous(), bc = b.contiguous();
  return ac.dtype() == bc.dtype() && ac.sizes() == bc.sizes() &&
         std::memcmp(ac.data_ptr(), bc.data_ptr(), static_cast<size_t>(ac.nbytes())) == 0;
}

TEST(CudaNllLossBackward, MatchesTheCpuBitForBit) {
  FABRIC_REQUIRE_CUDA();
  const std::vector<Layout> layouts = {
      {{7, 13}, {7}, 3},
      {{5}, {}, 0},
      {{4, 3}, {4}, 1},
      {{3, 5, 7}, {3, 7}, 4},
      {{2, 4, 3, 5}, {2, 3, 5}, 5},
      {{2049, 2}, {2049}, 0},
  };
  uint64_t seed = 1;
  for (DType dt : {DType::float32, DType::float16, DType::bfloat16, DType::float64})
    for (const Layout& l : layouts)
      for (DType tdt : {DType::int64, DType::int32})
        for (const char* red : {"none", "sum", "mean"}) {
          const std::string what = std::string(dtype_name(dt)) + " " + shape_str(l.input) + " " +
                                   std::string(dtype_name(tdt)) + " " + red;
          const Tensor x = test::uniform_tensor(l.input, dt, -3, 3, ++seed);
          const Tensor t = targets(l, -100, tdt, ++seed);
          const Tensor g =
              std::string(red) == "none"
                  ? test::uniform_tensor(l.target, dt, 0.1, 2, ++seed).reshape(l.target)
                  : full({}, 0.7, {.dtype = dt});
          const Tensor want = nll_loss_backward(g, x, t, -100, red);
          const Tensor got = nll_loss_backward(g.to(kGpu), x.to(kGpu), t.to(kGpu), -100, red);
          EXPECT_EQ(got.device(), kGpu) << what;
          EXPECT_TRUE(same_bits(want, got.to(Device::cpu()))) << what;
        }
}

TEST(CudaNllLossBackward, OutOfRangeTargetRaisesTheCpuErrorAtTheNextSynchronisation) {
  FABRIC_REQUIRE_CUDA();
  const Tensor x = test::uniform_tensor({4, 10}, DType::float32, -1, 1, 11);
  const Tensor one = full({}, 1.0);
  for (DType tdt : {DType::int64, DType::int32}) {
    const Tensor t = from_vector<int64_t>({3, 12, -100, -7}, {4}).to(tdt);
    const std::string cpu_msg = thrown<IndexError>([&] { nll_loss_backward(one, x, t); });
    EXPECT_CONTAINS(cpu_msg, "nll_loss_backward: target 12 is out of bounds");
    Tensor out;
    EXPECT_NO_THROW(out = nll_loss_backward(one.to(kGpu), x.to(kGpu), t.to(kGpu)));
    const std::string gpu_msg = thrown<IndexError>([&] { out.to(Device::cpu()); });
    EXPECT_EQ(gpu_msg.substr(0, cpu_msg.size()), cpu_msg) << dtype_name(tdt);
  }
}

}  // namespace
}  // namespace fabric
