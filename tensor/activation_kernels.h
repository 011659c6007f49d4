// Dispatch stub for the parameterised activations of tensor/ops_activation.cpp (leaky_relu, elu
// and its selu/celu forms, softplus, hardtanh/relu6, mish, hardswish, hardsigmoid). They are
// apart from UnaryOp because they carry scalar parameters, which their fused backward
// (tensor/activation_backward.h) needs too.
#pragma once
#include <cstdint>

#include "tensor/dispatch_stub.h"
#include "tensor/strided_loop.h"

namespace fabric {

// torch's formulas; each op reads only its own fields.
//   leaky_relu   x > 0 ? x : negative_slope * x
//   elu          x <= 0 ? scale * alpha * (exp(input_scale * x) - 1) : scale * x
//   softplus     beta * x > threshold ? x : log1p(exp(beta * x)) / beta
//   hardtanh     min(max(x, min_val), max_val), NaN propagating
//   mish         x * tanh(log1p(exp(x)))
//   hardswish    x * min(max(x + 3, 0), 6) / 6
//   hardsigmoid  min(max(x + 3, 0), 6) / 6
enum class ActivationOp : uint8_t {
  leaky_relu,
  elu,
  softplus,
  hardtanh,
  mish,
  hardswish,
  hardsigmoid
};

struct ActivationParams {
  double negative_slope = 0.01;
  double alpha = 1.0, scale = 1.0, input_scale = 1.0;
  double beta = 1.0, threshold = 20.0;
  double min_val = -1.0, max_val = 1.0;
};

// out = f(a); loop (out, a) of one floating dtype; fp16/bf16 compute in float, float64 in double.
using ActivationFn = void (*)(ActivationOp op, const ActivationParams& params,
                              const StridedLoop& loop);
FABRIC_DECLARE_STUB(activation_stub, ActivationFn);

}  // namespace fabric
