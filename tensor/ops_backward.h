// Backward computations of softmax, log_softmax, layer_norm, rms_norm, cross_entropy and fused
// attention, for the autograd derivative rules. Plain functions: they do not record for autograd
// or apply autocast. Float16/bfloat16 compute in float32 (attention: its GEMMs multiply in the
// dtype and accumulate in float32); results take the dtype noted on each function.
#pragma once
#include <array>
#include <optional>
#include <string_view>
#include <tuple>
#include <utility>

#include "tensor/op_attrs.h"
#include "tensor/tensor.h"

namespace fabric {

// out = softmax(x, dim): dx = out * (grad_out - sum(grad_out * out, dim)). dx has out's dtype
// unless dx_dtype is given (e.g. the input's dtype when softmax ran with dtype=).
Tensor softmax_backward(const Tensor& grad_out, const Tensor& out, int64_t dim,
                        std::optional<DType> dx_dtype = std::nullopt);
// out = log_softmax(x, dim): dx = grad_out - exp(out) * sum(grad_out, dim).
Tensor log_softmax_backward(const Tensor& grad_out, const Tensor& out, int64_t dim,
                            std::optional<DType> dx_dtype = std::nullopt);

// layer_norm plus the statistics its backward needs: {out, mean, rstd}; mean and rstd have shape
// x.shape[:-k] + (1,)*k (k = normalized_shape's rank) and dtype float32 (float64 for float64 x),
// as torch.native_layer_norm. rstd = 1 / sqrt(biased var + eps).
std::tuple<Tensor, Tensor, Tensor> layer_norm_with_stats(const Tensor& x,
                                                         const Shape& normalized_shape,
                                                         const Tensor& weight = Tensor(),
                                                         const Tensor& bias = Tensor(),
                                                         double eps = 1e-5);
// {dx (x's dtype), dweight (weight's dtype; undefined without weight), dbias (sum of grad_out over
// the leading dims, in weight's dtype, or x's without weight)}.
std::tuple<Tensor, Tensor, Tensor> layer_norm_backward(const Tensor& grad_out, const Tensor& x,
                                                       const Shape& normalized_shape,
                                                       const Tensor& weight, const Tensor& mean,
                                                       const Tensor& rstd);

// rms_norm plus {out, rstd} (rstd = 1 / sqrt(mean(x^2) + eps), shaped and typed as layer_norm's).
std::tuple<Tensor, Tensor> rms_norm_with_stats(const Tensor& x, const Shape& normalized_shape,
                                               const Tensor& weight = Tensor(),
                                               std::optional<double> eps = std::nullopt);
// {dx (x's dtype), dweight (weight's dtype; undefined without weight)}.
std::tuple<Tensor, Tensor> rms_norm_backward(const Tensor& grad_out, const Tensor& x,
                                             const Shape& normalized_shape, const Tensor& weight,
                                             const Tensor& rstd);

// d loss / d logits of cross_entropy(logits, target, ignore_index, reduction, label_smoothing):
// grad_loss is 0-dim for "mean"/"sum" and target-shaped for "none". Result has the logits' dtype.
Tensor cross_entropy_backward(const Tensor& grad_loss, const Tensor& logits, const Tensor& target,
                              int64_t ignore_index = -100, std::string_view reduction = "mean",
                              double label_smoothing = 0.0);

// The fused scaled_dot_product_attention's gradients (dq, dk, dv) in q's dtype, from its saved
// output and row log-sum-exp (the op's second output); recomputes the attention probabilities
// (and the dropout mask of the forward's draw) instead of storing them.
std::tuple<Tensor, Tensor, Tensor> scaled_dot_product_attention_backward(
    const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
    const Tensor& lse, double scale, bool is_causal, const AttentionDropout& dropout = {});

// A linear layer's weight gradient g2ᵀ x2 (out, in) and bias gradient sum(g2, 0) (out) from its
// output gradient g2 (rows, out) and input x2 (rows, in), each only when asked for (the other
// undefined). Where the device's GEMM takes the bias gradient in its epilogue (gemm_bgrad_stub)
// both come from one GEMM; elsewhere mm and sum, the bits of linear's rule.
std::pair<Tensor, Tensor> linear_weight_bias_grads(const Tensor& g2, const Tensor& x2, bool weight,
                                                   bool bias);

// gelu_mlp's gradients from its saved parts: pre, the hidden layer's pre-activation (..., H), and
// hidden = gelu(pre, "tanh"), the op's second and third outputs. `needs` says which of (x,
// fc_weight, fc_bias, proj_weight, proj_bias) to compute; the others come back undefined. The
// GEMMs and sums of linear's and gelu's rules, in pre's dtype; the GELU's derivative rides in the
// epilogue of the GEMM that makes the hidden layer's gradient where the device has one
// (gemm_dgelu_stub).
struct GeluMlpGrads {
  Tensor x, fc_weight, fc_bias, proj_weight, proj_bias;
};
GeluMlpGrads gelu_mlp_backward(const Tensor& grad_out, const Tensor& x, const Tensor& fc_weight,
                               const Tensor& proj_weight, const Tensor& pre, const Tensor& hidden,
                               const std::array<bool, 5>& needs);

}  // namespace fabric
