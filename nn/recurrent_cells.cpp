// RNNCell, LSTMCell and GRUCell: torch.nn.RNNCellBase's parameters and checks around the cell ops.
#include "nn/recurrent_cells.h"

#include <cmath>

#include "nn/init.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/shape.h"

namespace fabric::nn {

RecurrentCellBase::RecurrentCellBase(const char* name, int64_t gates, int64_t input_size,
                                     int64_t hidden_size, bool bias)
    : input_size_(input_size), hidden_size_(hidden_size), name_(name) {
  FABRIC_CHECK(input_size >= 0 && hidden_size > 0, ValueError, name,
               ": expected input_size >= 0 and hidden_size > 0, got input_size=", input_size,
               ", hidden_size=", hidden_size);
  weight_ih = register_parameter("weight_ih", empty({gates * hidden_size, input_size}));
  weight_hh = register_parameter("weight_hh", empty({gates * hidden_size, hidden_size}));
  if (bias) {
    bias_ih = register_parameter("bias_ih", empty({gates * hidden_size}));
    bias_hh = register_parameter("bias_hh", empty({gates * hidden_size}));
  }
  reset_parameters();
}

void RecurrentCellBase::reset_parameters(Generator* gen) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(hidden_size_));
  for (const Tensor& p : parameters(false)) init::uniform_(p, -bound, bound, gen);
}

std::string RecurrentCellBase::extra_repr() const {
  std::string s = detail::cat(input_size_, ", ", hidden_size_);
  if (!bias_ih.defined()) s += ", bias=False";
  return s;
}

Tensor RecurrentCellBase::checked_state(const Tensor& input, const Tensor& state) const {
  FABRIC_CHECK(input.defined(), ValueError, name_, ": undefined input");
  FABRIC_CHECK(input.dim() == 1 || input.dim() == 2, ShapeError, name_,
               ": expected input to be 1-D (input_size) or 2-D (N, input_size) but received ",
               input.dim(), "-D tensor of shape ", shape_str(input.sizes()));
  FABRIC_CHECK(input.size(-1) == input_size_, ShapeError, name_,
               ": input has inconsistent input_size: got ", input.size(-1), ", expected ",
               input_size_, " (input of shape ", shape_str(input.sizes()), ")");
  const Shape expected =
      input.dim() == 2 ? Shape{input.size(0), hidden_size_} : Shape{hidden_size_};
  if (!state.defined()) return zeros(expected, {.dtype = input.dtype(), .device = input.device()});
  FABRIC_CHECK(state.sizes() == expected, ShapeError, name_, ": expected a hidden state of shape ",
               shape_str(expected), " for input ", shape_str(input.sizes()), ", got ",
               shape_str(state.sizes()));
  return state;
}

RNNCell::RNNCell(const RNNCellOptions& o)
    : RecurrentCellBase("RNNCell", 1, o.input_size, o.hidden_size, o.bias), options_(o) {
  FABRIC_CHECK(o.nonlinearity == "tanh" || o.nonlinearity == "relu", ValueError,
               "RNNCell: unknown nonlinearity '", o.nonlinearity, "' (expected 'tanh' or 'relu')");
}

Tensor RNNCell::forward(const Tensor& input) { return step(input, Tensor()); }

Tensor RNNCell::forward_with_state(const Tensor& input, const Tensor& hx) {
  return call_forward({input, hx}, [self = this](const std::vector<Tensor>& in) {
    return self->step(in[0], in[1]);
  });
}

Tensor RNNCell::step(const Tensor& input, const Tensor& hx) const {
  const Tensor h = checked_state(input, hx);
  return options_.nonlinearity == "tanh"
             ? rnn_tanh_cell(input, h, weight_ih, weight_hh, bias_ih, bias_hh)
             : rnn_relu_cell(input, h, weight_ih, weight_hh, bias_ih, bias_hh);
}

std::string RNNCell::extra_repr() const {
  std::string s = RecurrentCellBase::extra_repr();
  if (options_.nonlinearity != "tanh") s += ", nonlinearity=" + options_.nonlinearity;
  return s;
}

LSTMCell::LSTMCell(const LSTMCellOptions& o)
    : RecurrentCellBase("LSTMCell", 4, o.input_size, o.hidden_size, o.bias), options_(o) {}

Tensor LSTMCell::forward(const Tensor& input) { return step(input, Tensor(), Tensor()).first; }

std::pair<Tensor, Tensor> LSTMCell::forward_with_state(const Tensor& input, const Tensor& hx,
                                                       const Tensor& cx) {
  const std::vector<Tensor> out =
      call_forward_outputs({input, hx, cx}, [self = this](const std::vector<Tensor>& in) {
        auto [h, c] = self->step(in[0], in[1], in[2]);
        return std::vector<Tensor>{h, c};
      });
  return {out[0], out[1]};
}

std::pair<Tensor, Tensor> LSTMCell::step(const Tensor& input, const Tensor& hx,
                                         const Tensor& cx) const {
  const Tensor h = checked_state(input, hx), c = checked_state(input, cx);
  auto [hy, cy] = lstm_cell(input, h, c, weight_ih, weight_hh, bias_ih, bias_hh);
  return {hy, cy};
}

GRUCell::GRUCell(const GRUCellOptions& o)
    : RecurrentCellBase("GRUCell", 3, o.input_size, o.hidden_size, o.bias), options_(o) {}

Tensor GRUCell::forward(const Tensor& input) { return step(input, Tensor()); }

Tensor GRUCell::forward_with_state(const Tensor& input, const Tensor& hx) {
  return call_forward({input, hx}, [self = this](const std::vector<Tensor>& in) {
    return self->step(in[0], in[1]);
  });
}

Tensor GRUCell::step(const Tensor& input, const Tensor& hx) const {
  return gru_cell(input, checked_state(input, hx), weight_ih, weight_hh, bias_ih, bias_hh);
}

}  // namespace fabric::nn
