// The loss scaler's multi-tensor path (amp_unscale_multi_stub: CUDA unscales many gradients a
// launch) checked on the CPU, where no such kernel is registered: a recording stub is put in the
// CPU slot for the test. amp_unscale_and_check_all_ must hand it the contiguous gradients of each
// dtype together, leave non-contiguous and empty ones to the per-tensor kernel, and give the same
// bits and the same verdict as the per-tensor path.
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "tensor/amp_kernels.h"
#include "tensor/factory.h"
#include "tensor/random.h"

namespace fabric {
namespace {

struct Call {
  DType dtype;
  size_t tensors;
};
std::vector<Call> g_calls;

void recording_unscale_multi(DType dt, const std::vector<std::pair<void*, int64_t>>& tensors,
                             float inv_scale, int32_t* found) {
  g_calls.push_back({dt, tensors.size()});
  amp_unscale_each(amp_unscale_stub(Device::cpu()), dt, tensors, inv_scale, found);
}

// The recording stub in the CPU slot for the test's lifetime.
class UnscaleMultiOnTheCpu {
 public:
  UnscaleMultiOnTheCpu() {
    g_calls.clear();
    amp_unscale_multi_stub.cpu = &recording_unscale_multi;
  }
  ~UnscaleMultiOnTheCpu() { amp_unscale_multi_stub.cpu = nullptr; }
  UnscaleMultiOnTheCpu(const UnscaleMultiOnTheCpu&) = delete;
  UnscaleMultiOnTheCpu& operator=(const UnscaleMultiOnTheCpu&) = delete;
};

Tensor gaussian(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return randn(shape, {}, &gen).mul_(1000.0);
}

// float32 (3, 5) and (7), bfloat16 (6), float32 non-contiguous (4, 3)ᵀ, empty float32, float32
// (9) with an infinity when `with_inf`.
std::vector<Tensor> gradients(bool with_inf) {
  Tensor last = gaussian({9}, 6);
  if (with_inf) last.data<float>()[4] = std::numeric_limits<float>::infinity();
  return {gaussian({3, 5}, 1),     gaussian({7}, 2), gaussian({6}, 3).to(DType::bfloat16),
          gaussian({4, 3}, 4).t(), zeros({0}),       last};
}

void expect_same_bits(const std::vector<Tensor>& want, const std::vector<Tensor>& got,
                      const std::string& what) {
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(want[i].contiguous().to_vector<double>(), got[i].contiguous().to_vector<double>())
        << what << ": tensor " << i;
  }
}

TEST(AmpUnscaleMulti, ContiguousGradientsOfADTypeGoTogetherWithTheSameBitsAndVerdict) {
  for (const bool with_inf : {false, true}) {
    for (const float inv_scale : {1.0f / 65536.0f, 1.0f}) {
      const std::string what = std::string(with_inf ? "with inf" : "finite") + ", inv_scale " +
                               std::to_string(inv_scale);
      std::vector<Tensor> plain = gradients(with_inf), batched = gradients(with_inf);
      const auto want = amp_unscale_and_check_all_(plain, inv_scale);
      UnscaleMultiOnTheCpu stub;
      const auto got = amp_unscale_and_check_all_(batched, inv_scale);
      ASSERT_EQ(want.size(), 1u) << what;
      ASSERT_EQ(got.size(), 1u) << what;
      EXPECT_EQ(got[0].second, with_inf) << what;
      EXPECT_EQ(want[0].second, with_inf) << what;
      expect_same_bits(plain, batched, what);
      // [float32 (3, 5), (7), (9)], [bfloat16 (6)]; the transposed and the empty one not batched.
      ASSERT_EQ(g_calls.size(), 2u) << what;
      EXPECT_EQ(g_calls[0].dtype, DType::float32) << what;
      EXPECT_EQ(g_calls[0].tensors, 3u) << what;
      EXPECT_EQ(g_calls[1].dtype, DType::bfloat16) << what;
      EXPECT_EQ(g_calls[1].tensors, 1u) << what;
    }
  }
}

// A gradient listed twice (or views sharing memory) must not go into one launch, whose blocks
// would unscale the shared elements concurrently: the second listing starts a new launch, and
// every element is unscaled once per listing, as by the per-tensor kernel.
TEST(AmpUnscaleMulti, TensorsSharingMemoryGoInSeparateLaunches) {
  const auto lists = [] {
    Tensor a = full({8}, 4.0), b = full({5}, 4.0), buf = full({12}, 4.0);
    return std::vector<Tensor>{a, b, a, buf.narrow(0, 0, 7), buf.narrow(0, 5, 7)};
  };
  std::vector<Tensor> plain = lists(), batched = lists();
  amp_unscale_and_check_all_(plain, 0.5f);
  UnscaleMultiOnTheCpu stub;
  amp_unscale_and_check_all_(batched, 0.5f);
  expect_same_bits(plain, batched, "shared memory");
  EXPECT_EQ(batched[0].to_vector<double>(), std::vector<double>(8, 1.0)) << "a listed twice";
  // [a, b], [a, buf[0:7]], [buf[5:12]]
  ASSERT_EQ(g_calls.size(), 3u);
  EXPECT_EQ(g_calls[0].tensors, 2u);
  EXPECT_EQ(g_calls[1].tensors, 2u);
  EXPECT_EQ(g_calls[2].tensors, 1u);
}

}  // namespace
}  // namespace fabric
