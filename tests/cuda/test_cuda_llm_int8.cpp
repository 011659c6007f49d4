// LLM.int8 on CUDA against the CPU: the row- and column-wise quantizers, the dequantizers and the
// mixed int8/16-bit linear forward give the CPU's bits (the same fp32 operations on both devices,
// and an exact int32 GEMM), outliers included; Linear8bitLt's forward and backward, frozen and
// trainable, agree with the CPU's within the float32 GEMMs' summation order.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "autograd/grad_mode.h"
#include "precision/linear_8bit.h"
#include "precision/quant_int8.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/cuda/cuda_test_util.h"

namespace fabric {
namespace {

using precision::int8_colwise_quant;
using precision::int8_linear_forward;
using precision::int8_matmul;
using precision::int8_mm_dequant;
using precision::int8_vectorwise_dequant;
using precision::int8_vectorwise_quant;
using test::kGpu;

// Awkward values with a few columns of large activations (LLM.int8's outliers) and one
// all-zero row.
Tensor activations(int64_t rows, int64_t K, DType dt, uint64_t seed) {
  std::vector<float> v = test::awkward_floats(static_cast<size_t>(rows * K), seed);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 1; k < K; k += 97) v[r * K + k] = (r % 3 ? 9.0f : -20.0f) + 0.01f * r;
  }
  if (rows > 2) {
    for (int64_t k = 0; k < K; ++k) v[K + k] = 0.0f;
  }
  return from_vector<float>(v, {rows, K}).to(dt);
}

struct Shape2 {
  int64_t rows, K;
};
const std::vector<Shape2> kShapes = {{1, 1}, {1, 300}, {5, 33}, {67, 129}, {1030, 768}, {70000, 3}};

TEST(CudaLlmInt8, QuantizersGiveTheCpuBits) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : {DType::float16, DType::bfloat16, DType::float32}) {
    for (const Shape2& s : kShapes) {
      for (double thr : {0.0, 6.0}) {
        const std::string what = std::string(dtype_name(dt)) + " (" + std::to_string(s.rows) +
                                 ", " + std::to_string(s.K) + ") threshold " + std::to_string(thr);
        const Tensor A = activations(s.rows, s.K, dt, static_cast<uint64_t>(s.rows + s.K));
        const auto rc = int8_vectorwise_quant(A, thr);
        const auto rg = int8_vectorwise_quant(A.to(kGpu), thr);
        EXPECT_EQ(rg.CA.device(), kGpu) << what;
        test::expect_matches(rc.CA, rg.CA, {}, what + " CA");
        test::expect_matches(rc.SCA, rg.SCA, {}, what + " SCA");
        EXPECT_EQ(rc.outlier_cols, rg.outlier_cols) << what;
        const auto cc = int8_colwise_quant(A, thr);
        const auto cg = int8_colwise_quant(A.to(kGpu), thr);
        test::expect_matches(cc.CAt, cg.CAt, {}, what + " CAt");
        test::expect_matches(cc.SCAt, cg.SCAt, {}, what + " SCAt");
        EXPECT_EQ(cc.outlier_cols, cg.outlier_cols) << what;
        const Tensor back = int8_vectorwise_dequant(rg.CA, rg.SCA);
        EXPECT_EQ(back.device(), kGpu) << what;
        test::expect_matches(int8_vectorwise_dequant(rc.CA, rc.SCA), back, {}, what + " dequant");
      }
    }
  }
  // A non-contiguous input is quantized in row-major order.
  const Tensor A = activations(40, 130, DType::float16, 3);
  test::expect_matches(int8_vectorwise_quant(A.t(), 6.0).CA,
                       int8_vectorwise_quant(A.to(kGpu).t(), 6.0).CA, {}, "transposed");
}

TEST(CudaLlmInt8, MatmulDequantGivesTheCpuBits) {
  FABRIC_REQUIRE_CUDA();
  const Tensor A = activations(77, 200, DType::float16, 5);
  const Tensor W = activations(45, 200, DType::float16, 6);
  const auto a = int8_vectorwise_quant(A), w = int8_vectorwise_quant(W);
  const Tensor C = int8_matmul(a.CA, w.CA);
  for (DType dt : {DType::float16, DType::bfloat16, DType::float32}) {
    test::expect_matches(int8_mm_dequant(C, a.SCA, w.SCA, dt),
                         int8_mm_dequant(C.to(kGpu), a.SCA.to(kGpu), w.SCA.to(kGpu), dt), {},
                         "mm_dequant to " + std::string(dtype_name(dt)));
  }
  EXPECT_THROW(int8_mm_dequant(C.to(kGpu), a.SCA, w.SCA.to(kGpu), DType::float16), DeviceError);
}

TEST(CudaLlmInt8, LinearForwardGivesTheCpuBits) {
  FABRIC_REQUIRE_CUDA();
  const int64_t N = 70, K = 300;
  const Tensor W = test::uniform_tensor({N, K}, DType::float16, -0.5f, 0.5f, 7);
  const auto wq = int8_vectorwise_quant(W);
  const Tensor bias = test::uniform_tensor({N}, DType::float16, -1.0f, 1.0f, 8);
  for (DType dt : {DType::float16, DType::bfloat16, DType::float32}) {
    const Tensor X = activations(2 * 33, K, dt, 9).reshape({2, 33, K});
    for (bool with_bias : {false, true}) {
      for (bool trainable : {false, true}) {
        for (double thr : {0.0, 6.0}) {
          const std::string what = std::string(dtype_name(dt)) + (with_bias ? " bias" : "") +
                                   (trainable ? " fp16 weight" : "") + " threshold " +
                                   std::to_string(thr);
          const Tensor want = int8_linear_forward(X, wq.CA, wq.SCA, with_bias ? bias : Tensor(),
                                                  thr, trainable ? W : Tensor());
          const Tensor got = int8_linear_forward(X.to(kGpu), wq.CA.to(kGpu), wq.SCA.to(kGpu),
                                                 with_bias ? bias.to(kGpu) : Tensor(), thr,
                                                 trainable ? W.to(kGpu) : Tensor());
          EXPECT_EQ(got.device(), kGpu) << what;
          test::expect_matches(want, got, {}, what);
        }
      }
    }
  }
}

// The layer on both devices from the same weights: forward bits equal; gradients through the
// float32 GEMMs (dX, dW's outlier columns) within their summation order.
void expect_layer_parity(bool trainable) {
  manual_seed(21);
  nn::Linear base({.in_features = 256, .out_features = 96, .bias = true});
  auto cpu = precision::Linear8bitLt::from_linear(base, trainable, 6.0);
  auto gpu = precision::Linear8bitLt::from_linear(base, trainable, 6.0);
  gpu->to(kGpu);
  const Tensor x = activations(48, 256, DType::float16, 11).reshape({4, 12, 256});
  Tensor xc = x.clone(), xg = x.to(kGpu);
  xc.set_requires_grad(true);
  xg.set_requires_grad(true);
  const Tensor yc = cpu->forward(xc), yg = gpu->forward(xg);
  const std::string what = trainable ? "int8-training" : "int8";
  test::expect_matches(yc, yg, {}, what + " forward");
  const Tensor dy = test::uniform_tensor(yc.sizes(), DType::float16, -1.0f, 1.0f, 12);
  sum(mul(yc.to(DType::float32), dy.to(DType::float32))).backward();
  sum(mul(yg.to(DType::float32), dy.to(kGpu).to(DType::float32))).backward();
  test::expect_matches(xc.grad(), xg.grad(), {.atol = 1e-3, .rtol = 2e-3}, what + " dX");
  test::expect_matches(cpu->bias.grad(), gpu->bias.grad(), {.atol = 1e-4, .rtol = 1e-4},
                       what + " dbias");
  if (trainable) {
    test::expect_matches(cpu->weight.grad(), gpu->weight.grad(), {.atol = 1e-3, .rtol = 2e-3},
                         what + " dW");
  }
}

TEST(CudaLlmInt8, Linear8bitLtMatchesTheCpu) {
  FABRIC_REQUIRE_CUDA();
  expect_layer_parity(/*trainable=*/false);
  expect_layer_parity(/*trainable=*/true);
}

}  // namespace
}  // namespace fabric
