// Derivatives of matmul, mm, bmm and linear (each gradient is one GEMM on (transposed) views,
// computed only for the inputs that need it), of the fused GELU MLP and of fused attention.
#include <array>
#include <limits>
#include <optional>
#include <tuple>

#include "autograd/derivatives.h"
#include "autograd/grad_mode.h"
#include "autograd/saved.h"
#include "tensor/flop_counter.h"
#include "tensor/op_attrs.h"
#include "tensor/ops.h"
#include "tensor/ops_backward.h"
#include "tensor/products_internal.h"

namespace fabric {
namespace {

Tensor mT(const Tensor& t) { return t.transpose(-1, -2); }


FABRIC_DERIVATIVE(matmul) {
  const bool need_a = rec.inputs[0].requires_grad(), need_b = rec.inputs[1].requires_grad();
  Tensor a = need_b ? saved(rec.inputs[0]) : Tensor(), b = need_a ? saved(rec.inputs[1]) : Tensor();
  const int64_t da = rec.inputs[0].dim(), db = rec.inputs[1].dim();
  // A forward torch runs as a dot or mv counts 0 FLOPs, and so does its backward (mul, ger, mv).
  // (Only a vector operand can make it one: the common products skip the fold test.)
  const bool counted =
      (da != 1 && db != 1) || detail::matmul_counts_flops(rec.inputs[0], rec.inputs[1]);
  return [a, b, da, db, counted](const Grads& g) {
    std::optional<FlopsNotCounted> quiet;
    if (!counted) quiet.emplace();
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
      if (a.defined() && da > 2 && db == 2) {
        // torch folds a batch of rows times one matrix into one mm (its forward and MmBackward0):
        // b's gradient is one (K, rows) @ (rows, N) product, not a batched one summed after.
        gb = mm(detail::leading_rows(a).t(), detail::leading_rows(go));
      } else if (a.defined()) {
        gb = matmul(mT(a), go);
      }
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
    Tensor g2 = detail::leading_rows(go);
    Tensor gx, gw, gb;
    if (w.defined()) gx = matmul(go, w);  // (..., in)
    const Tensor x2 = x.defined() ? detail::leading_rows(x) : Tensor();
    if (!grad_enabled()) {  // (out, in), (out): one GEMM where the device has the epilogue
      std::tie(gw, gb) = linear_weight_bias_grads(g2, x2, x.defined(), need_b);
      return Grads{gx, gw, gb};
    }
    if (x.defined()) gw = mm(g2.t(), x2);
    if (need_b) gb = sum(g2, {0});
    return Grads{gx, gw, gb};
  };
}

// gelu_mlp's gradient of recorded ops, for create_graph: the pre-activation is recomputed from
// the inputs (the saved one is an output of the node itself, whose gradient the rule would drop),
// then linear's and gelu's rules in grad mode.
Grads gelu_mlp_derivative(const Tensor& go, const Tensor& x, const Tensor& w1, const Tensor& b1,
                          const Tensor& w2, const std::array<bool, 5>& needs) {
  const Tensor pre = linear(x, w1, b1);
  const Tensor hidden = gelu(pre, "tanh");
  const Tensor g2 = detail::leading_rows(go);
  Grads r(5);
  if (needs[3]) r[3] = mm(g2.t(), detail::leading_rows(hidden));
  if (needs[4]) r[4] = sum(g2, {0});
  if (!needs[0] && !needs[1] && !needs[2]) return r;
  const Tensor gpre = mul(matmul(go, w2), gelu_tanh_derivative(pre));
  const Tensor gp2 = detail::leading_rows(gpre);
  if (needs[0]) r[0] = matmul(gpre, w1);
  if (needs[1]) r[1] = mm(gp2.t(), detail::leading_rows(x));
  if (needs[2]) r[2] = sum(gp2, {0});
  return r;
}

// Inputs (x, fc_weight, fc_bias, proj_weight, proj_bias); outputs (out, pre, hidden), the last two
// kept for the backward only.
FABRIC_DERIVATIVE(gelu_mlp) {
  std::array<bool, 5> needs{};
  for (size_t i = 0; i < needs.size(); ++i)
    needs[i] = i < rec.num_inputs && rec.inputs[i].defined() && rec.inputs[i].requires_grad();
  Tensor x = saved(rec.inputs[0]), w1 = saved(rec.inputs[1]), b1 = saved(rec.inputs[2]);
  Tensor w2 = saved(rec.inputs[3]);
  Tensor pre = saved(rec.outputs[1]), hidden = saved(rec.outputs[2]);
  return [x, w1, b1, w2, pre, hidden, needs](const Grads& g) {
    if (!g[0].defined()) return Grads(5);
    if (grad_enabled()) return gelu_mlp_derivative(g[0], x, w1, b1, w2, needs);
    GeluMlpGrads r = gelu_mlp_backward(g[0], x, w1, w2, pre, hidden, needs);
    return Grads{r.x, r.fc_weight, r.fc_bias, r.proj_weight, r.proj_bias};
  };
}

// Attention's gradient of recorded ops, for create_graph (the fused kernel records nothing):
// P = softmax(q k^T scale) (causally masked), dv = P^T g, dS = P (g v^T - rowsum(P g v^T)),
// dq = dS k scale, dk = dS^T q scale. The scores are recomputed from q and k: the saved lse is
// an output of the node itself, whose gradient the rule would drop.
Grads attention_derivative(const Tensor& g_in, const Tensor& q_in, const Tensor& k_in,
                           const Tensor& v_in, const AttentionAttrs& a) {
  const DType acc = q_in.dtype() == DType::float64 ? DType::float64 : DType::float32;
  const Tensor q = q_in.to(acc), k = k_in.to(acc), v = v_in.to(acc), g = g_in.to(acc);
  Tensor scores = mul(matmul(q, mT(k)), a.scale);
  if (a.causal)
    scores = where(causal_mask(q.size(-2), k.size(-2), q.device()), scores,
                   -std::numeric_limits<double>::infinity());
  const Tensor p = softmax(scores, -1);
  const Tensor dp = matmul(g, mT(v));
  const Tensor ds = mul(p, sub(dp, sum(mul(dp, p), {-1}, true)));
  return Grads{mul(matmul(ds, k), a.scale).to(q_in.dtype()),
               mul(matmul(mT(ds), q), a.scale).to(k_in.dtype()), matmul(mT(p), g).to(v_in.dtype())};
}

FABRIC_DERIVATIVE(scaled_dot_product_attention) {
  const AttentionAttrs a = attrs_of<AttentionAttrs>(rec);
  Tensor q = saved(rec.inputs[0]), k = saved(rec.inputs[1]), v = saved(rec.inputs[2]);
  Tensor out = saved(rec.outputs[0]), lse = saved(rec.outputs[1]);
  // The composition cannot redraw the fused kernel's dropout mask: that case stays refused.
  if (a.dropout.p > 0.0) refuse_double_backward();
  return [a, q, k, v, out, lse](const Grads& g) {
    if (!g[0].defined()) return Grads{Tensor(), Tensor(), Tensor()};
    if (grad_enabled() && a.dropout.p == 0.0) return attention_derivative(g[0], q, k, v, a);
    auto [dq, dk, dv] =
        scaled_dot_product_attention_backward(g[0], q, k, v, out, lse, a.scale, a.causal, a.dropout);
    return Grads{dq, dk, dv};
  };
}

}  // namespace
}  // namespace fabric
