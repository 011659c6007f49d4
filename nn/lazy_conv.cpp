// The lazy convolutions.
#include "nn/lazy_conv.h"

#include <algorithm>

#include "nn/init.h"

namespace fabric::nn {

template <class Eager, class LazyOptions>
LazyConvNd<Eager, LazyOptions>::LazyConvNd(const char* lazy_name, int64_t spatial,
                                           const LazyOptions& options)
    : LazyModule(lazy_name), spatial_(spatial), options_(options) {
  {
    init::EmptyInitGuard no_draws;  // torch draws nothing before the first call
    set_lazy_repr(lazy_size_repr(build_eager(probe_size())->extra_repr(), probe_size()));
  }
  weight = lazy_parameter("weight");
  if (options.bias) bias = lazy_parameter("bias");
}

// torch's _LazyConvXdMixin._get_in_channels: dim 0 of an unbatched input, dim 1 of a batched one.
template <class Eager, class LazyOptions>
std::optional<int64_t> LazyConvNd<Eager, LazyOptions>::infer_size(const Tensor& x) const {
  if (x.dim() == spatial_ + 1) return x.size(0);
  if (x.dim() == spatial_ + 2) return x.size(1);
  return std::nullopt;
}

template <class Eager, class LazyOptions>
std::shared_ptr<Module> LazyConvNd<Eager, LazyOptions>::build_eager(int64_t in_channels) const {
  return std::make_shared<Eager>(options_.eager(in_channels));
}

// The fewest input channels the eager checks accept (divisible by groups); a non-positive groups
// is then what they name.
template <class Eager, class LazyOptions>
int64_t LazyConvNd<Eager, LazyOptions>::probe_size() const {
  return std::max<int64_t>(options_.groups, 1);
}

template <class Eager, class LazyOptions>
void LazyConvNd<Eager, LazyOptions>::adopt(Module& eager, bool reset) {
  auto& conv = static_cast<Eager&>(eager);
  conv.weight = conv.register_parameter("weight", weight, weight.requires_grad());
  if (bias.defined()) conv.bias = conv.register_parameter("bias", bias, bias.requires_grad());
  if (reset) conv.reset_parameters();
}

template class LazyConvNd<Conv1d, LazyConv1dOptions>;
template class LazyConvNd<Conv2d, LazyConv2dOptions>;
template class LazyConvNd<Conv3d, LazyConv3dOptions>;
template class LazyConvNd<ConvTranspose1d, LazyConvTranspose1dOptions>;
template class LazyConvNd<ConvTranspose2d, LazyConvTranspose2dOptions>;
template class LazyConvNd<ConvTranspose3d, LazyConvTranspose3dOptions>;

}  // namespace fabric::nn
