// InstanceNorm1d / InstanceNorm2d / InstanceNorm3d: each (sample, channel) plane normalised by its
// own statistics, as torch.nn (functional form: nn/functional_instance_norm.h).
#pragma once
#include "nn/norm_base.h"

namespace fabric::nn {

struct InstanceNormOptions {
  int64_t num_features = 0;
  double eps = 1e-5;
  double momentum = 0.1;
  bool affine = false;
  bool track_running_stats = false;
};

// torch's _InstanceNorm: train() (or untracked statistics) normalises with the plane statistics
// and updates running_mean/running_var with their batch mean; eval() with tracked statistics
// normalises with those. num_batches_tracked is kept for state_dict compatibility and, as in
// torch, never counts. Keys: weight (ones), bias (zeros) when affine; running_mean (zeros),
// running_var (ones), num_batches_tracked (int64, 0-dim) when track_running_stats. Unbatched input
// is normalised as a batch of one.
class InstanceNorm : public NormBase {
 public:
  using Options = InstanceNormOptions;
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  const InstanceNormOptions& options() const { return options_; }

 protected:
  explicit InstanceNorm(const InstanceNormOptions& options);
  // Dims of an unbatched input: 2 for (C, L), 3 for (C, H, W), 4 for (C, D, H, W); a batched one
  // has one more.
  virtual int64_t no_batch_dim() const = 0;

 private:
  InstanceNormOptions options_;
};

// Input (N, C, L) or (C, L).
class InstanceNorm1d : public InstanceNorm {
 public:
  explicit InstanceNorm1d(const InstanceNormOptions& options) : InstanceNorm(options) {}
  std::string type_name() const override { return "InstanceNorm1d"; }

 protected:
  int64_t no_batch_dim() const override { return 2; }
};

// Input (N, C, H, W) or (C, H, W).
class InstanceNorm2d : public InstanceNorm {
 public:
  explicit InstanceNorm2d(const InstanceNormOptions& options) : InstanceNorm(options) {}
  std::string type_name() const override { return "InstanceNorm2d"; }

 protected:
  int64_t no_batch_dim() const override { return 3; }
};

// Input (N, C, D, H, W) or (C, D, H, W).
class InstanceNorm3d : public InstanceNorm {
 public:
  explicit InstanceNorm3d(const InstanceNormOptions& options) : InstanceNorm(options) {}
  std::string type_name() const override { return "InstanceNorm3d"; }

 protected:
  int64_t no_batch_dim() const override { return 4; }
};

}  // namespace fabric::nn
