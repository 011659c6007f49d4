// Dispatch stubs for the reduction, scan, softmax, normalisation and loss kernels, with the
// value types they take (geometry, parameters). The ops in ops_reduce/ops_norm/ops_loss.cpp fill
// them in; each device registers its kernels (kernels/cpu/reduce.cpp, softmax.cpp, norm.cpp, ...).
#pragma once
#include <array>
#include <cstdint>

#include "tensor/dispatch_stub.h"
#include "tensor/dtype.h"
#include "tensor/strided_loop.h"

namespace fabric {

// The dtype reductions accumulate in: float64 for float64, int64 for integers and bool, float32
// for the other floats (fp16/bf16 load -> float -> accumulate, as PyTorch does).
inline constexpr DType reduce_acc_dtype(DType t) {
  if (t == DType::float64) return DType::float64;
  if (is_floating(t)) return DType::float32;
  return DType::int64;
}

// ---- reductions ----------------------------------------------------------------------------

inline constexpr int kMaxReduceDims = 12;

// A reduction of `in` into `out`: kept dims index the outputs, reduced dims are folded into each
// output. Strides are in elements, the innermost dim of each group last; size-1 dims are dropped
// and adjacent dims merged where memory allows. nred == 0 means each output reads one element;
// a reduced size of 0 means each output gets the op's identity.
struct ReduceGeometry {
  const char* in = nullptr;
  DType in_dtype = DType::float32;
  char* out = nullptr;
  DType out_dtype = DType::float32;
  int nkeep = 0;
  std::array<int64_t, kMaxReduceDims> keep_sizes{}, keep_in{}, keep_out{};
  int nred = 0;
  std::array<int64_t, kMaxReduceDims> red_sizes{}, red_in{};

  int64_t num_out() const {
    int64_t n = 1;
    for (int d = 0; d < nkeep; ++d) n *= keep_sizes[d];
    return n;
  }
  int64_t num_red() const {
    int64_t n = 1;
    for (int d = 0; d < nred; ++d) n *= red_sizes[d];
    return n;
  }
};

// What is folded: sums of x, |x|, x^2, |x|^p, (x != 0); NaN-propagating max/min of x or |x|;
// centered sums of (x - c)^2 and exp(x - c) with c one value per output (var, logsumexp).
enum class ReduceOp : uint8_t {
  sum,
  sum_abs,
  sum_sq,
  sum_pow,
  count_nonzero,
  max,
  min,
  max_abs,
  min_abs,
  sum_sq_dev,
  sum_exp_dev
};
// Applied to the folded value (after dividing by `divisor`) before it is stored.
enum class ReduceFinish : uint8_t {
  none,
  sqrt,
  root /* ^(1/p) */,
  log_add_center /* log(r) + c */
};

struct ReduceParams {
  double p = 2;                  // sum_pow's exponent and root's 1/p
  const void* center = nullptr;  // reduce_acc_dtype(in) values, one per output, at keep_out strides
  double divisor = 1;            // mean's N, var's N - correction (0 gives inf/nan as in PyTorch)
  ReduceFinish finish = ReduceFinish::none;
};

// Accumulates in reduce_acc_dtype(in_dtype), stores converted to out_dtype. Float sums are
// pairwise over blocks so long sums stay within a few ulp.
using ReduceFn = void (*)(ReduceOp op, const ReduceGeometry& g, const ReduceParams& params);
FABRIC_DECLARE_STUB(reduce_stub, ReduceFn);

// Index (int64, at keep_out strides) of the first max/min along the single reduced dim (nred <= 1),
// NaN counting as the extreme (its first index wins). Values go to g.out when it is non-null.
using ArgReduceFn = void (*)(bool is_max, const ReduceGeometry& g, int64_t* indices);
FABRIC_DECLARE_STUB(arg_reduce_stub, ArgReduceFn);

// ---- scans ----------------------------------------------------------------------------------

// Contiguous in and out viewed as (outer, len, inner); the scan runs along len.
struct ScanGeometry {
  const void* in = nullptr;
  DType in_dtype = DType::float32;
  void* out = nullptr;
  DType out_dtype = DType::float32;
  int64_t outer = 1, len = 1, inner = 1;
};
using CumsumFn = void (*)(const ScanGeometry& g);
FABRIC_DECLARE_STUB(cumsum_stub, CumsumFn);

// ---- softmax ----------------------------------------------------------------------------------

// Contiguous tensors viewed as (outer, n, inner); softmax runs along n.
struct RowGeometry {
  int64_t outer = 1, n = 1, inner = 1;
};
// out = softmax(in) or log_softmax(in); computes in float32 (float64 when either side is float64).
using SoftmaxFn = void (*)(const RowGeometry& g, const void* in, DType in_dtype, void* out,
                           DType out_dtype, bool log);
FABRIC_DECLARE_STUB(softmax_stub, SoftmaxFn);
// dx = y * (dy - sum(dy * y)) (softmax) or dy - exp(y) * sum(dy) (log_softmax); dy and y share a
// dtype.
using SoftmaxBackwardFn = void (*)(const RowGeometry& g, const void* dy, const void* y, DType dtype,
                                   void* dx, DType dx_dtype, bool log);
FABRIC_DECLARE_STUB(softmax_backward_stub, SoftmaxBackwardFn);

// ---- layer_norm / rms_norm over contiguous (rows, cols)
// ------------------------------------------

struct NormArgs {
  int64_t rows = 0, cols = 0;
  const void* x = nullptr;
  DType x_dtype = DType::float32;
  // x's, or float16/bfloat16 for a float32 x: the cast to an autocast dtype fused into the norm
  // (each element computed as for x's dtype, then rounded once).
  DType y_dtype = DType::float32;
  const void* weight = nullptr;  // (cols) or null
  DType weight_dtype = DType::float32;
  const void* bias = nullptr;  // (cols) or null; ignored by rms
  DType bias_dtype = DType::float32;
  void* y = nullptr;
  void* mean = nullptr;  // (rows) in reduce_acc_dtype(x); unused by rms
  void* rstd = nullptr;  // (rows) in reduce_acc_dtype(x)
  double eps = 1e-5;
  bool rms = false;
};
// Whether the norm kernels take `dt` for the output (or the gradient) beside an x of `x`: x's own
// dtype, or float16/bfloat16 beside float32 (the autocast cast folded into the norm). The rows go
// through the accumulation type, so another pairing would be read or written at the wrong width.
inline bool norm_takes_dtype(DType x, DType dt) {
  return dt == x || (x == DType::float32 && (dt == DType::float16 || dt == DType::bfloat16));
}

using NormFn = void (*)(const NormArgs& a);
FABRIC_DECLARE_STUB(norm_stub, NormFn);

struct NormBackwardArgs {
  int64_t rows = 0, cols = 0;
  const void* dy = nullptr;
  const void* x = nullptr;
  DType x_dtype = DType::float32;
  DType dy_dtype = DType::float32;  // x's, or float16/bfloat16 for a float32 x (read widened)
  const void* weight = nullptr;  // (cols) or null
  DType weight_dtype = DType::float32;
  const void* mean = nullptr;  // (rows) acc dtype; unused by rms
  const void* rstd = nullptr;  // (rows) acc dtype
  void* dx = nullptr;          // x's dtype, or null when not wanted
  void* dweight = nullptr;     // (cols) in weight_dtype, or null
  void* dbias = nullptr;       // (cols) in dbias_dtype, or null
  DType dbias_dtype = DType::float32;
  bool rms = false;
};
using NormBackwardFn = void (*)(const NormBackwardArgs& a);
FABRIC_DECLARE_STUB(norm_backward_stub, NormBackwardFn);

// ---- losses -----------------------------------------------------------------------------------

// Contiguous logits (outer, classes, inner) and targets (outer, inner): one loss per position.
struct ClassGeometry {
  int64_t outer = 1, classes = 1, inner = 1;
};
// What a loss kernel saw in the targets: how many were not ignore_index, and the first one out of
// [0, classes) that was not ignore_index (the op raises IndexError naming it).
struct TargetStats {
  int64_t valid = 0;
  bool bad = false;
  int64_t bad_value = 0;
};
// Devices that check targets inside their kernels (CUDA; see tensor/deferred_check.h) return no
// TargetStats: `id` is the armed check an out-of-range target is reported under, and the forward
// kernels leave the valid count in `valid_count` (a 0-dim int64 on the device) for the mean. Both
// are unset on the CPU, whose kernels return the statistics and the op checks them at once.
struct TargetCheck {
  uint64_t id = 0;
  int64_t* valid_count = nullptr;
};
// loss[pos] = (1 - s) * (lse - x[t]) + s / C * sum_c (lse - x[c]), 0 where ignored; loss is in
// reduce_acc_dtype(logits). One pass of log-sum-exp per row, fused with the pick.
using CrossEntropyFn = TargetStats (*)(const ClassGeometry& g, const void* logits, DType dtype,
                                       const void* target, DType target_dtype, int64_t ignore_index,
                                       double label_smoothing, void* loss,
                                       const TargetCheck& check);
FABRIC_DECLARE_STUB(cross_entropy_stub, CrossEntropyFn);
// dlogits = g_pos * (softmax - (1 - s) onehot(t) - s / C), 0 on ignored rows; dlogits has the
// logits' dtype. grad is in reduce_acc_dtype(logits): one value per position, or one value for
// all when grad_is_scalar (divided by the valid count when `mean`).
using CrossEntropyBackwardFn = TargetStats (*)(const ClassGeometry& g, const void* logits,
                                               DType dtype, const void* target, DType target_dtype,
                                               int64_t ignore_index, double label_smoothing,
                                               const void* grad, bool grad_is_scalar, bool mean,
                                               void* dlogits, const TargetCheck& check);
FABRIC_DECLARE_STUB(cross_entropy_backward_stub, CrossEntropyBackwardFn);
// loss[pos] = -log_probs[t], 0 where ignored; loss in reduce_acc_dtype(log_probs).
using NllLossFn = TargetStats (*)(const ClassGeometry& g, const void* log_probs, DType dtype,
                                  const void* target, DType target_dtype, int64_t ignore_index,
                                  void* loss, const TargetCheck& check);
FABRIC_DECLARE_STUB(nll_loss_stub, NllLossFn);
// dlog_probs = -grad at (n, target, i) of each position whose target is a class, 0 everywhere
// else; dlog_probs and grad have the log_probs' dtype. grad is one value per position, or one
// for all when grad_is_scalar, then divided by the valid count when `mean` (count and quotient
// rounded to the dtype, as torch's total weight).
using NllLossBackwardFn = TargetStats (*)(const ClassGeometry& g, DType dtype, const void* target,
                                          DType target_dtype, int64_t ignore_index,
                                          const void* grad, bool grad_is_scalar, bool mean,
                                          void* dlog_probs, const TargetCheck& check);
FABRIC_DECLARE_STUB(nll_loss_backward_stub, NllLossBackwardFn);

// mse_loss: out = (a - b)^2 over a loop (a and b share a dtype; out may be wider).
using SquaredDiffFn = void (*)(const StridedLoop& loop);
FABRIC_DECLARE_STUB(squared_diff_stub, SquaredDiffFn);

}  // namespace fabric
