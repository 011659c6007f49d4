// SyncBatchNorm (torch.nn.SyncBatchNorm): BatchNorm whose training statistics are those of the
// global batch, every rank of a process group contributing its local batch (of any size), and
// convert_sync_batchnorm, which swaps a model's BatchNorm layers for it before setup.
#pragma once
#include <memory>
#include <string>

#include "distributed/process_group.h"
#include "nn/normalization.h"

namespace fabric::distributed {

// Same options, parameters, buffers and state_dict keys as nn::BatchNorm; input (N, C, *).
// Training with a group of more than one rank: normalised with the mean and biased variance of
// the concatenation of every rank's batch; the running statistics move with that batch's
// unbiased variance. Backward all-reduces sum(dy) and sum(dy * (x - mean)) for the input's
// gradient; the weight and bias gradients stay this rank's own sums (DDP averages them, as with
// torch). Eval mode, or one process, is plain batch_norm. Every rank of the group must call
// forward (and backward) the same number of times, even with an empty local batch.
class SyncBatchNorm : public nn::BatchNorm {
 public:
  // A null group: the default group of the launched strategy (default_group.h) at each forward.
  explicit SyncBatchNorm(const nn::BatchNormOptions& options,
                         std::shared_ptr<ProcessGroup> process_group = nullptr);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "SyncBatchNorm"; }
  // The group the statistics are reduced over now (null: none, a single process).
  std::shared_ptr<ProcessGroup> process_group() const;

 protected:
  void check_input_dim(const Tensor& x) const override;

 private:
  std::shared_ptr<ProcessGroup> process_group_;
};

// torch.nn.SyncBatchNorm.convert_sync_batchnorm: `module` with every nn::BatchNorm at any depth
// (BatchNorm1d, BatchNorm2d, SyncBatchNorm) replaced by a SyncBatchNorm over `process_group`
// that shares its weight, bias and buffers (same tensors, so same state_dict keys and values)
// and keeps its training mode. Returns the new layer when `module` itself is one, else `module`.
std::shared_ptr<nn::Module> convert_sync_batchnorm(
    std::shared_ptr<nn::Module> module, std::shared_ptr<ProcessGroup> process_group = nullptr);

// The training-mode normalisation over `group` (what SyncBatchNorm.forward runs when it syncs):
// running_mean/running_var (either may be undefined) updated in place with `momentum`.
Tensor sync_batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                       const Tensor& running_mean, const Tensor& running_var, double eps,
                       double momentum, const std::shared_ptr<ProcessGroup>& group);

}  // namespace fabric::distributed
