// cdist's own kernels, as torch's _cdist_forward / _cdist_backward: distances straight from the
// rows, never the (..., P, R, M) tensor of every pairwise difference (1 GiB at 2048 x 2048 x 64
// floats). cdist takes them except where torch takes its matmul formula (p = 2, more than 25 rows).
#pragma once
#include <cstdint>

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

// What cdist records when it runs its kernel (one autograd node, torch's CdistBackward0).
struct CdistAttrs {
  double p = 2.0;
};

// cdist_backward_stub on tensors: x1 (..., P, M), x2 (..., R, M) of one batch shape, grad and
// dist (..., P, R); the gradient w.r.t. x1, or with wrt_x2 w.r.t. x2. Records nothing (torch's
// _cdist_backward has no derivative either).
Tensor cdist_backward(const Tensor& grad, const Tensor& x1, const Tensor& x2, double p,
                      const Tensor& dist, bool wrt_x2);

}  // namespace fabric
