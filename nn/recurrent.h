// nn::RNN, nn::LSTM and nn::GRU: torch.nn's multi-layer recurrent layers (1.13) with their
// state_dict keys (weight_ih_l0, ..., bias_hh_l1_reverse), init, shapes, dropout between layers
// and printout, so sequence models written against torch port key by key. Each time step is one
// recurrent cell op (tensor/ops.h: lstm_cell, gru_cell, rnn_tanh_cell, rnn_relu_cell).
#pragma once
#include <string>
#include <vector>

#include "nn/module.h"
#include "nn/rnn_utils.h"

namespace fabric::nn {

struct RNNOptions {
  int64_t input_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 1;
  std::string nonlinearity = "tanh";  // "tanh" or "relu"
  bool bias = true;                   // bias_ih_l* and bias_hh_l*
  bool batch_first = false;           // (N, L, H_in) input and output instead of (L, N, H_in)
  double dropout = 0.0;               // on every layer's output but the last, while training
  bool bidirectional = false;
  Generator* generator = nullptr;  // the dropout's; null: the default generator
};

struct LSTMOptions {
  int64_t input_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 1;
  bool bias = true;
  bool batch_first = false;
  double dropout = 0.0;
  bool bidirectional = false;
  Generator* generator = nullptr;
  // torch's LSTM with projections: 0 < proj_size < hidden_size projects each h_t down to
  // proj_size features (weight_hr_l{k}, (proj_size, hidden_size)), so h0/h_n and the output have
  // proj_size features per direction while c keeps hidden_size. 0: no projection.
  int64_t proj_size = 0;
};

struct GRUOptions {
  int64_t input_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 1;
  bool bias = true;
  bool batch_first = false;
  double dropout = 0.0;
  bool bidirectional = false;
  Generator* generator = nullptr;
};

// What RNN and GRU return: output (L, N, D * H) ((N, L, D * H) with batch_first, (L, D * H)
// unbatched) and h_n (num_layers * D, N, H) ((num_layers * D, H) unbatched), D = 2 when
// bidirectional. `auto [output, h_n] = gru->forward_with_state(x);`
struct RNNOutput {
  Tensor output;
  Tensor h_n;
};
// LSTM's, with the final cell state c_n shaped as h_n (with proj_size: output and h_n have
// proj_size features per direction, c_n hidden_size).
struct LSTMOutput {
  Tensor output;
  Tensor h_n;
  Tensor c_n;
};
// What forward_packed returns: the output as a PackedSequence laid out as the input (same
// batch_sizes and permutation, D * H features), and h_n (c_n: LSTM only) as from
// forward_with_state, (num_layers * D, N, H), each sequence's state after its own last step, in
// the batch's original order.
struct PackedRNNOutput {
  PackedSequence output;
  Tensor h_n;
};
struct PackedLSTMOutput {
  PackedSequence output;
  Tensor h_n;
  Tensor c_n;
};

// The layers' shared machinery (torch's RNNBase): parameters, checks and the time loop.
class RecurrentBase : public Module {
 public:
  enum class Cell { rnn_tanh, rnn_relu, lstm, gru };
  struct Config {
    int64_t input_size, hidden_size, num_layers;
    bool bias, batch_first;
    double dropout;
    bool bidirectional;
    Generator* generator;
    int64_t proj_size = 0;  // LSTM only; 0: h has hidden_size features
  };
  // Draws every parameter from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as torch.
  void reset_parameters(Generator* gen = nullptr);
  std::string extra_repr() const override;
  const Config& config() const { return config_; }

 protected:
  RecurrentBase(Cell cell, const Config& config);
  // input (L, N, H_in) / (N, L, H_in) / (L, H_in); h0 and c0 (c0: LSTM only) optional (zeros).
  LSTMOutput run(const Tensor& input, const Tensor& h0, const Tensor& c0);
  // The same over a PackedSequence (nn/recurrent_packed.cpp): at step t only the first
  // batch_sizes[t] sequences advance; h0/c0 in the batch's original order.
  PackedLSTMOutput run_packed(const PackedSequence& input, const Tensor& h0, const Tensor& c0);
  // run and run_packed as the public entry points call them: through the forward hooks and under
  // activation checkpointing, as operator() runs forward (torch runs its hooks on every
  // lstm(x, (h0, c0)) and lstm(packed)). Inputs {input, h0} (LSTM: {input, h0, c0}); for packed
  // input the hooks see its data (torch hands them the PackedSequence), and a pre-hook may replace
  // it with data of the same layout. The hooks see the output (packed: its data); h_n and c_n
  // come out of the checkpoint with it.
  LSTMOutput call_run(const Tensor& input, const Tensor& h0, const Tensor& c0);
  PackedLSTMOutput call_run_packed(const PackedSequence& input, const Tensor& h0, const Tensor& c0);

 private:
  struct Weights {
    Tensor w_ih, w_hh, b_ih, b_hh;  // biases undefined without bias
    Tensor w_hr;                    // LSTM's projection; undefined without proj_size
  };
  // h0 or c0 made (num_layers * D, N, features), checked against that shape.
  Tensor initial_state(const char* what, const Tensor& given, bool batched, int64_t n,
                       int64_t features, const Tensor& like) const;
  // h's features: proj_size when projecting, else hidden_size.
  int64_t output_size() const;
  // One time step of one direction: h (and LSTM's c) advanced by x_gates = W_ih x_t + b_ih.
  void advance(const Weights& w, const Tensor& x_gates, Tensor& h, Tensor& c) const;

  Cell cell_;
  Config config_;
  std::vector<Weights> weights_;  // per layer, then per direction, as torch registers them
};

// Elman RNN: h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) (or relu).
class RNN : public RecurrentBase {
 public:
  using Options = RNNOptions;
  explicit RNN(const RNNOptions& options);
  // The output only (so the layer fits a Sequential), from zero initial states.
  Tensor forward(const Tensor& input) override;
  // h0: (num_layers * D, N, H) ((num_layers * D, H) unbatched), zeros when undefined. This and
  // forward_packed are torch's rnn(input, h0): they run the forward hooks (which see input and
  // output) and activation checkpointing, as operator() does.
  RNNOutput forward_with_state(const Tensor& input, const Tensor& h0 = Tensor());
  // torch's forward on a PackedSequence (nn/rnn_utils.h); h0 (num_layers * D, N, H).
  PackedRNNOutput forward_packed(const PackedSequence& input, const Tensor& h0 = Tensor());
  // Printed as torch prints it: without the nonlinearity.
  std::string type_name() const override { return "RNN"; }
  const RNNOptions& options() const { return options_; }

 private:
  RNNOptions options_;
};

class LSTM : public RecurrentBase {
 public:
  using Options = LSTMOptions;
  explicit LSTM(const LSTMOptions& options);
  Tensor forward(const Tensor& input) override;
  // h0 and c0 shaped as h_n, each zeros when undefined. Through the hooks and checkpointing as
  // RNN's (torch's lstm(input, (h0, c0)) and lstm(packed, (h0, c0))).
  LSTMOutput forward_with_state(const Tensor& input, const Tensor& h0 = Tensor(),
                                const Tensor& c0 = Tensor());
  PackedLSTMOutput forward_packed(const PackedSequence& input, const Tensor& h0 = Tensor(),
                                  const Tensor& c0 = Tensor());
  std::string type_name() const override { return "LSTM"; }
  const LSTMOptions& options() const { return options_; }

 private:
  LSTMOptions options_;
};

class GRU : public RecurrentBase {
 public:
  using Options = GRUOptions;
  explicit GRU(const GRUOptions& options);
  Tensor forward(const Tensor& input) override;
  // Through the hooks and checkpointing as RNN's.
  RNNOutput forward_with_state(const Tensor& input, const Tensor& h0 = Tensor());
  PackedRNNOutput forward_packed(const PackedSequence& input, const Tensor& h0 = Tensor());
  std::string type_name() const override { return "GRU"; }
  const GRUOptions& options() const { return options_; }

 private:
  GRUOptions options_;
};

}  // namespace fabric::nn
