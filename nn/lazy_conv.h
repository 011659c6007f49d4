// torch 1.13's lazy convolutions (conv.py's _LazyConvXdMixin): Conv1d/2d/3d and
// ConvTranspose1d/2d/3d with in_channels inferred from the first call's input, dim 1 of a batched
// input or dim 0 of an unbatched one. Options: the eager layer's without in_channels, same
// defaults. Keys: weight, bias. See nn/lazy_module.h for what lazy means here.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>

#include "nn/conv.h"
#include "nn/conv3d.h"
#include "nn/lazy_module.h"

namespace fabric::nn {

// A lazy convolution's options: the eager layer's (Eager) without in_channels, in its order and
// with its defaults; Size is the eager layer's per-dim type (int64_t, Int2, Int3).
template <class Size, class Eager>
struct LazyConvOptions {
  int64_t out_channels = 0;
  Size kernel_size{};
  Size stride = 1;
  Size padding = 0;
  Size dilation = 1;
  int64_t groups = 1;
  bool bias = true;
  Eager eager(int64_t in_channels) const {
    return {.in_channels = in_channels,
            .out_channels = out_channels,
            .kernel_size = kernel_size,
            .stride = stride,
            .padding = padding,
            .dilation = dilation,
            .groups = groups,
            .bias = bias};
  }
};

// The same for the transposed ones (torch's argument order: output_padding, groups, bias, then
// dilation).
template <class Size, class Eager>
struct LazyConvTransposeOptions {
  int64_t out_channels = 0;
  Size kernel_size{};
  Size stride = 1;
  Size padding = 0;
  Size output_padding = 0;
  int64_t groups = 1;
  bool bias = true;
  Size dilation = 1;
  Eager eager(int64_t in_channels) const {
    return {.in_channels = in_channels,
            .out_channels = out_channels,
            .kernel_size = kernel_size,
            .stride = stride,
            .padding = padding,
            .output_padding = output_padding,
            .groups = groups,
            .bias = bias,
            .dilation = dilation};
  }
};

using LazyConv1dOptions = LazyConvOptions<int64_t, Conv1dOptions>;
using LazyConv2dOptions = LazyConvOptions<Int2, Conv2dOptions>;
using LazyConv3dOptions = LazyConvOptions<Int3, Conv3dOptions>;
using LazyConvTranspose1dOptions = LazyConvTransposeOptions<int64_t, ConvTranspose1dOptions>;
using LazyConvTranspose2dOptions = LazyConvTransposeOptions<Int2, ConvTranspose2dOptions>;
using LazyConvTranspose3dOptions = LazyConvTransposeOptions<Int3, ConvTranspose3dOptions>;

// The six lazy convolutions: Eager is the layer the first call makes, `spatial` its number of
// spatial dims. The options are checked when the layer is made, by the eager layer's checks (with
// in_channels = groups standing in), so a layer that can never run is refused then.
template <class Eager, class LazyOptions>
class LazyConvNd : public LazyModule {
 public:
  using Options = LazyOptions;
  const LazyOptions& options() const { return options_; }

  Tensor weight;  // (out, in/groups, k...), transposed (in, out/groups, k...), once materialized
  Tensor bias;    // (out), undefined when bias = false

 protected:
  LazyConvNd(const char* lazy_name, int64_t spatial, const LazyOptions& options);
  std::optional<int64_t> infer_size(const Tensor& x) const override;
  std::shared_ptr<Module> build_eager(int64_t in_channels) const override;
  int64_t probe_size() const override;
  void adopt(Module& eager, bool reset) override;

 private:
  int64_t spatial_;
  LazyOptions options_;
};

class LazyConv1d : public LazyConvNd<Conv1d, LazyConv1dOptions> {
 public:
  explicit LazyConv1d(const LazyConv1dOptions& options) : LazyConvNd("LazyConv1d", 1, options) {}
};

class LazyConv2d : public LazyConvNd<Conv2d, LazyConv2dOptions> {
 public:
  explicit LazyConv2d(const LazyConv2dOptions& options) : LazyConvNd("LazyConv2d", 2, options) {}
};

class LazyConv3d : public LazyConvNd<Conv3d, LazyConv3dOptions> {
 public:
  explicit LazyConv3d(const LazyConv3dOptions& options) : LazyConvNd("LazyConv3d", 3, options) {}
};

class LazyConvTranspose1d : public LazyConvNd<ConvTranspose1d, LazyConvTranspose1dOptions> {
 public:
  explicit LazyConvTranspose1d(const LazyConvTranspose1dOptions& options)
      : LazyConvNd("LazyConvTranspose1d", 1, options) {}
};

class LazyConvTranspose2d : public LazyConvNd<ConvTranspose2d, LazyConvTranspose2dOptions> {
 public:
  explicit LazyConvTranspose2d(const LazyConvTranspose2dOptions& options)
      : LazyConvNd("LazyConvTranspose2d", 2, options) {}
};

class LazyConvTranspose3d : public LazyConvNd<ConvTranspose3d, LazyConvTranspose3dOptions> {
 public:
  explicit LazyConvTranspose3d(const LazyConvTranspose3dOptions& options)
      : LazyConvNd("LazyConvTranspose3d", 3, options) {}
};

extern template class LazyConvNd<Conv1d, LazyConv1dOptions>;
extern template class LazyConvNd<Conv2d, LazyConv2dOptions>;
extern template class LazyConvNd<Conv3d, LazyConv3dOptions>;
extern template class LazyConvNd<ConvTranspose1d, LazyConvTranspose1dOptions>;
extern template class LazyConvNd<ConvTranspose2d, LazyConvTranspose2dOptions>;
extern template class LazyConvNd<ConvTranspose3d, LazyConvTranspose3dOptions>;

}  // namespace fabric::nn
