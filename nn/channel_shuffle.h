// torch.nn.ChannelShuffle and F.channel_shuffle / torch.native_channel_shuffle: the C channels of
// an (N, C, *) input split into `groups` groups of C / groups, regrouped so that output channel
// k * groups + g is input channel g * (C / groups) + k (ShuffleNet's shuffle).
#pragma once
#include <cstdint>
#include <string>

#include "nn/module.h"

namespace fabric::nn {
inline namespace functional {

// torch.nn.functional.channel_shuffle: checks x has more than 2 dims (ShapeError), groups > 0
// (ValueError) and C % groups == 0 (ShapeError), with torch's messages, then returns x itself when
// it has no elements (as torch does) or native_channel_shuffle(x, groups). Any dtype.
Tensor channel_shuffle(const Tensor& x, int64_t groups);

// torch.native_channel_shuffle, unchecked as torch's: torch's math (a view to (N, groups,
// C / groups, -1), a permute, a contiguous copy and a view back), so any x with a size(1) works
// and the gradient (the inverse shuffle) comes from those ops. groups <= 0 is a ValueError here
// (torch divides by zero or reads out of bounds there).
Tensor native_channel_shuffle(const Tensor& x, int64_t groups);

}  // namespace functional

struct ChannelShuffleOptions {
  // torch's ChannelShuffle(groups) has no default: left at 0, forward raises torch's
  // "must be positive" error.
  int64_t groups = 0;
};

// make<ChannelShuffle>({.groups = 2}): (N, C, *) -> (N, C, *) with the channels shuffled; the
// checks (torch's messages) run at forward, as torch's do. Repr `ChannelShuffle(groups=2)`.
class ChannelShuffle : public Module {
 public:
  using Options = ChannelShuffleOptions;
  explicit ChannelShuffle(const ChannelShuffleOptions& options) : options_(options) {}
  Tensor forward(const Tensor& x) override { return channel_shuffle(x, options_.groups); }
  std::string type_name() const override { return "ChannelShuffle"; }
  std::string extra_repr() const override { return "groups=" + std::to_string(options_.groups); }
  const ChannelShuffleOptions& options() const { return options_; }

 private:
  ChannelShuffleOptions options_;
};

}  // namespace fabric::nn
