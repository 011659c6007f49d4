// LLM.int8 row-wise quantization and the mixed int8/16-bit linear forward (spec §7); the int8
// GEMM is the int8_gemm kernel (tensor/quant_kernels.h).
#include "precision/quant_int8.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "tensor/factory.h"
#include "tensor/quant_kernels.h"

namespace fabric::precision {
namespace {

constexpr int64_t kParallelMinRows = 16;
// bitsandbytes' default backend multiplies by this instead of dividing by 127.
constexpr float kInv127 = static_cast<float>(7.874015718698502e-3);
constexpr float kInv127Sq = static_cast<float>(1.0 / (127.0 * 127.0));

float load_f32(const void* p, DType dt, int64_t i) {
  switch (dt) {
    case DType::float32:
      return static_cast<const float*>(p)[i];
    case DType::float16:
      return static_cast<float>(static_cast<const Half*>(p)[i]);
    default:
      return static_cast<float>(static_cast<const BFloat16*>(p)[i]);
  }
}

void store_from_f32(void* p, DType dt, int64_t i, float v) {
  switch (dt) {
    case DType::float32:
      static_cast<float*>(p)[i] = v;
      break;
    case DType::float16:
      static_cast<Half*>(p)[i] = Half(v);
      break;
    default:
      static_cast<BFloat16*>(p)[i] = BFloat16(v);
      break;
  }
}

bool is_lp_or_f32(DType d) {
  return d == DType::float16 || d == DType::bfloat16 || d == DType::float32;
}

template <class T>
void quant_row(const T* a, int64_t K, float thr, int8_t* q, float* stat, uint8_t* colmask) {
  float m = 0.0f;
  if (thr > 0.0f) {
    for (int64_t k = 0; k < K; ++k) {
      const float v = std::fabs(static_cast<float>(a[k]));
      const bool out = v >= thr;
      colmask[k] |= static_cast<uint8_t>(out);
      m = out ? m : std::max(m, v);
    }
  } else {
    for (int64_t k = 0; k < K; ++k) m = std::max(m, std::fabs(static_cast<float>(a[k])));
  }
  *stat = m;
  if (m == 0.0f) {  // 127/0 = inf; torch's NaN -> int8 cast is undefined, so emit 0
    std::memset(q, 0, static_cast<size_t>(K));
    return;
  }
  const float s = 127.0f / m;
  for (int64_t k = 0; k < K; ++k) {
    const float v = static_cast<float>(a[k]);
    const float x = (thr > 0.0f && std::fabs(v) >= thr) ? 0.0f : v * s;
    // NaN (a NaN input, or inf · 0 in a row whose absmax is inf) has no int8 value: emit 0.
    const float y = std::isnan(x) ? 0.0f : std::clamp(x, -127.0f, 127.0f);
    q[k] = static_cast<int8_t>(std::nearbyint(y));  // the default rounding mode is RNE
  }
}

template <class T>
void quant_rows(const T* a, int64_t rows, int64_t K, float thr, int8_t* q, float* stats,
                std::vector<uint8_t>& colmask) {
#pragma omp parallel if (rows >= kParallelMinRows)
  {
    std::vector<uint8_t> local(thr > 0.0f ? static_cast<size_t>(K) : 0, 0);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r)
      quant_row(a + r * K, K, thr, q + r * K, stats + r, local.data());
    if (thr > 0.0f) {
#pragma omp critical(fabric_int8_colmask)
      for (int64_t k = 0; k < K; ++k) colmask[k] |= local[k];
    }
  }
}

}  // namespace

Int8RowQuant int8_vectorwise_quant(const Tensor& A, double threshold) {
  const char* op = "int8_vectorwise_quant";
  FABRIC_CHECK(A.defined(), ValueError, op, ": got an undefined tensor");
  FABRIC_CHECK(is_lp_or_f32(A.dtype()), DTypeError, op, ": a ", dtype_name(A.dtype()),
               " tensor of shape ", shape_str(A.sizes()),
               " (expected float16, bfloat16 or float32)");
  FABRIC_CHECK(A.dim() >= 1, ShapeError, op, ": a 0-dim tensor (expected shape (..., K))");
  FABRIC_CHECK(A.device().is_cpu(), DeviceError, op, ": only CPU tensors are supported here");
  FABRIC_CHECK(!std::isnan(threshold), ValueError, op, ": threshold is NaN");
  const Tensor x = A.contiguous();
  const int64_t K = x.size(-1);
  const int64_t rows =
      K == 0 ? numel_of(Shape(x.sizes().begin(), x.sizes().end() - 1)) : x.numel() / K;
  Int8RowQuant out;
  out.CA = empty(x.sizes(), {.dtype = DType::int8});
  out.SCA = empty({rows}, {.dtype = DType::float32});
  const float thr = threshold > 0.0 ? static_cast<float>(threshold) : 0.0f;
  std::vector<uint8_t> colmask(thr > 0.0f ? static_cast<size_t>(K) : 0, 0);
  int8_t* q = out.CA.data<int8_t>();
  float* st = out.SCA.data<float>();
  if (K > 0 && rows > 0) {
    switch (x.dtype()) {
      case DType::float32:
        quant_rows(x.data<float>(), rows, K, thr, q, st, colmask);
        break;
      case DType::float16:
        quant_rows(x.data<Half>(), rows, K, thr, q, st, colmask);
        break;
      default:
        quant_rows(x.data<BFloat16>(), rows, K, thr, q, st, colmask);
        break;
    }
  } else {
    std::fill(st, st + rows, 0.0f);
  }
  for (int64_t k = 0; k < static_cast<int64_t>(colmask.size()); ++k) {
    if (colmask[k]) out.outlier_cols.push_back(k);
  }
  if (rows > 1) {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c : out.outlier_cols) q[r * K + c] = 0;
    }
  }
  return out;
}

Tensor int8_vectorwise_dequant(const Tensor& CA, const Tensor& SCA) {
  const char* op = "int8_vectorwise_dequant";
  FABRIC_CHECK(CA.defined() && SCA.defined(), ValueError, op, ": got an undefined tensor");
  FABRIC_CHECK(CA.dtype() == DType::int8, DTypeError, op, ": CA is ", dtype_name(CA.dtype()),
               " (expected int8)");
  FABRIC_CHECK(SCA.dtype() == DType::float32, DTypeError, op, ": SCA is ", dtype_name(SCA.dtype()),
               " (expected float32)");
  FABRIC_CHECK(CA.dim() >= 1, ShapeError, op, ": CA is 0-dim (expected (..., K))");
  const int64_t K = CA.size(-1);
  const int64_t rows = K == 0 ? 0 : CA.numel() / K;
  FABRIC_CHECK(K == 0 || SCA.numel() == rows, ShapeError, op, ": CA of shape ",
               shape_str(CA.sizes()), " has ", rows, " rows but SCA has ", SCA.numel(), " values");
  const std::vector<int8_t> q = CA.to_vector<int8_t>();
  const std::vector<float> s = SCA.to_vector<float>();
  std::vector<float> out(q.size());
  for (int64_t r = 0; r < rows; ++r) {
    const float f = s[r] * kInv127;
    for (int64_t k = 0; k < K; ++k) out[r * K + k] = static_cast<float>(q[r * K + k]) * f;
  }
  return from_vector(out, CA.sizes(), {.dtype = DType::float32});
}

Tensor int8_matmul(const Tensor& A, const Tensor& B) {
  const char* op = "int8_matmul";
  FABRIC_CHECK(A.defined() && B.defined(), ValueError, op, ": got an undefined tensor");
  FABRIC_CHECK(A.dtype() == DType::int8 && B.dtype() == DType::int8, DTypeError, op, ": got ",
               dtype_name(A.dtype()), " and ", dtype_name(B.dtype()), " (expected int8 and int8)");
  FABRIC_CHECK(A.dim() == 2 && B.dim() == 2 && A.size(1) == B.size(1), ShapeError, op, ": A ",
               shape_str(A.sizes()), " and B ", shape_str(B.sizes()),
               " (expected A (M, K) and B (N, K))");
  FABRIC_CHECK(A.device() == B.device(), DeviceError, op, ": A and B are on different devices");
  const int64_t M = A.size(0), N = B.size(0), K = A.size(1);
  Tensor C = zeros({M, N}, {.dtype = DType::int32, .device = A.device()});
  if (M == 0 || N == 0 || K == 0) return C;
  const Tensor a = A.contiguous(), b = B.contiguous();
  const Int8GemmFn kernel = int8_gemm_stub(A.device());
  kernel(M, N, K, a.data<int8_t>(), b.data<int8_t>(), C.data<int32_t>());
  return C;
}

Tensor int8_linear_forward(const Tensor& X, const Tensor& CB, const Tensor& SCB, const Tensor& bias,
                           double threshold) {
  const char* op = "int8_linear_forward";
  FABRIC_CHECK(X.defined() && CB.defined() && SCB.defined(), ValueError, op,
               ": X, CB and SCB must be defined");
  FABRIC_CHECK(CB.dtype() == DType::int8 && CB.dim() == 2, DTypeError, op, ": CB is ",
               dtype_name(CB.dtype()), " of shape ", shape_str(CB.sizes()),
               " (expected int8 (N, K))");
  FABRIC_CHECK(X.dim() >= 1 && X.size(-1) == CB.size(1), ShapeError, op, ": X ",
               shape_str(X.sizes()), " does not match CB ", shape_str(CB.sizes()),
               " (expected X (..., K) with CB (N, K))");
  const int64_t N = CB.size(0), K = CB.size(1);
  FABRIC_CHECK(SCB.dtype() == DType::float32 && SCB.numel() == N, ShapeError, op, ": SCB is ",
               dtype_name(SCB.dtype()), " of shape ", shape_str(SCB.sizes()),
               " (expected float32 (", N, "))");
  FABRIC_CHECK(!bias.defined() || bias.numel() == N, ShapeError, op, ": bias of shape ",
               shape_str(bias.sizes()), " (expected (", N, "))");
  const DType dt = X.dtype();
  const Int8RowQuant xq = int8_vectorwise_quant(X, threshold);
  const int64_t M = K == 0 ? 0 : X.numel() / K;
  const Tensor C = int8_matmul(xq.CA.reshape({M, K}), CB);  // (M, N)
  const std::vector<int32_t> c = C.to_vector<int32_t>();
  const std::vector<float> sca = xq.SCA.to_vector<float>();
  const std::vector<float> scb = SCB.to_vector<float>();
  const std::vector<float> b =
      bias.defined() ? bias.to_vector<float>() : std::vector<float>(N, 0.0f);
  Shape out_shape(X.sizes().begin(), X.sizes().end() - 1);
  out_shape.push_back(N);
  Tensor out = empty(out_shape, {.dtype = dt});
  void* o = out.data_ptr();
  const Tensor xc = X.contiguous();
  const void* xp = xc.data_ptr();
  const std::vector<int64_t>& cols = xq.outlier_cols;
  // The outlier weight columns, int8-dequantized and rounded to X's dtype: (N, ncols).
  std::vector<float> sub_b;
  if (!cols.empty()) {
    const Tensor cbc = CB.contiguous();
    const int8_t* cb = cbc.data<int8_t>();
    sub_b.resize(static_cast<size_t>(N) * cols.size());
    for (int64_t n = 0; n < N; ++n) {
      const float f = scb[n] * kInv127;
      for (size_t j = 0; j < cols.size(); ++j) {
        const float w = static_cast<float>(cb[n * K + cols[j]]) * f;
        float r = w;  // rounded through X's dtype, as .to(A.dtype) does
        if (dt == DType::float16) r = static_cast<float>(Half(w));
        if (dt == DType::bfloat16) r = static_cast<float>(BFloat16(w));
        sub_b[n * cols.size() + j] = r;
      }
    }
  }
  const bool has_bias = bias.defined();
#pragma omp parallel for schedule(static) if (M * N >= 65536)
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      const float scale = sca[m] * scb[n];
      float v = static_cast<float>(c[m * N + n]) * scale * kInv127Sq;
      if (has_bias) v = v + b[n];
      if (cols.empty()) {
        store_from_f32(o, dt, m * N + n, v);
        continue;
      }
      // addmm in X's dtype: the stored partial result plus the fp32 sum, rounded once.
      store_from_f32(o, dt, m * N + n, v);
      float acc = load_f32(o, dt, m * N + n);
      for (size_t j = 0; j < cols.size(); ++j) {
        acc = acc + load_f32(xp, dt, m * K + cols[j]) * sub_b[n * cols.size() + j];
      }
      store_from_f32(o, dt, m * N + n, acc);
    }
  }
  return out;
}

}  // namespace fabric::precision
