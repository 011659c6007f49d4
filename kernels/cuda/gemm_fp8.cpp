// The FP8 GEMM through cuBLASLt: row-major C = A B^T is column-major C^T = B A^T, which is
// exactly the "TN" layout the FP8 kernels require (cuBLASLt's A = fabric's B, transposed).
// Shares the handle and workspace of the other GEMMs; plans cached per problem.
#include "kernels/cuda/gemm_fp8.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <array>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "kernels/cuda/alignment.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm_cublaslt.h"
#include "kernels/cuda/stream.h"
#include "tensor/dispatch_stub.h"
#include "tensor/quant_kernels.h"

namespace fabric::cuda {
namespace {

using fabric::detail::cat;

std::string describe(const Fp8GemmDesc& g) {
  return cat("M=", g.M, " N=", g.N, " K=", g.K, ", A ", dtype_name(g.a_dtype), " lda=", g.lda,
             ", B ", dtype_name(g.b_dtype), " ldb=", g.ldb, ", C ", dtype_name(g.c_dtype),
             " ldc=", g.ldc, g.bias ? cat(", bias ", dtype_name(g.bias_dtype)) : std::string());
}

cudaDataType_t fp8_type(DType t) {
  return t == DType::float8_e4m3fn ? CUDA_R_8F_E4M3 : CUDA_R_8F_E5M2;
}

cudaDataType_t out_type(DType t) {
  switch (t) {
    case DType::float32:
      return CUDA_R_32F;
    case DType::bfloat16:
      return CUDA_R_16BF;
    default:
      return CUDA_R_16F;
  }
}

void check(const Fp8GemmDesc& g) {
  FABRIC_CHECK(is_fp8(g.a_dtype) && is_fp8(g.b_dtype), DTypeError,
               "gemm_fp8: operands must be float8_e4m3fn or float8_e5m2, got ", describe(g));
  FABRIC_CHECK(
      !(g.a_dtype == DType::float8_e5m2 && g.b_dtype == DType::float8_e5m2), DTypeError,
      "gemm_fp8: E5M2 x E5M2 has no tensor-core kernel (one operand must be E4M3): ", describe(g));
  FABRIC_CHECK(
      g.c_dtype == DType::float32 || g.c_dtype == DType::bfloat16 || g.c_dtype == DType::float16,
      DTypeError, "gemm_fp8: C must be float32, bfloat16 or float16, got ", describe(g));
  if (g.bias) {
    const DType want = g.c_dtype == DType::float16 ? DType::float16 : DType::bfloat16;
    FABRIC_CHECK(g.bias_dtype == want, DTypeError, "gemm_fp8: a ", dtype_name(g.c_dtype),
                 " C takes a ", dtype_name(want), " bias, got ", describe(g));
  }
  FABRIC_CHECK(g.M >= 0 && g.N >= 0 && g.K >= 0, ValueError, "gemm_fp8: negative size in ",
               describe(g));
  if (g.M == 0 || g.N == 0) return;
  FABRIC_CHECK(
      g.K > 0, ValueError,
      "gemm_fp8: K must be positive (an empty reduction has no FP8 kernel): ", describe(g));
  FABRIC_CHECK(g.K % 16 == 0 && g.N % 16 == 0, ValueError,
               "gemm_fp8: N and K must be multiples of 16 for the FP8 tensor cores, got ",
               describe(g));
  FABRIC_CHECK(g.lda >= g.K && g.ldb >= g.K && g.ldc >= g.N, ValueError,
               "gemm_fp8: leading dims smaller than the rows they hold (lda, ldb >= K, ldc >= N): ",
               describe(g));
  FABRIC_CHECK(g.lda % 16 == 0 && g.ldb % 16 == 0 && (g.ldc * itemsize(g.c_dtype)) % 16 == 0,
               ValueError, "gemm_fp8: leading dims must be multiples of 16 bytes: ", describe(g));
  FABRIC_CHECK(g.A && g.B && g.C, ValueError, "gemm_fp8: null operand in ", describe(g));
  FABRIC_CHECK(aligned16(g.A) && aligned16(g.B) && aligned16(g.C) && (!g.bias || aligned16(g.bias)),
               ValueError, "gemm_fp8: A, B, C and bias must be 16-byte aligned: ", describe(g));
  // cuBLASLt refuses the call (NOT_SUPPORTED, after its heuristic found an algorithm) otherwise.
  FABRIC_CHECK((!g.scale_a || aligned16(g.scale_a)) && (!g.scale_b || aligned16(g.scale_b)),
               ValueError, "gemm_fp8: the scale pointers must be 16-byte aligned: ", describe(g));
}

struct Plan {
  bool found = false;
  cublasLtMatmulAlgo_t algo{};
  size_t workspace = 0;
};
using Key = std::array<int64_t, 16>;
struct KeyHash {
  size_t operator()(const Key& k) const noexcept {
    uint64_t h = 1469598103934665603ull;
    for (int64_t v : k) h = (h ^ static_cast<uint64_t>(v)) * 1099511628211ull;
    return static_cast<size_t>(h);
  }
};
std::mutex g_mu;
std::unordered_map<Key, Plan, KeyHash> g_plans;

struct OpDesc {
  cublasLtMatmulDesc_t d = nullptr;
  OpDesc() { FABRIC_CUBLASLT_CHECK(cublasLtMatmulDescCreate(&d, CUBLAS_COMPUTE_32F, CUDA_R_32F)); }
  ~OpDesc() { cublasLtMatmulDescDestroy(d); }
  OpDesc(const OpDesc&) = delete;
  OpDesc& operator=(const OpDesc&) = delete;
  template <typename T>
  void set(cublasLtMatmulDescAttributes_t attr, const T& v) {
    FABRIC_CUBLASLT_CHECK(cublasLtMatmulDescSetAttribute(d, attr, &v, sizeof(v)));
  }
};

struct Layout {
  cublasLtMatrixLayout_t l = nullptr;
  Layout(cudaDataType_t t, int64_t rows, int64_t cols, int64_t ld) {
    FABRIC_CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&l, t, static_cast<uint64_t>(rows),
                                                     static_cast<uint64_t>(cols), ld));
  }
  ~Layout() { cublasLtMatrixLayoutDestroy(l); }
  Layout(const Layout&) = delete;
  Layout& operator=(const Layout&) = delete;
};

}  // namespace

bool fp8_gemm_supported(int device) {
  if (device < 0 || device >= device_count()) return false;
  return compute_capability(device) >= 89;
}

namespace {

// gemm_fp8 without the last check: false (nothing queued) when cuBLASLt has no FP8 algorithm for
// the problem, so that fp8_gemm_entry can decline it (its contract) instead of throwing.
bool try_gemm_fp8(const Fp8GemmDesc& g) {
  check(g);
  if (g.M == 0 || g.N == 0) return true;
  const int device = device_of_pointer(g.C);
  FABRIC_CHECK(fp8_gemm_supported(device), DeviceError, "gemm_fp8: CUDA device ", device,
               " has no FP8 tensor cores (needs compute capability 8.9 or newer)");
  DeviceGuard guard(device);
  auto* handle = static_cast<cublasLtHandle_t>(detail::cublaslt_handle(device));
  void* workspace = detail::cublaslt_workspace(device);

  OpDesc op;
  const int32_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  op.set(CUBLASLT_MATMUL_DESC_TRANSA, ta);
  op.set(CUBLASLT_MATMUL_DESC_TRANSB, tb);
  // cuBLASLt's A is fabric's B (and its scale), its B is fabric's A.
  if (g.scale_b) op.set(CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, static_cast<const void*>(g.scale_b));
  if (g.scale_a) op.set(CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, static_cast<const void*>(g.scale_a));
  const int8_t fast = g.fast_accum ? 1 : 0;
  op.set(CUBLASLT_MATMUL_DESC_FAST_ACCUM, fast);
  if (g.bias) {
    const uint32_t epi = CUBLASLT_EPILOGUE_BIAS;
    op.set(CUBLASLT_MATMUL_DESC_EPILOGUE, epi);
    op.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, g.bias);
    const int32_t bt = g.bias_dtype == DType::float16 ? CUDA_R_16F : CUDA_R_16BF;
    op.set(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, bt);
  }
  Layout a(fp8_type(g.b_dtype), g.K, g.N,
           g.ldb);  // stored (N x K) row-major = (K x N) column-major
  Layout b(fp8_type(g.a_dtype), g.K, g.M, g.lda);
  Layout c(out_type(g.c_dtype), g.N, g.M, g.ldc);

  const Key key = {device,
                   g.M,
                   g.N,
                   g.K,
                   g.lda,
                   g.ldb,
                   g.ldc,
                   static_cast<int64_t>(g.a_dtype),
                   static_cast<int64_t>(g.b_dtype),
                   static_cast<int64_t>(g.c_dtype),
                   g.bias ? static_cast<int64_t>(g.bias_dtype) + 1 : 0,
                   g.fast_accum,
                   address_alignment(g.A),
                   address_alignment(g.B),
                   address_alignment(g.C),
                   g.bias ? address_alignment(g.bias) : 0};
  Plan plan;
  bool cached = false;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = g_plans.find(key);
    if (it != g_plans.end()) {
      plan = it->second;
      cached = true;
    }
  }
  if (!cached) {
    cublasLtMatmulPreference_t pref = nullptr;
    FABRIC_CUBLASLT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws = static_cast<uint64_t>(kGemmWorkspaceBytes);
    cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
    // cuBLASLt's A is fabric's B: the alignments follow the swap.
    const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> aligns[] = {
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, address_alignment(g.B)},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, address_alignment(g.A)},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, address_alignment(g.C)},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, address_alignment(g.C)}};
    for (const auto& [attr, value] : aligns)
      if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, attr, &value, sizeof(value));
    cublasLtMatmulHeuristicResult_t result{};
    int returned = 0;
    if (st == CUBLAS_STATUS_SUCCESS)
      st = cublasLtMatmulAlgoGetHeuristic(handle, op.d, a.l, b.l, c.l, c.l, pref, 1, &result,
                                          &returned);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st == CUBLAS_STATUS_SUCCESS && returned > 0 && result.state == CUBLAS_STATUS_SUCCESS) {
      plan.found = true;
      plan.algo = result.algo;
      plan.workspace = result.workspaceSize;
    } else if (st != CUBLAS_STATUS_SUCCESS && st != CUBLAS_STATUS_NOT_SUPPORTED &&
               st != CUBLAS_STATUS_INVALID_VALUE) {
      throw_cublas_error(st, cat("cublasLtMatmulAlgoGetHeuristic (FP8) for ", describe(g)).c_str(),
                         __FILE__, __LINE__);
    }
    std::lock_guard<std::mutex> lock(g_mu);
    g_plans.emplace(key, plan);
  }
  if (!plan.found) return false;
  const float alpha = 1.0f, beta = 0.0f;
  const cublasStatus_t st =
      cublasLtMatmul(handle, op.d, &alpha, g.B, a.l, g.A, b.l, &beta, g.C, c.l, g.C, c.l,
                     &plan.algo, workspace, plan.workspace, compute_stream(device));
  if (st == CUBLAS_STATUS_NOT_SUPPORTED || st == CUBLAS_STATUS_INVALID_VALUE) {
    // An algorithm the heuristic offered but the call refuses (checked before anything runs:
    // nothing was written): remembered as none, so the op emulates, now and for this problem on.
    std::lock_guard<std::mutex> lock(g_mu);
    g_plans[key].found = false;
    return false;
  }
  if (st != CUBLAS_STATUS_SUCCESS)
    throw_cublas_error(st, cat("cublasLtMatmul (FP8) for ", describe(g)).c_str(), __FILE__,
                       __LINE__);
  return true;
}

}  // namespace

void gemm_fp8(const Fp8GemmDesc& g) {
  FABRIC_CHECK(try_gemm_fp8(g), DeviceError, "gemm_fp8: cuBLASLt has no FP8 algorithm for ",
               describe(g));
}

namespace {

// The op layer's entry (fp8_gemm_stub): the contiguous TN problem when this GPU and these sizes
// take it, false otherwise (the op emulates), so that no op has to know the FP8 kernels' rules.
bool fp8_gemm_entry(int64_t M, int64_t N, int64_t K, DType a_dtype, const void* A, DType b_dtype,
                    const void* B, const float* scales, DType c_dtype, void* C) {
  const auto fp8 = [](DType t) { return t == DType::float8_e4m3fn || t == DType::float8_e5m2; };
  if (!fp8(a_dtype) || !fp8(b_dtype) || (a_dtype == DType::float8_e5m2 && b_dtype == a_dtype))
    return false;
  if (c_dtype != DType::float32 && c_dtype != DType::bfloat16 && c_dtype != DType::float16)
    return false;
  if (M <= 0 || K % 16 != 0 || N % 16 != 0 || K == 0 || (N * itemsize(c_dtype)) % 16 != 0)
    return false;
  if (!aligned16(A) || !aligned16(B) || !aligned16(C)) return false;
  if (!fp8_gemm_supported(device_of_pointer(C))) return false;
  Fp8GemmDesc d;
  d.M = M;
  d.N = N;
  d.K = K;
  d.a_dtype = a_dtype;
  d.b_dtype = b_dtype;
  d.A = A;
  d.lda = K;
  d.B = B;
  d.ldb = K;
  d.c_dtype = c_dtype;
  d.C = C;
  d.ldc = N;
  d.scale_a = scales;
  d.scale_b = scales + kFp8GemmScaleStride;
  return try_gemm_fp8(d);  // false: cuBLASLt has no algorithm, the op emulates
}

}  // namespace

FABRIC_REGISTER_KERNEL(fp8_gemm_stub, cuda, &fp8_gemm_entry);

}  // namespace fabric::cuda
