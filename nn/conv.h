// Conv2d, Conv1d, ConvTranspose2d, MaxPool2d and AdaptiveAvgPool2d over NCHW (NCL) input, with
// torch.nn's defaults and initialisation.
#pragma once
#include <optional>
#include <tuple>
#include <vector>

#include "nn/module.h"

namespace fabric::nn {

// A (height, width) pair that a single number fills on both sides: `.kernel_size = 5` or
// `.kernel_size = {3, 5}`.
struct Int2 {
  int64_t h = 0, w = 0;
  Int2() = default;
  Int2(int64_t v) : h(v), w(v) {}  // NOLINT: implicit on purpose
  Int2(int64_t h_, int64_t w_) : h(h_), w(w_) {}
  std::vector<int64_t> vec() const { return {h, w}; }
  friend bool operator==(const Int2&, const Int2&) = default;
};

struct Conv2dOptions {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  Int2 kernel_size;
  Int2 stride = 1;
  Int2 padding = 0;
  Int2 dilation = 1;
  int64_t groups = 1;
  bool bias = true;
};

// weight (out, in/groups, kh, kw) ~ kaiming_uniform_(a = sqrt(5)); bias ~ U(+-1/sqrt(fan_in)),
// fan_in = in/groups * kh * kw. Keys: weight, bias.
class Conv2d : public Module {
 public:
  using Options = Conv2dOptions;
  explicit Conv2d(const Conv2dOptions& options);
  // (N, C_in, H, W) -> (N, C_out, H_out, W_out)
  Tensor forward(const Tensor& x) override;
  void reset_parameters(Generator* gen = nullptr);
  std::string type_name() const override { return "Conv2d"; }
  std::string extra_repr() const override;
  const Conv2dOptions& options() const { return options_; }

  Tensor weight;
  Tensor bias;

 private:
  Conv2dOptions options_;
};

struct Conv1dOptions {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t kernel_size = 0;
  int64_t stride = 1;
  int64_t padding = 0;
  int64_t dilation = 1;
  int64_t groups = 1;
  bool bias = true;
};

// torch.nn.Conv1d: weight (out, in/groups, k) ~ kaiming_uniform_(a = sqrt(5)); bias ~
// U(+-1/sqrt(fan_in)), fan_in = in/groups * k. Keys: weight, bias.
class Conv1d : public Module {
 public:
  using Options = Conv1dOptions;
  explicit Conv1d(const Conv1dOptions& options);
  // (N, C_in, L) or (C_in, L) -> (N, C_out, L_out) or (C_out, L_out)
  Tensor forward(const Tensor& x) override;
  void reset_parameters(Generator* gen = nullptr);
  std::string type_name() const override { return "Conv1d"; }
  std::string extra_repr() const override;
  const Conv1dOptions& options() const { return options_; }

  Tensor weight;
  Tensor bias;

 private:
  Conv1dOptions options_;
};

struct ConvTranspose2dOptions {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  Int2 kernel_size;
  Int2 stride = 1;
  Int2 padding = 0;
  Int2 output_padding = 0;  // < stride or < dilation, per side
  int64_t groups = 1;
  bool bias = true;
  Int2 dilation = 1;
};

// torch.nn.ConvTranspose2d: weight (in, out/groups, kh, kw) ~ kaiming_uniform_(a = sqrt(5)) with
// torch's fan_in of that tensor, out/groups * kh * kw; bias (out) ~ U(+-1/sqrt(fan_in)). Keys:
// weight, bias. Output size (H - 1) * stride - 2 * padding + dilation * (kh - 1) +
// output_padding + 1 per side.
class ConvTranspose2d : public Module {
 public:
  using Options = ConvTranspose2dOptions;
  explicit ConvTranspose2d(const ConvTranspose2dOptions& options);
  // (N, C_in, H, W) or (C_in, H, W) -> (N, C_out, H_out, W_out) or (C_out, H_out, W_out)
  Tensor forward(const Tensor& x) override;
  void reset_parameters(Generator* gen = nullptr);
  std::string type_name() const override { return "ConvTranspose2d"; }
  std::string extra_repr() const override;
  const ConvTranspose2dOptions& options() const { return options_; }

  Tensor weight;
  Tensor bias;

 private:
  ConvTranspose2dOptions options_;
};

struct MaxPool2dOptions {
  Int2 kernel_size;
  std::optional<Int2> stride = std::nullopt;  // unset: kernel_size, as torch
  Int2 padding = 0;
  // true: torch's (values, indices) tuple, which is forward_with_indices(); forward() refuses.
  bool return_indices = false;
};

class MaxPool2d : public Module {
 public:
  using Options = MaxPool2dOptions;
  explicit MaxPool2d(const MaxPool2dOptions& options);
  Tensor forward(const Tensor& x) override;
  // (values, int64 offset of each maximum in its flattened (H, W) plane): MaxUnpool2d's indices.
  std::tuple<Tensor, Tensor> forward_with_indices(const Tensor& x);
  std::string type_name() const override { return "MaxPool2d"; }
  std::string extra_repr() const override;

 private:
  MaxPool2dOptions options_;
};

struct AdaptiveAvgPool2dOptions {
  // {oh, ow}, or {s} for s x s (the repr shows which, as torch's: output_size=(1, 1) / =5).
  std::vector<int64_t> output_size;
};

// torch.nn.AdaptiveAvgPool2d: (N, C, H, W) or (C, H, W) -> (..., oh, ow) for any H and W, e.g.
// the global pool of a ResNet head: make<AdaptiveAvgPool2d>({.output_size = {1, 1}}).
class AdaptiveAvgPool2d : public Module {
 public:
  using Options = AdaptiveAvgPool2dOptions;
  explicit AdaptiveAvgPool2d(const AdaptiveAvgPool2dOptions& options);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "AdaptiveAvgPool2d"; }
  std::string extra_repr() const override;

 private:
  AdaptiveAvgPool2dOptions options_;
};

}  // namespace fabric::nn
