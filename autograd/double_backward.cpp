// Which derivative rules support double backward: those whose closure is made of recorded,
// differentiable ops (run in grad mode with create_graph, it records the gradient's own graph).
// The rest call fused backward kernels that record nothing; a gradient taken through them with
// create_graph raises when differentiated again (NoDoubleBackward, node.h). An op missing here
// is refused, never silently given a zero second derivative.
#include <array>

#include "autograd/derivatives.h"

namespace fabric {
namespace {

constexpr OpId kSupported[] = {
    // views, copies, casts
    OpId::view, OpId::expand, OpId::transpose, OpId::permute, OpId::slice, OpId::select,
    OpId::unbind, OpId::split, OpId::clone, OpId::to_dtype, OpId::to_device,
    // elementwise (tanh, sigmoid, relu, silu and gelu switch to a composition in grad mode)
    OpId::add, OpId::sub, OpId::mul, OpId::div, OpId::maximum, OpId::minimum, OpId::pow,
    OpId::where, OpId::addcmul, OpId::neg, OpId::abs, OpId::exp, OpId::log, OpId::sqrt, OpId::rsqrt,
    OpId::reciprocal, OpId::sin, OpId::cos, OpId::tanh, OpId::sigmoid, OpId::relu, OpId::silu,
    OpId::gelu, OpId::clamp, OpId::log1p, OpId::expm1, OpId::erf, OpId::floor, OpId::ceil,
    OpId::round, OpId::trunc, OpId::sign, OpId::tan, OpId::asin, OpId::acos, OpId::atan, OpId::sinh,
    OpId::cosh, OpId::asinh, OpId::acosh, OpId::atanh, OpId::log2, OpId::log10, OpId::erfinv,
    OpId::nan_to_num, OpId::atan2, OpId::fmod, OpId::remainder,
    // parameterised activations (all switch to a composition in grad mode)
    OpId::leaky_relu, OpId::elu, OpId::softplus, OpId::hardtanh, OpId::mish, OpId::hardswish,
    OpId::hardsigmoid, OpId::log_sigmoid, OpId::hardshrink, OpId::softshrink, OpId::threshold,
    // prelu and training rrelu: gradients of recorded ops throughout; glu switches to a
    // composition in grad mode
    OpId::prelu, OpId::glu, OpId::rrelu,
    // reductions (softmax and log_softmax switch to a composition in grad mode)
    OpId::sum, OpId::mean, OpId::amax, OpId::amin, OpId::var, OpId::norm, OpId::logsumexp,
    OpId::cumsum, OpId::softmax, OpId::log_softmax, OpId::prod, OpId::cumprod,
    // normalisations (switch to a composition in grad mode)
    OpId::layer_norm, OpId::rms_norm, OpId::batch_norm, OpId::group_norm,
    // linear algebra (gelu_mlp and scaled_dot_product_attention switch to a composition in grad
    // mode; attention's fused dropout is refused by its rule)
    OpId::matmul, OpId::mm, OpId::bmm, OpId::linear, OpId::gelu_mlp,
    OpId::scaled_dot_product_attention, OpId::addmm, OpId::baddbmm, OpId::addbmm, OpId::diagonal,
    // cdist's matmul formula (its kernels' nodes refuse, derivatives_cdist.cpp)
    OpId::cdist,
    // indexing and joining (embedding, index_select, gather and max/min along a dim switch to a
    // scatter_add in grad mode)
    OpId::tril, OpId::triu, OpId::scatter_add, OpId::cat, OpId::stack, OpId::dropout,
    OpId::embedding, OpId::index_select, OpId::gather, OpId::max, OpId::min, OpId::masked_select,
    // scatter, scatter_reduce and index_add: torch's rules, made of recorded ops
    // (derivatives_index_write.cpp)
    OpId::scatter, OpId::scatter_reduce, OpId::index_add,
    // convolution and pooling (conv2d's gradients are recorded ops in grad mode, the pool
    // gradients record themselves; all of them are linear in the upstream gradient)
    OpId::conv2d, OpId::max_pool2d, OpId::avg_pool2d, OpId::conv2d_backward_input,
    OpId::conv2d_backward_weight, OpId::max_pool2d_backward, OpId::avg_pool2d_backward,
    OpId::adaptive_avg_pool2d, OpId::adaptive_avg_pool2d_backward, OpId::max_pool3d,
    OpId::avg_pool3d, OpId::adaptive_avg_pool3d, OpId::max_pool3d_backward,
    OpId::avg_pool3d_backward, OpId::adaptive_avg_pool3d_backward, OpId::adaptive_max_pool2d,
    OpId::adaptive_max_pool3d, OpId::unfold, OpId::fold, OpId::conv3d, OpId::conv3d_backward_input,
    OpId::conv3d_backward_weight,
    // losses (cross_entropy switches to a composition in grad mode)
    OpId::nll_loss, OpId::mse_loss, OpId::binary_cross_entropy,
    OpId::binary_cross_entropy_with_logits, OpId::cross_entropy};

}  // namespace

bool double_backward_supported(OpId op) {
  static const auto table = [] {
    std::array<bool, static_cast<size_t>(OpId::num_ops)> t{};
    for (OpId s : kSupported) t[static_cast<size_t>(s)] = true;
    return t;
  }();
  return table[static_cast<size_t>(op)];
}

}  // namespace fabric
