// SyncBatchNorm and convert_sync_batchnorm (torch/nn/modules/batchnorm.py and _functions.py):
// ranks exchange per-channel (mean, sum of squared deviations, count), so local batches may
// differ in size, and combine them in float64 into the global batch's statistics.
#include "distributed/sync_batch_norm.h"

#include "autograd/connect_node.h"
#include "autograd/grad_mode.h"
#include "distributed/collective_staging.h"
#include "distributed/default_group.h"
#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/reduce_kernels.h"

namespace fabric::distributed {
namespace {

// Every dim but the channel dim 1 (the dims batch_norm reduces over).
std::vector<int64_t> non_channel_dims(const Tensor& x) {
  std::vector<int64_t> dims = {0};
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  return dims;
}

// (1, C, 1, ...): a per-channel (C) vector broadcast against x.
Shape channel_shape(const Tensor& x) {
  Shape s(static_cast<size_t>(x.dim()), 1);
  s[1] = x.size(1);
  return s;
}

// The global batch's per-channel statistics, in x's accumulation dtype (float32, float64 for
// float64), on x's device.
struct GlobalStats {
  Tensor mean, biased_var, unbiased_var;
  Tensor count;                   // 0-d float64 on x's device: values per channel over all ranks
  bool empty_everywhere = false;  // known on the CPU only (see gather_global_stats)
};

// Each rank's (mean, sum of squared deviations, count) are all-gathered rather than sums
// all-reduced: the pairwise combination (Chan et al.) keeps the precision of a two-pass variance
// and handles ranks of any batch size, an empty one included (it contributes zeros).
GlobalStats gather_global_stats(const Tensor& x, ProcessGroup& group) {
  const int64_t C = x.size(1), local_count = x.numel() / C;
  const DType acc = reduce_acc_dtype(x.dtype());
  const TensorOptions f64{.dtype = DType::float64, .device = x.device()};
  Tensor local = zeros({2 * C + 1}, f64);  // (2C + 1): mean, sum of squared deviations, count
  if (local_count > 0) {
    const Tensor xa = x.detach().to(acc);
    const std::vector<int64_t> dims = non_channel_dims(x);
    local.narrow(0, 0, C).copy_(mean(xa, dims));
    local.narrow(0, C, C).copy_(mul(var(xa, dims, /*correction=*/0), double(local_count)));
    local.narrow(0, 2 * C, 1).fill_(double(local_count));
  }
  const int world = group.size();
  Tensor all = empty({world * (2 * C + 1)}, f64);
  staged_all_gather(group, all, local);
  const Tensor rows = all.view({world, 2 * C + 1});
  const Tensor means = rows.narrow(1, 0, C), sq_devs = rows.narrow(1, C, C);
  const Tensor counts = rows.narrow(1, 2 * C, 1);  // (world, 1)
  GlobalStats s;
  s.count = sum(counts);
  if (x.device().is_cpu()) {
    // Reading the counts costs nothing here: every rank sees them, so all raise together instead
    // of one waiting on the others. On a GPU they stay on the device, as torch's
    // batch_norm_gather_stats_with_counts keeps them (reading them would wait for the stream at
    // every layer of every step); one value per channel over all ranks then gives an infinite
    // unbiased variance there, as in torch.
    const double total = s.count.item<double>();
    s.empty_everywhere = total == 0;
    if (s.empty_everywhere) return s;
    FABRIC_CHECK(total > 1, ValueError,
                 "SyncBatchNorm: Expected more than 1 value per channel when training, got 1 "
                 "value per channel over the ",
                 world, " ranks (this rank's input has shape ", shape_str(x.sizes()), ")");
  }
  const Tensor global_mean = div(sum(mul(means, counts), {0}), s.count);
  const Tensor offset = sub(means, global_mean.view({1, C}));  // (world, C)
  const Tensor spread = mul(counts, mul(offset, offset));
  const Tensor sq_dev = sum(add(sq_devs, spread), {0});
  s.mean = global_mean.to(acc);
  s.biased_var = div(sq_dev, s.count).to(acc);
  s.unbiased_var = div(sq_dev, sub(s.count, 1.0)).to(acc);
  return s;
}

// running = (1 - momentum) * running + momentum * batch statistic, outside autograd (as torch's
// batch_norm_gather_stats_with_counts).
void update_running(const Tensor& running, const Tensor& batch_stat, double momentum) {
  if (!running.defined()) return;
  Tensor r = running.detach();
  r.copy_(add(mul(r.to(batch_stat.dtype()), 1.0 - momentum), mul(batch_stat, momentum)));
}

// torch's SyncBatchNorm.backward: sum(dy) and sum(dy * (x - mean)) all-reduced over the group
// give the input's gradient with the global count; the weight and bias gradients are this rank's
// own sums. The all-reduce runs whenever the input needs a gradient, so that every rank (an empty
// one too) takes part.
struct SyncBackward {
  Tensor x, weight, mean, invstd;  // x and weight as in forward; mean and invstd (C), acc dtype
  Tensor count;                    // GlobalStats::count
  bool x_grad = false, weight_grad = false, bias_grad = false;
  std::shared_ptr<ProcessGroup> group;

  std::vector<Tensor> operator()(const std::vector<Tensor>& grad_outputs) const {
    const int64_t C = x.size(1);
    const DType acc = mean.dtype();
    const Shape cs = channel_shape(x);
    const std::vector<int64_t> dims = non_channel_dims(x);
    const Tensor dy = grad_outputs[0].defined()
                          ? grad_outputs[0].detach().to(acc)
                          : zeros(x.sizes(), {.dtype = acc, .device = x.device()});
    const Tensor x_mu = sub(x.to(acc), mean.view(cs));
    const Tensor sum_dy = sum(dy, dims), sum_dy_xmu = sum(mul(dy, x_mu), dims);
    std::vector<Tensor> grads(3);
    if (weight_grad) grads[1] = mul(sum_dy_xmu, invstd);
    if (bias_grad) grads[2] = sum_dy;
    if (x_grad) {
      Tensor sums = cat({sum_dy, sum_dy_xmu}).to(DType::float64).contiguous();
      staged_all_reduce(*group, sums, ReduceOp::sum);
      const Tensor mean_dy = div(sums.narrow(0, 0, C), count).to(acc);
      const Tensor mean_dy_xmu = div(sums.narrow(0, C, C), count).to(acc);
      // dx = w invstd (dy - mean(dy) - (x - mean) invstd^2 mean(dy (x - mean))), global means.
      const Tensor k = mul(mul(invstd, invstd), mean_dy_xmu);
      const Tensor w_invstd = weight.defined() ? mul(invstd, weight.to(acc)) : invstd;
      const Tensor centered = sub(sub(dy, mean_dy.view(cs)), mul(x_mu, k.view(cs)));
      grads[0] = mul(centered, w_invstd.view(cs)).to(x.dtype());
    }
    return grads;
  }
};

}  // namespace

Tensor sync_batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                       const Tensor& running_mean, const Tensor& running_var, double eps,
                       double momentum, const std::shared_ptr<ProcessGroup>& group) {
  FABRIC_CHECK(group != nullptr, ValueError, "sync_batch_norm: the process group is null");
  FABRIC_CHECK(x.dim() >= 2 && x.size(1) > 0, ShapeError,
               "sync_batch_norm: expected an input (N, C, *) with C > 0, got shape ",
               shape_str(x.sizes()));
  const GlobalStats s = gather_global_stats(x, *group);
  if (s.empty_everywhere) return empty_like(x);
  Tensor out;
  {
    NoGradGuard no_grad;
    update_running(running_mean, s.mean, momentum);
    update_running(running_var, s.unbiased_var, momentum);
    // Eval-mode batch_norm with the global statistics is exactly the training normalisation.
    out = batch_norm(x.detach(), s.mean, s.biased_var, weight.defined() ? weight.detach() : weight,
                     bias.defined() ? bias.detach() : bias, /*training=*/false, 0.0, eps);
  }
  const auto needs = [](const Tensor& t) { return t.defined() && t.requires_grad(); };
  if (!grad_enabled() || !(needs(x) || needs(weight) || needs(bias))) return out;
  SyncBackward backward{.x = x.detach(),
                        .weight = weight.defined() ? weight.detach() : Tensor(),
                        .mean = s.mean,
                        .invstd = rsqrt(add(s.biased_var, eps)),
                        .count = s.count,
                        .x_grad = needs(x),
                        .weight_grad = needs(weight),
                        .bias_grad = needs(bias),
                        .group = group};
  auto node =
      std::make_shared<FunctionNode>("SyncBatchNorm", std::move(backward), "SyncBatchNormBackward");
  add_input_edges(*node, {x, weight, bias});
  out = out.detach();
  set_grad_fn(out, node, 0);
  return out;
}

SyncBatchNorm::SyncBatchNorm(const nn::BatchNormOptions& options,
                             std::shared_ptr<ProcessGroup> process_group)
    : nn::BatchNorm(options), process_group_(std::move(process_group)) {}

std::shared_ptr<ProcessGroup> SyncBatchNorm::process_group() const {
  return process_group_ ? process_group_ : default_process_group();
}

void SyncBatchNorm::check_input_dim(const Tensor& x) const {
  FABRIC_CHECK(x.dim() >= 2, ValueError, "SyncBatchNorm: expected at least 2D input (got ", x.dim(),
               "D input of shape ", shape_str(x.sizes()), ")");
  FABRIC_CHECK(x.size(1) > 0, ValueError,
               "SyncBatchNorm: the number of input channels should be non-zero, got input of "
               "shape ",
               shape_str(x.sizes()));
}

// torch's SyncBatchNorm.forward: plain batch_norm unless training over more than one rank; the
// batch count and averaging factor are updated first, as BatchNorm does.
Tensor SyncBatchNorm::forward(const Tensor& x) {
  check_input_dim(x);
  const std::shared_ptr<ProcessGroup> group = process_group();
  if (!is_training() || !group || group->size() < 2) return nn::BatchNorm::forward(x);
  const nn::BatchNormOptions& o = options();
  double factor = o.momentum.value_or(0.0);
  if (o.track_running_stats) {
    num_batches_tracked.add_(1);
    if (!o.momentum) factor = 1.0 / static_cast<double>(num_batches_tracked.item<int64_t>());
  }
  return sync_batch_norm(x, weight, bias, running_mean, running_var, o.eps, factor, group);
}

std::shared_ptr<nn::Module> convert_sync_batchnorm(std::shared_ptr<nn::Module> module,
                                                   std::shared_ptr<ProcessGroup> process_group) {
  FABRIC_CHECK(module != nullptr, ValueError, "convert_sync_batchnorm: the module is null");
  std::shared_ptr<nn::Module> out = module;
  if (const auto* bn = dynamic_cast<const nn::BatchNorm*>(module.get())) {
    auto sync = std::make_shared<SyncBatchNorm>(bn->options(), process_group);
    // The same tensors, not copies: optimizers built on the old layer's parameters and anything
    // holding its buffers keep working, and the state_dict keys and values are unchanged.
    if (bn->weight.defined())
      sync->weight = sync->register_parameter("weight", bn->weight, bn->weight.requires_grad());
    if (bn->bias.defined())
      sync->bias = sync->register_parameter("bias", bn->bias, bn->bias.requires_grad());
    if (bn->running_mean.defined()) {
      sync->running_mean = sync->register_buffer("running_mean", bn->running_mean);
      sync->running_var = sync->register_buffer("running_var", bn->running_var);
      sync->num_batches_tracked =
          sync->register_buffer("num_batches_tracked", bn->num_batches_tracked);
    }
    sync->train(bn->is_training());
    out = sync;
  }
  for (const auto& [name, child] : module->named_children()) {
    std::shared_ptr<nn::Module> converted = convert_sync_batchnorm(child, process_group);
    if (converted != child) out->register_module(name, converted);
  }
  return out;
}

}  // namespace fabric::distributed
