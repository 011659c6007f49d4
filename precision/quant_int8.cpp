// LLM.int8 row- and column-wise quantization, the int8 GEMM's dequantization and the mixed
// int8/16-bit linear forward (spec §7); the int8 GEMM, the quantizers and dequantizers are kernels
// (tensor/quant_kernels.h) of the tensors' own device, CPU or CUDA.
#include "precision/quant_int8.h"

#include <cmath>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/quant_kernels.h"

namespace fabric::precision {
namespace {

// bitsandbytes' default backend multiplies by this instead of dividing by 127.
constexpr float kInv127 = static_cast<float>(7.874015718698502e-3);
constexpr float kInv127Sq = static_cast<float>(1.0 / (127.0 * 127.0));

bool is_lp_or_f32(DType d) {
  return d == DType::float16 || d == DType::bfloat16 || d == DType::float32;
}

// The row- and column-wise quantizers' input: a float16/bfloat16/float32 tensor (..., K) and a
// threshold that is a number.
void check_quant_input(const char* op, const Tensor& A, double threshold) {
  FABRIC_CHECK(A.defined(), ValueError, op, ": got an undefined tensor");
  FABRIC_CHECK(is_lp_or_f32(A.dtype()), DTypeError, op, ": a ", dtype_name(A.dtype()),
               " tensor of shape ", shape_str(A.sizes()),
               " (expected float16, bfloat16 or float32)");
  FABRIC_CHECK(A.dim() >= 1, ShapeError, op, ": a 0-dim tensor (expected shape (..., K))");
  FABRIC_CHECK(!std::isnan(threshold), ValueError, op, ": threshold is NaN");
}

// The quantizers' outlier-column flags: K zeroed bytes on the input's device with a threshold,
// none (the kernels leave them untouched) without.
Tensor outlier_flags(const Tensor& x, int64_t K, float thr) {
  return thr > 0.0f ? zeros({K}, {.dtype = DType::uint8, .device = x.device()}) : Tensor();
}

// The columns a quantizer flagged as holding an outlier, ascending. Reading the flags back waits
// for the device, as bitsandbytes' argwhere of its outlier mask does; only with a threshold.
std::vector<int64_t> marked_columns(const Tensor& colmask) {
  std::vector<int64_t> cols;
  if (!colmask.defined()) return cols;
  const Tensor host = colmask.to(Device::cpu());
  const uint8_t* flags = host.data<uint8_t>();
  for (int64_t k = 0; k < host.numel(); ++k) {
    if (flags[k]) cols.push_back(k);
  }
  return cols;
}

uint8_t* flags_ptr(Tensor& colmask) {
  return colmask.defined() ? colmask.data<uint8_t>() : nullptr;
}

}  // namespace

Int8RowQuant int8_vectorwise_quant(const Tensor& A, double threshold) {
  const char* op = "int8_vectorwise_quant";
  check_quant_input(op, A, threshold);
  const Tensor x = A.contiguous();
  const int64_t K = x.size(-1);
  const int64_t rows =
      K == 0 ? numel_of(Shape(x.sizes().begin(), x.sizes().end() - 1)) : x.numel() / K;
  Int8RowQuant out;
  out.CA = empty(x.sizes(), {.dtype = DType::int8, .device = x.device()});
  out.SCA = empty({rows}, {.dtype = DType::float32, .device = x.device()});
  const float thr = threshold > 0.0 ? static_cast<float>(threshold) : 0.0f;
  Tensor colmask;
  if (K > 0 && rows > 0) {
    colmask = outlier_flags(x, K, thr);
    const Int8RowQuantFn kernel = int8_row_quant_stub(x.device());
    kernel(x.data_ptr(), x.dtype(), rows, K, thr, out.CA.data<int8_t>(), out.SCA.data<float>(),
           flags_ptr(colmask));
  } else {
    out.SCA.fill_(0.0f);
  }
  out.outlier_cols = marked_columns(colmask);
  return out;
}

Int8ColQuant int8_colwise_quant(const Tensor& A, double threshold,
                                const std::vector<int64_t>* known_outlier_cols) {
  const char* op = "int8_colwise_quant";
  check_quant_input(op, A, threshold);
  const Tensor x = A.contiguous();
  const int64_t K = x.size(-1);
  const int64_t rows = numel_of(Shape(x.sizes().begin(), x.sizes().end() - 1));
  Int8ColQuant out;
  out.CAt = empty({K, rows}, {.dtype = DType::int8, .device = x.device()});
  out.SCAt = empty({K}, {.dtype = DType::float32, .device = x.device()});
  const float thr = threshold > 0.0 ? static_cast<float>(threshold) : 0.0f;
  Tensor colmask;
  if (K > 0 && rows > 0) {
    colmask = outlier_flags(x, K, thr);
    int8_col_quant_stub(x.device())(x.data_ptr(), x.dtype(), rows, K, thr, out.CAt.data<int8_t>(),
                                    out.SCAt.data<float>(), flags_ptr(colmask));
  } else {
    out.SCAt.fill_(0.0f);
  }
  out.outlier_cols = known_outlier_cols != nullptr && colmask.defined() ? *known_outlier_cols
                                                                        : marked_columns(colmask);
  return out;
}

Tensor int8_mm_dequant(const Tensor& C, const Tensor& row_stats, const Tensor& col_stats,
                       DType dtype) {
  const char* op = "int8_mm_dequant";
  FABRIC_CHECK(C.defined() && row_stats.defined() && col_stats.defined(), ValueError, op,
               ": got an undefined tensor");
  FABRIC_CHECK(C.dtype() == DType::int32 && C.dim() == 2, DTypeError, op, ": C is ",
               dtype_name(C.dtype()), " of shape ", shape_str(C.sizes()),
               " (expected int32 (M, N))");
  const int64_t M = C.size(0), N = C.size(1);
  FABRIC_CHECK(row_stats.dtype() == DType::float32 && row_stats.numel() == M &&
                   col_stats.dtype() == DType::float32 && col_stats.numel() == N,
               ShapeError, op, ": row_stats ", dtype_name(row_stats.dtype()), " ",
               shape_str(row_stats.sizes()), " and col_stats ", dtype_name(col_stats.dtype()), " ",
               shape_str(col_stats.sizes()), " for C ", shape_str(C.sizes()),
               " (expected float32 (", M, ") and (", N, "))");
  FABRIC_CHECK(is_lp_or_f32(dtype), DTypeError, op, ": output dtype ", dtype_name(dtype),
               " (expected float16, bfloat16 or float32)");
  FABRIC_CHECK(row_stats.device() == C.device() && col_stats.device() == C.device(), DeviceError,
               op, ": C on ", C.device().str(), ", row_stats on ", row_stats.device().str(),
               " and col_stats on ", col_stats.device().str(), " (expected one device)");
  Tensor out = empty({M, N}, {.dtype = dtype, .device = C.device()});
  if (M == 0 || N == 0) return out;
  const Tensor c = C.contiguous(), rs = row_stats.contiguous(), cs = col_stats.contiguous();
  // The forward's epilogue without bias or outlier columns is exactly this dequantization.
  Int8LinearEpilogue e;
  e.M = M;
  e.N = N;
  e.acc = c.data<int32_t>();
  e.row_stats = rs.data<float>();
  e.col_stats = cs.data<float>();
  e.scale = kInv127Sq;
  e.dtype = dtype;
  e.out = out.data_ptr();
  int8_linear_epilogue_stub(out.device())(e);
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
  const Tensor q = CA.contiguous();
  const Tensor s = SCA.to(CA.device()).contiguous();
  Tensor out = empty(CA.sizes(), {.dtype = DType::float32, .device = CA.device()});
  if (q.numel() > 0) {
    int8_row_dequant_stub(CA.device())(q.data<int8_t>(), s.data<float>(), rows, K, kInv127,
                                       out.data<float>());
  }
  return out;
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
  if (M == 0 || N == 0 || K == 0) {
    return zeros({M, N}, {.dtype = DType::int32, .device = A.device()});
  }
  Tensor C = empty({M, N}, {.dtype = DType::int32, .device = A.device()});  // the GEMM's beta is 0
  const Tensor a = A.contiguous(), b = B.contiguous();
  const Int8GemmFn kernel = int8_gemm_stub(A.device());
  kernel(M, N, K, a.data<int8_t>(), b.data<int8_t>(), C.data<int32_t>());
  return C;
}

Tensor int8_linear_forward(const Tensor& X, const Tensor& CB, const Tensor& SCB, const Tensor& bias,
                           double threshold, const Tensor& fp16_weight,
                           std::vector<int64_t>* x_outlier_cols) {
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
  FABRIC_CHECK(!fp16_weight.defined() || fp16_weight.sizes() == CB.sizes(), ShapeError, op,
               ": fp16_weight of shape ", shape_str(fp16_weight.sizes()), " (expected CB's shape ",
               shape_str(CB.sizes()), ")");
  const DType dt = X.dtype();
  if (K == 0) {
    // An empty contraction: every output is the bias rounded to X's dtype (zero without one), as
    // F.linear gives; the product below would have no rows to write.
    Shape shape(X.sizes().begin(), X.sizes().end() - 1);
    shape.push_back(N);
    if (!bias.defined()) return zeros(shape, {.dtype = dt, .device = X.device()});
    return bias.detach().to(X.device()).to(dt).reshape({N}).expand(shape).contiguous();
  }
  const Device dev = X.device();
  const Int8RowQuant xq = int8_vectorwise_quant(X, threshold);
  if (x_outlier_cols != nullptr) *x_outlier_cols = xq.outlier_cols;
  const int64_t M = X.numel() / K;
  const Tensor C = int8_matmul(xq.CA.reshape({M, K}), CB);  // (M, N)
  // The small per-column operands as contiguous fp32 on X's device, whatever they came as.
  const Tensor scb = SCB.detach().to(dev).contiguous();
  const Tensor b =
      bias.defined() ? bias.detach().to(dev).to(DType::float32).contiguous() : Tensor();
  Shape out_shape(X.sizes().begin(), X.sizes().end() - 1);
  out_shape.push_back(N);
  Tensor out = empty(out_shape, {.dtype = dt, .device = dev});
  if (M == 0 || N == 0) return out;
  const Tensor xc = X.contiguous();
  const int64_t ncols = static_cast<int64_t>(xq.outlier_cols.size());
  // The outlier weight columns rounded to X's dtype as .to(A.dtype) does — the trainable weight's
  // own, else int8-dequantized (f32(CB) · f32(SCB · 1/127)) —, laid out (ncols, N) so that the
  // epilogue reads them along the output row.
  Tensor cols, w_cols;
  if (ncols > 0) {
    cols = from_vector(xq.outlier_cols, {ncols}).to(dev);
    const Tensor w = fp16_weight.defined() ? index_select(fp16_weight.detach().to(dev), 1, cols)
                                           : mul(index_select(CB, 1, cols).to(DType::float32),
                                                 mul(scb, kInv127).reshape({N, 1}));  // (N, ncols)
    w_cols = w.to(dt).to(DType::float32).t().contiguous();
  }
  Int8LinearEpilogue e;
  e.M = M;
  e.N = N;
  e.acc = C.data<int32_t>();
  e.row_stats = xq.SCA.data<float>();
  e.col_stats = scb.data<float>();
  e.scale = kInv127Sq;
  e.bias = b.defined() ? b.data<float>() : nullptr;
  e.dtype = dt;
  e.x = xc.data_ptr();
  e.K = K;
  e.cols = ncols > 0 ? cols.data<int64_t>() : nullptr;
  e.ncols = ncols;
  e.w_cols = ncols > 0 ? w_cols.data<float>() : nullptr;
  e.out = out.data_ptr();
  int8_linear_epilogue_stub(dev)(e);
  return out;
}

}  // namespace fabric::precision
