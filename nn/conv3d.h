// Conv3d, ConvTranspose1d and ConvTranspose3d, with torch.nn's defaults, initialisation, keys
// (weight, bias) and reprs; the 2-D and 1-D siblings are in conv.h.
#pragma once
#include <string>
#include <vector>

#include "nn/module.h"

namespace fabric::nn {

// A (depth, height, width) triple that a single number fills on all sides: `.kernel_size = 3` or
// `.kernel_size = {1, 3, 3}`.
struct Int3 {
  int64_t d = 0, h = 0, w = 0;
  Int3() = default;
  Int3(int64_t v) : d(v), h(v), w(v) {}  // NOLINT: implicit on purpose
  Int3(int64_t d_, int64_t h_, int64_t w_) : d(d_), h(h_), w(w_) {}
  std::vector<int64_t> vec() const { return {d, h, w}; }
  friend bool operator==(const Int3&, const Int3&) = default;
};

struct Conv3dOptions {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  Int3 kernel_size;
  Int3 stride = 1;
  Int3 padding = 0;
  Int3 dilation = 1;
  int64_t groups = 1;
  bool bias = true;
};

// torch.nn.Conv3d: weight (out, in/groups, kd, kh, kw) ~ kaiming_uniform_(a = sqrt(5)); bias ~
// U(+-1/sqrt(fan_in)), fan_in = in/groups * kd * kh * kw. Keys: weight, bias.
class Conv3d : public Module {
 public:
  using Options = Conv3dOptions;
  explicit Conv3d(const Conv3dOptions& options);
  // (N, C_in, D, H, W) or (C_in, D, H, W) -> (N, C_out, D_out, H_out, W_out) or unbatched
  Tensor forward(const Tensor& x) override;
  void reset_parameters(Generator* gen = nullptr);
  std::string type_name() const override { return "Conv3d"; }
  std::string extra_repr() const override;
  const Conv3dOptions& options() const { return options_; }

  Tensor weight;
  Tensor bias;

 private:
  Conv3dOptions options_;
};

struct ConvTranspose1dOptions {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t kernel_size = 0;
  int64_t stride = 1;
  int64_t padding = 0;
  int64_t output_padding = 0;  // < stride or < dilation
  int64_t groups = 1;
  bool bias = true;
  int64_t dilation = 1;
};

// torch.nn.ConvTranspose1d: weight (in, out/groups, k) ~ kaiming_uniform_(a = sqrt(5)) with
// torch's fan_in of that tensor, out/groups * k; bias (out) ~ U(+-1/sqrt(fan_in)). Keys: weight,
// bias. Output length (L - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1.
class ConvTranspose1d : public Module {
 public:
  using Options = ConvTranspose1dOptions;
  explicit ConvTranspose1d(const ConvTranspose1dOptions& options);
  // (N, C_in, L) or (C_in, L) -> (N, C_out, L_out) or (C_out, L_out)
  Tensor forward(const Tensor& x) override;
  void reset_parameters(Generator* gen = nullptr);
  std::string type_name() const override { return "ConvTranspose1d"; }
  std::string extra_repr() const override;
  const ConvTranspose1dOptions& options() const { return options_; }

  Tensor weight;
  Tensor bias;

 private:
  ConvTranspose1dOptions options_;
};

struct ConvTranspose3dOptions {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  Int3 kernel_size;
  Int3 stride = 1;
  Int3 padding = 0;
  Int3 output_padding = 0;  // < stride or < dilation, per side
  int64_t groups = 1;
  bool bias = true;
  Int3 dilation = 1;
};

// torch.nn.ConvTranspose3d: weight (in, out/groups, kd, kh, kw), initialised as
// ConvTranspose1d's (fan_in out/groups * kd * kh * kw). Keys: weight, bias. Output size per side
// as ConvTranspose1d's length.
class ConvTranspose3d : public Module {
 public:
  using Options = ConvTranspose3dOptions;
  explicit ConvTranspose3d(const ConvTranspose3dOptions& options);
  // (N, C_in, D, H, W) or (C_in, D, H, W) -> (N, C_out, D_out, H_out, W_out) or unbatched
  Tensor forward(const Tensor& x) override;
  void reset_parameters(Generator* gen = nullptr);
  std::string type_name() const override { return "ConvTranspose3d"; }
  std::string extra_repr() const override;
  const ConvTranspose3dOptions& options() const { return options_; }

  Tensor weight;
  Tensor bias;

 private:
  ConvTranspose3dOptions options_;
};

}  // namespace fabric::nn
