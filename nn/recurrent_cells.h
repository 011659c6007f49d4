// nn::RNNCell, nn::LSTMCell and nn::GRUCell: torch.nn's single-step recurrent cells (1.13) with
// their keys (weight_ih, weight_hh, bias_ih, bias_hh), init and printout; one cell op per call.
#pragma once
#include <string>
#include <utility>

#include "nn/module.h"

namespace fabric::nn {

struct RNNCellOptions {
  int64_t input_size = 0;
  int64_t hidden_size = 0;
  bool bias = true;
  std::string nonlinearity = "tanh";  // "tanh" or "relu"
};
struct LSTMCellOptions {
  int64_t input_size = 0;
  int64_t hidden_size = 0;
  bool bias = true;
};
struct GRUCellOptions {
  int64_t input_size = 0;
  int64_t hidden_size = 0;
  bool bias = true;
};

// torch's RNNCellBase: weight_ih (G*H, I), weight_hh (G*H, H), bias_ih and bias_hh (G*H), all
// drawn from U(-1/sqrt(H), 1/sqrt(H)).
class RecurrentCellBase : public Module {
 public:
  void reset_parameters(Generator* gen = nullptr);
  std::string extra_repr() const override;

  Tensor weight_ih, weight_hh;
  Tensor bias_ih, bias_hh;  // undefined without bias

 protected:
  RecurrentCellBase(const char* name, int64_t gates, int64_t input_size, int64_t hidden_size,
                    bool bias);
  // input (N, I) or unbatched (I); a state given must match (N, H) or (H); an undefined one is
  // zeros of the input's dtype.
  Tensor checked_state(const Tensor& input, const Tensor& state) const;
  int64_t input_size_, hidden_size_;
  const char* name_;
};

// h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (or relu).
class RNNCell : public RecurrentCellBase {
 public:
  using Options = RNNCellOptions;
  explicit RNNCell(const RNNCellOptions& options);
  // h' from a zero state (so the cell fits a Sequential).
  Tensor forward(const Tensor& input) override;
  // torch's cell(input, hx): through the forward hooks and activation checkpointing as operator()
  // (the hooks see input; a pre-hook may replace it).
  Tensor forward_with_state(const Tensor& input, const Tensor& hx = Tensor());
  std::string type_name() const override { return "RNNCell"; }
  std::string extra_repr() const override;
  const RNNCellOptions& options() const { return options_; }

 private:
  // The cell op itself, no hooks.
  Tensor step(const Tensor& input, const Tensor& hx) const;
  RNNCellOptions options_;
};

class LSTMCell : public RecurrentCellBase {
 public:
  using Options = LSTMCellOptions;
  explicit LSTMCell(const LSTMCellOptions& options);
  Tensor forward(const Tensor& input) override;
  // (h', c'); hx and cx zeros when undefined. Through the hooks and checkpointing as torch's
  // cell(input, (hx, cx)): the hooks see input and h' (c' comes out of a checkpoint too).
  std::pair<Tensor, Tensor> forward_with_state(const Tensor& input, const Tensor& hx = Tensor(),
                                               const Tensor& cx = Tensor());
  std::string type_name() const override { return "LSTMCell"; }
  const LSTMCellOptions& options() const { return options_; }

 private:
  std::pair<Tensor, Tensor> step(const Tensor& input, const Tensor& hx, const Tensor& cx) const;
  LSTMCellOptions options_;
};

class GRUCell : public RecurrentCellBase {
 public:
  using Options = GRUCellOptions;
  explicit GRUCell(const GRUCellOptions& options);
  Tensor forward(const Tensor& input) override;
  // Through the hooks and checkpointing, as RNNCell's.
  Tensor forward_with_state(const Tensor& input, const Tensor& hx = Tensor());
  std::string type_name() const override { return "GRUCell"; }
  const GRUCellOptions& options() const { return options_; }

 private:
  Tensor step(const Tensor& input, const Tensor& hx) const;
  GRUCellOptions options_;
};

}  // namespace fabric::nn
