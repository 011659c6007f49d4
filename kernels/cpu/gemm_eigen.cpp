// The Eigen path of the CPU GEMM: float64 (oneDNN has no f64 matmul) and float32 problems that
// oneDNN rejects. Strided views through Eigen::Map, no copies; threads from Eigen's OpenMP.
// GCC 12 flags its own AVX-512 intrinsics (_mm512_undefined_*) as uninitialised once inlined.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <omp.h>

#include <Eigen/Core>

#include "kernels/cpu/gemm.h"
#include "tensor/error.h"

namespace fabric::cpu::detail {
namespace {

template <typename T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using ConstMap = Eigen::Map<const RowMat<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <typename T>
using MutMap = Eigen::Map<RowMat<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <typename T>
using RowVec = Eigen::Matrix<T, 1, Eigen::Dynamic>;

// C = alpha * opA * opB + beta * C (+ bias), with beta == 0 never reading C.
template <typename T, typename OpA, typename OpB>
void product(MutMap<T>& c, const OpA& a, const OpB& b, T alpha, T beta, const RowVec<T>* bias) {
  if (beta == T(0)) {
    c.noalias() = alpha * a * b;
  } else {
    if (beta != T(1)) c *= beta;
    c.noalias() += alpha * a * b;
  }
  if (bias) c.rowwise() += *bias;
}

template <typename T>
void one(const GemmArgs& g, int64_t bi, const RowVec<T>* bias) {
  const T* pa = static_cast<const T*>(g.A) + bi * g.stride_a;
  const T* pb = static_cast<const T*>(g.B) + bi * g.stride_b;
  T* pc = static_cast<T*>(g.C) + bi * g.stride_c;
  // Stored shapes: A is (M x K), or (K x M) when transposed; likewise B.
  ConstMap<T> a(pa, g.trans_a ? g.K : g.M, g.trans_a ? g.M : g.K, Eigen::OuterStride<>(g.lda));
  ConstMap<T> b(pb, g.trans_b ? g.N : g.K, g.trans_b ? g.K : g.N, Eigen::OuterStride<>(g.ldb));
  MutMap<T> c(pc, g.M, g.N, Eigen::OuterStride<>(g.ldc));
  const T alpha = static_cast<T>(g.alpha), beta = static_cast<T>(g.beta);
  if (!g.trans_a && !g.trans_b)
    product<T>(c, a, b, alpha, beta, bias);
  else if (g.trans_a && !g.trans_b)
    product<T>(c, a.transpose(), b, alpha, beta, bias);
  else if (!g.trans_a && g.trans_b)
    product<T>(c, a, b.transpose(), alpha, beta, bias);
  else
    product<T>(c, a.transpose(), b.transpose(), alpha, beta, bias);
}

template <typename T>
void run(const GemmArgs& g) {
  RowVec<T> bias_vec;
  if (g.bias) {
    bias_vec.resize(g.N);
    if (g.bias_dtype == DType::float64) {
      for (int64_t j = 0; j < g.N; ++j)
        bias_vec[j] = static_cast<T>(static_cast<const double*>(g.bias)[j]);
    } else if (g.bias_dtype == DType::float32) {
      for (int64_t j = 0; j < g.N; ++j)
        bias_vec[j] = static_cast<T>(static_cast<const float*>(g.bias)[j]);
    } else {
      throw DTypeError(fabric::detail::cat("gemm: bias dtype ", dtype_name(g.bias_dtype), " with ",
                                           dtype_name(g.c_dtype),
                                           " output; expected float32 or float64"));
    }
  }
  const RowVec<T>* bias = g.bias ? &bias_vec : nullptr;
  // Many small matrices: one per thread beats splitting each one (Eigen stays serial inside a
  // parallel region). Large ones: Eigen parallelises each product itself.
  const double flops = 2.0 * double(g.M) * double(g.N) * double(g.K);
  const int nthr = omp_get_max_threads();
  if (g.batch >= 2 && nthr > 1 && flops < 2.0 * 128 * 128 * 128 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
    for (int64_t bi = 0; bi < g.batch; ++bi) one<T>(g, bi, bias);
  } else {
    for (int64_t bi = 0; bi < g.batch; ++bi) one<T>(g, bi, bias);
  }
}

}  // namespace

void gemm_eigen(const GemmArgs& g) {
  if (g.a_dtype == DType::float64 && g.b_dtype == DType::float64 && g.c_dtype == DType::float64) {
    run<double>(g);
  } else if (g.a_dtype == DType::float32 && g.b_dtype == DType::float32 &&
             g.c_dtype == DType::float32) {
    run<float>(g);
  } else {
    throw DTypeError(fabric::detail::cat("gemm: the Eigen path takes float32 or float64 only, got ",
                                         dtype_name(g.a_dtype), " x ", dtype_name(g.b_dtype),
                                         " -> ", dtype_name(g.c_dtype)));
  }
}

}  // namespace fabric::cpu::detail
