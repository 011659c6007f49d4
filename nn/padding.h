// torch.nn's padding layers: ZeroPad2d, ConstantPad1d/2d/3d, ReflectionPad1d/2d/3d and
// ReplicationPad1d/2d/3d, each F.pad with its mode (torch 1.13 has no CircularPad layer; circular
// padding is pad(x, p, "circular") or a convolution's padding_mode).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "nn/module.h"

namespace fabric::nn {

struct PadOptions {
  // One value pads every side by it; otherwise 2 values per padded dimension, last dimension
  // first: (left, right), then (top, bottom), then (front, back).
  std::vector<int64_t> padding;
  double value = 0;  // ConstantPad*d only
};

// The layers' shared body (torch's _ConstantPadNd, _ReflectionPadNd, _ReplicationPadNd).
// make<ReflectionPad2d>({.padding = {1, 1, 2, 0}}) pads W by (1, 1) and H by (2, 0);
// make<ConstantPad1d>({.padding = {3}, .value = -1.0}) pads L by 3 on each side with -1.
class PadModule : public Module {
 public:
  using Options = PadOptions;
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return type_; }
  std::string extra_repr() const override;
  // The full (left, right, ...) padding, a single value expanded as torch's _ntuple does.
  const std::vector<int64_t>& padding() const { return padding_; }
  double value() const { return value_; }

 protected:
  // mode: "zero" (constant 0, printed without the value), "constant", "reflect" or "replicate".
  PadModule(std::string type, int64_t dims, std::string mode, const PadOptions& options);

 private:
  std::string type_, mode_;
  std::vector<int64_t> padding_;
  double value_ = 0;
};

#define FABRIC_PAD_MODULE(Name, dims, mode)                                             \
  class Name : public PadModule {                                                       \
   public:                                                                              \
    explicit Name(const PadOptions& options) : PadModule(#Name, dims, mode, options) {} \
  };
FABRIC_PAD_MODULE(ZeroPad2d, 2, "zero")
FABRIC_PAD_MODULE(ConstantPad1d, 1, "constant")
FABRIC_PAD_MODULE(ConstantPad2d, 2, "constant")
FABRIC_PAD_MODULE(ConstantPad3d, 3, "constant")
FABRIC_PAD_MODULE(ReflectionPad1d, 1, "reflect")
FABRIC_PAD_MODULE(ReflectionPad2d, 2, "reflect")
FABRIC_PAD_MODULE(ReflectionPad3d, 3, "reflect")
FABRIC_PAD_MODULE(ReplicationPad1d, 1, "replicate")
FABRIC_PAD_MODULE(ReplicationPad2d, 2, "replicate")
FABRIC_PAD_MODULE(ReplicationPad3d, 3, "replicate")
#undef FABRIC_PAD_MODULE

}  // namespace fabric::nn
