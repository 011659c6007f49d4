// The CPU GEMM entry point: validates a GemmArgs (dtypes, sizes, leading dims, strides) and sends
// it to oneDNN (f32, bf16), Eigen (f64, oneDNN rejects) or, for f16, the exact bf16 split on AMX
// where it is faster, else the exact f32 widening.
#include "kernels/cpu/gemm.h"
#include "tensor/error.h"

namespace fabric::cpu {
namespace {

using fabric::detail::cat;

std::string describe(const GemmArgs& g) {
  return cat("batch=", g.batch, " M=", g.M, " N=", g.N, " K=", g.K, " A ", dtype_name(g.a_dtype),
             g.trans_a ? " (transposed)" : "", " lda=", g.lda, " stride_a=", g.stride_a, ", B ",
             dtype_name(g.b_dtype), g.trans_b ? " (transposed)" : "", " ldb=", g.ldb,
             " stride_b=", g.stride_b, ", C ", dtype_name(g.c_dtype), " ldc=", g.ldc,
             " stride_c=", g.stride_c);
}

void check_dtypes(const GemmArgs& g) {
  const DType a = g.a_dtype, b = g.b_dtype, c = g.c_dtype;
  const bool ok =
      (a == DType::float32 && b == a && c == a) || (a == DType::float64 && b == a && c == a) ||
      (a == DType::bfloat16 && b == a && (c == DType::float32 || c == DType::bfloat16)) ||
      (a == DType::float16 && b == a && (c == DType::float32 || c == DType::float16));
  FABRIC_CHECK(ok, DTypeError, "gemm: unsupported dtypes A=", dtype_name(a), " B=", dtype_name(b),
               " C=", dtype_name(c),
               "; supported: float32 x float32 -> float32, float64 x float64 -> float64, "
               "bfloat16 x bfloat16 -> float32|bfloat16, float16 x float16 -> float32|float16");
  if (g.bias) {
    const DType t = g.bias_dtype;
    const bool bias_ok = t == DType::float32 || (a == DType::float64 && t == DType::float64) ||
                         (a == DType::bfloat16 && t == DType::bfloat16) ||
                         (a == DType::float16 && t == DType::float16);
    FABRIC_CHECK(bias_ok, DTypeError, "gemm: bias dtype ", dtype_name(t), " with ", dtype_name(a),
                 " inputs; expected float32 or the input dtype");
  }
}

void check_layout(const GemmArgs& g) {
  FABRIC_CHECK(g.batch >= 0 && g.M >= 0 && g.N >= 0 && g.K >= 0, ValueError,
               "gemm: sizes must be non-negative, got ", describe(g));
  if (g.batch == 0 || g.M == 0 || g.N == 0) return;  // nothing is read or written
  FABRIC_CHECK(g.C != nullptr, ValueError, "gemm: C is null for ", describe(g));
  FABRIC_CHECK(g.ldc >= g.N, ValueError, "gemm: ldc=", g.ldc, " is smaller than N=", g.N, " (",
               describe(g), ")");
  if (g.batch > 1) {
    // Batches of C must not overlap: they are written concurrently.
    FABRIC_CHECK(g.stride_c >= (g.M - 1) * g.ldc + g.N, ValueError, "gemm: stride_c=", g.stride_c,
                 " makes the C matrices of different batches overlap (each spans ",
                 (g.M - 1) * g.ldc + g.N, " elements): ", describe(g));
  }
  if (g.K == 0) return;  // A and B are not read
  FABRIC_CHECK(g.A != nullptr && g.B != nullptr, ValueError, "gemm: A or B is null for ",
               describe(g));
  const int64_t cols_a = g.trans_a ? g.M : g.K, cols_b = g.trans_b ? g.K : g.N;
  FABRIC_CHECK(g.lda >= cols_a, ValueError, "gemm: lda=", g.lda, " is smaller than the ", cols_a,
               " columns of the stored A", g.trans_a ? " (transposed: K x M)" : " (M x K)", ": ",
               describe(g));
  FABRIC_CHECK(g.ldb >= cols_b, ValueError, "gemm: ldb=", g.ldb, " is smaller than the ", cols_b,
               " columns of the stored B", g.trans_b ? " (transposed: N x K)" : " (K x N)", ": ",
               describe(g));
  if (g.batch > 1) {
    FABRIC_CHECK(g.stride_a >= 0 && g.stride_b >= 0, ValueError,
                 "gemm: batch strides must be non-negative (0 broadcasts), got ", describe(g));
  }
}

}  // namespace

void gemm(const GemmArgs& args) {
  check_dtypes(args);
  check_layout(args);
  if (args.batch == 0 || args.M == 0 || args.N == 0) return;
  GemmArgs g = args;
  if (g.batch == 1) g.stride_a = g.stride_b = g.stride_c = 0;
  const DType a = g.a_dtype;
  if (g.K == 0) {
    // C = beta * C + bias. oneDNN treats an empty reduction as a no-op, so Eigen does this.
    g.lda = g.ldb = 1;
    if (a == DType::float32 || a == DType::float64)
      detail::gemm_eigen(g);
    else
      detail::gemm_via_f32(g);
    return;
  }
  if (a == DType::float64) {
    detail::gemm_eigen(g);
  } else if (a == DType::float32) {
    if (!detail::gemm_onednn(g)) detail::gemm_eigen(g);
  } else if (a == DType::bfloat16) {
    if (!detail::gemm_onednn(g)) detail::gemm_via_f32(g);
  } else if (!detail::gemm_f16_split(g)) {
    detail::gemm_via_f32(g);
  }
}

}  // namespace fabric::cpu
