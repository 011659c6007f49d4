// LayerNorm and RMSNorm over the trailing `normalized_shape` dims; BatchNorm1d/2d/3d over the
// channel dim with running statistics; GroupNorm over channel groups. As torch.nn.
#pragma once
#include <optional>

#include "nn/module.h"
#include "nn/norm_base.h"

namespace fabric::nn {

struct LayerNormOptions {
  Shape normalized_shape;
  double eps = 1e-5;
  bool elementwise_affine = true;
  bool bias = true;  // torch >= 2.1's LayerNorm(bias=False), nanoGPT's bias-free LayerNorm
};

// Keys: weight (ones), bias (zeros); each only when elementwise_affine (bias also needs bias).
class LayerNorm : public Module {
 public:
  using Options = LayerNormOptions;
  explicit LayerNorm(const LayerNormOptions& options);
  Tensor forward(const Tensor& x) override;
  // The module called on x (hooks and all), with the output in `out_dtype` where that is set and
  // calling the module would do nothing more than layer_norm (no hooks, no checkpointing, not a
  // subclass): layer_norm's out_dtype, the cast for an autocast linear layer after it folded into
  // the norm (nn::norm_feeds_linear_in).
  Tensor forward_to(const Tensor& x, std::optional<DType> out_dtype);
  void reset_parameters();
  std::string type_name() const override { return "LayerNorm"; }
  std::string extra_repr() const override;
  const LayerNormOptions& options() const { return options_; }

  Tensor weight;  // normalized_shape, or undefined
  Tensor bias;    // normalized_shape, or undefined

 private:
  LayerNormOptions options_;
};

struct RMSNormOptions {
  Shape normalized_shape;
  std::optional<double> eps = std::nullopt;  // unset: finfo(input dtype).eps, as torch
  bool elementwise_affine = true;
};

// x / sqrt(mean(x^2) + eps) * weight. Key: weight (ones), when elementwise_affine.
class RMSNorm : public Module {
 public:
  using Options = RMSNormOptions;
  explicit RMSNorm(const RMSNormOptions& options);
  Tensor forward(const Tensor& x) override;
  void reset_parameters();
  std::string type_name() const override { return "RMSNorm"; }
  std::string extra_repr() const override;
  const RMSNormOptions& options() const { return options_; }

  Tensor weight;

 private:
  RMSNormOptions options_;
};

struct BatchNormOptions {
  int64_t num_features = 0;
  double eps = 1e-5;
  // nullopt: a cumulative moving average (factor 1 / num_batches_tracked), torch's momentum=None.
  std::optional<double> momentum = 0.1;
  bool affine = true;
  bool track_running_stats = true;
};

// torch's _BatchNorm: train() normalises with the batch statistics and updates running_mean and
// running_var (unbiased) in place; eval() normalises with them (with the batch statistics when
// they are not tracked). Keys as torch's state_dict: weight (ones), bias (zeros) when affine;
// running_mean (zeros), running_var (ones), num_batches_tracked (int64, 0-dim) when
// track_running_stats.
class BatchNorm : public NormBase {
 public:
  using Options = BatchNormOptions;
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  const BatchNormOptions& options() const { return options_; }
  // torch's `bn.momentum = ...`: swa_utils::update_bn switches to the cumulative average (nullopt)
  // for its pass and restores the momentum afterwards.
  void set_momentum(std::optional<double> momentum) { options_.momentum = momentum; }

 protected:
  explicit BatchNorm(const BatchNormOptions& options);
  // ValueError unless x has a dim count this layer takes (torch's _check_input_dim).
  virtual void check_input_dim(const Tensor& x) const = 0;

 private:
  BatchNormOptions options_;
};

// Input (N, C) or (N, C, L).
class BatchNorm1d : public BatchNorm {
 public:
  explicit BatchNorm1d(const BatchNormOptions& options) : BatchNorm(options) {}
  std::string type_name() const override { return "BatchNorm1d"; }

 protected:
  void check_input_dim(const Tensor& x) const override;
};

// Input (N, C, H, W).
class BatchNorm2d : public BatchNorm {
 public:
  explicit BatchNorm2d(const BatchNormOptions& options) : BatchNorm(options) {}
  std::string type_name() const override { return "BatchNorm2d"; }

 protected:
  void check_input_dim(const Tensor& x) const override;
};

// Input (N, C, D, H, W).
class BatchNorm3d : public BatchNorm {
 public:
  explicit BatchNorm3d(const BatchNormOptions& options) : BatchNorm(options) {}
  std::string type_name() const override { return "BatchNorm3d"; }

 protected:
  void check_input_dim(const Tensor& x) const override;
};

struct GroupNormOptions {
  int64_t num_groups = 0;
  int64_t num_channels = 0;
  double eps = 1e-5;
  bool affine = true;
};

// Input (N, C, ...), normalised per (sample, group of C / num_groups channels), then scaled per
// channel. Keys: weight (ones), bias (zeros) when affine.
class GroupNorm : public Module {
 public:
  using Options = GroupNormOptions;
  explicit GroupNorm(const GroupNormOptions& options);
  Tensor forward(const Tensor& x) override;
  void reset_parameters();
  std::string type_name() const override { return "GroupNorm"; }
  std::string extra_repr() const override;
  const GroupNormOptions& options() const { return options_; }

  Tensor weight, bias;

 private:
  GroupNormOptions options_;
};

}  // namespace fabric::nn
