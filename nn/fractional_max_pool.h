// FractionalMaxPool2d/3d as torch.nn: the functional fractional_max_pool2d/3d
// (tensor/fractional_max_pool.h) with the options fixed at construction. Fresh samples each
// forward (from fabric's generator), or the fixed ones of random_samples, which the layer holds
// as torch does: a buffer "_random_samples" (so in its state_dict), absent when not given.
#pragma once
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "nn/module.h"

namespace fabric::nn {

// Exactly one of output_size and output_ratio, as torch's layer; each {v} or one per dim.
struct FractionalMaxPool2dOptions {
  std::vector<int64_t> kernel_size;                                // {k} or {kh, kw}
  std::optional<std::vector<int64_t>> output_size = std::nullopt;  // {o} or {oh, ow}
  std::optional<std::vector<double>> output_ratio = std::nullopt;  // each in (0, 1)
  // true: torch's (values, indices) tuple, which is forward_with_indices(); forward() refuses.
  bool return_indices = false;
  // torch's _random_samples: (N, C, 2) in the input's dtype, used by every forward; undefined:
  // drawn afresh each forward.
  Tensor random_samples = Tensor();
};

struct FractionalMaxPool3dOptions {
  std::vector<int64_t> kernel_size;                                // {k} or {kt, kh, kw}
  std::optional<std::vector<int64_t>> output_size = std::nullopt;  // {o} or {ot, oh, ow}
  std::optional<std::vector<double>> output_ratio = std::nullopt;  // each in (0, 1)
  bool return_indices = false;
  Tensor random_samples = Tensor();  // (N, C, 3); undefined: drawn afresh each forward
};

// The two layers' shared body: torch's construction checks (ValueError: neither or both of
// output_size and output_ratio, a ratio outside (0, 1)), the samples buffer, and torch's repr,
// which prints no arguments: "FractionalMaxPool2d()".
class FractionalMaxPool : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  // (values, int64 offset of each maximum in its flattened plane): MaxUnpool2d/3d's indices.
  std::tuple<Tensor, Tensor> forward_with_indices(const Tensor& x);
  // The fixed samples (undefined when drawn each forward).
  Tensor random_samples;

 protected:
  FractionalMaxPool(const char* layer, int64_t dims, std::vector<int64_t> kernel_size,
                    std::optional<std::vector<int64_t>> output_size,
                    std::optional<std::vector<double>> output_ratio, bool return_indices,
                    const Tensor& random_samples);

 private:
  const char* layer_;
  int64_t dims_;
  std::vector<int64_t> kernel_size_;
  std::optional<std::vector<int64_t>> output_size_;
  std::optional<std::vector<double>> output_ratio_;
  bool return_indices_;
};

// (N, C, H, W) or (C, H, W) -> (..., oh, ow): output_size, or trunc(H * ratio), trunc(W * ratio).
class FractionalMaxPool2d : public FractionalMaxPool {
 public:
  using Options = FractionalMaxPool2dOptions;
  explicit FractionalMaxPool2d(const FractionalMaxPool2dOptions& o)
      : FractionalMaxPool("FractionalMaxPool2d", 2, o.kernel_size, o.output_size, o.output_ratio,
                          o.return_indices, o.random_samples) {}
  std::string type_name() const override { return "FractionalMaxPool2d"; }
};

// (N, C, T, H, W) or (C, T, H, W) -> (..., ot, oh, ow), likewise.
class FractionalMaxPool3d : public FractionalMaxPool {
 public:
  using Options = FractionalMaxPool3dOptions;
  explicit FractionalMaxPool3d(const FractionalMaxPool3dOptions& o)
      : FractionalMaxPool("FractionalMaxPool3d", 3, o.kernel_size, o.output_size, o.output_ratio,
                          o.return_indices, o.random_samples) {}
  std::string type_name() const override { return "FractionalMaxPool3d"; }
};

}  // namespace fabric::nn
