// gelu_mlp on CUDA (label `cuda`): the GELU in cuBLASLt's GEMM epilogues for 16-bit dtypes, our
// GELU kernels after the plain GEMM for float32/float64 and for widths cuBLASLt's aux cannot take.
// Output and all five gradients against the CPU's float64 composition of the same values.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/cuda/cuda_test_util.h"

namespace fabric {
namespace {

using test::kGpu;

struct Result {
  Tensor out;
  std::vector<Tensor> grads;  // x, fc_weight, fc_bias, proj_weight, proj_bias
};

// gelu_mlp on copies of `inputs` on `device` in `dtype`, and the gradients of sum(out * upstream).
Result run(const std::vector<Tensor>& inputs, const Tensor& upstream, Device device, DType dtype,
           bool composed) {
  std::vector<Tensor> in;
  for (const Tensor& t : inputs) in.push_back(t.to(dtype).to(device).set_requires_grad(true));
  const Tensor out = composed ? linear(gelu(linear(in[0], in[1], in[2]), "tanh"), in[3], in[4])
                              : gelu_mlp(in[0], in[1], in[2], in[3], in[4]);
  sum(mul(out, upstream.to(dtype).to(device))).backward();
  Result r{out.detach(), {}};
  for (const Tensor& t : in) r.grads.push_back(t.grad());
  return r;
}

void expect_result(const Result& want, const Result& got, DType dtype, test::Tolerance tol,
                   const std::string& what) {
  const char* names[] = {"x", "fc_weight", "fc_bias", "proj_weight", "proj_bias"};
  test::expect_matches(want.out.to(dtype), got.out, tol, what + ": output");
  for (size_t i = 0; i < 5; ++i)
    test::expect_matches(want.grads[i].to(dtype), got.grads[i], tol,
                         what + ": gradient of " + names[i]);
}

std::vector<Tensor> inputs(int64_t C, int64_t H, uint64_t seed) {
  return {test::uniform_tensor({2, 16, C}, DType::float64, -2, 2, seed),
          test::uniform_tensor({H, C}, DType::float64, -0.3f, 0.3f, seed + 1),
          test::uniform_tensor({H}, DType::float64, -0.5f, 0.5f, seed + 2),
          test::uniform_tensor({C, H}, DType::float64, -0.3f, 0.3f, seed + 3),
          test::uniform_tensor({C}, DType::float64, -0.5f, 0.5f, seed + 4)};
}

TEST(CudaGeluMlp, MatchesTheCpuInEveryFloatDType) {
  FABRIC_REQUIRE_CUDA();
  // H = 128: cuBLASLt's epilogue for 16-bit dtypes; H = 36: an aux leading dim off its multiple
  // of 8, so the product and then our GELU kernels.
  for (int64_t H : {128, 36}) {
    const std::vector<Tensor> in = inputs(32, H, 21);
    const Tensor upstream = test::uniform_tensor({2, 16, 32}, DType::float64, -1, 1, 29);
    for (DType dt : {DType::float64, DType::float32, DType::bfloat16, DType::float16}) {
      // The reference: the composition in float64 on the CPU, of the values rounded to dt.
      std::vector<Tensor> rounded;
      for (const Tensor& t : in) rounded.push_back(t.to(dt).to(DType::float64));
      const Result want = run(rounded, upstream.to(dt), Device::cpu(), DType::float64, true);
      const Result got = run(in, upstream, kGpu, dt, false);
      // Sums over H = 128 products of rounded inputs, twice; cuBLASLt's tanh may be the
      // hardware approximation (about 2^-11) for 16-bit outputs.
      const test::Tolerance tol = test::rounding_tolerance(dt, 8, 1e-4);
      expect_result(want, got, dt, {tol.atol * 2, tol.rtol * 2},
                    std::string(dtype_name(dt)) + " H=" + std::to_string(H));
    }
  }
}

TEST(CudaGeluMlp, Float32IsTheCompositionBitForBit) {
  FABRIC_REQUIRE_CUDA();
  // float32 keeps our exact GELU (the epilogue's tanh may be approximate): the fused op and the
  // three ops on the GPU give the same bits.
  const std::vector<Tensor> in = inputs(64, 256, 41);
  const Tensor upstream = test::uniform_tensor({2, 16, 64}, DType::float64, -1, 1, 49);
  const Result fused = run(in, upstream, kGpu, DType::float32, false);
  const Result composed = run(in, upstream, kGpu, DType::float32, true);
  expect_result(Result{composed.out.to(Device::cpu()),
                       [&] {
                         std::vector<Tensor> g;
                         for (const Tensor& t : composed.grads) g.push_back(t.to(Device::cpu()));
                         return g;
                       }()},
                fused, DType::float32, {}, "float32");
}

}  // namespace
}  // namespace fabric
