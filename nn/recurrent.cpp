// RNN, LSTM and GRU: torch.nn.RNNBase's parameters and checks, and the time loop over the cells
// (their input projections computed for the whole sequence first).
#include "nn/recurrent.h"

#include <cmath>

#include "nn/init.h"
#include "nn/py_repr.h"
#include "nn/recurrent_cells.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/rnn_steps.h"
#include "tensor/shape.h"
#include "tensor/warning.h"

namespace fabric::nn {
namespace {

const char* cell_layer_name(RecurrentBase::Cell cell) {
  switch (cell) {
    case RecurrentBase::Cell::lstm:
      return "LSTM";
    case RecurrentBase::Cell::gru:
      return "GRU";
    default:
      return "RNN";
  }
}

int64_t gate_count(RecurrentBase::Cell cell) {
  return cell == RecurrentBase::Cell::lstm ? 4 : cell == RecurrentBase::Cell::gru ? 3 : 1;
}

RecurrentBase::Cell rnn_cell_of(const RNNOptions& o) {
  FABRIC_CHECK(o.nonlinearity == "tanh" || o.nonlinearity == "relu", ValueError,
               "RNN: unknown nonlinearity '", o.nonlinearity, "' (expected 'tanh' or 'relu')");
  return o.nonlinearity == "tanh" ? RecurrentBase::Cell::rnn_tanh : RecurrentBase::Cell::rnn_relu;
}

template <class O>
RecurrentBase::Config config_of(const O& o) {
  return {o.input_size,  o.hidden_size, o.num_layers,    o.bias,
          o.batch_first, o.dropout,     o.bidirectional, o.generator};
}

RecurrentBase::Config lstm_config_of(const LSTMOptions& o) {
  RecurrentBase::Config c = config_of(o);
  c.proj_size = o.proj_size;
  return c;
}

const char* py_bool(bool b) { return b ? "True" : "False"; }

}  // namespace

RecurrentBase::RecurrentBase(Cell cell, const Config& c) : cell_(cell), config_(c) {
  const char* name = cell_layer_name(cell);
  FABRIC_CHECK(c.dropout >= 0 && c.dropout <= 1, ValueError, name,
               ": dropout should be a number in range [0, 1] representing the probability of an "
               "element being zeroed, got ",
               c.dropout);
  FABRIC_CHECK(c.hidden_size > 0, ValueError, name, ": hidden_size must be greater than zero, got ",
               c.hidden_size);
  FABRIC_CHECK(c.num_layers > 0, ValueError, name, ": num_layers must be greater than zero, got ",
               c.num_layers);
  FABRIC_CHECK(c.input_size >= 0, ValueError, name, ": input_size must be >= 0, got ",
               c.input_size);
  FABRIC_CHECK(c.proj_size >= 0, ValueError, name,
               ": proj_size should be a positive integer or zero to disable projections, got ",
               c.proj_size);
  FABRIC_CHECK(c.proj_size < c.hidden_size, ValueError, name,
               ": proj_size has to be smaller than hidden_size (proj_size=", c.proj_size,
               ", hidden_size=", c.hidden_size, ")");
  if (c.dropout > 0 && c.num_layers == 1)
    warn(
        detail::cat("dropout option adds dropout after all but last recurrent layer, so "
                    "non-zero dropout expects num_layers greater than 1, but got dropout=",
                    c.dropout, " and num_layers=", c.num_layers));
  const int64_t G = gate_count(cell), H = c.hidden_size, D = c.bidirectional ? 2 : 1;
  const int64_t out_h = output_size();  // h's features: what W_hh reads and the next layer gets
  for (int64_t layer = 0; layer < c.num_layers; ++layer) {
    for (int64_t dir = 0; dir < D; ++dir) {
      const std::string suffix = detail::cat("_l", layer, dir == 1 ? "_reverse" : "");
      const int64_t in = layer == 0 ? c.input_size : D * out_h;
      Weights w;
      w.w_ih = register_parameter("weight_ih" + suffix, empty({G * H, in}));
      w.w_hh = register_parameter("weight_hh" + suffix, empty({G * H, out_h}));
      if (c.bias) {
        w.b_ih = register_parameter("bias_ih" + suffix, empty({G * H}));
        w.b_hh = register_parameter("bias_hh" + suffix, empty({G * H}));
      }
      // Registered after the biases, as torch, so named_parameters() orders alike.
      if (c.proj_size > 0)
        w.w_hr = register_parameter("weight_hr" + suffix, empty({c.proj_size, H}));
      weights_.push_back(w);
    }
  }
  reset_parameters();
}

void RecurrentBase::reset_parameters(Generator* gen) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(config_.hidden_size));
  for (const Tensor& p : parameters(false)) init::uniform_(p, -bound, bound, gen);
}

std::string RecurrentBase::extra_repr() const {
  const Config& c = config_;
  std::string s = detail::cat(c.input_size, ", ", c.hidden_size);
  if (c.proj_size != 0) s += detail::cat(", proj_size=", c.proj_size);
  if (c.num_layers != 1) s += detail::cat(", num_layers=", c.num_layers);
  if (!c.bias) s += ", bias=False";
  if (c.batch_first) s += detail::cat(", batch_first=", py_bool(true));
  if (c.dropout != 0) s += ", dropout=" + py_float(c.dropout);
  if (c.bidirectional) s += detail::cat(", bidirectional=", py_bool(true));
  return s;
}

int64_t RecurrentBase::output_size() const {
  return config_.proj_size > 0 ? config_.proj_size : config_.hidden_size;
}

Tensor RecurrentBase::initial_state(const char* what, const Tensor& given, bool batched, int64_t n,
                                    int64_t features, const Tensor& like) const {
  const int64_t layers = config_.num_layers * (config_.bidirectional ? 2 : 1);
  if (!given.defined())
    return zeros({layers, n, features}, {.dtype = like.dtype(), .device = like.device()});
  const Shape expected = batched ? Shape{layers, n, features} : Shape{layers, features};
  const char* features_name = features == config_.hidden_size ? "hidden_size" : "proj_size";
  FABRIC_CHECK(given.sizes() == expected, ShapeError, cell_layer_name(cell_), ": expected ", what,
               " of shape ", shape_str(expected), " (num_layers * num_directions, ",
               batched ? "N, " : "", features_name, "), got ", shape_str(given.sizes()));
  return batched ? given : given.unsqueeze(1);
}

void RecurrentBase::advance(const Weights& w, const Tensor& x_gates, Tensor& h, Tensor& c) const {
  switch (cell_) {
    case Cell::lstm:
      std::tie(h, c) = lstm_step(x_gates, h, c, w.w_hh, w.b_hh);
      if (w.w_hr.defined()) h = linear(h, w.w_hr, Tensor());  // h_t = W_hr (o * tanh(c_t))
      break;
    case Cell::gru:
      h = gru_step(x_gates, h, w.w_hh, w.b_hh);
      break;
    case Cell::rnn_tanh:
      h = rnn_step(x_gates, h, w.w_hh, w.b_hh, true);
      break;
    case Cell::rnn_relu:
      h = rnn_step(x_gates, h, w.w_hh, w.b_hh, false);
      break;
  }
}

LSTMOutput RecurrentBase::run(const Tensor& input, const Tensor& h0, const Tensor& c0) {
  const char* name = cell_layer_name(cell_);
  const Config& c = config_;
  FABRIC_CHECK(input.defined(), ValueError, name, ": undefined input");
  FABRIC_CHECK(input.dim() == 2 || input.dim() == 3, ShapeError, name,
               ": expected input to be 2-D (L, H_in) or 3-D (", c.batch_first ? "N, L" : "L, N",
               ", H_in), got shape ", shape_str(input.sizes()));
  const bool batched = input.dim() == 3;
  const bool lstm = cell_ == Cell::lstm;
  for (const Tensor* h : {&h0, &c0}) {
    FABRIC_CHECK(!h->defined() || h->dim() == input.dim(), ShapeError, name, ": for ",
                 batched ? "batched 3-D" : "unbatched 2-D", " input, ", lstm ? "h0 and c0" : "h0",
                 " should also be ", input.dim(), "-D, got ", h == &h0 ? "h0" : "c0", " of shape ",
                 shape_str(h->sizes()));
  }
  FABRIC_CHECK(lstm || !c0.defined(), ValueError, name, ": only LSTM takes c0");
  // (L, N, H_in) from here on.
  const Tensor x = !batched ? input.unsqueeze(1) : c.batch_first ? input.transpose(0, 1) : input;
  FABRIC_CHECK(x.size(-1) == c.input_size, ShapeError, name,
               ": input.size(-1) must be equal to input_size. Expected ", c.input_size, ", got ",
               x.size(-1), " (input of shape ", shape_str(input.sizes()), ")");
  FABRIC_CHECK(is_floating(x.dtype()) && !is_fp8(x.dtype()), DTypeError, name,
               ": expected a floating input (float64/float32/float16/bfloat16), got ",
               dtype_name(x.dtype()));
  const int64_t L = x.size(0), N = x.size(1), D = c.bidirectional ? 2 : 1;
  FABRIC_CHECK(L > 0, ShapeError, name, ": expected a sequence of at least one step, got input ",
               shape_str(input.sizes()));
  const Tensor h_init = initial_state("h0", h0, batched, N, output_size(), x);
  const Tensor c_init = lstm ? initial_state("c0", c0, batched, N, c.hidden_size, x) : Tensor();

  std::vector<Tensor> h_n, c_n;
  Tensor layer_in = x;
  for (int64_t layer = 0; layer < c.num_layers; ++layer) {
    std::vector<Tensor> directions;
    for (int64_t dir = 0; dir < D; ++dir) {
      const int64_t k = layer * D + dir;
      const Weights& w = weights_[static_cast<size_t>(k)];
      Tensor h = h_init.select(0, k), cs = lstm ? c_init.select(0, k) : Tensor();
      std::vector<Tensor> steps(static_cast<size_t>(L));
      // The input projection of every time step in one GEMM, as torch's CPU layers do, split by
      // unbind (one autograd node: its backward stacks, where per-step selects would each
      // scatter into the whole sequence); only the hidden-state GEMM stays in the loop.
      const std::vector<Tensor> x_gates = unbind(linear(layer_in, w.w_ih, w.b_ih), 0);
      // The reverse direction reads the sequence backwards and writes each step's h at its
      // own time position, as torch.
      for (int64_t s = 0; s < L; ++s) {
        const int64_t t = dir == 0 ? s : L - 1 - s;
        advance(w, x_gates[static_cast<size_t>(t)], h, cs);  // x_gates[t]: (N, G*H)
        steps[static_cast<size_t>(t)] = h;
      }
      directions.push_back(stack(steps, 0));  // (L, N, H)
      h_n.push_back(h);
      if (lstm) c_n.push_back(cs);
    }
    layer_in = D == 1 ? directions[0] : cat(directions, -1);  // (L, N, D * H)
    if (c.dropout > 0 && is_training() && layer + 1 < c.num_layers)
      layer_in = dropout(layer_in, c.dropout, true, c.generator);
  }
  LSTMOutput out;
  out.output = !batched ? layer_in.squeeze(1) : c.batch_first ? layer_in.transpose(0, 1) : layer_in;
  out.h_n = stack(h_n, 0);  // (num_layers * D, N, H)
  if (lstm) out.c_n = stack(c_n, 0);
  if (!batched) {
    out.h_n = out.h_n.squeeze(1);
    if (lstm) out.c_n = out.c_n.squeeze(1);
  }
  return out;
}

LSTMOutput RecurrentBase::call_run(const Tensor& input, const Tensor& h0, const Tensor& c0) {
  // c0 is an input of LSTM's only, so the backward hooks' grad_input has RNN's and GRU's arity.
  std::vector<Tensor> inputs{input, h0};
  if (cell_ == Cell::lstm) inputs.push_back(c0);
  const std::vector<Tensor> out =
      call_forward_outputs(std::move(inputs), [self = this](const std::vector<Tensor>& in) {
        LSTMOutput r = self->run(in[0], in[1], in.size() > 2 ? in[2] : Tensor());
        return std::vector<Tensor>{r.output, r.h_n, r.c_n};
      });
  return {out[0], out[1], out[2]};
}

RNN::RNN(const RNNOptions& o) : RecurrentBase(rnn_cell_of(o), config_of(o)), options_(o) {}
Tensor RNN::forward(const Tensor& input) { return run(input, Tensor(), Tensor()).output; }
RNNOutput RNN::forward_with_state(const Tensor& input, const Tensor& h0) {
  LSTMOutput r = call_run(input, h0, Tensor());
  return {r.output, r.h_n};
}

LSTM::LSTM(const LSTMOptions& o) : RecurrentBase(Cell::lstm, lstm_config_of(o)), options_(o) {}
Tensor LSTM::forward(const Tensor& input) { return run(input, Tensor(), Tensor()).output; }
LSTMOutput LSTM::forward_with_state(const Tensor& input, const Tensor& h0, const Tensor& c0) {
  return call_run(input, h0, c0);
}

GRU::GRU(const GRUOptions& o) : RecurrentBase(Cell::gru, config_of(o)), options_(o) {}
Tensor GRU::forward(const Tensor& input) { return run(input, Tensor(), Tensor()).output; }
RNNOutput GRU::forward_with_state(const Tensor& input, const Tensor& h0) {
  LSTMOutput r = call_run(input, h0, Tensor());
  return {r.output, r.h_n};
}

}  // namespace fabric::nn
