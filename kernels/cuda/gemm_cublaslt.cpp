// The CUDA GEMM through cuBLASLt: fabric's row-major C = op(A) op(B) is cuBLASLt's column-major
// C^T = op(B)^T op(A)^T, so B goes in as cuBLASLt's "A" and A as its "B", with no copies. One
// handle and one workspace per device; the heuristic's pick is cached per problem. Plain cuBLAS
// is the fallback for what cuBLASLt declines.
#include "kernels/cuda/gemm_cublaslt.h"

#include <cublasLt.h>
#include <cublas_api.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "kernels/cuda/alignment.h"
#include "kernels/cuda/caching_allocator.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm_gelu_fallback.h"
#include "kernels/cuda/speed_switches.h"
#include "kernels/cuda/stream.h"
#include "tensor/device_control.h"

namespace fabric::cuda {
namespace {

using fabric::detail::cat;

// ---- per-device handle and workspace ------------------------------------------------------------

struct DeviceContext {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  // Plain cuBLAS for the problems cuBLASLt declines; a handle holds a stream, so its users take
  // the mutex.
  cublasHandle_t blas = nullptr;
  std::mutex blas_mu;
};

std::array<std::atomic<DeviceContext*>, kMaxDevices> g_contexts{};
std::mutex g_context_mu;

// Never destroyed: GEMMs may be queued by tensors that outlive main.
DeviceContext& context(int device) {
  check_device(device, "gemm (CUDA)");
  FABRIC_CHECK(device < kMaxDevices, DeviceError, "gemm (CUDA): device ", device, " is past the ",
               kMaxDevices, " devices this backend supports");
  DeviceContext* ctx = g_contexts[device].load(std::memory_order_acquire);
  if (ctx) return *ctx;
  std::lock_guard<std::mutex> lock(g_context_mu);
  ctx = g_contexts[device].load(std::memory_order_relaxed);
  if (ctx) return *ctx;
  DeviceGuard guard(device);
  auto fresh = std::make_unique<DeviceContext>();
  FABRIC_CUBLASLT_CHECK(cublasLtCreate(&fresh->handle));
  try {
    fresh->workspace = cuda_allocator(device).allocate(static_cast<size_t>(kGemmWorkspaceBytes));
    FABRIC_CUBLAS_CHECK(cublasCreate_v2(&fresh->blas));
    // fp32 accumulation throughout, as cuBLASLt's CUBLAS_COMPUTE_32F: no fp16 split-K reductions.
    FABRIC_CUBLAS_CHECK(cublasSetMathMode(
        fresh->blas, static_cast<cublasMath_t>(CUBLAS_DEFAULT_MATH |
                                               CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
    FABRIC_CUBLAS_CHECK(cublasSetWorkspace_v2(fresh->blas, fresh->workspace,
                                              static_cast<size_t>(kGemmWorkspaceBytes)));
  } catch (...) {
    if (fresh->blas) cublasDestroy_v2(fresh->blas);
    if (fresh->workspace)
      cuda_allocator(device).deallocate(fresh->workspace, static_cast<size_t>(kGemmWorkspaceBytes));
    cublasLtDestroy(fresh->handle);
    throw;
  }
  ctx = fresh.release();
  g_contexts[device].store(ctx, std::memory_order_release);
  return *ctx;
}

// ---- descriptors (RAII) -------------------------------------------------------------------------

struct OpDesc {
  cublasLtMatmulDesc_t d = nullptr;
  OpDesc(cublasComputeType_t compute, cudaDataType_t scale) {
    FABRIC_CUBLASLT_CHECK(cublasLtMatmulDescCreate(&d, compute, scale));
  }
  ~OpDesc() { cublasLtMatmulDescDestroy(d); }
  OpDesc(const OpDesc&) = delete;
  OpDesc& operator=(const OpDesc&) = delete;
  template <typename T>
  void set(cublasLtMatmulDescAttributes_t attr, const T& value) {
    FABRIC_CUBLASLT_CHECK(cublasLtMatmulDescSetAttribute(d, attr, &value, sizeof(value)));
  }
};

struct Layout {
  cublasLtMatrixLayout_t l = nullptr;
  Layout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
         int64_t stride) {
    FABRIC_CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&l, type, static_cast<uint64_t>(rows),
                                                     static_cast<uint64_t>(cols), ld));
    if (batch > 1) {
      const int32_t count = static_cast<int32_t>(batch);
      FABRIC_CUBLASLT_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                                             &count, sizeof(count)));
      FABRIC_CUBLASLT_CHECK(cublasLtMatrixLayoutSetAttribute(
          l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
    }
  }
  ~Layout() { cublasLtMatrixLayoutDestroy(l); }
  Layout(const Layout&) = delete;
  Layout& operator=(const Layout&) = delete;
};

struct Preference {
  cublasLtMatmulPreference_t p = nullptr;
  Preference() { FABRIC_CUBLASLT_CHECK(cublasLtMatmulPreferenceCreate(&p)); }
  ~Preference() { cublasLtMatmulPreferenceDestroy(p); }
  Preference(const Preference&) = delete;
  Preference& operator=(const Preference&) = delete;
  template <typename T>
  void set(cublasLtMatmulPreferenceAttributes_t attr, const T& value) {
    FABRIC_CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(p, attr, &value, sizeof(value)));
  }
};

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::float32:
      return CUDA_R_32F;
    case DType::float64:
      return CUDA_R_64F;
    case DType::float16:
      return CUDA_R_16F;
    case DType::bfloat16:
      return CUDA_R_16BF;
    case DType::float8_e4m3fn:
      return CUDA_R_8F_E4M3;
    case DType::float8_e5m2:
      return CUDA_R_8F_E5M2;
    default:
      break;
  }
  throw DTypeError(cat("gemm (CUDA): no cuBLASLt type for ", dtype_name(t)));
}

// The alignment of every address the problem touches through `ptr`: the base and, for batches,
// the batch stride in bytes.
uint32_t alignment_of(const void* ptr, int64_t batch, int64_t stride_elems, int64_t itemsize) {
  const bool strided = batch > 1 && stride_elems != 0;
  return address_alignment(ptr, strided ? static_cast<uint64_t>(stride_elems * itemsize) : 0);
}

// ---- validation (the CPU kernel's rules and messages)
// ---------------------------------------------

std::string describe(const GemmDesc& g) {
  return cat("batch=", g.batch, " M=", g.M, " N=", g.N, " K=", g.K, " A ", dtype_name(g.a_dtype),
             g.trans_a ? " (transposed)" : "", " lda=", g.lda, " stride_a=", g.stride_a, ", B ",
             dtype_name(g.b_dtype), g.trans_b ? " (transposed)" : "", " ldb=", g.ldb,
             " stride_b=", g.stride_b, ", C ", dtype_name(g.c_dtype), " ldc=", g.ldc,
             " stride_c=", g.stride_c);
}

void check_dtypes(const GemmDesc& g) {
  const DType a = g.a_dtype, b = g.b_dtype, c = g.c_dtype;
  const bool ok =
      (a == DType::float32 && b == a && c == a) || (a == DType::float64 && b == a && c == a) ||
      (a == DType::bfloat16 && b == a && (c == DType::float32 || c == DType::bfloat16)) ||
      (a == DType::float16 && b == a && (c == DType::float32 || c == DType::float16));
  FABRIC_CHECK(ok, DTypeError, "gemm (CUDA): unsupported dtypes A=", dtype_name(a),
               " B=", dtype_name(b), " C=", dtype_name(c),
               "; supported: float32 x float32 -> float32, float64 x float64 -> float64, "
               "bfloat16 x bfloat16 -> float32|bfloat16, float16 x float16 -> float32|float16");
  if (g.bias) {
    const DType t = g.bias_dtype;
    const bool bias_ok = t == DType::float32 || (a == DType::float64 && t == DType::float64) ||
                         (a == DType::bfloat16 && t == DType::bfloat16) ||
                         (a == DType::float16 && t == DType::float16);
    FABRIC_CHECK(bias_ok, DTypeError, "gemm (CUDA): bias dtype ", dtype_name(t), " with ",
                 dtype_name(a), " inputs; expected float32 or the input dtype");
  }
}

void check_layout(const GemmDesc& g) {
  FABRIC_CHECK(g.batch >= 0 && g.M >= 0 && g.N >= 0 && g.K >= 0, ValueError,
               "gemm (CUDA): sizes must be non-negative, got ", describe(g));
  if (g.batch == 0 || g.M == 0 || g.N == 0) return;
  FABRIC_CHECK(g.C != nullptr, ValueError, "gemm (CUDA): C is null for ", describe(g));
  FABRIC_CHECK(g.ldc >= g.N, ValueError, "gemm (CUDA): ldc=", g.ldc, " is smaller than N=", g.N,
               " (", describe(g), ")");
  if (g.batch > 1) {
    FABRIC_CHECK(g.stride_c >= (g.M - 1) * g.ldc + g.N, ValueError,
                 "gemm (CUDA): stride_c=", g.stride_c,
                 " makes the C matrices of different batches overlap (each spans ",
                 (g.M - 1) * g.ldc + g.N, " elements): ", describe(g));
  }
  if (g.K == 0) return;
  FABRIC_CHECK(g.A != nullptr && g.B != nullptr, ValueError, "gemm (CUDA): A or B is null for ",
               describe(g));
  const int64_t cols_a = g.trans_a ? g.M : g.K, cols_b = g.trans_b ? g.K : g.N;
  FABRIC_CHECK(g.lda >= cols_a, ValueError, "gemm (CUDA): lda=", g.lda, " is smaller than the ",
               cols_a, " columns of the stored A", g.trans_a ? " (transposed: K x M)" : " (M x K)",
               ": ", describe(g));
  FABRIC_CHECK(g.ldb >= cols_b, ValueError, "gemm (CUDA): ldb=", g.ldb, " is smaller than the ",
               cols_b, " columns of the stored B", g.trans_b ? " (transposed: N x K)" : " (K x N)",
               ": ", describe(g));
  if (g.batch > 1) {
    FABRIC_CHECK(g.stride_a >= 0 && g.stride_b >= 0, ValueError,
                 "gemm (CUDA): batch strides must be non-negative (0 broadcasts), got ",
                 describe(g));
  }
}

// ---- plans
// ---------------------------------------------------------------------------------------

enum class Epilogue : uint8_t { none, bias, gelu, dgelu, bgradb };

struct Problem {
  GemmDesc g;
  Epilogue epi = Epilogue::none;
  GeluAux aux;
  bool tf32 = false;
};

using PlanKey = std::array<int64_t, 26>;
struct PlanKeyHash {
  size_t operator()(const PlanKey& k) const noexcept {
    uint64_t h = 1469598103934665603ull;
    for (int64_t v : k) h = (h ^ static_cast<uint64_t>(v)) * 1099511628211ull;
    return static_cast<size_t>(h);
  }
};

struct Plan {
  bool found = false;  // no algorithm is an answer too: the fallback runs without asking again
  cublasLtMatmulAlgo_t algo{};
  size_t workspace = 0;
};

std::mutex g_plan_mu;
std::unordered_map<PlanKey, Plan, PlanKeyHash> g_plans;
std::atomic<uint64_t> g_hits{0}, g_misses{0};
std::atomic<uint64_t> g_fused_epilogues{0}, g_declined_epilogues{0};

PlanKey key_of(int device, const Problem& p) {
  const GemmDesc& g = p.g;
  const int64_t ea = itemsize(g.a_dtype), ec = itemsize(g.c_dtype);
  return {device,
          g.batch,
          g.M,
          g.N,
          g.K,
          g.lda,
          g.ldb,
          g.ldc,
          g.stride_a,
          g.stride_b,
          g.stride_c,
          static_cast<int64_t>(g.a_dtype),
          static_cast<int64_t>(g.c_dtype),
          g.bias ? static_cast<int64_t>(g.bias_dtype) + 1 : 0,
          g.trans_a,
          g.trans_b,
          static_cast<int64_t>(p.epi),
          p.tf32,
          alignment_of(g.A, g.batch, g.stride_a, ea),
          alignment_of(g.B, g.batch, g.stride_b, ea),
          alignment_of(g.C, g.batch, g.stride_c, ec),
          g.bias ? alignment_of(g.bias, 1, 0, 1) : 0,
          p.aux.data ? alignment_of(p.aux.data, g.batch, p.aux.stride, ec) : 0,
          p.aux.ld,
          p.aux.stride,
          p.aux.data != nullptr};
}

// The matmul descriptor and the layouts of one problem, in cuBLASLt's column-major terms.
struct Descriptors {
  OpDesc op;
  Layout a, b, c;  // cuBLASLt's A is fabric's B, its B is fabric's A; C doubles as D
  Descriptors(const Problem& p, cublasComputeType_t compute, cudaDataType_t scale)
      : op(compute, scale),
        // op(B)^T is (N x K): stored B (K x N row-major) is that matrix column-major.
        a(cuda_type(p.g.b_dtype), p.g.trans_b ? p.g.K : p.g.N, p.g.trans_b ? p.g.N : p.g.K, p.g.ldb,
          p.g.batch, p.g.stride_b),
        b(cuda_type(p.g.a_dtype), p.g.trans_a ? p.g.M : p.g.K, p.g.trans_a ? p.g.K : p.g.M, p.g.lda,
          p.g.batch, p.g.stride_a),
        c(cuda_type(p.g.c_dtype), p.g.N, p.g.M, p.g.ldc, p.g.batch, p.g.stride_c) {
    const int32_t ta = p.g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int32_t tb = p.g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    op.set(CUBLASLT_MATMUL_DESC_TRANSA, ta);
    op.set(CUBLASLT_MATMUL_DESC_TRANSB, tb);
    uint32_t epi = CUBLASLT_EPILOGUE_DEFAULT;
    const bool bias = p.g.bias != nullptr;
    switch (p.epi) {
      case Epilogue::none:
        break;
      case Epilogue::bias:
        epi = CUBLASLT_EPILOGUE_BIAS;
        break;
      case Epilogue::gelu:
        epi = p.aux.data ? (bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX)
                         : (bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU);
        break;
      case Epilogue::dgelu:
        epi = CUBLASLT_EPILOGUE_DGELU;
        break;
      case Epilogue::bgradb:  // the bias pointer is the output: sums over K of cuBLASLt's B
        epi = CUBLASLT_EPILOGUE_BGRADB;
        break;
    }
    op.set(CUBLASLT_MATMUL_DESC_EPILOGUE, epi);
    if (bias && p.epi != Epilogue::none && p.epi != Epilogue::dgelu) {
      op.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, p.g.bias);
      if (p.g.bias_dtype != p.g.c_dtype) {
        const int32_t bt = cuda_type(p.g.bias_dtype);
        op.set(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, bt);
      }
    }
    if (p.aux.data) {
      op.set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, p.aux.data);
      op.set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, p.aux.ld);
      if (p.g.batch > 1) op.set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_BATCH_STRIDE, p.aux.stride);
    }
  }
};

// fp32 accumulation for f32/f16/bf16 (TF32 products when allowed), fp64 for f64.
cublasComputeType_t compute_type(const Problem& p) {
  if (p.g.a_dtype == DType::float64) return CUBLAS_COMPUTE_64F;
  return p.g.a_dtype == DType::float32 && p.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                 : CUBLAS_COMPUTE_32F;
}

// Runs the problem through cuBLASLt; false when cuBLASLt has no algorithm for it (the caller
// falls back), a DeviceError for every other failure.
bool try_matmul(int device, const Problem& p) {
  const GemmDesc& g = p.g;
  DeviceContext& ctx = context(device);
  DeviceGuard guard(device);  // the heuristic reads the current device's properties
  const cublasComputeType_t compute = compute_type(p);
  const cudaDataType_t scale = g.a_dtype == DType::float64 ? CUDA_R_64F : CUDA_R_32F;
  Descriptors d(p, compute, scale);

  const PlanKey key = key_of(device, p);
  Plan plan;
  bool cached = false;
  {
    std::lock_guard<std::mutex> lock(g_plan_mu);
    auto it = g_plans.find(key);
    if (it != g_plans.end()) {
      plan = it->second;
      cached = true;
    }
  }
  if (cached) {
    g_hits.fetch_add(1, std::memory_order_relaxed);
  } else {
    g_misses.fetch_add(1, std::memory_order_relaxed);
    Preference pref;
    const uint64_t ws = static_cast<uint64_t>(kGemmWorkspaceBytes);
    pref.set(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, ws);
    const int64_t ea = itemsize(g.a_dtype), ec = itemsize(g.c_dtype);
    pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
             alignment_of(g.B, g.batch, g.stride_b, ea));
    pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
             alignment_of(g.A, g.batch, g.stride_a, ea));
    pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
             alignment_of(g.C, g.batch, g.stride_c, ec));
    pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
             alignment_of(g.C, g.batch, g.stride_c, ec));
    cublasLtMatmulHeuristicResult_t result{};
    int returned = 0;
    const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(
        ctx.handle, d.op.d, d.a.l, d.b.l, d.c.l, d.c.l, pref.p, 1, &result, &returned);
    if (st == CUBLAS_STATUS_SUCCESS && returned > 0 && result.state == CUBLAS_STATUS_SUCCESS) {
      plan.found = true;
      plan.algo = result.algo;
      plan.workspace = result.workspaceSize;
    } else if (st != CUBLAS_STATUS_SUCCESS && st != CUBLAS_STATUS_NOT_SUPPORTED &&
               st != CUBLAS_STATUS_INVALID_VALUE) {
      // INVALID_VALUE and NOT_SUPPORTED are how cuBLASLt says "no kernel for this combination".
      throw_cublas_error(st, cat("cublasLtMatmulAlgoGetHeuristic for ", describe(g)).c_str(),
                         __FILE__, __LINE__);
    }
    std::lock_guard<std::mutex> lock(g_plan_mu);
    g_plans.emplace(key, plan);
  }
  if (!plan.found) return false;

  cudaStream_t stream = compute_stream(device);
  const double alpha64 = g.alpha, beta64 = g.beta;
  const float alpha32 = g.alpha, beta32 = g.beta;
  const void* alpha = scale == CUDA_R_64F ? static_cast<const void*>(&alpha64) : &alpha32;
  const void* beta = scale == CUDA_R_64F ? static_cast<const void*>(&beta64) : &beta32;
  const cublasStatus_t st =
      cublasLtMatmul(ctx.handle, d.op.d, alpha, g.B, d.a.l, g.A, d.b.l, beta, g.C, d.c.l, g.C,
                     d.c.l, &plan.algo, ctx.workspace, plan.workspace, stream);
  if (st == CUBLAS_STATUS_NOT_SUPPORTED || st == CUBLAS_STATUS_INVALID_VALUE) {
    // An algorithm the heuristic offered but the call refuses (checked before anything runs, so
    // nothing was written; seen on an H200 for FP8, quant_kernels.h): remembered as declined, and
    // every caller has a fallback that computes the same without cuBLASLt's plan (the plain
    // product through cuBLAS, an epilogue through the unfused ops).
    std::lock_guard<std::mutex> lock(g_plan_mu);
    g_plans[key].found = false;
    return false;
  }
  if (st != CUBLAS_STATUS_SUCCESS)
    throw_cublas_error(st, cat("cublasLtMatmul for ", describe(g)).c_str(), __FILE__, __LINE__);
  return true;
}

// The product (no epilogue) through plain cuBLAS, which takes every layout and alignment: the
// last resort for what cuBLASLt declines. Same column-major mapping as the descriptors above.
void blas_matmul(int device, const Problem& p) {
  const GemmDesc& g = p.g;
  DeviceContext& ctx = context(device);
  DeviceGuard guard(device);
  const double alpha64 = g.alpha, beta64 = g.beta;
  const float alpha32 = g.alpha, beta32 = g.beta;
  const bool f64 = g.a_dtype == DType::float64;
  const void* alpha = f64 ? static_cast<const void*>(&alpha64) : &alpha32;
  const void* beta = f64 ? static_cast<const void*>(&beta64) : &beta32;
  std::lock_guard<std::mutex> lock(ctx.blas_mu);
  FABRIC_CUBLAS_CHECK(cublasSetStream_v2(ctx.blas, compute_stream(device)));
  // cublasSetStream resets the handle to cuBLAS's own default workspace pool: set ours again.
  FABRIC_CUBLAS_CHECK(
      cublasSetWorkspace_v2(ctx.blas, ctx.workspace, static_cast<size_t>(kGemmWorkspaceBytes)));
  const cublasStatus_t st = cublasGemmStridedBatchedEx_64(
      ctx.blas, g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, g.N,
      g.M, g.K, alpha, g.B, cuda_type(g.b_dtype), g.ldb, g.stride_b, g.A, cuda_type(g.a_dtype),
      g.lda, g.stride_a, beta, g.C, cuda_type(g.c_dtype), g.ldc, g.stride_c, g.batch,
      compute_type(p), CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS)
    throw_cublas_error(st, cat("cublasGemmStridedBatchedEx_64 for ", describe(g)).c_str(), __FILE__,
                       __LINE__);
}

// Batches cuBLASLt takes in one call (its batch count is an int32).
constexpr int64_t kMaxBatch = int64_t{1} << 30;

// Whether a GELU / DGELU problem may ask cuBLASLt for its fused epilogue: for 16-bit outputs only
// (cuBLASLt's tanh may be the hardware approximation, about 2^-11 relative: under a bfloat16 or
// float16 rounding, not under float32's; float64 has no epilogue), with an aux leading dim and
// batch stride of cuBLASLt's multiple of 8 (gelu_mlp's stubs lay aux out as C, of any width), and
// not with FABRIC_CUDA_GEMM_EPILOGUES=0.
bool gelu_epilogue_takes(const Problem& p) {
  const bool sixteen_bit = p.g.c_dtype == DType::bfloat16 || p.g.c_dtype == DType::float16;
  const bool aux_ok = !p.aux.data || (p.aux.ld % 8 == 0 && p.aux.stride % 8 == 0);
  return gemm_epilogues_enabled() && sixteen_bit && aux_ok;
}

// The problem with its epilogue in one cuBLASLt call; false where cuBLASLt declines it. cublasLt.h:
// outside the IMMA and FP8 kernels the bias has D's type, so a bias of another dtype goes to the
// fallbacks rather than to a heuristic that might accept what cublasLtMatmul then rejects. A bias
// or aux under 16-byte alignment goes there too (detail::epilogue_pointers_aligned).
bool try_fused(int device, const Problem& p) {
  const bool bias_in_c_dtype = !p.g.bias || p.g.bias_dtype == p.g.c_dtype;
  const bool gelu = p.epi == Epilogue::gelu || p.epi == Epilogue::dgelu;
  const bool fused = (!gelu || gelu_epilogue_takes(p)) && p.g.batch <= kMaxBatch &&
                     bias_in_c_dtype && detail::epilogue_pointers_aligned(p.g.bias, p.aux.data) &&
                     try_matmul(device, p);
  if (gelu || p.epi == Epilogue::bgradb)
    (fused ? g_fused_epilogues : g_declined_epilogues).fetch_add(1, std::memory_order_relaxed);
  return fused;
}

// A product with no epilogue or the bias one: cuBLASLt with the epilogue, else (a layout, an
// alignment, a bias dtype, a batch count it declines) the product through cuBLASLt without the
// epilogue, else through cuBLAS, and the bias in float32 after it (one more rounding for a 16-bit
// C).
void product(int device, const Problem& p) {
  if (try_fused(device, p)) return;
  Problem plain = p;
  plain.epi = Epilogue::none;
  plain.g.bias = nullptr;
  if (!(p.epi == Epilogue::bias && p.g.batch <= kMaxBatch && try_matmul(device, plain)))
    blas_matmul(device, plain);
  if (p.g.bias) {
    GemmDesc finish = p.g;
    finish.beta = 1.f;
    detail::gemm_scale_add_bias(device, finish);
  }
}

// A GELU / DGELU epilogue cuBLASLt declined: the product (with the bias epilogue where taken,
// else the bias added after it), then our elementwise GELU or GELU backward over C, so the caller
// gets the same values (a 16-bit C is rounded once more, before the GELU, as in an unfused
// layer). Reached when the heuristic returns no algorithm for the fused epilogue (its kernels
// cover fewer alignments, aux leading dims, batch counts and dtype combinations than the plain
// GEMM), for more than 2^30 batches, for a bias not in C's dtype, for a bias or aux pointer
// under 16-byte alignment, and for what gelu_epilogue_takes refuses. The heuristic's "none" is
// cached per problem like any plan (Plan::found == false), so a repeated shape comes straight here
// without asking again. A forward that keeps the pre-activation and does not read C (beta == 0)
// has the product written to aux and the GELU read from there: one elementwise pass, as the
// unfused layers take, not a copy and then the GELU.
void gelu_fallback(int device, const Problem& p) {
  Problem plain = p;
  plain.aux = {};
  plain.epi = p.g.bias ? Epilogue::bias : Epilogue::none;
  const bool into_aux = p.epi == Epilogue::gelu && p.aux.data && p.g.beta == 0.f;
  if (into_aux) {
    plain.g.C = p.aux.data;
    plain.g.ldc = p.aux.ld;
    plain.g.stride_c = p.aux.stride;
  }
  product(device, plain);
  if (into_aux) {
    detail::gemm_gelu_from_aux(device, p.g, p.aux);
  } else if (p.epi == Epilogue::gelu) {
    detail::gemm_gelu_after_product(device, p.g, p.aux);
  } else {
    detail::gemm_dgelu_after_product(device, p.g, p.aux);
  }
}

// The device of C, where A and B must be too (checked where there is more than one device).
int operands_device(const GemmDesc& desc) {
  const int device = device_of_pointer(desc.C);
  if (device_count() > 1 && desc.K > 0) {
    FABRIC_CHECK(device_of_pointer(desc.A) == device && device_of_pointer(desc.B) == device,
                 DeviceError, "gemm (CUDA): A, B and C are not all on CUDA device ", device, ": ",
                 describe(desc));
  }
  return device;
}

void run(const GemmDesc& desc, Epilogue epi, const GeluAux& aux) {
  check_dtypes(desc);
  check_layout(desc);
  if (desc.batch == 0 || desc.M == 0 || desc.N == 0) return;
  const int device = operands_device(desc);
  Problem p{desc, desc.bias && epi == Epilogue::none ? Epilogue::bias : epi, aux,
            desc.a_dtype == DType::float32 && fabric::allow_tf32()};
  if (p.g.batch == 1) p.g.stride_a = p.g.stride_b = p.g.stride_c = p.aux.stride = 0;
  if (p.g.K == 0) {
    FABRIC_CHECK(p.epi == Epilogue::none || p.epi == Epilogue::bias, ValueError,
                 "gemm (CUDA): the GELU epilogues need K > 0, got ", describe(desc));
    detail::gemm_scale_add_bias(device, p.g);
    return;
  }
  if (p.epi == Epilogue::gelu || p.epi == Epilogue::dgelu) {
    if (!try_fused(device, p)) gelu_fallback(device, p);
    return;
  }
  product(device, p);
}

void check_aux(const char* what, const GemmDesc& d, const GeluAux& aux) {
  if (!aux.data) return;
  FABRIC_CHECK(aux.ld >= d.N && aux.ld % 8 == 0, ValueError, what, ": aux.ld=", aux.ld,
               " must be >= N=", d.N, " and a multiple of 8");
  FABRIC_CHECK(d.batch <= 1 || (aux.stride >= (d.M - 1) * aux.ld + d.N && aux.stride % 8 == 0),
               ValueError, what, ": aux.stride=", aux.stride,
               " must be a multiple of 8 and keep the batches apart (each spans ",
               (d.M - 1) * aux.ld + d.N, " elements)");
}

}  // namespace

bool set_allow_tf32(bool allow) { return fabric::set_allow_tf32(allow); }
bool allow_tf32() { return fabric::allow_tf32(); }

void gemm(const GemmDesc& desc) { run(desc, Epilogue::none, {}); }

void gemm_bias_gelu(const GemmDesc& desc, const GeluAux& aux) {
  check_aux("gemm_bias_gelu", desc, aux);
  FABRIC_CHECK(desc.a_dtype != DType::float64, DTypeError,
               "gemm_bias_gelu: cuBLASLt has no GELU epilogue for float64");
  run(desc, Epilogue::gelu, aux);
}

void gemm_dgelu(const GemmDesc& desc, const GeluAux& aux) {
  FABRIC_CHECK(aux.data != nullptr, ValueError,
               "gemm_dgelu: needs the pre-activation (aux.data is null)");
  FABRIC_CHECK(desc.bias == nullptr, ValueError, "gemm_dgelu: takes no bias (got one)");
  FABRIC_CHECK(desc.a_dtype != DType::float64, DTypeError,
               "gemm_dgelu: cuBLASLt has no GELU epilogue for float64");
  check_aux("gemm_dgelu", desc, aux);
  run(desc, Epilogue::dgelu, aux);
}

namespace {

// gemm_bgrad_stub (tensor/linalg_kernels.h): the weight gradient with the bias gradient in
// cuBLASLt's BGRADB epilogue. Our A is cuBLASLt's B (the column-major mapping above), so the
// epilogue's sums over K of its B are the sums over K of op(A): the bias gradient when op(A) is
// dYᵀ. Declined (false, nothing written) for what the plain path would have to finish: batches,
// K = 0, beta != 0, a bias operand, float64 and float32 (cuBLASLt's reduction order is its own:
// for a 16-bit gradient it is under the rounding, for float32 it would move the bits of a
// reduction the column-sum kernel makes in a fixed order), a misaligned output, a declined
// heuristic, or FABRIC_CUDA_GEMM_EPILOGUES=0.
bool linear_grads_gemm(const GemmDesc& desc, void* bias_grad) {
  const bool sixteen_bit = desc.c_dtype == DType::bfloat16 || desc.c_dtype == DType::float16;
  if (!gemm_epilogues_enabled() || !sixteen_bit || bias_grad == nullptr || desc.bias != nullptr ||
      desc.batch != 1 || desc.K <= 0 || desc.M <= 0 || desc.N <= 0 || desc.beta != 0.f)
    return false;
  check_dtypes(desc);
  check_layout(desc);
  const int device = operands_device(desc);
  Problem p{desc, Epilogue::bgradb, {}, false};
  p.g.stride_a = p.g.stride_b = p.g.stride_c = 0;
  p.g.bias = bias_grad;  // written by this epilogue
  p.g.bias_dtype = desc.c_dtype;
  return try_fused(device, p);
}

// gelu_mlp's stubs (tensor/linalg_kernels.h): aux laid out as C; what cuBLASLt's epilogue cannot
// take (gelu_epilogue_takes, a declined heuristic) runs the product and then our GELU kernels.
void gelu_mlp_forward_gemm(const GemmDesc& desc, void* aux) {
  run(desc, Epilogue::gelu, {aux, desc.ldc, desc.stride_c});
}

void gelu_mlp_backward_gemm(const GemmDesc& desc, const void* aux) {
  FABRIC_CHECK(aux != nullptr && desc.bias == nullptr, ValueError,
               "gemm_dgelu_stub (CUDA): needs the pre-activation and takes no bias");
  run(desc, Epilogue::dgelu, {const_cast<void*>(aux), desc.ldc, desc.stride_c});
}

}  // namespace

GemmPlanStats gemm_plan_stats() {
  GemmPlanStats s;
  s.hits = g_hits.load();
  s.misses = g_misses.load();
  s.fused_epilogues = g_fused_epilogues.load();
  s.declined_epilogues = g_declined_epilogues.load();
  std::lock_guard<std::mutex> lock(g_plan_mu);
  s.entries = g_plans.size();
  return s;
}

void gemm_plan_cache_clear() {
  std::lock_guard<std::mutex> lock(g_plan_mu);
  g_plans.clear();
  g_hits = 0;
  g_misses = 0;
  g_fused_epilogues = 0;
  g_declined_epilogues = 0;
}

namespace detail {
void* cublaslt_handle(int device) { return context(device).handle; }
void* cublaslt_workspace(int device) { return context(device).workspace; }
}  // namespace detail

}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(gemm_stub, cuda, &cuda::gemm);
FABRIC_REGISTER_KERNEL(gemm_gelu_stub, cuda, &cuda::gelu_mlp_forward_gemm);
FABRIC_REGISTER_KERNEL(gemm_dgelu_stub, cuda, &cuda::gelu_mlp_backward_gemm);
FABRIC_REGISTER_KERNEL(gemm_bgrad_stub, cuda, &cuda::linear_grads_gemm);
}  // namespace fabric
