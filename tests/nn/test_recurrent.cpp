// nn::RNN / LSTM / GRU and the cells against torch 1.13 (tests/nn/rnn_fixture.h, from
// tools/fixtures/make_rnn_rows.py): outputs, final states and every gradient in float64; plus
// keys, init, shapes, dropout between layers, the printout and the argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "nn/nn.h"
#include "nn/recurrent.h"
#include "nn/recurrent_cells.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/capture_warnings.h"
#include "tests/common/expect_error.h"
#include "tests/nn/mha_test_helpers.h"
#include "tests/nn/rnn_fixture.h"

namespace fabric::nn {
namespace {

using mha_testing::expect_close;
using mha_testing::f64;
using testing::RnnFixture;

// The fixture's value as a leaf requiring grad, or undefined when the fixture passes none.
Tensor leaf(const std::vector<double>& values, const std::vector<int64_t>& shape) {
  if (shape.empty()) return Tensor();
  return f64(values, shape).set_requires_grad(true);
}

// What one fixture row's module returns: out, h_n, c_n (undefined where it returns none).
struct Result {
  std::shared_ptr<Module> module;
  Tensor out, h_n, c_n;
};

Result run_fixture(const RnnFixture& f, const Tensor& x, const Tensor& h0, const Tensor& c0) {
  const std::string kind = f.kind;
  auto load = [&](const std::shared_ptr<Module>& m) {
    mha_testing::load_params(*m, f.param_names, f.params);
    return m;
  };
  if (kind == "LSTM") {
    auto m = make<LSTM>({.input_size = f.input_size,
                         .hidden_size = f.hidden_size,
                         .num_layers = f.num_layers,
                         .bias = f.bias,
                         .batch_first = f.batch_first,
                         .bidirectional = f.bidirectional,
                         .proj_size = f.proj_size});
    load(m);
    auto [out, h_n, c_n] = m->forward_with_state(x, h0, c0);
    return {m, out, h_n, c_n};
  }
  if (kind == "GRU" || kind == "RNN") {
    std::shared_ptr<Module> m;
    RNNOutput r;
    if (kind == "GRU") {
      auto gru = make<GRU>({.input_size = f.input_size,
                            .hidden_size = f.hidden_size,
                            .num_layers = f.num_layers,
                            .bias = f.bias,
                            .batch_first = f.batch_first,
                            .bidirectional = f.bidirectional});
      load(gru);
      r = gru->forward_with_state(x, h0);
      m = gru;
    } else {
      auto rnn = make<RNN>({.input_size = f.input_size,
                            .hidden_size = f.hidden_size,
                            .num_layers = f.num_layers,
                            .nonlinearity = f.nonlinearity,
                            .bias = f.bias,
                            .batch_first = f.batch_first,
                            .bidirectional = f.bidirectional});
      load(rnn);
      r = rnn->forward_with_state(x, h0);
      m = rnn;
    }
    return {m, r.output, r.h_n, Tensor()};
  }
  if (kind == "LSTMCell") {
    auto m =
        make<LSTMCell>({.input_size = f.input_size, .hidden_size = f.hidden_size, .bias = f.bias});
    load(m);
    auto [h, c] = m->forward_with_state(x, h0, c0);
    return {m, h, Tensor(), c};
  }
  if (kind == "GRUCell") {
    auto m =
        make<GRUCell>({.input_size = f.input_size, .hidden_size = f.hidden_size, .bias = f.bias});
    load(m);
    return {m, m->forward_with_state(x, h0), Tensor(), Tensor()};
  }
  auto m = make<RNNCell>({.input_size = f.input_size,
                          .hidden_size = f.hidden_size,
                          .bias = f.bias,
                          .nonlinearity = f.nonlinearity});
  load(m);
  return {m, m->forward_with_state(x, h0), Tensor(), Tensor()};
}

TEST(Recurrent, MatchesTorch) {
  for (const RnnFixture& f : testing::rnn_fixtures()) {
    SCOPED_TRACE(f.name);
    const Tensor x = leaf(f.input, f.input_shape);
    const Tensor h0 = leaf(f.h0, f.h0_shape), c0 = leaf(f.c0, f.c0_shape);
    const Result r = run_fixture(f, x, h0, c0);
    expect_close(r.out, f.out, "output");
    Tensor loss = sum(mul(r.out, f64(f.g_out, r.out.sizes())));
    if (!f.h_n.empty()) {
      expect_close(r.h_n, f.h_n, "h_n");
      loss = add(loss, sum(mul(r.h_n, f64(f.g_h, r.h_n.sizes()))));
    }
    if (!f.c_n.empty()) {
      expect_close(r.c_n, f.c_n, "c_n");
      loss = add(loss, sum(mul(r.c_n, f64(f.g_c, r.c_n.sizes()))));
    }
    backward(loss);
    expect_close(x.grad(), f.input_grad, "input grad");
    if (h0.defined()) expect_close(h0.grad(), f.h0_grad, "h0 grad");
    if (c0.defined()) expect_close(c0.grad(), f.c0_grad, "c0 grad");
    const Module::NamedTensors params = r.module->named_parameters();
    ASSERT_EQ(params.size(), f.param_grads.size());
    for (size_t i = 0; i < params.size(); ++i)
      expect_close(params[i].second.grad(), f.param_grads[i], params[i].first + " grad");
  }
}

TEST(Recurrent, KeysInitAndRepr) {
  struct Row {
    const char* name;
    std::shared_ptr<Module> module;
    std::vector<std::string> keys;
    Shape first_shape;  // of the first parameter
    double bound;       // 1 / sqrt(hidden_size)
    std::string repr;
  };
  const std::vector<Row> rows = {
      {"lstm_2_layers_bidirectional",
       make<LSTM>({.input_size = 10,
                   .hidden_size = 20,
                   .num_layers = 2,
                   .batch_first = true,
                   .bidirectional = true}),
       {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_ih_l0_reverse",
        "weight_hh_l0_reverse", "bias_ih_l0_reverse", "bias_hh_l0_reverse", "weight_ih_l1",
        "weight_hh_l1", "bias_ih_l1", "bias_hh_l1", "weight_ih_l1_reverse", "weight_hh_l1_reverse",
        "bias_ih_l1_reverse", "bias_hh_l1_reverse"},
       {80, 10},
       1 / std::sqrt(20.0),
       "LSTM(10, 20, num_layers=2, batch_first=True, bidirectional=True)"},
      {"lstm_proj_bidirectional",
       make<LSTM>({.input_size = 3, .hidden_size = 4, .bidirectional = true, .proj_size = 2}),
       {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_hr_l0",
        "weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse", "bias_hh_l0_reverse",
        "weight_hr_l0_reverse"},
       {16, 3},
       0.5,
       "LSTM(3, 4, proj_size=2, bidirectional=True)"},
      {"gru_no_bias_dropout",
       make<GRU>(
           {.input_size = 3, .hidden_size = 4, .num_layers = 2, .bias = false, .dropout = 0.25}),
       {"weight_ih_l0", "weight_hh_l0", "weight_ih_l1", "weight_hh_l1"},
       {12, 3},
       0.5,
       "GRU(3, 4, num_layers=2, bias=False, dropout=0.25)"},
      {"rnn_relu",
       make<RNN>({.input_size = 5, .hidden_size = 9, .nonlinearity = "relu"}),
       {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"},
       {9, 5},
       1 / 3.0,
       "RNN(5, 9)"},
      {"lstm_cell",
       make<LSTMCell>({.input_size = 3, .hidden_size = 4}),
       {"weight_ih", "weight_hh", "bias_ih", "bias_hh"},
       {16, 3},
       0.5,
       "LSTMCell(3, 4)"},
      {"gru_cell_no_bias",
       make<GRUCell>({.input_size = 3, .hidden_size = 4, .bias = false}),
       {"weight_ih", "weight_hh"},
       {12, 3},
       0.5,
       "GRUCell(3, 4, bias=False)"},
      {"rnn_cell_relu",
       make<RNNCell>({.input_size = 10, .hidden_size = 20, .bias = false, .nonlinearity = "relu"}),
       {"weight_ih", "weight_hh"},
       {20, 10},
       1 / std::sqrt(20.0),
       "RNNCell(10, 20, bias=False, nonlinearity=relu)"},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    EXPECT_EQ(r.module->state_dict().keys(), r.keys);
    EXPECT_EQ(r.module->parameters()[0].sizes(), r.first_shape);
    // torch's reset_parameters: every parameter from U(-1/sqrt(H), 1/sqrt(H)), none left at 0.
    for (const auto& [name, p] : r.module->named_parameters()) {
      EXPECT_LE(max(abs(p)).item<float>(), r.bound) << name;
      EXPECT_GT(max(abs(p)).item<float>(), 0.1 * r.bound) << name;
    }
    EXPECT_EQ(r.module->str(), r.repr);
  }
}

TEST(Recurrent, Shapes) {
  struct Row {
    const char* name;
    std::function<std::vector<Tensor>()> run;  // output, h_n (, c_n)
    std::vector<Shape> shapes;
  };
  auto lstm = make<LSTM>({.input_size = 3, .hidden_size = 4, .num_layers = 2});
  auto lstm_bf =
      make<LSTM>({.input_size = 3, .hidden_size = 4, .batch_first = true, .bidirectional = true});
  auto gru = make<GRU>({.input_size = 3, .hidden_size = 5, .num_layers = 3, .bidirectional = true});
  auto rnn = make<RNN>({.input_size = 3, .hidden_size = 2});
  auto cell = make<LSTMCell>({.input_size = 3, .hidden_size = 4});
  auto lstm_proj = make<LSTM>(
      {.input_size = 3, .hidden_size = 6, .num_layers = 2, .bidirectional = true, .proj_size = 2});
  auto vec = [](auto r) { return std::vector<Tensor>{r.output, r.h_n}; };
  const std::vector<Row> rows = {
      {"lstm_seq_first",
       [&] {
         auto r = lstm->forward_with_state(randn({7, 2, 3}));
         return std::vector<Tensor>{r.output, r.h_n, r.c_n};
       },
       {{7, 2, 4}, {2, 2, 4}, {2, 2, 4}}},
      {"lstm_batch_first_bidirectional",
       [&] {
         auto r = lstm_bf->forward_with_state(randn({2, 7, 3}));
         return std::vector<Tensor>{r.output, r.h_n, r.c_n};
       },
       {{2, 7, 8}, {2, 2, 4}, {2, 2, 4}}},
      {"lstm_unbatched",
       [&] {
         auto r = lstm->forward_with_state(randn({6, 3}), zeros({2, 4}), zeros({2, 4}));
         return std::vector<Tensor>{r.output, r.h_n, r.c_n};
       },
       {{6, 4}, {2, 4}, {2, 4}}},
      {"lstm_proj_h_has_proj_size_c_hidden_size",
       [&] {
         auto r =
             lstm_proj->forward_with_state(randn({7, 5, 3}), zeros({4, 5, 2}), zeros({4, 5, 6}));
         return std::vector<Tensor>{r.output,
                                    r.h_n,
                                    r.c_n,
                                    lstm_proj->parameters()[1],
                                    lstm_proj->parameters()[4],
                                    lstm_proj->parameters()[10]};
       },
       // output, h_n, c_n, weight_hh_l0 (4H, P), weight_hr_l0 (P, H), weight_ih_l1 (4H, 2P)
       {{7, 5, 4}, {4, 5, 2}, {4, 5, 6}, {24, 2}, {2, 6}, {24, 4}}},
      {"gru_3_layers_bidirectional",
       [&] {
         return vec(gru->forward_with_state(randn({4, 3, 3})));
       },
       {{4, 3, 10}, {6, 3, 5}}},
      {"rnn_unbatched",
       [&] {
         return vec(rnn->forward_with_state(randn({5, 3})));
       },
       {{5, 2}, {1, 2}}},
      {"lstm_cell_unbatched",
       [&] {
         auto [h, c] = cell->forward_with_state(randn({3}));
         return std::vector<Tensor>{h, c};
       },
       {{4}, {4}}},
      {"forward_is_the_output",
       [&] {
         return std::vector<Tensor>{(*lstm_bf)(randn({2, 7, 3}))};
       },
       {{2, 7, 8}}},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    const std::vector<Tensor> got = r.run();
    ASSERT_EQ(got.size(), r.shapes.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].sizes(), r.shapes[i]) << i;
  }
}

TEST(Recurrent, DropoutBetweenLayersOnlyWhileTraining) {
  auto lstm = make<LSTM>({.input_size = 3, .hidden_size = 8, .num_layers = 2, .dropout = 0.5});
  const Tensor x = randn({5, 2, 3});
  lstm->eval();
  const Tensor a = (*lstm)(x), b = (*lstm)(x);
  EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>());
  lstm->train();
  // The first layer's output is dropped differently on each call; the last layer's never is.
  EXPECT_NE((*lstm)(x).to_vector<float>(), (*lstm)(x).to_vector<float>());
  // A single layer has nothing to drop between: torch warns and the output stays deterministic.
  test::CapturedWarnings warnings;
  auto one = make<GRU>({.input_size = 3, .hidden_size = 4, .dropout = 0.5});
  ASSERT_EQ(warnings.messages().size(), 1u);
  EXPECT_CONTAINS(warnings.messages()[0], "non-zero dropout expects num_layers greater than 1");
  EXPECT_EQ((*one)(x).to_vector<float>(), (*one)(x).to_vector<float>());
}

TEST(Recurrent, Errors) {
  struct Row {
    const char* name;
    std::function<void()> call;
    const char* message;
  };
  const std::vector<Row> value_rows = {
      {"dropout_range", [] { LSTM m({.input_size = 3, .hidden_size = 4, .dropout = 1.5}); },
       "dropout should be a number in range [0, 1]"},
      {"nonlinearity", [] { RNN m({.input_size = 3, .hidden_size = 4, .nonlinearity = "gelu"}); },
       "unknown nonlinearity 'gelu'"},
      {"cell_nonlinearity",
       [] { RNNCell m({.input_size = 3, .hidden_size = 4, .nonlinearity = "gelu"}); },
       "unknown nonlinearity 'gelu'"},
      {"hidden_size", [] { GRU m({.input_size = 3, .hidden_size = 0}); },
       "hidden_size must be greater than zero"},
      {"num_layers", [] { GRU m({.input_size = 3, .hidden_size = 2, .num_layers = 0}); },
       "num_layers must be greater than zero"},
      {"proj_size_negative", [] { LSTM m({.input_size = 3, .hidden_size = 4, .proj_size = -1}); },
       "proj_size should be a positive integer or zero to disable projections, got -1"},
      {"proj_size_not_smaller", [] { LSTM m({.input_size = 3, .hidden_size = 4, .proj_size = 4}); },
       "LSTM: proj_size has to be smaller than hidden_size (proj_size=4, hidden_size=4)"},
  };
  for (const Row& r : value_rows) {
    SCOPED_TRACE(r.name);
    EXPECT_CONTAINS(thrown<ValueError>(r.call), r.message);
  }
  auto lstm = make<LSTM>({.input_size = 3, .hidden_size = 4, .num_layers = 2});
  auto gru = make<GRU>({.input_size = 3, .hidden_size = 4});
  auto lstm_c = make<LSTMCell>({.input_size = 3, .hidden_size = 4});
  auto gru_c = make<GRUCell>({.input_size = 3, .hidden_size = 4});
  const std::vector<Row> shape_rows = {
      {"input_size",
       [&] {
         (*lstm)(zeros({5, 2, 4}));
       },
       "input.size(-1) must be equal to input_size. Expected 3, got 4"},
      {"input_4d",
       [&] {
         (*gru)(zeros({2, 5, 2, 3}));
       },
       "GRU: expected input to be 2-D (L, H_in) or 3-D (L, N, H_in), got shape (2, 5, 2, 3)"},
      {"h0_shape",
       [&] {
         lstm->forward_with_state(zeros({5, 2, 3}), zeros({1, 2, 4}));
       },
       "LSTM: expected h0 of shape (2, 2, 4) (num_layers * num_directions, N, hidden_size), "
       "got (1, 2, 4)"},
      {"c0_shape",
       [&] {
         lstm->forward_with_state(zeros({5, 2, 3}), zeros({2, 2, 4}), zeros({2, 3, 4}));
       },
       "expected c0 of shape (2, 2, 4)"},
      {"h0_shape_with_proj",
       [&] {
         auto proj = make<LSTM>({.input_size = 3, .hidden_size = 4, .proj_size = 2});
         proj->forward_with_state(zeros({5, 2, 3}), zeros({1, 2, 4}), zeros({1, 2, 4}));
       },
       "LSTM: expected h0 of shape (1, 2, 2) (num_layers * num_directions, N, proj_size), got "
       "(1, 2, 4)"},
      {"batched_input_2d_h0",
       [&] {
         gru->forward_with_state(zeros({5, 2, 3}), zeros({1, 4}));
       },
       "for batched 3-D input, h0 should also be 3-D, got h0 of shape (1, 4)"},
      {"unbatched_input_3d_h0",
       [&] {
         lstm->forward_with_state(zeros({5, 3}), zeros({2, 1, 4}), zeros({2, 1, 4}));
       },
       "for unbatched 2-D input, h0 and c0 should also be 2-D"},
      {"empty_sequence",
       [&] {
         (*gru)(zeros({0, 2, 3}));
       },
       "at least one step"},
      {"cell_input_3d",
       [&] {
         (*lstm_c)(zeros({2, 2, 3}));
       },
       "LSTMCell: expected input to be 1-D (input_size) or 2-D (N, input_size) but received 3-D"},
      {"cell_input_size",
       [&] {
         (*lstm_c)(zeros({2, 5}));
       },
       "input has inconsistent input_size: got 5, expected 3"},
      {"cell_batch",
       [&] {
         gru_c->forward_with_state(zeros({2, 3}), zeros({3, 4}));
       },
       "GRUCell: expected a hidden state of shape (2, 4) for input (2, 3), got (3, 4)"},
      {"op_hidden_size",
       [] {
         gru_cell(zeros({2, 3}), zeros({2, 5}), zeros({12, 3}), zeros({12, 4}));
       },
       "gru_cell: hx has inconsistent hidden_size: got 5, expected 4"},
      {"op_batch",
       [] {
         rnn_tanh_cell(zeros({2, 3}), zeros({3, 4}), zeros({4, 3}), zeros({4, 4}));
       },
       "rnn_tanh_cell: input batch size 2 doesn't match hx batch size 3"},
      {"op_weights",
       [] {
         lstm_cell(zeros({2, 3}), zeros({2, 4}), zeros({2, 4}), zeros({15, 3}), zeros({16, 4}));
       },
       "lstm_cell: expected w_ih (4*H, I) and w_hh (4*H, H)"},
  };
  for (const Row& r : shape_rows) {
    SCOPED_TRACE(r.name);
    EXPECT_CONTAINS(thrown<ShapeError>(r.call), r.message);
  }
  EXPECT_CONTAINS(thrown<DTypeError>([] {
                    rnn_relu_cell(zeros({2, 3}, {.dtype = DType::int64}), zeros({2, 4}),
                                  zeros({4, 3}), zeros({4, 4}));
                  }),
                  "rnn_relu_cell: expected an input of a floating dtype");
  EXPECT_CONTAINS(thrown<DTypeError>([&] { (*gru)(zeros({5, 2, 3}, {.dtype = DType::int64})); }),
                  "GRU: expected a floating input");
}

}  // namespace
}  // namespace fabric::nn
