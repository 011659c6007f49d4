// The 3-d pools (MaxPool3d, AvgPool3d, AdaptiveAvgPool3d), the adaptive max pools
// (AdaptiveMaxPool1d/2d/3d), the power-average pools (LPPool1d/2d) and Unfold/Fold, as torch.nn.
// Sizes are given as torch takes them, one number for every dim ({3}) or one per dim ({2, 3, 1}),
// and reprs print them as given.
#pragma once
#include <optional>
#include <tuple>
#include <vector>

#include "nn/module.h"

namespace fabric::nn {

// Only torch's defaults of dilation and ceil_mode are computed; the constructor refuses others.
struct MaxPool3dOptions {
  std::vector<int64_t> kernel_size;                           // {k} or {kd, kh, kw}
  std::optional<std::vector<int64_t>> stride = std::nullopt;  // unset: kernel_size, as torch
  std::vector<int64_t> padding = {0};                         // at most half the kernel
  int64_t dilation = 1;                                       // only 1
  bool ceil_mode = false;                                     // only false
  bool return_indices = false;  // true: forward_with_indices() (torch's tuple); forward() refuses
};

// (N, C, D, H, W) or (C, D, H, W) -> (..., (D + 2p - k) / s + 1, likewise for H and W).
class MaxPool3d : public Module {
 public:
  using Options = MaxPool3dOptions;
  explicit MaxPool3d(const MaxPool3dOptions& options);
  Tensor forward(const Tensor& x) override;
  // (values, int64 offset of each maximum in its flattened (D, H, W) plane): MaxUnpool3d's.
  std::tuple<Tensor, Tensor> forward_with_indices(const Tensor& x);
  std::string type_name() const override { return "MaxPool3d"; }
  std::string extra_repr() const override;

 private:
  MaxPool3dOptions options_;
};

// Only torch's defaults of ceil_mode, count_include_pad and divisor_override are computed.
struct AvgPool3dOptions {
  std::vector<int64_t> kernel_size;
  std::optional<std::vector<int64_t>> stride = std::nullopt;
  std::vector<int64_t> padding = {0};
  bool ceil_mode = false;
  bool count_include_pad = true;
  std::optional<int64_t> divisor_override = std::nullopt;
};

class AvgPool3d : public Module {
 public:
  using Options = AvgPool3dOptions;
  explicit AvgPool3d(const AvgPool3dOptions& options);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "AvgPool3d"; }
  std::string extra_repr() const override;

 private:
  AvgPool3dOptions options_;
};

struct AdaptiveAvgPool3dOptions {
  std::vector<int64_t> output_size;  // {s} or {od, oh, ow}
};

// (N, C, D, H, W) or (C, D, H, W) -> (..., od, oh, ow) for any D, H and W.
class AdaptiveAvgPool3d : public Module {
 public:
  using Options = AdaptiveAvgPool3dOptions;
  explicit AdaptiveAvgPool3d(const AdaptiveAvgPool3dOptions& options);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "AdaptiveAvgPool3d"; }
  std::string extra_repr() const override;

 private:
  AdaptiveAvgPool3dOptions options_;
};

// return_indices = true (torch's tuple) is forward_with_indices(); forward() then refuses, so a
// model written for the tuple does not silently get the values alone.
struct AdaptiveMaxPool1dOptions {
  int64_t output_size = 0;
  bool return_indices = false;
};

// (N, C, L) or (C, L) -> (..., output_size); indices into L.
class AdaptiveMaxPool1d : public Module {
 public:
  using Options = AdaptiveMaxPool1dOptions;
  explicit AdaptiveMaxPool1d(const AdaptiveMaxPool1dOptions& options);
  Tensor forward(const Tensor& x) override;
  std::tuple<Tensor, Tensor> forward_with_indices(const Tensor& x);
  std::string type_name() const override { return "AdaptiveMaxPool1d"; }
  std::string extra_repr() const override;

 private:
  AdaptiveMaxPool1dOptions options_;
};

struct AdaptiveMaxPool2dOptions {
  std::vector<int64_t> output_size;  // {s} or {oh, ow}
  bool return_indices = false;
};

// (N, C, H, W) or (C, H, W) -> (..., oh, ow); indices into each plane's H*W.
class AdaptiveMaxPool2d : public Module {
 public:
  using Options = AdaptiveMaxPool2dOptions;
  explicit AdaptiveMaxPool2d(const AdaptiveMaxPool2dOptions& options);
  Tensor forward(const Tensor& x) override;
  std::tuple<Tensor, Tensor> forward_with_indices(const Tensor& x);
  std::string type_name() const override { return "AdaptiveMaxPool2d"; }
  std::string extra_repr() const override;

 private:
  AdaptiveMaxPool2dOptions options_;
};

struct AdaptiveMaxPool3dOptions {
  std::vector<int64_t> output_size;  // {s} or {od, oh, ow}
  bool return_indices = false;
};

// (N, C, D, H, W) or (C, D, H, W) -> (..., od, oh, ow); indices into each plane's D*H*W.
class AdaptiveMaxPool3d : public Module {
 public:
  using Options = AdaptiveMaxPool3dOptions;
  explicit AdaptiveMaxPool3d(const AdaptiveMaxPool3dOptions& options);
  Tensor forward(const Tensor& x) override;
  std::tuple<Tensor, Tensor> forward_with_indices(const Tensor& x);
  std::string type_name() const override { return "AdaptiveMaxPool3d"; }
  std::string extra_repr() const override;

 private:
  AdaptiveMaxPool3dOptions options_;
};

// (sum over the window of x^p)^(1/p); ceil_mode only false.
struct LPPool1dOptions {
  double norm_type = 2;
  int64_t kernel_size = 0;
  std::optional<int64_t> stride = std::nullopt;  // unset: kernel_size (the repr says None)
  bool ceil_mode = false;
};

class LPPool1d : public Module {
 public:
  using Options = LPPool1dOptions;
  explicit LPPool1d(const LPPool1dOptions& options);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "LPPool1d"; }
  std::string extra_repr() const override;

 private:
  LPPool1dOptions options_;
};

struct LPPool2dOptions {
  double norm_type = 2;
  std::vector<int64_t> kernel_size;                           // {k} or {kh, kw}
  std::optional<std::vector<int64_t>> stride = std::nullopt;  // unset: kernel_size
  bool ceil_mode = false;
};

class LPPool2d : public Module {
 public:
  using Options = LPPool2dOptions;
  explicit LPPool2d(const LPPool2dOptions& options);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "LPPool2d"; }
  std::string extra_repr() const override;

 private:
  LPPool2dOptions options_;
};

struct UnfoldOptions {
  std::vector<int64_t> kernel_size;  // {k} or {kh, kw}, likewise below
  std::vector<int64_t> dilation = {1};
  std::vector<int64_t> padding = {0};
  std::vector<int64_t> stride = {1};
};

// (N, C, H, W) or (C, H, W) -> (..., C*kh*kw, L): the sliding blocks as columns.
class Unfold : public Module {
 public:
  using Options = UnfoldOptions;
  explicit Unfold(const UnfoldOptions& options);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Unfold"; }
  std::string extra_repr() const override;

 private:
  UnfoldOptions options_;
};

struct FoldOptions {
  std::vector<int64_t> output_size;  // {s} or {h, w}
  std::vector<int64_t> kernel_size;
  std::vector<int64_t> dilation = {1};
  std::vector<int64_t> padding = {0};
  std::vector<int64_t> stride = {1};
};

// (N, C*kh*kw, L) or (C*kh*kw, L) -> (..., C, h, w): blocks summed back, overlaps adding up.
class Fold : public Module {
 public:
  using Options = FoldOptions;
  explicit Fold(const FoldOptions& options);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Fold"; }
  std::string extra_repr() const override;

 private:
  FoldOptions options_;
};

}  // namespace fabric::nn
