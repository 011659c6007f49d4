// The cuBLASLt GEMM against the CPU GEMM on the same inputs: shapes with odd sizes, the four
// transpose combinations, padded leading dims, batches (strided and broadcast), alpha/beta,
// bias in each allowed dtype, f32/f64/f16/bf16; the ops (matmul, mm, bmm, linear) on the GPU;
// the TF32 switch, the plan cache, the GELU epilogues and the FP8 GEMM.
// Tolerances, relative to the largest |C| of the CPU result: f64 1e-12; f32 out 2e-5 (both
// accumulate in fp32, in different orders); f16 out 2e-3 and bf16 out 1e-2 (a rounding boundary
// between two accumulation orders moves an element by one ulp of the output format).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "tensor/factory.h"
#include "tensor/linalg_kernels.h"
#include "tensor/ops.h"
#include "tests/cuda/cuda_test_util.h"

#ifdef FABRIC_WITH_CUDA
#include "kernels/cuda/gemm_cublaslt.h"
#include "kernels/cuda/gemm_fp8.h"
#include "precision/fp8_ops.h"
#endif

namespace fabric {
namespace {

using test::kGpu;

double tolerance_for(DType out) {
  switch (out) {
    case DType::float64:
      return 1e-12;
    case DType::float16:
      return 2e-3;
    case DType::bfloat16:
      return 1e-2;
    default:
      return 2e-5;
  }
}

double max_abs_finite(const Tensor& t) {
  double m = 0;
  for (double v : t.to(DType::float64).to_vector<double>())
    if (std::isfinite(v)) m = std::max(m, std::fabs(v));
  return m;
}

// Element-wise |got - want| <= rel * max|want| (NaN only where the CPU has NaN).
void expect_close(const Tensor& want, const Tensor& got, double rel, const std::string& what) {
  const double atol = rel * std::max(max_abs_finite(want), 1e-30);
  test::expect_matches(want, got, {atol, 0}, what);
}

Tensor random_flat(int64_t n, DType dt, uint64_t seed) {
  return test::uniform_tensor({std::max<int64_t>(n, 1)}, DType::float32, -1.f, 1.f, seed).to(dt);
}

Tensor nan_flat(int64_t n, DType dt) {
  return full({std::max<int64_t>(n, 1)}, std::numeric_limits<double>::quiet_NaN(), {.dtype = dt});
}

struct Case {
  int64_t batch, M, N, K;
  bool ta, tb;
  DType in, out;
  float alpha = 1.f, beta = 0.f;
  bool bias = false;
  DType bias_dtype = DType::float32;
  int64_t pad = 0;           // extra columns in every leading dim
  bool broadcast_b = false;  // stride_b = 0
  int64_t bias_offset = 0;   // elements before the bias in its buffer (a view, maybe unaligned)
};

std::string name(const Case& c) {
  return detail::cat("batch=", c.batch, " M=", c.M, " N=", c.N, " K=", c.K, c.ta ? " A^T" : "",
                     c.tb ? " B^T" : "", " ", dtype_name(c.in), "->", dtype_name(c.out),
                     " alpha=", c.alpha, " beta=", c.beta,
                     c.bias ? detail::cat(" bias ", dtype_name(c.bias_dtype)) : std::string(),
                     " pad=", c.pad, c.broadcast_b ? " B broadcast" : "",
                     c.bias_offset ? detail::cat(" bias at +", c.bias_offset) : std::string());
}

// Runs the case through the CPU and the CUDA gemm_stub on the same inputs and compares all of C
// (padding included: neither may touch it).
void check_case(const Case& c, uint64_t seed) {
  const int64_t rows_a = c.ta ? c.K : c.M, cols_a = c.ta ? c.M : c.K;
  const int64_t rows_b = c.tb ? c.N : c.K, cols_b = c.tb ? c.K : c.N;
  const int64_t lda = cols_a + c.pad, ldb = cols_b + c.pad, ldc = c.N + c.pad;
  const int64_t sa = rows_a * lda, sb = c.broadcast_b ? 0 : rows_b * ldb, sc = c.M * ldc;
  const Tensor a = random_flat(c.batch * sa, c.in, seed);
  const Tensor b = random_flat(c.broadcast_b ? rows_b * ldb : c.batch * sb, c.in, seed + 1);
  const Tensor c0 =
      c.beta == 0.f ? nan_flat(c.batch * sc, c.out) : random_flat(c.batch * sc, c.out, seed + 2);
  const Tensor bias = random_flat(c.N + c.bias_offset, c.bias_dtype, seed + 3);
  const int64_t bias_skip = c.bias_offset * itemsize(c.bias_dtype);  // bytes

  GemmDesc d;
  d.batch = c.batch;
  d.M = c.M;
  d.N = c.N;
  d.K = c.K;
  d.a_dtype = d.b_dtype = c.in;
  d.c_dtype = c.out;
  d.lda = lda;
  d.ldb = ldb;
  d.ldc = ldc;
  d.stride_a = sa;
  d.stride_b = sb;
  d.stride_c = sc;
  d.trans_a = c.ta;
  d.trans_b = c.tb;
  d.alpha = c.alpha;
  d.beta = c.beta;
  d.bias_dtype = c.bias_dtype;

  Tensor want = c0.clone();
  GemmDesc dc = d;
  dc.A = a.data_ptr();
  dc.B = b.data_ptr();
  dc.C = want.data_ptr();
  dc.bias = c.bias ? static_cast<const char*>(bias.data_ptr()) + bias_skip : nullptr;
  gemm_stub(Device::cpu())(dc);

  const Tensor ga = a.to(kGpu), gb = b.to(kGpu), gbias = bias.to(kGpu);
  Tensor got = c0.to(kGpu);
  GemmDesc dg = d;
  dg.A = ga.data_ptr();
  dg.B = gb.data_ptr();
  dg.C = got.data_ptr();
  dg.bias = c.bias ? static_cast<const char*>(gbias.data_ptr()) + bias_skip : nullptr;
  gemm_stub(kGpu)(dg);
  expect_close(want, got, tolerance_for(c.out), name(c));
}

constexpr DType kIn[] = {DType::float32, DType::float64, DType::bfloat16, DType::float16};

TEST(CudaGemm, ShapesTransposesAndDTypesMatchTheCpu) {
  FABRIC_REQUIRE_CUDA();
  const int64_t shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {33, 17, 65}, {128, 96, 64}, {255, 129, 257}};
  uint64_t seed = 1;
  for (DType in : kIn) {
    std::vector<DType> outs = {in};
    if (in == DType::bfloat16 || in == DType::float16) outs.push_back(DType::float32);
    for (DType out : outs)
      for (const auto& s : shapes)
        for (int t = 0; t < 4; ++t)
          check_case({1, s[0], s[1], s[2], (t & 1) != 0, (t & 2) != 0, in, out}, seed++);
  }
}

TEST(CudaGemm, BatchesPaddingAlphaAndBeta) {
  FABRIC_REQUIRE_CUDA();
  uint64_t seed = 100;
  for (DType in : kIn) {
    const DType out = in;
    check_case({3, 31, 45, 27, false, false, in, out, 1.f, 0.f, false, DType::float32, 3}, seed++);
    check_case({4, 16, 24, 40, true, true, in, out, 0.5f, -1.5f, false, DType::float32, 5}, seed++);
    check_case({5, 9, 64, 33, false, true, in, out, -2.f, 1.f}, seed++);
    // One B for every batch (a weight shared across a batch, as matmul passes it).
    check_case({6, 20, 12, 18, false, false, in, out, 1.f, 0.f, false, DType::float32, 0, true},
               seed++);
  }
}

TEST(CudaGemm, BiasInEveryAllowedDType) {
  FABRIC_REQUIRE_CUDA();
  uint64_t seed = 200;
  const struct {
    DType in, out, bias;
  } combos[] = {{DType::float32, DType::float32, DType::float32},
                {DType::float64, DType::float64, DType::float64},
                {DType::float64, DType::float64, DType::float32},
                {DType::bfloat16, DType::bfloat16, DType::bfloat16},
                {DType::bfloat16, DType::bfloat16, DType::float32},
                {DType::bfloat16, DType::float32, DType::float32},
                {DType::bfloat16, DType::float32, DType::bfloat16},
                {DType::float16, DType::float16, DType::float16},
                {DType::float16, DType::float16, DType::float32},
                {DType::float16, DType::float32, DType::float16}};
  for (const auto& k : combos) {
    check_case({1, 37, 24, 19, false, true, k.in, k.out, 1.f, 0.f, true, k.bias}, seed++);
    check_case({3, 16, 40, 32, true, false, k.in, k.out, 0.75f, 0.5f, true, k.bias, 2}, seed++);
  }
}

// A bias cut from a larger buffer (a parameter view at an offset) need not be 16-byte aligned,
// which cuBLASLt's bias epilogue may assume without its heuristic knowing: such a bias must take
// the unfused path and still match, not fault with a misaligned address.
TEST(CudaGemm, BiasViewsAtAnyAlignmentMatchTheCpu) {
  FABRIC_REQUIRE_CUDA();
  uint64_t seed = 250;
  for (DType in : {DType::float32, DType::bfloat16, DType::float16}) {
    for (int64_t offset : {1, 2, 3, 4, 8}) {
      Case c{1, 33, 48, 40, false, true, in, in, 1.f, 0.f, true, in};
      c.bias_offset = offset;
      check_case(c, seed++);
      c.batch = 3;
      c.beta = 0.5f;
      check_case(c, seed++);
    }
  }
}

TEST(CudaGemm, EmptyReductionIsBetaCPlusBias) {
  FABRIC_REQUIRE_CUDA();
  uint64_t seed = 300;
  for (DType in : kIn) {
    check_case({1, 5, 7, 0, false, false, in, in, 1.f, 0.f}, seed++);
    check_case({2, 5, 7, 0, false, false, in, in, 1.f, 0.5f, true, DType::float32}, seed++);
  }
}

TEST(CudaGemm, BetaZeroNeverReadsC) {
  FABRIC_REQUIRE_CUDA();
  // C starts as NaN in check_case when beta == 0; spell the property out once on its own.
  const Tensor a = random_flat(8 * 8, DType::float32, 5).view({8, 8}).to(kGpu);
  Tensor c = nan_flat(64, DType::float32).view({8, 8}).to(kGpu);
  GemmDesc d;
  d.M = d.N = d.K = 8;
  d.A = a.data_ptr();
  d.B = a.data_ptr();
  d.C = c.data_ptr();
  d.lda = d.ldb = d.ldc = 8;
  gemm_stub(kGpu)(d);
  for (double v : c.to(Device::cpu()).to_vector<double>()) ASSERT_TRUE(std::isfinite(v));
}

// The ops route through gemm_stub with views as they are (transposes, broadcast batches).
TEST(CudaGemm, OpsOnTheGpuMatchTheCpu) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : {DType::float32, DType::bfloat16}) {
    const double tol = tolerance_for(dt);
    const Tensor x = test::uniform_tensor({4, 3, 17, 24}, dt, -1, 1, 1);
    const Tensor w = test::uniform_tensor({24, 40}, dt, -1, 1, 2);
    const Tensor wb = test::uniform_tensor({3, 24, 40}, dt, -1, 1, 3);
    const Tensor lin_w = test::uniform_tensor({40, 24}, dt, -1, 1, 4);
    const Tensor lin_b = test::uniform_tensor({40}, dt, -1, 1, 5);
    const Tensor gx = x.to(kGpu), gw = w.to(kGpu), gwb = wb.to(kGpu), glw = lin_w.to(kGpu),
                 glb = lin_b.to(kGpu);
    const std::string d(dtype_name(dt));
    expect_close(matmul(x, w), matmul(gx, gw), tol, "matmul shared weight " + d);
    expect_close(matmul(x, wb), matmul(gx, gwb), tol, "matmul broadcast batch " + d);
    expect_close(matmul(x, x.transpose(-1, -2)), matmul(gx, gx.transpose(-1, -2)), tol,
                 "matmul x x^T " + d);
    expect_close(mm(w.t(), w), mm(gw.t(), gw), tol, "mm w^T w " + d);
    expect_close(bmm(wb.transpose(1, 2), wb), bmm(gwb.transpose(1, 2), gwb), tol, "bmm " + d);
    expect_close(linear(x, lin_w, lin_b), linear(gx, glw, glb), tol, "linear " + d);
    expect_close(matmul(w.select(1, 3), w), matmul(gw.select(1, 3), gw), tol,
                 "vector @ matrix " + d);
  }
}

#ifdef FABRIC_WITH_CUDA

TEST(CudaGemm, BadInputIsAnErrorBeforeAnyDeviceWork) {
  GemmDesc d;
  d.M = d.N = d.K = 4;
  d.lda = d.ldb = d.ldc = 4;
  d.a_dtype = d.b_dtype = d.c_dtype = DType::int32;
  EXPECT_THROW(cuda::gemm(d), DTypeError);
  d.a_dtype = d.b_dtype = d.c_dtype = DType::float32;
  d.ldc = 3;
  EXPECT_THROW(cuda::gemm(d), ValueError);
  d.ldc = 4;
  d.a_dtype = d.b_dtype = DType::bfloat16;
  d.c_dtype = DType::float16;
  EXPECT_THROW(cuda::gemm(d), DTypeError);
}

TEST(CudaGemm, Tf32IsOffByDefaultAndSwitchable) {
  FABRIC_REQUIRE_CUDA();
  EXPECT_FALSE(cuda::allow_tf32());
  // Off: full fp32 (checked against the CPU at 2e-5 above). On: TF32's 10-bit mantissas, well
  // inside 5e-3 of the fp32 result for inputs in [-1, 1].
  const Tensor a = test::uniform_tensor({256, 512}, DType::float32, -1, 1, 7);
  const Tensor b = test::uniform_tensor({512, 192}, DType::float32, -1, 1, 8);
  const Tensor want = mm(a, b);
  EXPECT_FALSE(cuda::set_allow_tf32(true));
  EXPECT_TRUE(cuda::allow_tf32());
  const Tensor got = mm(a.to(kGpu), b.to(kGpu));
  EXPECT_TRUE(cuda::set_allow_tf32(false));
  expect_close(want, got, 5e-3, "tf32 matmul");
  expect_close(want, mm(a.to(kGpu), b.to(kGpu)), tolerance_for(DType::float32),
               "fp32 matmul after tf32 is off");
}

TEST(CudaGemm, PlansAreCachedPerProblem) {
  FABRIC_REQUIRE_CUDA();
  cuda::gemm_plan_cache_clear();
  const Tensor a = test::uniform_tensor({64, 48}, DType::float32, -1, 1, 9).to(kGpu);
  const Tensor b = test::uniform_tensor({48, 80}, DType::float32, -1, 1, 10).to(kGpu);
  (void)mm(a, b);
  const cuda::GemmPlanStats first = cuda::gemm_plan_stats();
  EXPECT_GE(first.misses, 1u);
  EXPECT_GE(first.entries, 1u);
  (void)mm(a, b);
  const cuda::GemmPlanStats second = cuda::gemm_plan_stats();
  EXPECT_EQ(second.misses, first.misses);
  EXPECT_GT(second.hits, first.hits);
  (void)mm(b.t(), a.t());  // another problem
  EXPECT_GT(cuda::gemm_plan_stats().misses, second.misses);
  cuda::gemm_plan_cache_clear();
  EXPECT_EQ(cuda::gemm_plan_stats().entries, 0u);
}

// GPT-2's tanh GELU, and its derivative, in float64.
double gelu_tanh(double x) {
  const double u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
  return 0.5 * x * (1 + std::tanh(u));
}
double gelu_tanh_grad(double x) {
  const double u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
  const double t = std::tanh(u);
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * 0.7978845608028654 * (1 + 3 * 0.044715 * x * x);
}

// f applied to every element, in float64.
Tensor apply(const Tensor& t, double (*f)(double)) {
  std::vector<double> v = t.to(DType::float64).to_vector<double>();
  for (double& x : v) x = f(x);
  return from_vector<double>(v, t.sizes());
}

TEST(CudaGemm, GeluEpiloguesMatchTheUnfusedComputation) {
  FABRIC_REQUIRE_CUDA();
  const int64_t M = 64, N = 96, K = 80;
  for (DType dt : {DType::float32, DType::bfloat16, DType::float16}) {
    const std::string what(dtype_name(dt));
    const Tensor x = test::uniform_tensor({M, K}, dt, -2, 2, 11);
    const Tensor w =
        test::uniform_tensor({N, K}, dt, -0.5, 0.5, 12);  // a Linear's (out, in) weight
    const Tensor bias = test::uniform_tensor({N}, dt, -1, 1, 13);
    const Tensor pre = linear(x, w, bias);  // the CPU pre-activation
    const Tensor gx = x.to(kGpu), gw = w.to(kGpu), gbias = bias.to(kGpu);
    Tensor out = empty({M, N}, {.dtype = dt, .device = kGpu});
    Tensor aux = empty({M, N}, {.dtype = dt, .device = kGpu});
    GemmDesc d;
    d.M = M;
    d.N = N;
    d.K = K;
    d.a_dtype = d.b_dtype = d.c_dtype = dt;
    d.A = gx.data_ptr();
    d.lda = K;
    d.B = gw.data_ptr();
    d.ldb = K;
    d.trans_b = true;
    d.C = out.data_ptr();
    d.ldc = N;
    d.bias = gbias.data_ptr();
    d.bias_dtype = dt;
    cuda::gemm_bias_gelu(d, {aux.data_ptr(), N, 0});
    const double tol = tolerance_for(dt);
    // cuBLASLt may evaluate tanh with the hardware approximation (about 2^-11 relative).
    const double gelu_tol = std::max(tol, 2e-3);
    expect_close(pre, aux, tol, "pre-activation kept by gemm_bias_gelu " + what);
    expect_close(apply(pre, gelu_tanh).to(dt), out, gelu_tol, "gemm_bias_gelu " + what);

    // Backward: dpre = (dy @ W) * gelu'(pre), dy (M, N), W (N, K) -> dpre (M, K) needs an aux of
    // (M, K): run it as the GEMM producing the pre-activation's gradient of a layer with K outputs.
    const Tensor dy = test::uniform_tensor({M, N}, dt, -1, 1, 14);
    const Tensor pre2 = test::uniform_tensor({M, K}, dt, -2, 2, 15);
    const Tensor gdy = dy.to(kGpu), gpre2 = pre2.to(kGpu);
    Tensor dpre = empty({M, K}, {.dtype = dt, .device = kGpu});
    GemmDesc b;
    b.M = M;
    b.N = K;
    b.K = N;
    b.a_dtype = b.b_dtype = b.c_dtype = dt;
    b.A = gdy.data_ptr();
    b.lda = N;
    b.B = gw.data_ptr();
    b.ldb = K;
    b.C = dpre.data_ptr();
    b.ldc = K;
    cuda::gemm_dgelu(b, {gpre2.data_ptr(), K, 0});
    const Tensor want =
        mul(mm(dy.to(DType::float64), w.to(DType::float64)), apply(pre2, gelu_tanh_grad));
    expect_close(want.to(dt), dpre, gelu_tol, "gemm_dgelu " + what);
  }
}

// Relative to the largest result: the tensor cores' FP8 accumulation (see below).
constexpr double kFp8TensorCoreRel = 1e-3;

TEST(CudaGemm, Fp8GemmMatchesTheCpuEmulation) {
  FABRIC_REQUIRE_CUDA();
  if (!cuda::fp8_gemm_supported(0))
    GTEST_SKIP() << "CUDA device 0 has no FP8 tensor cores (sm_89+)";
  const int64_t M = 48, N = 64, K = 96;
  const Tensor x = test::uniform_tensor({M, K}, DType::float32, -3, 3, 21);
  const Tensor w = test::uniform_tensor({N, K}, DType::float32, -0.2f, 0.2f, 22);
  for (auto [fa, fb] : {std::pair{precision::Fp8Format::E4M3, precision::Fp8Format::E4M3},
                        std::pair{precision::Fp8Format::E5M2, precision::Fp8Format::E4M3}}) {
    const precision::Fp8Quantized xq = precision::fp8_quantize(x, 448.f / 3.f, fa);
    const precision::Fp8Quantized wq = precision::fp8_quantize(w, 448.f / 0.2f, fb);
    const Tensor gxq = xq.q.to(kGpu), gwq = wq.q.to(kGpu);
    const Tensor sa = scalar_tensor(xq.scale_inv, {.dtype = DType::float32}).to(kGpu);
    const Tensor sb = scalar_tensor(wq.scale_inv, {.dtype = DType::float32}).to(kGpu);
    for (DType out : {DType::float32, DType::bfloat16}) {
      const Tensor want = precision::fp8_gemm(xq.q, xq.scale_inv, wq.q.t(), wq.scale_inv, out);
      Tensor got = empty({M, N}, {.dtype = out, .device = kGpu});
      cuda::Fp8GemmDesc d;
      d.M = M;
      d.N = N;
      d.K = K;
      d.a_dtype = xq.q.dtype();
      d.b_dtype = wq.q.dtype();
      d.A = gxq.data_ptr();
      d.lda = K;
      d.B = gwq.data_ptr();
      d.ldb = K;
      d.c_dtype = out;
      d.C = got.data_ptr();
      d.ldc = N;
      d.scale_a = sa.data<float>();
      d.scale_b = sb.data<float>();
      cuda::gemm_fp8(d);
      // fp8 products are exact in fp32; the accumulation differs from the emulation's: besides
      // its order, Hopper's FP8 MMA keeps partial sums to about 14 mantissa bits before cuBLASLt
      // promotes them to fp32 (DeepSeek-V3's report, 3.3.2; an H200 gave 1.4e-4 relative here).
      expect_close(want, got, out == DType::float32 ? kFp8TensorCoreRel : 1e-2,
                   detail::cat("fp8 gemm ", dtype_name(d.a_dtype), " x ", dtype_name(d.b_dtype),
                               " -> ", dtype_name(out)));
    }
  }
  cuda::Fp8GemmDesc bad;
  bad.M = 16;
  bad.N = 10;  // not a multiple of 16
  bad.K = 16;
  EXPECT_THROW(cuda::gemm_fp8(bad), ValueError);
}

// The op layer's fp8_gemm on CUDA tensors: the tensor-core kernel through fp8_gemm_stub where it
// takes the problem (a Linear's W^T view, a batched x, and a B that must be copied to (N, K)), the
// emulation on the device where it does not (N = 40 is not a multiple of 16; float64 output);
// every result within the summation-order tolerance of the CPU emulation.
TEST(CudaGemm, Fp8GemmOpUsesTheTensorCoresOrEmulates) {
  FABRIC_REQUIRE_CUDA();
  const Tensor x = test::uniform_tensor({2, 24, 64}, DType::float32, -3, 3, 31);
  for (int64_t N : {int64_t{32}, int64_t{40}}) {
    const Tensor w = test::uniform_tensor({N, 64}, DType::float32, -0.2f, 0.2f, 32);
    const precision::Fp8Quantized xq =
        precision::fp8_quantize(x, 448.f / 3.f, precision::Fp8Format::E4M3);
    const precision::Fp8Quantized wq =
        precision::fp8_quantize(w, 448.f / 0.2f, precision::Fp8Format::E4M3);
    const Tensor gx = xq.q.to(kGpu), gw = wq.q.to(kGpu);
    for (DType out : {DType::float32, DType::bfloat16, DType::float64}) {
      const std::string what = detail::cat("fp8_gemm op N=", N, " -> ", dtype_name(out));
      const double tol = out == DType::bfloat16 ? 1e-2 : kFp8TensorCoreRel;
      const Tensor want = precision::fp8_gemm(xq.q, xq.scale_inv, wq.q.t(), wq.scale_inv, out);
      const Tensor got = precision::fp8_gemm(gx, xq.scale_inv, gw.t(), wq.scale_inv, out);
      EXPECT_EQ(got.device(), kGpu) << what;
      EXPECT_EQ(got.sizes(), want.sizes()) << what;
      expect_close(want, got, tol, what);
      // B (K, N) contiguous: copied to (N, K) for the kernel.
      const Tensor got_b = precision::fp8_gemm(gx, xq.scale_inv, gw.t().contiguous(),
                                               wq.scale_inv, out);
      expect_close(want, got_b, tol, what + " (contiguous B)");
    }
  }
}

#endif  // FABRIC_WITH_CUDA

}  // namespace
}  // namespace fabric
