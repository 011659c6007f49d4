// Dropout1d/2d/3d: torch's feature dropout (a Bernoulli mask per channel) and its input checks;
// and torch 1.13's _dropout_impl, which the alpha dropouts (nn/alpha_dropout.cpp) share.
#include "nn/channel_dropout.h"

#include <cmath>

#include "nn/py_repr.h"
#include "tensor/bernoulli.h"
#include "tensor/factory.h"
#include "tensor/float_formats.h"
#include "tensor/ops.h"
#include "tensor/warning.h"

namespace fabric::nn {

namespace {

// A double scalar as ATen's CPU kernels use it in an op on a `dtype` tensor: cast to the dtype
// first (through float for the 16-bit types, as c10's conversions), so 1 / (1 - p) in bfloat16
// is 1 / bf16(1 - p) rounded, not the rounded 1 / (1 - p).
double scalar_in(DType dtype, double v) {
  switch (dtype) {
    case DType::float32:
      return static_cast<float>(v);
    case DType::bfloat16:
      return static_cast<float>(BFloat16(static_cast<float>(v)));
    case DType::float16:
      return static_cast<float>(Half(static_cast<float>(v)));
    default:
      return v;
  }
}

}  // namespace

namespace dropout_internal {

void check_dropout_probability(double p) {
  FABRIC_CHECK(p >= 0.0 && p <= 1.0, ValueError,
               "dropout probability has to be between 0 and 1, but got ", py_float(p));
}

void warn_dropout3d_rank(int64_t dim) {
  if (dim == 4 || dim == 5) return;
  warn(fabric::detail::cat(
      "dropout3d: Received a ", dim,
      "-D input to dropout3d, which is deprecated and will result in an error in a future "
      "release. To retain the behavior and silence this warning, please use dropout instead. "
      "Note that dropout3d exists to provide channel-wise dropout on inputs with 3 spatial "
      "dimensions, a channel dimension, and an optional batch dimension (i.e. 4D or 5D "
      "inputs)."));
}

Tensor apply_dropout_noise(const Tensor& x, const Tensor& keep, double p, bool alpha,
                           bool inplace) {
  const DType dtype = x.dtype();
  Tensor noise = keep.to(dtype);  // 0/1, exact in any floating dtype
  Tensor b;                       // alpha dropout's shift
  if (alpha) {
    // SELU's -scale * alpha: where a dropped element goes before the affine correction.
    constexpr double kAlpha = 1.7580993408473766;
    const double a = 1.0 / std::sqrt((kAlpha * kAlpha * p + 1.0) * (1.0 - p));
    // ATen: b = noise.add(-1).mul_(alpha * a).add_(alpha * a * p); noise.mul_(a).
    b = (noise + Scalar(-1.0)) * Scalar(scalar_in(dtype, kAlpha * a)) +
        Scalar(scalar_in(dtype, kAlpha * a * p));
    noise = noise * Scalar(scalar_in(dtype, a));
  } else {
    noise = noise / Scalar(scalar_in(dtype, 1.0 - p));
  }
  if (inplace) {
    Tensor y = x;  // the same tensor: torch's input.mul_(noise)[.add_(b)]
    y.mul_(noise);
    if (alpha) y.add_(b);
    return y;
  }
  const Tensor y = x * noise;
  return alpha ? y + b : y;
}

Tensor dropout_impl(const Tensor& x, double p, bool train, const DropoutSpec& spec, Generator* gen,
                    std::string_view who) {
  FABRIC_CHECK(x.defined(), ValueError, who, ": got an undefined tensor");
  check_dropout_probability(p);
  // torch's order: no check of rank or dtype applies to these (an int tensor in eval is fine).
  if (p == 0.0 || !train || x.numel() == 0) return x;
  if (p == 1.0) {
    // The input times zero, so the gradient is zero rather than undefined, -x gives -0 and inf
    // gives NaN, as ATen.
    const Tensor zero = zeros({}, {.dtype = x.dtype(), .device = x.device()});
    if (!spec.inplace) return x * zero;
    Tensor y = x;
    y.mul_(zero);
    return y;
  }
  Shape noise_shape = x.sizes();
  if (spec.feature) {
    FABRIC_CHECK(x.dim() + (spec.unbatched ? 1 : 0) >= 2, ShapeError, who,
                 ": feature dropout requires at least 2 dimensions in the input, got shape ",
                 shape_str(x.sizes()));
    // (N, C, 1, ...), or (C, 1, ...) for x unbatched: torch's mask of x.unsqueeze(0), squeezed.
    for (int64_t d = spec.unbatched ? 1 : 2; d < x.dim(); ++d)
      noise_shape[static_cast<size_t>(d)] = 1;
  }
  // As torch, whose float mask cannot be cast back into an integer or bool input.
  FABRIC_CHECK(is_floating(x.dtype()) && !is_fp8(x.dtype()), DTypeError, who,
               ": expects a float64, float32, float16 or bfloat16 input, got ",
               dtype_name(x.dtype()));
  // torch's noise.bernoulli_(1 - p), in bool: its values are 0/1 in any dtype.
  Tensor keep = empty(noise_shape, {.dtype = DType::bool_, .device = x.device()});
  bernoulli_(keep, 1.0 - p, gen);
  return apply_dropout_noise(x, keep, p, spec.alpha, spec.inplace);
}

}  // namespace dropout_internal

ChannelDropout::ChannelDropout(const ChannelDropoutOptions& options) : options_(options) {
  dropout_internal::check_dropout_probability(options.p);
}

std::string ChannelDropout::extra_repr() const {
  return "p=" + py_float(options_.p) + ", inplace=" + (options_.inplace ? "True" : "False");
}

Tensor ChannelDropout::drop_channels(const Tensor& x, bool unbatched) const {
  return dropout_internal::dropout_impl(
      x, options_.p, is_training(),
      {.feature = true, .unbatched = unbatched, .inplace = options_.inplace}, options_.generator,
      type_name());
}

Tensor Dropout1d::forward(const Tensor& x) {
  FABRIC_CHECK(x.defined(), ValueError, "Dropout1d: got an undefined tensor");
  FABRIC_CHECK(x.dim() == 2 || x.dim() == 3, ShapeError,
               "dropout1d: Expected 2D or 3D input, but received a ", x.dim(),
               "D input. Note that dropout1d exists to provide channel-wise dropout on inputs "
               "with 1 spatial dimension, a channel dimension, and an optional batch dimension "
               "(i.e. 2D or 3D inputs).");
  return drop_channels(x, /*unbatched=*/x.dim() == 2);
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

Tensor Dropout3d::forward(const Tensor& x) {
  FABRIC_CHECK(x.defined(), ValueError, "Dropout3d: got an undefined tensor");
  dropout_internal::warn_dropout3d_rank(x.dim());
  // As torch 1.13's F.dropout3d, every rank but 5 is taken as unbatched.
  return drop_channels(x, /*unbatched=*/x.dim() != 5);
}

}  // namespace fabric::nn
