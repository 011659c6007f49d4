// A linear layer's weight and bias gradients, in one GEMM with the bias gradient in its epilogue
// where the device has one (gemm_bgrad_stub), else as linear's rule makes them (see
// ops_backward.h).
#include "tensor/factory.h"
#include "tensor/flop_counter.h"
#include "tensor/linalg_kernels.h"
#include "tensor/ops.h"
#include "tensor/ops_backward.h"
#include "tensor/products_internal.h"

namespace fabric {

std::pair<Tensor, Tensor> linear_weight_bias_grads(const Tensor& g2, const Tensor& x2, bool weight,
                                                   bool bias) {
  const bool fusable = weight && bias && g2.dim() == 2 && x2.dim() == 2 &&
                       g2.dtype() == x2.dtype() && g2.device() == x2.device() &&
                       g2.size(0) == x2.size(0) && g2.numel() > 0 && x2.numel() > 0 &&
                       gemm_bgrad_stub.find(g2.device()) != nullptr;
  if (!fusable) return {weight ? mm(g2.t(), x2) : Tensor(), bias ? sum(g2, {0}) : Tensor()};
  const int64_t rows = g2.size(0), out = g2.size(1), in = x2.size(1);
  const TensorOptions opts{.dtype = g2.dtype(), .device = g2.device()};
  Tensor gw = empty({out, in}, opts), gb = empty({out}, opts);
  // g2ᵀ (out, rows) as a view: the GEMM reads it transposed, as mm(g2.t(), x2) does.
  const Tensor g2t = detail::transposed_matrix(g2);
  detail::GemmEpilogue bgrad{.kind = detail::GemmEpilogue::Kind::bias_grad, .aux = gb};
  detail::gemm_into(g2t, x2, Tensor(), gw, {}, 1.f, 0.f, &bgrad);
  if (counting_flops()) report_flops("mm", 2 * out * in * rows);
  return {gw, bgrad.fused ? gb : sum(g2, {0})};
}

}  // namespace fabric
