// instance_norm as ATen composes it: batch_norm on (1, N * C, ...) with per-sample copies of the
// running statistics, which are averaged back over the batch afterwards.
#include "nn/functional_instance_norm.h"

#include "autograd/grad_mode.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace fabric::nn {
inline namespace functional {

namespace {

void check_channel_vector(const char* what, const Tensor& t, int64_t c, const Tensor& x) {
  if (!t.defined()) return;
  FABRIC_CHECK(t.dim() == 1 && t.size(0) == c, ShapeError, "instance_norm: ", what,
               " must have shape ", shape_str(Shape{c}), " for input ", shape_str(x.sizes()),
               ", got ", shape_str(t.sizes()));
}

}  // namespace

Tensor instance_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                     const Tensor& weight, const Tensor& bias, bool use_input_stats,
                     double momentum, double eps) {
  FABRIC_CHECK(x.defined(), ValueError, "instance_norm: undefined input");
  FABRIC_CHECK(x.dim() >= 2, ShapeError, "instance_norm: expected an input (N, C, ...), got shape ",
               shape_str(x.sizes()));
  FABRIC_CHECK(is_floating(x.dtype()) && !is_fp8(x.dtype()), DTypeError,
               "instance_norm: expected a float64/float32/float16/bfloat16 input, got ",
               dtype_name(x.dtype()), " of shape ", shape_str(x.sizes()));
  const Shape& shape = x.sizes();
  const int64_t b = shape[0], c = shape[1];
  if (use_input_stats) {
    // torch's _verify_spatial_size: one element per plane has no variance to normalise by.
    int64_t spatial = 1;
    for (size_t d = 2; d < shape.size(); ++d) spatial *= shape[d];
    FABRIC_CHECK(spatial > 1, ValueError,
                 "instance_norm: expected more than 1 spatial element when training, got input "
                 "size ",
                 shape_str(shape));
  } else {
    FABRIC_CHECK(running_mean.defined() && running_var.defined(), ValueError,
                 "instance_norm: expected running_mean and running_var to be defined when "
                 "use_input_stats is false");
  }
  check_channel_vector("running_mean", running_mean, c, x);
  check_channel_vector("running_var", running_var, c, x);
  check_channel_vector("weight", weight, c, x);
  check_channel_vector("bias", bias, c, x);

  Shape planes = shape;  // (1, N * C, ...)
  planes[0] = 1;
  planes[1] = b * c;
  auto per_sample = [b](const Tensor& t) { return t.defined() ? repeat(t, {b}) : Tensor(); };
  const Tensor mean_copies = per_sample(running_mean), var_copies = per_sample(running_var);
  const Tensor out = batch_norm(x.reshape(planes), mean_copies, var_copies, per_sample(weight),
                                per_sample(bias), use_input_stats, momentum, eps);
  if (use_input_stats) {
    // batch_norm updated each sample's copy; the running statistics become their batch mean.
    NoGradGuard no_grad;
    // Tensor is a handle: a copy of it writes the caller's storage, as torch's at::alias does.
    if (Tensor target = running_mean; target.defined())
      target.copy_(mean(mean_copies.view({b, c}), {0}));
    if (Tensor target = running_var; target.defined())
      target.copy_(mean(var_copies.view({b, c}), {0}));
  }
  return out.view(shape);
}

}  // namespace functional
}  // namespace fabric::nn
