// cuBLASLt's GEMM epilogues on CUDA (label `cuda`): gelu_mlp's GELU for 16-bit dtypes (our GELU
// kernels after the plain GEMM for float32/float64 and for widths cuBLASLt's aux cannot take), its
// output and all five gradients against the CPU's float64 composition of the same values; and a
// linear layer's bias gradient from its weight-gradient GEMM.
#include <gtest/gtest.h>

// CUDA builds only (a CPU-only build has no CUDA headers).
#ifdef FABRIC_WITH_CUDA

#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm_cublaslt.h"
#include "kernels/cuda/speed_switches.h"
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

// The GELU epilogues and the fallback give the same values, so only cuBLASLt's own counts show
// that the fused kernels run: a bfloat16 MLP of H = 128 on sm_80 or newer takes GELU_AUX_BIAS
// forward and DGELU and BGRADB backward (declined, the op still works, but the speed the epilogues
// are for is gone; FABRIC_CUDA_GEMM_EPILOGUES=0 turns them off on purpose).
TEST(CudaGeluMlp, Bfloat16EpiloguesRunInCublasLt) {
  FABRIC_REQUIRE_CUDA();
  if (!cuda::gemm_epilogues_enabled()) GTEST_SKIP() << "FABRIC_CUDA_GEMM_EPILOGUES=0";
  if (cuda::compute_capability(0) < 80) GTEST_SKIP() << "the epilogues are asked for on sm_80+";
  const std::vector<Tensor> in = inputs(32, 128, 61);
  const Tensor upstream = test::uniform_tensor({2, 16, 32}, DType::float64, -1, 1, 69);
  const cuda::GemmPlanStats before = cuda::gemm_plan_stats();
  run(in, upstream, kGpu, DType::bfloat16, false);
  const cuda::GemmPlanStats after = cuda::gemm_plan_stats();
  // Forward: c_fc with GELU_AUX_BIAS (c_proj has only a bias). Backward: c_proj's weight gradient
  // with BGRADB, c_fc's input gradient with DGELU, c_fc's weight gradient with BGRADB.
  EXPECT_GE(after.fused_epilogues - before.fused_epilogues, 4u)
      << "declined: " << after.declined_epilogues - before.declined_epilogues;
  EXPECT_EQ(after.declined_epilogues, before.declined_epilogues);
}

// A linear layer's backward on CUDA: for bf16/f16 its bias gradient comes from the epilogue of the
// weight-gradient GEMM (cuBLASLt's BGRADB); every gradient against the CPU's float64 values.
TEST(CudaLinearGrads, BiasGradientFromTheWeightGemmMatchesTheCpu) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : {DType::bfloat16, DType::float16, DType::float32}) {
    for (int64_t out : {96, 36}) {  // 36: a bias gradient of 72 bytes in 16 bits
      const Tensor x = test::uniform_tensor({4, 50, 64}, DType::float64, -2, 2, 51);
      const Tensor w = test::uniform_tensor({out, 64}, DType::float64, -0.3f, 0.3f, 52);
      const Tensor b = test::uniform_tensor({out}, DType::float64, -0.5f, 0.5f, 53);
      const Tensor up = test::uniform_tensor({4, 50, out}, DType::float64, -1, 1, 54);
      const auto grads = [&](Device device, DType t, const std::vector<Tensor>& values) {
        std::vector<Tensor> in;
        for (const Tensor& v : values) in.push_back(v.to(t).to(device).set_requires_grad(true));
        sum(mul(linear(in[0], in[1], in[2]), up.to(t).to(device))).backward();
        std::vector<Tensor> g;
        for (const Tensor& v : in) g.push_back(v.grad());
        return g;
      };
      std::vector<Tensor> rounded;
      for (const Tensor& v : {x, w, b}) rounded.push_back(v.to(dt).to(DType::float64));
      const std::vector<Tensor> want = grads(Device::cpu(), DType::float64, rounded);
      const std::vector<Tensor> got = grads(kGpu, dt, {x, w, b});
      // Sums over 200 rows of rounded products.
      const test::Tolerance tol = test::rounding_tolerance(dt, 16, 1e-4);
      const char* names[] = {"x", "weight", "bias"};
      for (size_t i = 0; i < 3; ++i)
        test::expect_matches(want[i].to(dt), got[i], tol,
                             std::string(dtype_name(dt)) + " out=" + std::to_string(out) +
                                 ": gradient of " + names[i]);
    }
  }
}

}  // namespace
}  // namespace fabric

#endif  // FABRIC_WITH_CUDA
