// See sharded_clip.h.
#include "distributed/sharded_clip.h"

#include <algorithm>
#include <cmath>

#include "autograd/grad_mode.h"
#include "distributed/collective_staging.h"
#include "optim/clip_grad.h"
#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/promotion.h"

namespace fabric::distributed {

Tensor clip_sharded_grad_norm(optim::Optimizer& optimizer, const std::function<bool(const Tensor&)>& is_shard,
                              ProcessGroup* group, double max_norm, double norm_type, bool error_if_nonfinite,
                              const std::string& who) {
  NoGradGuard no_grad;
  const bool inf = std::isinf(norm_type) && norm_type > 0;
  FABRIC_CHECK(inf || (std::isfinite(norm_type) && norm_type > 0), NotImplementedError, who,
               " clip_gradients: norm_type ", norm_type,
               " is not supported over sharded gradients (a positive p-norm or inf is)");
  double sharded = 0, replicated = 0;
  // The inf-norm's max keeps a NaN (std::max(acc, NaN) is acc: a NaN gradient went unnoticed).
  auto nan_max = [](double a, double b) {
    return std::isnan(a) || std::isnan(b) ? NAN : std::max(a, b);
  };
  std::vector<Tensor> grads;
  DType dt = DType::float32;
  bool first = true;
  for (const Tensor& p : optimizer.parameters()) {
    const Tensor grad = p.grad();
    if (!grad.defined()) continue;
    FABRIC_CHECK(is_floating(grad.dtype()), DTypeError, "clip_grad_norm_: a gradient has dtype ",
                 dtype_name(grad.dtype()), " (expected a floating dtype)");
    dt = first ? grad.dtype() : promote_types(dt, grad.dtype());
    first = false;
    grads.push_back(grad);
    if (grad.numel() == 0) continue;
    // In the gradient's precision (float32 for the half types), as torch's clip_grad_norm_ and
    // the one-process path: a p-norm whose terms overflow there is inf here too (and raises), not
    // a finite float64 value that only the sharded strategies would clip with.
    const bool f64 = grad.dtype() == DType::float64;
    const double n =
        norm(grad.detach().to(f64 ? DType::float64 : DType::float32), norm_type).item<double>();
    const double term =
        f64 ? std::pow(n, norm_type)
            : static_cast<double>(std::pow(static_cast<float>(n), static_cast<float>(norm_type)));
    double& acc = is_shard(p) ? sharded : replicated;
    acc = inf ? nan_max(acc, n) : acc + term;
  }
  if (group) {
    // A host scalar (the norm terms were summed in double here): staged under NCCL.
    Tensor reduced = scalar_tensor(sharded, {.dtype = DType::float64});
    staged_all_reduce(*group, reduced, inf ? ReduceOp::max : ReduceOp::sum);
    sharded = reduced.item<double>();
  }
  const double total_p = inf ? nan_max(sharded, replicated) : sharded + replicated;
  const Tensor total = scalar_tensor(inf ? total_p : std::pow(total_p, 1.0 / norm_type), {.dtype = dt});
  return optim::scale_by_clip_coefficient(grads, total, max_norm, norm_type, error_if_nonfinite);
}

}  // namespace fabric::distributed
