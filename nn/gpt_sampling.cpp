// nanoGPT's sampling step (gpt_sampling.h) in tensor ops.
#include "nn/gpt_sampling.h"

#include <algorithm>
#include <limits>

#include "tensor/multinomial.h"
#include "tensor/ops.h"

namespace fabric::nn {

Tensor sample_next_token(const Tensor& logits, double temperature, std::optional<int64_t> top_k,
                         Generator* gen) {
  FABRIC_CHECK(logits.defined() && logits.dim() == 2, ShapeError,
               "sample_next_token: expected (B, V) logits, got ",
               logits.defined() ? shape_str(logits.sizes()) : std::string("an undefined tensor"));
  FABRIC_CHECK(temperature > 0, ValueError, "sample_next_token: temperature must be > 0, got ",
               temperature);
  FABRIC_CHECK(!top_k || *top_k > 0, ValueError, "sample_next_token: top_k must be positive, got ",
               top_k.value_or(0));
  Tensor scaled = div(logits, Scalar(temperature));
  if (top_k) {
    const int64_t k = std::min(*top_k, scaled.size(1));
    const Tensor kth = std::get<0>(topk(scaled, k, 1)).narrow(1, k - 1, 1);
    scaled = masked_fill(scaled, lt(scaled, kth), Scalar(-std::numeric_limits<double>::infinity()));
  }
  return multinomial(softmax(scaled, -1), 1, /*replacement=*/false, gen);
}

}  // namespace fabric::nn
