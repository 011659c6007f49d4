// Attention as a composition of ops (a fused kernel can replace it behind the same signature).
#include "nn/functional.h"

#include <cmath>
#include <limits>

#include "tensor/factory.h"

namespace fabric::nn::functional {

Tensor causal_mask(int64_t L, int64_t S, Device device) {
  FABRIC_CHECK(L >= 0 && S >= 0, ValueError, "causal_mask: sizes must be >= 0, got L=", L,
               ", S=", S);
  Tensor i = arange(L, DType::int64, device).unsqueeze(1);  // (L, 1)
  Tensor j = arange(S, DType::int64, device).unsqueeze(0);  // (1, S)
  return ge(i, j);                                          // (L, S) bool
}

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& attn_mask, double dropout_p, bool is_causal,
                                    std::optional<double> scale, Generator* gen) {
  FABRIC_CHECK(q.dim() >= 2 && k.dim() >= 2 && v.dim() >= 2, ShapeError,
               "scaled_dot_product_attention: q, k, v need at least 2 dims, got ",
               shape_str(q.sizes()), ", ", shape_str(k.sizes()), ", ", shape_str(v.sizes()));
  const int64_t L = q.size(-2), E = q.size(-1), S = k.size(-2);
  FABRIC_CHECK(
      k.size(-1) == E && v.size(-2) == S, ShapeError,
      "scaled_dot_product_attention: expected q (..., L, E), k (..., S, E), v (..., S, Ev), got q ",
      shape_str(q.sizes()), ", k ", shape_str(k.sizes()), ", v ", shape_str(v.sizes()));
  FABRIC_CHECK(!(is_causal && attn_mask.defined()), ValueError,
               "scaled_dot_product_attention: pass either attn_mask or is_causal, not both");
  FABRIC_CHECK(dropout_p >= 0.0 && dropout_p <= 1.0, ValueError,
               "scaled_dot_product_attention: dropout_p must be in [0, 1], got ", dropout_p);
  const double s = scale.value_or(E > 0 ? 1.0 / std::sqrt(static_cast<double>(E)) : 1.0);
  // Scaling q (L x E values) is cheaper than scaling the scores (L x S per head).
  Tensor att = matmul(mul(q, Scalar(s)), k.transpose(-2, -1));  // (..., L, S)
  Tensor mask = is_causal ? causal_mask(L, S, q.device()) : attn_mask;
  if (mask.defined()) {
    if (mask.dtype() == DType::bool_) {
      att = where(mask, att, Scalar(-std::numeric_limits<double>::infinity()));
    } else {
      att = add(att, mask);
    }
  }
  att = softmax(att, -1);
  if (dropout_p > 0.0) att = dropout(att, dropout_p, true, gen);
  return matmul(att, v);  // (..., L, Ev)
}

}  // namespace fabric::nn::functional
