// Derivatives of matmul, mm, bmm and linear (each gradient is one GEMM on (transposed) views,
// computed only for the inputs that need it) and of fused attention.
#include "autograd/derivatives.h"
#include "autograd/saved.h"
#include "tensor/op_attrs.h"
#include "tensor/ops.h"
#include "tensor/ops_backward.h"

namespace fabric {
namespace {

Tensor mT(const Tensor& t) { return t.transpose(-1, -2); }

FABRIC_DERIVATIVE(matmul) {
  const bool need_a = rec.inputs[0].requires_grad(), need_b = rec.inputs[1].requires_grad();
  Tensor a = need_b ? saved(rec.inputs[0]) : Tensor(), b = need_a ? saved(rec.inputs[1]) : Tensor();
  const int64_t da = rec.inputs[0].dim(), db = rec.inputs[1].dim();
  return [a, b, da, db](const Grads& g) {
    Tensor go = g[0];
    Tensor ga, gb;
    if (da == 1 && db == 1) {  // dot product: 0-dim result
      if (b.defined()) ga = mul(b, go);
      if (a.defined()) gb = mul(a, go);
    } else if (da == 1) {      // (K) @ (..., K, N) -> (..., N)
      if (b.defined()) ga = matmul(go.unsqueeze(-2), mT(b)).squeeze(-2);
      if (a.defined()) gb = matmul(a.unsqueeze(-1), go.unsqueeze(-2));
    } else if (db == 1) {      // (..., M, K) @ (K) -> (..., M)
      if (b.defined()) ga = matmul(go.unsqueeze(-1), b.unsqueeze(0));
      if (a.defined()) gb = matmul(mT(a), go.unsqueeze(-1)).squeeze(-1);
    } else {
      if (b.defined()) ga = matmul(go, mT(b));
      if (a.defined()) gb = matmul(mT(a), go);
    }
    return Grads{ga, gb};
  };
}

FABRIC_DERIVATIVE(mm) {
  const bool need_a = rec.inputs[0].requires_grad(), need_b = rec.inputs[1].requires_grad();
  Tensor a = need_b ? saved(rec.inputs[0]) : Tensor(), b = need_a ? saved(rec.inputs[1]) : Tensor();
  return [a, b](const Grads& g) {
    return Grads{b.defined() ? mm(g[0], b.t()) : Tensor(), a.defined() ? mm(a.t(), g[0]) : Tensor()};
  };
}

FABRIC_DERIVATIVE(bmm) {
  const bool need_a = rec.inputs[0].requires_grad(), need_b = rec.inputs[1].requires_grad();
  Tensor a = need_b ? saved(rec.inputs[0]) : Tensor(), b = need_a ? saved(rec.inputs[1]) : Tensor();
  return [a, b](const Grads& g) {
    return Grads{b.defined() ? bmm(g[0], mT(b)) : Tensor(), a.defined() ? bmm(mT(a), g[0]) : Tensor()};
  };
}

FABRIC_DERIVATIVE(linear) {
  const Tensor& x_in = rec.inputs[0];
  const Tensor& w_in = rec.inputs[1];
  const bool has_bias = rec.num_inputs > 2 && rec.inputs[2].defined();
  const bool need_x = x_in.requires_grad(), need_w = w_in.requires_grad();
  const bool need_b = has_bias && rec.inputs[2].requires_grad();
  Tensor x = need_w ? saved(x_in) : Tensor(), w = need_x ? saved(w_in) : Tensor();
  return [x, w, need_b](const Grads& g) {
    const Tensor& go = g[0];  // (..., out)
    const int64_t out_f = go.size(-1);
    Tensor g2 = go.reshape({-1, out_f});
    Tensor gx, gw, gb;
    if (w.defined()) gx = matmul(go, w);                                // (..., in)
    if (x.defined()) gw = mm(g2.t(), x.reshape({-1, x.size(-1)}));      // (out, in)
    if (need_b) gb = sum(g2, {0});
    return Grads{gx, gw, gb};
  };
}

FABRIC_DERIVATIVE(scaled_dot_product_attention) {
  const AttentionAttrs a = attrs_of<AttentionAttrs>(rec);
  Tensor q = saved(rec.inputs[0]), k = saved(rec.inputs[1]), v = saved(rec.inputs[2]);
  Tensor out = saved(rec.outputs[0]), lse = saved(rec.outputs[1]);
  return [a, q, k, v, out, lse](const Grads& g) {
    if (!g[0].defined()) return Grads{Tensor(), Tensor(), Tensor()};
    auto [dq, dk, dv] =
        scaled_dot_product_attention_backward(g[0], q, k, v, out, lse, a.scale, a.causal, a.dropout);
    return Grads{dq, dk, dv};
  };
}

}  // namespace
}  // namespace fabric
