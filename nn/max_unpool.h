// MaxUnpool1d/2d/3d as torch.nn: the partial inverse of max pooling over the functional
// max_unpool1d/2d/3d (tensor/max_unpool.h). forward takes the pooled values, the pool's int64
// indices and optionally the output size (torch's output_size argument: the spatial sizes, or
// with the two leading ones). No options are checked at construction, as torch's; the functional
// checks them at the call.
#pragma once
#include <optional>
#include <vector>

#include "nn/conv.h"
#include "nn/conv3d.h"
#include "nn/module.h"

namespace fabric::nn {

struct MaxUnpool1dOptions {
  int64_t kernel_size = 0;
  std::optional<int64_t> stride = std::nullopt;  // unset: kernel_size, as torch
  int64_t padding = 0;
};

struct MaxUnpool2dOptions {
  Int2 kernel_size;
  std::optional<Int2> stride = std::nullopt;  // unset: kernel_size, as torch
  Int2 padding = 0;
};

struct MaxUnpool3dOptions {
  Int3 kernel_size;
  std::optional<Int3> stride = std::nullopt;  // unset: kernel_size, as torch
  Int3 padding = 0;
};

using UnpoolOutputSize = std::optional<std::vector<int64_t>>;

// The three layers' shared body: the sizes resolved as torch stores them (stride unset: the
// kernel), called with hooks as (x, indices[, output_size]), printed as torch's tuples
// (kernel_size=(2, 2), stride=(2, 2), padding=(0, 0)).
class MaxUnpool : public Module {
 public:
  using Module::forward;
  using Module::operator();
  Tensor operator()(const Tensor& x, const Tensor& indices,
                    const UnpoolOutputSize& output_size = std::nullopt) {
    return call_with_hooks(x, [&](const Tensor& v) { return forward(v, indices, output_size); });
  }
  Tensor forward(const Tensor& x, const Tensor& indices,
                 const UnpoolOutputSize& output_size = std::nullopt) {
    return unpool(x, indices, output_size);
  }
  std::string extra_repr() const override;

 protected:
  MaxUnpool(std::vector<int64_t> kernel, std::vector<int64_t> stride, std::vector<int64_t> padding)
      : kernel_(std::move(kernel)), stride_(std::move(stride)), padding_(std::move(padding)) {}
  // The functional of the layer's rank on the resolved sizes.
  virtual Tensor unpool(const Tensor& x, const Tensor& indices,
                        const UnpoolOutputSize& output_size) const = 0;
  std::vector<int64_t> kernel_, stride_, padding_;
};

// (N, C, L) or (C, L) -> (..., (L - 1) * stride - 2 * padding + kernel_size), or output_size.
class MaxUnpool1d : public MaxUnpool {
 public:
  using Options = MaxUnpool1dOptions;
  explicit MaxUnpool1d(const MaxUnpool1dOptions& o)
      : MaxUnpool({o.kernel_size}, {o.stride.value_or(o.kernel_size)}, {o.padding}) {}
  std::string type_name() const override { return "MaxUnpool1d"; }

 private:
  Tensor unpool(const Tensor& x, const Tensor& indices,
                const UnpoolOutputSize& output_size) const override;
};

// (N, C, H, W) or (C, H, W) -> (..., (H - 1) * stride - 2 * padding + kernel_size, as W).
class MaxUnpool2d : public MaxUnpool {
 public:
  using Options = MaxUnpool2dOptions;
  explicit MaxUnpool2d(const MaxUnpool2dOptions& o)
      : MaxUnpool(o.kernel_size.vec(), o.stride.value_or(o.kernel_size).vec(), o.padding.vec()) {}
  std::string type_name() const override { return "MaxUnpool2d"; }

 private:
  Tensor unpool(const Tensor& x, const Tensor& indices,
                const UnpoolOutputSize& output_size) const override;
};

// (N, C, D, H, W) or (C, D, H, W) -> (..., likewise for D, H and W).
class MaxUnpool3d : public MaxUnpool {
 public:
  using Options = MaxUnpool3dOptions;
  explicit MaxUnpool3d(const MaxUnpool3dOptions& o)
      : MaxUnpool(o.kernel_size.vec(), o.stride.value_or(o.kernel_size).vec(), o.padding.vec()) {}
  std::string type_name() const override { return "MaxUnpool3d"; }

 private:
  Tensor unpool(const Tensor& x, const Tensor& indices,
                const UnpoolOutputSize& output_size) const override;
};

}  // namespace fabric::nn
