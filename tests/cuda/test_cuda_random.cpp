// CUDA random fills and dropout against the CPU for the same generator state: rand/randn/
// randint/uniform_/normal_ and the dropout mask are the same numbers on both devices (bit for bit;
// float64 normals within a few ulp, as CUDA's log/sin/cos are not glibc's), the generator
// advances alike, and layers initialised or dropout drawn on the GPU equal the CPU's.
#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "nn/linear.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_random.h"
#include "tensor/random.h"
#include "tests/cuda/cuda_test_util.h"

namespace fabric {
namespace {

using test::kGpu;

constexpr DType kFloatTypes[] = {DType::float32, DType::float16, DType::bfloat16, DType::float64};
// Odd sizes: partial Philox blocks, one element, several CUDA blocks.
constexpr int64_t kSizes[] = {1, 3, 5, 4097, 1 << 18};

std::string name_of(const std::string& op, DType t, int64_t n) {
  return op + " " + std::string(dtype_name(t)) + " n=" + std::to_string(n);
}

// Bit-exact, but float64 normals: CUDA's log/sin/cos are within 1-2 ulp of glibc's, and mean +
// std*z can cancel, so they get a small absolute floor (any real error would be O(std)).
test::Tolerance exact_or_f64_normal(DType t, bool normal) {
  if (normal && t == DType::float64) return {1e-13, 1e-13};
  return {};
}

TEST(CudaRandom, UniformAndNormalMatchTheCpu) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : kFloatTypes) {
    for (int64_t n : kSizes) {
      for (uint64_t seed : {uint64_t{0}, uint64_t{42}, uint64_t{0xDEADBEEFCAFEull}}) {
        Generator gc(seed), gg(seed);
        const Tensor a = rand({n}, {.dtype = dt}, &gc);
        const Tensor b = rand({n}, {.dtype = dt, .device = kGpu}, &gg);
        EXPECT_EQ(b.device(), kGpu);
        test::expect_matches(a, b, {}, name_of("rand", dt, n));
        // A second draw continues from the advanced counter on both.
        const Tensor c = randn({n}, {.dtype = dt}, &gc);
        const Tensor d = randn({n}, {.dtype = dt, .device = kGpu}, &gg);
        test::expect_matches(c, d, exact_or_f64_normal(dt, true), name_of("randn", dt, n));
        EXPECT_EQ(gc.state(), gg.state()) << name_of("generator state", dt, n);
      }
    }
    // Ranges and moments other than the defaults, and a counter offset past 2^32 blocks.
    Generator gc(7), gg(7);
    gc.set_offset((uint64_t{1} << 32) - 3);
    gg.set_offset((uint64_t{1} << 32) - 3);
    Tensor a = empty({1000, 33}, {.dtype = dt});
    Tensor b = empty({1000, 33}, {.dtype = dt, .device = kGpu});
    uniform_(a, -0.37, 2.9, &gc);
    uniform_(b, -0.37, 2.9, &gg);
    test::expect_matches(a, b, {}, name_of("uniform_(-0.37, 2.9)", dt, a.numel()));
    normal_(a, 0.3, 0.02, &gc);
    normal_(b, 0.3, 0.02, &gg);
    test::expect_matches(a, b, exact_or_f64_normal(dt, true),
                         name_of("normal_(0.3, 0.02)", dt, a.numel()));
    // A non-contiguous target draws in row-major order through a temporary.
    Tensor at = empty({40, 30}, {.dtype = dt}).t();
    Tensor bt = empty({40, 30}, {.dtype = dt, .device = kGpu}).t();
    normal_(at, -1.5, 3, &gc);
    normal_(bt, -1.5, 3, &gg);
    test::expect_matches(at, bt, exact_or_f64_normal(dt, true),
                         name_of("normal_ transposed", dt, 1200));
  }
}

TEST(CudaRandom, RandintMatchesTheCpu) {
  FABRIC_REQUIRE_CUDA();
  struct Case {
    int64_t low, high;
    DType dt;
  };
  const std::vector<Case> cases = {
      {0, 10, DType::int64},
      {-5, 12, DType::int32},
      {-128, 128, DType::int8},
      {0, 256, DType::uint8},
      {0, 2, DType::bool_},
      {-1000, 1001, DType::float32},
      {-2048, 2049, DType::float16},
      {-256, 257, DType::bfloat16},
      {-(int64_t{1} << 40), (int64_t{1} << 41) + 7, DType::int64},  // range > 2^32
      {INT64_MIN, INT64_MAX, DType::int64},
      {-(int64_t{1} << 53), int64_t{1} << 53, DType::float64},
  };
  for (const Case& c : cases) {
    for (int64_t n : kSizes) {
      Generator gc(11), gg(11);
      const Tensor a = randint(c.low, c.high, {n}, {.dtype = c.dt}, &gc);
      const Tensor b = randint(c.low, c.high, {n}, {.dtype = c.dt, .device = kGpu}, &gg);
      test::expect_matches(
          a, b, {},
          name_of("randint [" + std::to_string(c.low) + ", " + std::to_string(c.high) + ")", c.dt,
                  n));
      EXPECT_EQ(gc.state(), gg.state());
    }
  }
}

TEST(CudaRandom, DropoutMaskAndOutputMatchTheCpu) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : kFloatTypes) {
    for (double p : {0.1, 0.5, 0.37, 0.9, 1.0}) {
      for (int64_t n : {int64_t{7}, int64_t{4096 * 3 + 1}}) {
        // Inputs with NaN/inf: a dropped inf gives NaN on both (a multiply, as in PyTorch).
        const Tensor x = test::awkward_tensor({n}, dt, 3);
        Generator gc(123), gg(123);
        const auto [oc, mc] = dropout_with_mask(x, p, true, &gc);
        const auto [og, mg] = dropout_with_mask(x.to(kGpu), p, true, &gg);
        const std::string what = name_of("dropout p=" + std::to_string(p), dt, n);
        test::expect_matches(mc, mg, {}, what + " mask");
        test::expect_matches(oc, og, {}, what + " output");
        EXPECT_EQ(gc.state(), gg.state()) << what;
      }
    }
  }
  // Non-contiguous input, and the gradient through autograd (grad * mask).
  for (DType dt : {DType::float32, DType::bfloat16}) {
    const Tensor x = test::uniform_tensor({64, 48}, dt, -2, 2, 5);
    const Tensor probe = test::uniform_tensor({48, 64}, DType::float32, -1, 1, 6);
    Tensor grads[2], outs[2];
    const Device devs[2] = {Device::cpu(), kGpu};
    for (int d = 0; d < 2; ++d) {
      Generator g(77);
      Tensor leaf = x.to(devs[d]).clone().detach();
      leaf.set_requires_grad(true);
      outs[d] = dropout(leaf.t(), 0.25, true, &g);
      sum(mul(outs[d], probe.to(devs[d]).to(dt))).backward();
      grads[d] = leaf.grad();
    }
    test::expect_matches(outs[0], outs[1], {}, name_of("dropout transposed", dt, x.numel()));
    ASSERT_TRUE(grads[1].defined());
    test::expect_matches(grads[0], grads[1], {}, name_of("dropout grad", dt, x.numel()));
  }
}

// A layer initialised on the GPU from a generator equals the same layer initialised on the CPU.
TEST(CudaRandom, LayerInitialisedOnTheGpuEqualsTheCpu) {
  FABRIC_REQUIRE_CUDA();
  nn::Linear cpu({.in_features = 300, .out_features = 129});
  nn::Linear gpu({.in_features = 300, .out_features = 129});
  gpu.to(kGpu);
  Generator gc(2024), gg(2024);
  cpu.reset_parameters(&gc);
  gpu.reset_parameters(&gg);
  EXPECT_EQ(gpu.weight.device(), kGpu);
  test::expect_matches(cpu.weight, gpu.weight, {}, "Linear weight");
  test::expect_matches(cpu.bias, gpu.bias, {}, "Linear bias");
  nn::Embedding ecpu({.num_embeddings = 81, .embedding_dim = 64});
  nn::Embedding egpu({.num_embeddings = 81, .embedding_dim = 64});
  egpu.to(kGpu);
  ecpu.reset_parameters(&gc);
  egpu.reset_parameters(&gg);
  test::expect_matches(ecpu.weight, egpu.weight, {}, "Embedding weight");
}

}  // namespace
}  // namespace fabric
