// The lazy norms.
#include "nn/lazy_norm.h"

#include "nn/init.h"
#include "tensor/factory.h"

namespace fabric::nn {

template <class Eager, class LazyOptions>
LazyNormNd<Eager, LazyOptions>::LazyNormNd(const char* lazy_name, NormInputRanks ranks,
                                           const LazyOptions& options)
    : LazyModule(lazy_name), ranks_(ranks), options_(options) {
  {
    init::EmptyInitGuard no_draws;
    set_lazy_repr(lazy_size_repr(build_eager(probe_size())->extra_repr(), probe_size()));
  }
  if (options.affine) {
    weight = lazy_parameter("weight");
    bias = lazy_parameter("bias");
  }
  if (options.track_running_stats) {
    running_mean = lazy_buffer("running_mean");
    running_var = lazy_buffer("running_var");
    num_batches_tracked =
        register_buffer("num_batches_tracked", zeros({}, {.dtype = DType::int64}));
  }
}

template <class Eager, class LazyOptions>
std::optional<int64_t> LazyNormNd<Eager, LazyOptions>::infer_size(const Tensor& x) const {
  if (ranks_.unbatched != 0 && x.dim() == ranks_.unbatched) return x.size(0);
  if (x.dim() >= ranks_.batched_min && x.dim() <= ranks_.batched_max) return x.size(1);
  return std::nullopt;
}

template <class Eager, class LazyOptions>
std::shared_ptr<Module> LazyNormNd<Eager, LazyOptions>::build_eager(int64_t num_features) const {
  return std::make_shared<Eager>(options_.eager(num_features));
}

template <class Eager, class LazyOptions>
void LazyNormNd<Eager, LazyOptions>::adopt(Module& eager, bool reset) {
  auto& norm = static_cast<NormBase&>(eager);
  if (weight.defined()) {
    norm.weight = norm.register_parameter("weight", weight, weight.requires_grad());
    norm.bias = norm.register_parameter("bias", bias, bias.requires_grad());
  }
  if (running_mean.defined()) {
    norm.running_mean = norm.register_buffer("running_mean", running_mean);
    norm.running_var = norm.register_buffer("running_var", running_var);
    norm.num_batches_tracked = norm.register_buffer("num_batches_tracked", num_batches_tracked);
  }
  // torch's _NormBase.reset_parameters: the running statistics (and the counter) to their start,
  // weight to ones, bias to zeros.
  if (reset) norm.reset_parameters();
}

template <class Eager, class LazyOptions>
void LazyNormNd<Eager, LazyOptions>::prepare_loaded_state(const std::string& prefix,
                                                          StateDict& state) const {
  LazyModule::prepare_loaded_state(prefix, state);
  if (!num_batches_tracked.defined() || state.contains(prefix + "num_batches_tracked")) return;
  state.insert(prefix + "num_batches_tracked", zeros({}, {.dtype = DType::int64}));
}

template class LazyNormNd<BatchNorm1d, LazyBatchNormOptions>;
template class LazyNormNd<BatchNorm2d, LazyBatchNormOptions>;
template class LazyNormNd<BatchNorm3d, LazyBatchNormOptions>;
template class LazyNormNd<InstanceNorm1d, LazyInstanceNormOptions>;
template class LazyNormNd<InstanceNorm2d, LazyInstanceNormOptions>;
template class LazyNormNd<InstanceNorm3d, LazyInstanceNormOptions>;

}  // namespace fabric::nn
