// torch 1.13's lazy norms (batchnorm.py's _LazyNormBase, instancenorm.py): BatchNorm1d/2d/3d and
// InstanceNorm1d/2d/3d with num_features inferred from the first call's input (its channel dim).
// Keys as the eager layers': weight, bias (when affine); running_mean, running_var,
// num_batches_tracked (when track_running_stats; the counter is an ordinary int64 0 from the
// start). See nn/lazy_module.h for what lazy means here.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "nn/instance_norm.h"
#include "nn/lazy_module.h"
#include "nn/normalization.h"

namespace fabric::nn {

struct LazyBatchNormOptions {
  double eps = 1e-5;
  std::optional<double> momentum = 0.1;  // nullopt: the cumulative average, as BatchNorm's
  bool affine = true;
  bool track_running_stats = true;
  BatchNormOptions eager(int64_t num_features) const {
    return {.num_features = num_features,
            .eps = eps,
            .momentum = momentum,
            .affine = affine,
            .track_running_stats = track_running_stats};
  }
};

// torch 1.13's LazyInstanceNorm takes _LazyNormBase's defaults, affine and track_running_stats
// true (its docstring says false; the eager InstanceNorm's are false).
struct LazyInstanceNormOptions {
  double eps = 1e-5;
  double momentum = 0.1;
  bool affine = true;
  bool track_running_stats = true;
  InstanceNormOptions eager(int64_t num_features) const {
    return {.num_features = num_features,
            .eps = eps,
            .momentum = momentum,
            .affine = affine,
            .track_running_stats = track_running_stats};
  }
};

// The dim counts a norm takes: batched ones (channels at dim 1) from `batched_min` to
// `batched_max`, and `unbatched` (channels at dim 0; 0 when it takes none).
struct NormInputRanks {
  int64_t batched_min = 0;
  int64_t batched_max = 0;
  int64_t unbatched = 0;
};

template <class Eager, class LazyOptions>
class LazyNormNd : public LazyModule {
 public:
  using Options = LazyOptions;
  const LazyOptions& options() const { return options_; }

  Tensor weight, bias;                                    // (C) once materialized, or undefined
  Tensor running_mean, running_var, num_batches_tracked;  // or undefined

 protected:
  LazyNormNd(const char* lazy_name, NormInputRanks ranks, const LazyOptions& options);
  std::optional<int64_t> infer_size(const Tensor& x) const override;
  std::shared_ptr<Module> build_eager(int64_t num_features) const override;
  int64_t probe_size() const override { return 1; }
  void adopt(Module& eager, bool reset) override;
  // The lazy load hook, then the eager norm's: a state without num_batches_tracked loads it as 0.
  void prepare_loaded_state(const std::string& prefix, StateDict& state) const override;

 private:
  NormInputRanks ranks_;
  LazyOptions options_;
};

// Input (N, C) or (N, C, L).
class LazyBatchNorm1d : public LazyNormNd<BatchNorm1d, LazyBatchNormOptions> {
 public:
  explicit LazyBatchNorm1d(const LazyBatchNormOptions& options = {})
      : LazyNormNd("LazyBatchNorm1d", {2, 3, 0}, options) {}
};

// Input (N, C, H, W).
class LazyBatchNorm2d : public LazyNormNd<BatchNorm2d, LazyBatchNormOptions> {
 public:
  explicit LazyBatchNorm2d(const LazyBatchNormOptions& options = {})
      : LazyNormNd("LazyBatchNorm2d", {4, 4, 0}, options) {}
};

// Input (N, C, D, H, W).
class LazyBatchNorm3d : public LazyNormNd<BatchNorm3d, LazyBatchNormOptions> {
 public:
  explicit LazyBatchNorm3d(const LazyBatchNormOptions& options = {})
      : LazyNormNd("LazyBatchNorm3d", {5, 5, 0}, options) {}
};

// Input (N, C, L) or (C, L). (torch 1.13 takes num_features from dim 1 of an unbatched input too,
// and then refuses its own statistics' size; here it is the channel dim, 0.)
class LazyInstanceNorm1d : public LazyNormNd<InstanceNorm1d, LazyInstanceNormOptions> {
 public:
  explicit LazyInstanceNorm1d(const LazyInstanceNormOptions& options = {})
      : LazyNormNd("LazyInstanceNorm1d", {3, 3, 2}, options) {}
};

// Input (N, C, H, W) or (C, H, W).
class LazyInstanceNorm2d : public LazyNormNd<InstanceNorm2d, LazyInstanceNormOptions> {
 public:
  explicit LazyInstanceNorm2d(const LazyInstanceNormOptions& options = {})
      : LazyNormNd("LazyInstanceNorm2d", {4, 4, 3}, options) {}
};

// Input (N, C, D, H, W) or (C, D, H, W).
class LazyInstanceNorm3d : public LazyNormNd<InstanceNorm3d, LazyInstanceNormOptions> {
 public:
  explicit LazyInstanceNorm3d(const LazyInstanceNormOptions& options = {})
      : LazyNormNd("LazyInstanceNorm3d", {5, 5, 4}, options) {}
};

extern template class LazyNormNd<BatchNorm1d, LazyBatchNormOptions>;
extern template class LazyNormNd<BatchNorm2d, LazyBatchNormOptions>;
extern template class LazyNormNd<BatchNorm3d, LazyBatchNormOptions>;
extern template class LazyNormNd<InstanceNorm1d, LazyInstanceNormOptions>;
extern template class LazyNormNd<InstanceNorm2d, LazyInstanceNormOptions>;
extern template class LazyNormNd<InstanceNorm3d, LazyInstanceNormOptions>;

}  // namespace fabric::nn
