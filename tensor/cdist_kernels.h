// cdist's own kernels, as torch's _cdist_forward / _cdist_backward: distances straight from the
// rows, never the (..., P, R, M) tensor of every pairwise difference (1 GiB at 2048 x 2048 x 64
// floats). cdist takes them except where torch takes its matmul formula (p = 2, more than 25 rows).
#pragma once
#include <cstdint>
#include <utility>

#include "tensor/dispatch_stub.h"
#include "tensor/dtype.h"
#include "tensor/tensor.h"

namespace fabric {

// batch independent problems, contiguous: x1 (P, M), x2 (R, M), out/dist and grad (P, R), or
// for the backward with grad_transposed, grad and dist stored (R, P) (the gradient w.r.t. cdist's
// x2 runs with the operands swapped and reads cdist's own grad and dist, unmoved). p >= 0 (0: count
// of differing features, inf: the largest difference). 16-bit dtypes compute in float32.
struct CdistDesc {
  int64_t batch = 0, rows1 = 0, rows2 = 0, features = 0;
  double p = 2.0;
  bool grad_transposed = false;
  DType dtype = DType::float32;
};

// out[i][j] = (sum_k |x1[i,k] - x2[j,k]|^p)^(1/p).
using CdistFn = void (*)(const CdistDesc& d, const void* x1, const void* x2, void* out);
// The gradient w.r.t. x1 (P, M, all written) of sum(grad * dist), dist = cdist(x1, x2, p) given:
// sum over j of grad[i,j] * d dist[i,j] / d x1[i,k], zero where dist[i,j] is zero (torch's
// _cdist_backward). The gradient w.r.t. x2 is this with the operands (and grad, dist) transposed.
using CdistBackwardFn = void (*)(const CdistDesc& d, const void* grad, const void* x1,
                                 const void* x2, const void* dist, void* dx1);
FABRIC_DECLARE_STUB(cdist_stub, CdistFn);
FABRIC_DECLARE_STUB(cdist_backward_stub, CdistBackwardFn);

// The two (..., P, R) passes of torch's matmul formula (p = 2, more than 25 rows), each fused into
// one pass over n contiguous elements of dtype (float32 or float64) so that no (P, R) temporary
// is allocated beyond the GEMM's output and the backward's scale:
// in place, r = sqrt(clamp_min(r, 1e-30)) (NaN stays NaN, as torch's clamp_min);
using CdistMmSqrtFn = void (*)(int64_t n, DType dtype, void* r);
// scale = grad / (2 dist) where the clamp passed the gradient (dist above sqrt(1e-30)), else 0:
// the gradient of sqrt(clamp_min(r, 1e-30)) w.r.t. r.
using CdistMmScaleFn = void (*)(int64_t n, DType dtype, const void* grad, const void* dist,
                                void* scale);
FABRIC_DECLARE_STUB(cdist_mm_sqrt_stub, CdistMmSqrtFn);
FABRIC_DECLARE_STUB(cdist_mm_scale_stub, CdistMmScaleFn);

// What cdist records when it runs its kernel (one autograd node, torch's CdistBackward0).
struct CdistAttrs {
  double p = 2.0;
  bool mm = false;  // torch's matmul formula (euclidean_dist_mm), not the kernels above
};

// cdist_backward_stub on tensors: x1 (..., P, M), x2 (..., R, M) of one batch shape, grad and
// dist (..., P, R); the gradient w.r.t. x1, or with wrt_x2 w.r.t. x2. Records nothing (torch's
// _cdist_backward has no derivative either).
Tensor cdist_backward(const Tensor& grad, const Tensor& x1, const Tensor& x2, double p,
                      const Tensor& dist, bool wrt_x2);

// torch's matmul formula (p = 2, more than 25 rows) on x1 (..., P, M), x2 (..., R, M) of one
// batch shape. Its augmented rows [-2 x1, ||x1||^2, 1] and [x2, 1, ||x2||^2], as recorded ops
// (differentiable when x1 and x2 are).
std::pair<Tensor, Tensor> cdist_mm_rows(const Tensor& x1, const Tensor& x2);
// The gradient w.r.t. x of its augmented rows' gradient grad_rows (..., N, M + 2): scale times
// the first M columns, plus 2 x times column norm_col (the one that held ||x||^2). Recorded ops.
Tensor cdist_mm_input_grad(const Tensor& x, const Tensor& grad_rows, int64_t norm_col,
                           double scale);
// The gradients w.r.t. x1 and x2 of sum(grad * dist), dist = sqrt(clamp_min(r, 1e-30)) of the
// formula's GEMM r: one fused pass for the scale grad / (2 dist), two GEMMs with the augmented
// rows (torch's matmul backward), on detached tensors (CPU, float32/float64). Records nothing.
std::pair<Tensor, Tensor> cdist_mm_backward(const Tensor& grad, const Tensor& x1,
                                            const Tensor& x2, const Tensor& dist);

}  // namespace fabric
