// AvgPool2d and the 1-d pools (MaxPool1d, AvgPool1d, AdaptiveAvgPool1d), as torch.nn; MaxPool2d and
// AdaptiveAvgPool2d live in nn/conv.h.
#pragma once
#include <optional>
#include <tuple>

#include "nn/conv.h"
#include "nn/module.h"

namespace fabric::nn {

// Only torch's defaults of ceil_mode, count_include_pad and divisor_override are computed (floor
// output sizes, padding counted in every window's divisor); the constructor refuses others.
struct AvgPool2dOptions {
  Int2 kernel_size;
  std::optional<Int2> stride = std::nullopt;  // unset: kernel_size, as torch
  Int2 padding = 0;                           // at most half the kernel, per side
  bool ceil_mode = false;
  bool count_include_pad = true;
  std::optional<int64_t> divisor_override = std::nullopt;
};

// (N, C, H, W) or (C, H, W) -> (..., (H + 2p - k) / s + 1, likewise for W).
class AvgPool2d : public Module {
 public:
  using Options = AvgPool2dOptions;
  explicit AvgPool2d(const AvgPool2dOptions& options);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "AvgPool2d"; }
  std::string extra_repr() const override;

 private:
  AvgPool2dOptions options_;
};

struct MaxPool1dOptions {
  int64_t kernel_size = 0;
  std::optional<int64_t> stride = std::nullopt;  // unset: kernel_size, as torch
  int64_t padding = 0;                           // at most half the kernel
  int64_t dilation = 1;                          // only 1
  bool ceil_mode = false;                        // only false
  bool return_indices = false;  // true: forward_with_indices() (torch's tuple); forward() refuses
};

// (N, C, L) or (C, L) -> (..., (L + 2p - k) / s + 1).
class MaxPool1d : public Module {
 public:
  using Options = MaxPool1dOptions;
  explicit MaxPool1d(const MaxPool1dOptions& options);
  Tensor forward(const Tensor& x) override;
  // (values, int64 position of each maximum in L): MaxUnpool1d's indices.
  std::tuple<Tensor, Tensor> forward_with_indices(const Tensor& x);
  std::string type_name() const override { return "MaxPool1d"; }
  std::string extra_repr() const override;

 private:
  MaxPool1dOptions options_;
};

struct AvgPool1dOptions {
  int64_t kernel_size = 0;
  std::optional<int64_t> stride = std::nullopt;  // unset: kernel_size, as torch
  int64_t padding = 0;                           // at most half the kernel
  bool ceil_mode = false;                        // only false
  bool count_include_pad = true;                 // only true
};

class AvgPool1d : public Module {
 public:
  using Options = AvgPool1dOptions;
  explicit AvgPool1d(const AvgPool1dOptions& options);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "AvgPool1d"; }
  std::string extra_repr() const override;

 private:
  AvgPool1dOptions options_;
};

struct AdaptiveAvgPool1dOptions {
  int64_t output_size = 0;
};

// (N, C, L) or (C, L) -> (..., output_size) for any L.
class AdaptiveAvgPool1d : public Module {
 public:
  using Options = AdaptiveAvgPool1dOptions;
  explicit AdaptiveAvgPool1d(const AdaptiveAvgPool1dOptions& options);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "AdaptiveAvgPool1d"; }
  std::string extra_repr() const override;

 private:
  AdaptiveAvgPool1dOptions options_;
};

}  // namespace fabric::nn
