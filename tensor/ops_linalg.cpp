// Linear algebra ops: matmul (torch.matmul's 1-D/2-D/N-D rules with broadcast batch dims), mm,
// bmm and linear. All reach the device GEMM through gemm_stub, with strided/transposed operands
// passed as they are whenever their strides allow it.
#include <algorithm>
#include <optional>
#include <vector>

#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/flop_counter.h"
#include "tensor/linalg_kernels.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/product_operands.h"
#include "tensor/products_internal.h"

namespace fabric {

Tensor detail::raw_view(const Tensor& t, Shape sizes, Strides strides) {
  return Tensor::from_storage(t.storage(), t.dtype(), std::move(sizes), std::move(strides),
                              t.storage_offset());
}

Tensor detail::transposed_matrix(const Tensor& m) {
  return raw_view(m, {m.size(1), m.size(0)}, {m.stride(1), m.stride(0)});
}

Tensor detail::as_rows(const Tensor& t) {
  return t.dim() == 1 ? raw_view(t, {1, t.size(0)}, {t.size(0) * t.stride(0), t.stride(0)}) : t;
}

Tensor detail::leading_rows(const Tensor& t) {
  int64_t rows = 1;
  for (int64_t d = 0; d + 1 < t.dim(); ++d) rows *= t.size(d);
  return t.reshape({rows, t.size(-1)});
}

Shape detail::batch_of(const Tensor& t) {
  return Shape(t.sizes().begin(), t.sizes().end() - 2);
}

namespace {

using detail::as_rows;
using detail::batch_of;
using detail::cat;
using detail::raw_view;
using detail::transposed_matrix;

void check_operands(const char* op, const Tensor& a, const Tensor& b) {
  check_product_operands(op, a, b);
  const DType t = a.dtype();
  FABRIC_CHECK(t == DType::float32 || t == DType::float64 || t == DType::bfloat16 ||
                   t == DType::float16 || is_integral(t),
               DTypeError, op, ": not implemented for ", dtype_name(t), " (shapes ",
               shape_str(a.sizes()), " and ", shape_str(b.sizes()),
               "); supported: float64, float32, bfloat16, float16 and the integer types",
               is_fp8(t) ? " (fp8 goes through the scaled GEMMs of precision/)" : "");
}

// a (..., M, K) @ b (..., K, N) for integer dtypes, which torch computes on the CPU and no GEMM
// library takes: sums of broadcast products over blocks of K (a block's products stay within
// ~4M elements), in int64, wrapped back to the dtype as its own arithmetic would wrap. Integer
// products are index arithmetic, never a model's hot path.
Tensor integer_product(const Tensor& a, const Tensor& b) {
  const Tensor a64 = a.detach().to(DType::int64), b64 = b.detach().to(DType::int64);
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  const int64_t block = std::max<int64_t>(1, (int64_t(1) << 22) / std::max<int64_t>(1, M * N));
  Tensor out;
  for (int64_t k = 0; k < K || (K == 0 && !out.defined()); k += block) {
    const int64_t len = std::min(block, K - k);
    const Tensor part =
        sum(mul(a64.narrow(-1, k, len).unsqueeze(-1), b64.narrow(-2, k, len).unsqueeze(-3)), {-2});
    out = out.defined() ? add(out, part) : part;
    if (K == 0) break;
  }
  return out.to(a.dtype());
}

// How a (rows x cols) matrix with element strides (rs, cs) is handed to the GEMM: row-major with
// leading dim ld, or transposed (stored as cols x rows). nullopt when neither fits (a copy is
// needed).
struct MatLayout {
  bool trans;
  int64_t ld;
};
std::optional<MatLayout> mat_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  if ((cs == 1 || cols <= 1) && (rows <= 1 || rs >= cols))
    return MatLayout{false, rows <= 1 ? std::max<int64_t>(cols, 1) : std::max<int64_t>(rs, 1)};
  if ((rs == 1 || rows <= 1) && (cols <= 1 || cs >= rows))
    return MatLayout{true, cols <= 1 ? std::max<int64_t>(rows, 1) : std::max<int64_t>(cs, 1)};
  return std::nullopt;
}

// The matrix part of an operand whose last two dims are (rows, cols); copies it to a contiguous
// tensor (before any broadcasting, so a broadcast is never materialised) when the GEMM cannot
// read its strides.
Tensor gemm_ready(const Tensor& t) {
  const int64_t n = t.dim();
  if (t.numel() == 0) return t;
  if (mat_layout(t.size(n - 2), t.size(n - 1), t.stride(n - 2), t.stride(n - 1))) return t;
  return t.detach().contiguous();
}

struct BatchDim {
  int64_t size, sa, sb, sc;
};

}  // namespace

// out (batch..., M, N) = alpha * a (batch_a..., M, K) @ b (batch_b..., K, N) [+ bias (N)]
// [+ beta * out], where batch_a and batch_b broadcast (right-aligned) to `batch`, and `out` is
// contiguous with that many elements.
void detail::gemm_into(const Tensor& a_in, const Tensor& b_in, const Tensor& bias,
                       const Tensor& out, const Shape& batch, float alpha, float beta,
                       GemmEpilogue* epilogue) {
  const Tensor a = gemm_ready(a_in), b = gemm_ready(b_in);
  const int64_t na = a.dim(), nb = b.dim(), nbatch = static_cast<int64_t>(batch.size());
  const int64_t M = a.size(na - 2), K = a.size(na - 1), N = b.size(nb - 1);
  if (out.numel() == 0) return;

  // Batch dims: broadcast dims get stride 0; size-1 dims vanish; neighbours that step evenly in
  // all three operands merge, so that as few GEMM calls as possible remain.
  std::vector<BatchDim> dims;
  int64_t sc = M * N;
  std::vector<BatchDim> rev;
  for (int64_t i = nbatch - 1; i >= 0; --i) {
    const int64_t ia = i - (nbatch - (na - 2)), ib = i - (nbatch - (nb - 2));
    const int64_t sa = (ia >= 0 && a.size(ia) != 1) ? a.stride(ia) : 0;
    const int64_t sb = (ib >= 0 && b.size(ib) != 1) ? b.stride(ib) : 0;
    if (batch[i] != 1) rev.push_back({batch[i], sa, sb, sc});
    sc *= batch[i];
  }
  for (const BatchDim& d : rev) {  // innermost first
    if (!dims.empty()) {
      BatchDim& in = dims.back();
      if (d.sa == in.sa * in.size && d.sb == in.sb * in.size && d.sc == in.sc * in.size) {
        in.size *= d.size;
        continue;
      }
    }
    dims.push_back(d);
  }

  GemmDesc g;
  g.M = M;
  g.N = N;
  g.K = K;
  g.a_dtype = g.b_dtype = g.c_dtype = a.dtype();
  g.alpha = alpha;
  g.beta = beta;
  if (K > 0) {
    const MatLayout la = *mat_layout(M, K, a.stride(na - 2), a.stride(na - 1));
    const MatLayout lb = *mat_layout(K, N, b.stride(nb - 2), b.stride(nb - 1));
    g.trans_a = la.trans;
    g.lda = la.ld;
    g.trans_b = lb.trans;
    g.ldb = lb.ld;
  } else {
    g.lda = g.ldb = 1;
  }
  g.ldc = N;
  Tensor bias_c;
  if (bias.defined()) {
    bias_c = bias.detach().contiguous();
    g.bias = bias_c.data_ptr();
    g.bias_dtype = bias_c.dtype();
  }
  // A weight shared by every batch entry over rows that follow each other at a constant pitch
  // is one taller GEMM.
  if (!dims.empty() && dims.front().sb == 0 && !g.trans_a && dims.front().sa == M * g.lda &&
      dims.front().sc == M * N) {
    g.M *= dims.front().size;
    dims.erase(dims.begin());
  }
  if (!dims.empty()) {
    g.batch = dims.front().size;
    g.stride_a = dims.front().sa;
    g.stride_b = dims.front().sb;
    g.stride_c = dims.front().sc;
  }
  const int64_t ea = itemsize(a.dtype());
  char* const pa = static_cast<char*>(a.data_ptr());
  char* const pb = static_cast<char*>(b.data_ptr());
  char* const pc = static_cast<char*>(out.data_ptr());
  // Outer batch dims that did not merge: one GEMM call each.
  const size_t nouter = dims.empty() ? 0 : dims.size() - 1;
  std::vector<int64_t> idx(nouter, 0);
  const GemmFn fn = gemm_stub(a.device());
  using Kind = GemmEpilogue::Kind;
  const Kind kind = epilogue ? epilogue->kind : Kind::gelu;
  const GemmGeluFn gelu_fn = epilogue && kind == Kind::gelu ? gemm_gelu_stub(a.device()) : nullptr;
  const GemmDgeluFn dgelu_fn =
      epilogue && kind == Kind::dgelu ? gemm_dgelu_stub(a.device()) : nullptr;
  const GemmBgradFn bgrad_fn =
      epilogue && kind == Kind::bias_grad ? gemm_bgrad_stub(a.device()) : nullptr;
  FABRIC_CHECK(!bgrad_fn || dims.size() <= 1, ValueError,
               "gemm_into: the bias-gradient epilogue takes one GEMM (2-D operands)");
  char* const paux =
      epilogue && epilogue->aux.defined() ? static_cast<char*>(epilogue->aux.data_ptr()) : nullptr;
  for (;;) {
    int64_t oa = 0, ob = 0, oc = 0;
    for (size_t j = 0; j < nouter; ++j) {
      oa += idx[j] * dims[j + 1].sa;
      ob += idx[j] * dims[j + 1].sb;
      oc += idx[j] * dims[j + 1].sc;
    }
    GemmDesc call = g;
    call.A = pa + oa * ea;
    call.B = pb + ob * ea;
    call.C = pc + oc * itemsize(out.dtype());
    char* const aux = paux ? paux + oc * itemsize(out.dtype()) : nullptr;
    if (gelu_fn) {
      gelu_fn(call, aux);
    } else if (dgelu_fn) {
      dgelu_fn(call, aux);
    } else if (bgrad_fn) {
      epilogue->fused = bgrad_fn(call, aux);
      if (!epilogue->fused) fn(call);
    } else {
      fn(call);
    }
    size_t j = 0;
    for (; j < nouter; ++j) {
      if (++idx[j] < dims[j + 1].size) break;
      idx[j] = 0;
    }
    if (j == nouter) break;
  }
}

namespace {

using detail::gemm_into;

[[noreturn]] void throw_mismatch(const char* op, const Tensor& a, const Tensor& b, int64_t ka,
                                 int64_t kb) {
  throw ShapeError(cat(op, ": shapes ", shape_str(a.sizes()), " and ", shape_str(b.sizes()),
                       " cannot be multiplied (the first's contracted size ", ka,
                       " != the second's ", kb, ")"));
}


// The last op torch 1.13's matmul runs for these operand ranks, which names its node: dot, mv,
// mm, a squeeze after (1, K) @ (K, N), a contiguous() after its transposed fold of (M, K) @ a
// batch, else an _unsafe_view of a bmm.
const char* matmul_node_name(int64_t da, int64_t db) {
  if (da == 1 && db == 1) return "DotBackward0";
  if (da == 2 && db == 1) return "MvBackward0";
  if (da == 1 && db == 2) return "SqueezeBackward3";
  if (da == 2 && db == 2) return "MmBackward0";
  if (da == 2) return "CloneBackward0";
  return "UnsafeViewBackward0";
}

// torch.matmul's should_fold (ATen's LinearAlgebra.cpp): a >= 3-D operand times a <= 2-D one is
// folded into one matrix (mm, or mv for a vector operand) when the smaller operand requires grad
// or the fold needs no copy; otherwise the operands are broadcast and multiplied by bmm. Only the
// name and the mv case (0 FLOPs) depend on it: the FLOPs of mm and bmm are the same.
bool torch_folds(const Tensor& a, const Tensor& b) {
  const bool a_larger = a.dim() >= b.dim();
  const Tensor& big = a_larger ? a : b;  // torch folds a, or b's transpose
  const int64_t dim_big = big.dim(), dim_small = a_larger ? b.dim() : a.dim();
  if (!(dim_big >= 3 && dim_small <= 2)) return false;
  if ((a_larger ? b : a).requires_grad()) return true;
  if (a.dim() == 2) return false;
  if (big.numel() == 0) return true;
  Shape sizes = big.sizes();
  Strides strides = big.strides();
  if (!a_larger) {  // b.mT()
    std::swap(sizes[dim_big - 1], sizes[dim_big - 2]);
    std::swap(strides[dim_big - 1], strides[dim_big - 2]);
  }
  for (int64_t i = 0; i < dim_big - 2; ++i)
    if (strides[i] != strides[i + 1] * sizes[i + 1]) return false;
  return true;
}

}  // namespace

// The FLOPs of matmul(a, b) (batch: the broadcast batch dims) under the name of the ATen op torch's
// matmul runs: dot and mv count 0 (torch's counter has no rule for them), mm and bmm 2·M·N·K per
// batch entry.
namespace {
// Whether torch runs a matmul of these ranks (folded or not) as a dot or mv: 0 FLOPs.
bool is_dot_or_mv(int64_t da, int64_t db, bool folds) {
  return (db == 1 && (da <= 2 || folds)) || (da == 1 && folds);  // (the latter: b's transpose)
}
}  // namespace

bool detail::matmul_counts_flops(const Tensor& a, const Tensor& b) {
  return !is_dot_or_mv(a.dim(), b.dim(), torch_folds(a, b));
}

void detail::report_matmul_flops(const Tensor& a, const Tensor& b, const Shape& batch) {
  const int64_t da = a.dim(), db = b.dim();
  const bool folds = torch_folds(a, b);
  if (is_dot_or_mv(da, db, folds)) return;
  const int64_t M = da > 1 ? a.size(-2) : 1, K = a.size(-1), N = db > 1 ? b.size(-1) : 1;
  const bool is_mm = (da <= 2 && db == 2) || folds;
  report_flops(is_mm ? "mm" : "bmm", 2 * numel_of(batch) * M * N * K);
}

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  Tensor a = a_in, b = b_in;
  apply_autocast(OpId::matmul, {&a, &b});
  check_operands("matmul", a, b);
  const int64_t da = a.dim(), db = b.dim();
  FABRIC_CHECK(da >= 1 && db >= 1, ShapeError,
               "matmul: both arguments need to be at least 1-D, but they are ", da, "-D ",
               shape_str(a.sizes()), " and ", db, "-D ", shape_str(b.sizes()));
  const int64_t ka = a.size(-1), kb = b.size(db == 1 ? 0 : -2);
  if (ka != kb) throw_mismatch("matmul", a, b, ka, kb);
  // 1-D operands become a (1, K) row / (K, 1) column; their dim is dropped from the result.
  Tensor a2 = da == 1 ? raw_view(a, {1, ka}, {ka * a.stride(0), a.stride(0)}) : a;
  Tensor b2 = db == 1 ? raw_view(b, {kb, 1}, {b.stride(0), 1}) : b;
  Shape batch;
  try {
    batch = broadcast_shapes(batch_of(a2), batch_of(b2), "matmul");
  } catch (const ShapeError&) {
    throw ShapeError(cat("matmul: the batch dims of ", shape_str(a.sizes()), " and ",
                         shape_str(b.sizes()), " do not broadcast (", shape_str(batch_of(a2)),
                         " vs ", shape_str(batch_of(b2)), ")"));
  }
  Shape out_shape = batch;
  if (da > 1) out_shape.push_back(a.size(-2));
  if (db > 1) out_shape.push_back(b.size(-1));
  Tensor out;
  if (is_integral(a.dtype())) {
    out = integer_product(a2, b2).reshape(out_shape);
  } else {
    out = empty(out_shape, {.dtype = a.dtype(), .device = a.device()});
    gemm_into(a2, b2, Tensor(), out, batch);
  }
  if (counting_flops()) detail::report_matmul_flops(a, b, batch);
  record_op(OpId::matmul, {a, b}, {&out}, nullptr, matmul_node_name(da, db));
  return out;
}

Tensor mm(const Tensor& a_in, const Tensor& b_in) {
  Tensor a = a_in, b = b_in;
  apply_autocast(OpId::mm, {&a, &b});
  check_operands("mm", a, b);
  FABRIC_CHECK(a.dim() == 2 && b.dim() == 2, ShapeError, "mm: expected two 2-D matrices, got ",
               shape_str(a.sizes()), " and ", shape_str(b.sizes()));
  if (a.size(1) != b.size(0)) throw_mismatch("mm", a, b, a.size(1), b.size(0));
  Tensor out = is_integral(a.dtype())
                   ? integer_product(a, b)
                   : empty({a.size(0), b.size(1)}, {.dtype = a.dtype(), .device = a.device()});
  if (!is_integral(a.dtype())) gemm_into(a, b, Tensor(), out, {});
  if (counting_flops()) report_flops("mm", 2 * a.size(0) * a.size(1) * b.size(1));
  record_op(OpId::mm, {a, b}, {&out});
  return out;
}

Tensor bmm(const Tensor& a_in, const Tensor& b_in) {
  Tensor a = a_in, b = b_in;
  apply_autocast(OpId::bmm, {&a, &b});
  check_operands("bmm", a, b);
  FABRIC_CHECK(a.dim() == 3 && b.dim() == 3, ShapeError,
               "bmm: expected two 3-D tensors (B, M, K) and (B, K, N), got ", shape_str(a.sizes()),
               " and ", shape_str(b.sizes()));
  FABRIC_CHECK(a.size(0) == b.size(0), ShapeError,
               "bmm: batch sizes differ: ", shape_str(a.sizes()), " and ", shape_str(b.sizes()),
               " (bmm does not broadcast; use matmul)");
  if (a.size(2) != b.size(1)) throw_mismatch("bmm", a, b, a.size(2), b.size(1));
  Tensor out = is_integral(a.dtype()) ? integer_product(a, b)
                                      : empty({a.size(0), a.size(1), b.size(2)},
                                              {.dtype = a.dtype(), .device = a.device()});
  if (!is_integral(a.dtype())) gemm_into(a, b, Tensor(), out, {a.size(0)});
  if (counting_flops()) report_flops("bmm", 2 * a.size(0) * a.size(1) * a.size(2) * b.size(2));
  record_op(OpId::bmm, {a, b}, {&out});
  return out;
}

// torch 1.13's node for F.linear, which it builds from other ops: addmm (or mm) for a matrix, a
// contiguous 3-D input folded into one addmm and viewed back, otherwise matmul then add. Ours is
// one fused node under that name.
static const char* linear_node_name(const Tensor& x, bool bias) {
  if (x.dim() == 2) return bias ? "AddmmBackward0" : "MmBackward0";
  if (!bias) return x.dim() == 1 ? "SqueezeBackward3" : "UnsafeViewBackward0";
  return x.dim() == 3 && x.is_contiguous() ? "ViewBackward0" : "AddBackward0";
}

// torch's F.linear is addmm on the input folded to a matrix when there is a bias and the input is
// a matrix or contiguous, else matmul(x, Wᵀ) (+ bias), whose fold makes it mm for a weight that
// requires grad or an input whose leading dims fold: 2·rows·in·out either way.
void detail::report_linear_flops(const Tensor& x, const Tensor& w, const Tensor& bias) {
  const int64_t in = w.size(1), outf = w.size(0), rows = in > 0 ? x.numel() / in : 0;
  const bool addmm = bias.defined() && (x.dim() == 2 || x.is_contiguous());
  // Wᵀ as a raw view has no requires_grad flag: the weight's is the one torch looks at.
  const Tensor wt = transposed_matrix(w);
  const bool folds = x.dim() <= 2 || w.requires_grad() || torch_folds(x, wt);
  const char* name = addmm ? "addmm" : folds ? "mm" : "bmm";
  report_flops(name, 2 * rows * in * outf);
}

Tensor linear(const Tensor& x_in, const Tensor& w_in, const Tensor& bias_in) {
  Tensor x = x_in, w = w_in, bias = bias_in;
  apply_autocast(OpId::linear, {&x, &w, &bias});
  check_operands("linear", x, w);
  FABRIC_CHECK(w.dim() == 2, ShapeError,
               "linear: weight must be 2-D (out_features, in_features), got ",
               shape_str(w.sizes()));
  FABRIC_CHECK(x.dim() >= 1, ShapeError, "linear: input must be at least 1-D, got a 0-dim tensor");
  const int64_t in = w.size(1), outf = w.size(0);
  FABRIC_CHECK(x.size(-1) == in, ShapeError, "linear: input ", shape_str(x.sizes()), " has ",
               x.size(-1), " features but weight ", shape_str(w.sizes()), " expects ", in);
  if (bias.defined()) {
    FABRIC_CHECK(bias.dtype() == x.dtype(), DTypeError, "linear: bias dtype ",
                 dtype_name(bias.dtype()), " differs from the input dtype ", dtype_name(x.dtype()));
    FABRIC_CHECK(bias.device() == x.device(), DeviceError, "linear: bias is on ", bias.device(),
                 ", input on ", x.device());
    FABRIC_CHECK(bias.dim() <= 1 && bias.numel() == outf, ShapeError, "linear: bias ",
                 shape_str(bias.sizes()), " must be 1-D with ", outf, " elements for weight ",
                 shape_str(w.sizes()));
  }
  // y = x @ W^T: the weight's transpose is a view, read by the GEMM as is.
  Tensor wt = transposed_matrix(w);
  Tensor x2 = as_rows(x);
  Shape out_shape = x.sizes();
  out_shape.back() = outf;
  Tensor out = empty(out_shape, {.dtype = x.dtype(), .device = x.device()});
  Tensor b1 = bias.defined() && bias.dim() == 0 ? raw_view(bias, {1}, {1}) : bias;
  if (is_integral(x.dtype())) {
    // torch computes integer linear on the CPU (no GEMM library takes it): as matmul does. Integer
    // tensors carry no gradient, so nothing is recorded.
    out = integer_product(x2, wt).reshape(out_shape);
    return b1.defined() ? add(out, b1) : out;
  }
  gemm_into(x2, wt, b1, out, batch_of(x2));
  if (counting_flops()) detail::report_linear_flops(x, w, bias);
  record_op(OpId::linear, {x, w, bias}, {&out}, nullptr, linear_node_name(x, bias.defined()));
  return out;
}

}  // namespace fabric
