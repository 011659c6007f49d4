// The functional API under fabric::nn (and fabric::nn::functional): the ops of tensor/ops.h that
// layers are made of, plus compositions that have no single op yet (attention).
#pragma once
#include <optional>

#include "tensor/ops.h"

namespace fabric::nn {

// Inline: fabric::nn::cross_entropy and fabric::nn::functional::cross_entropy both work.
inline namespace functional {

using fabric::avg_pool2d;
using fabric::conv2d;
using fabric::cross_entropy;
using fabric::dropout;
using fabric::embedding;
using fabric::gelu;
using fabric::layer_norm;
using fabric::linear;
using fabric::log_softmax;
using fabric::max_pool2d;
using fabric::mse_loss;
using fabric::nll_loss;
using fabric::one_hot;
using fabric::relu;
using fabric::rms_norm;
using fabric::sigmoid;
using fabric::silu;
using fabric::softmax;
using fabric::tanh;

// A causal mask (L, S): true where key j may be attended from query i (j <= i), as the
// lower-left triangle torch builds for is_causal.
Tensor causal_mask(int64_t L, int64_t S, Device device = Device::cpu());

// torch.nn.functional.scaled_dot_product_attention: q (..., L, E), k (..., S, E), v (..., S, Ev)
// -> (..., L, Ev). attn_mask: bool (true = attend) or additive float, broadcast to (..., L, S).
// is_causal adds causal_mask(L, S). scale defaults to 1/sqrt(E). q, k, v may be strided views
// (e.g. heads split out of a fused QKV projection): the batched GEMMs read them in place.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& attn_mask = Tensor(), double dropout_p = 0.0,
                                    bool is_causal = false,
                                    std::optional<double> scale = std::nullopt,
                                    Generator* gen = nullptr);

}  // namespace functional
}  // namespace fabric::nn
