// Dropout1d/Dropout2d: torch's feature dropout (a Bernoulli mask per channel) and its input checks.
#include "nn/channel_dropout.h"

#include "nn/py_repr.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/warning.h"

namespace fabric::nn {

ChannelDropout::ChannelDropout(const ChannelDropoutOptions& options) : options_(options) {
  FABRIC_CHECK(options.p >= 0.0 && options.p <= 1.0, ValueError,
               "dropout probability has to be between 0 and 1, but got ", options.p);
}

// torch prints inplace too; fabric has no in-place dropout, so it is always False.
std::string ChannelDropout::extra_repr() const {
  return "p=" + py_float(options_.p) + ", inplace=False";
}

Tensor ChannelDropout::drop_channels(const Tensor& x) const {
  FABRIC_CHECK(x.dim() >= 2, ShapeError, type_name(),
               ": feature dropout requires at least 2 dimensions in the input, got shape ",
               shape_str(x.sizes()));
  const double p = options_.p;
  if (!is_training() || p == 0.0) return x;
  // As torch, whose float mask cannot be cast back into an integer or bool input.
  FABRIC_CHECK(is_floating(x.dtype()) && !is_fp8(x.dtype()), DTypeError, type_name(),
               ": expects a float64, float32, float16 or bfloat16 input, got ",
               dtype_name(x.dtype()));
  Shape mask_shape(static_cast<size_t>(x.dim()), 1);  // (N, C, 1, ...)
  mask_shape[0] = x.size(0);
  mask_shape[1] = x.size(1);
  // As ATen's p == 1 case: the input times zero, so the gradient is zero rather than undefined.
  if (p == 1.0) return x * zeros(mask_shape, {.dtype = x.dtype(), .device = x.device()});
  // Drawn in float32 whatever x's dtype, so a low-precision x does not skew the keep rate.
  const Tensor u =
      rand(mask_shape, {.dtype = DType::float32, .device = x.device()}, options_.generator);
  const Tensor mask = lt(u, Scalar(1.0 - p)).to(x.dtype()) / Scalar(1.0 - p);
  return x * mask;
}

Tensor Dropout1d::forward(const Tensor& x) {
  FABRIC_CHECK(x.defined(), ValueError, "Dropout1d: got an undefined tensor");
  FABRIC_CHECK(x.dim() == 2 || x.dim() == 3, ShapeError,
               "dropout1d: Expected 2D or 3D input, but received a ", x.dim(),
               "D input. Note that dropout1d exists to provide channel-wise dropout on inputs "
               "with 1 spatial dimension, a channel dimension, and an optional batch dimension "
               "(i.e. 2D or 3D inputs).");
  if (x.dim() == 2) return drop_channels(x.unsqueeze(0)).squeeze(0);
  return drop_channels(x);
}

Tensor Dropout2d::forward(const Tensor& x) {
  FABRIC_CHECK(x.defined(), ValueError, "Dropout2d: got an undefined tensor");
  if (x.dim() != 3 && x.dim() != 4)
    warn(detail::cat("dropout2d: Received a ", x.dim(),
                     "-D input to dropout2d, which is deprecated and will result in an error in a "
                     "future release. To retain the behavior and silence this warning, please use "
                     "dropout instead. Note that dropout2d exists to provide channel-wise dropout "
                     "on inputs with 2 spatial dimensions, a channel dimension, and an optional "
                     "batch dimension (i.e. 3D or 4D inputs)."));
  if (x.dim() == 3)
    warn(
        "dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
        "behavior is desired - input is interpreted as shape (N, C, L), where C is the channel "
        "dim. This behavior will change in a future release to interpret the input as one "
        "without a batch dimension, i.e. shape (C, H, W). To maintain the 1D channel-wise "
        "dropout behavior, please switch to using dropout1d instead.");
  return drop_channels(x);
}

}  // namespace fabric::nn
