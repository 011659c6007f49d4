// Harness cases for the recurrent cells (lstm_cell, gru_cell, rnn_tanh_cell, rnn_relu_cell), each
// against a naive float64 reference written here from torch 1.13's cell formulas (ATen's
// RNN.cpp: LSTM gates i, f, g, o; GRU gates r, z, n with b_hn inside the reset product), with
// finite-difference gradients through every input, weight and bias.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "tests/ops/op_harness.h"

namespace fabric::harness {
namespace {

enum class Cell { lstm, gru, rnn_tanh, rnn_relu };

int64_t gates_of(Cell cell) { return cell == Cell::lstm ? 4 : cell == Cell::gru ? 3 : 1; }

double sigmoid_ref(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// Inputs: x, hx, [cx (LSTM)], w_ih, w_hh, [b_ih, b_hh]. Unbatched when x is 1-D.
RefTensor ref_cell(Cell cell, bool bias, const std::vector<RefTensor>& t) {
  const bool lstm = cell == Cell::lstm;
  const RefTensor &x = t[0], &h = t[1];
  const size_t w = lstm ? 3 : 2;
  const RefTensor &w_ih = t[w], &w_hh = t[w + 1];
  const int64_t G = gates_of(cell), H = w_hh.shape[1], I = w_ih.shape[1];
  const int64_t N = x.shape.size() == 2 ? x.shape[0] : 1;
  // W x + b for one batch row, one gate row.
  auto affine = [&](const RefTensor& wt, const RefTensor& v, int64_t n, int64_t row, int64_t K,
                    size_t b) {
    double s = bias ? t[b].v[static_cast<size_t>(row)] : 0.0;
    for (int64_t k = 0; k < K; ++k)
      s += wt.v[static_cast<size_t>(row * K + k)] * v.v[static_cast<size_t>(n * K + k)];
    return s;
  };
  RefTensor out;
  out.shape = lstm ? Shape{2} : Shape{};
  for (int64_t d : x.shape.size() == 2 ? Shape{N, H} : Shape{H}) out.shape.push_back(d);
  out.v.assign(static_cast<size_t>(out.numel()), 0.0);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t j = 0; j < H; ++j) {
      std::vector<double> gi(static_cast<size_t>(G)), gh(static_cast<size_t>(G));
      for (int64_t g = 0; g < G; ++g) {
        gi[static_cast<size_t>(g)] = affine(w_ih, x, n, g * H + j, I, w + 2);
        gh[static_cast<size_t>(g)] = affine(w_hh, h, n, g * H + j, H, w + 3);
      }
      const double hp = h.v[static_cast<size_t>(n * H + j)];
      const size_t o = static_cast<size_t>(n * H + j);
      switch (cell) {
        case Cell::lstm: {
          const double i = sigmoid_ref(gi[0] + gh[0]), f = sigmoid_ref(gi[1] + gh[1]);
          const double g = std::tanh(gi[2] + gh[2]), og = sigmoid_ref(gi[3] + gh[3]);
          const double c = f * t[2].v[o] + i * g;
          out.v[o] = og * std::tanh(c);
          out.v[o + static_cast<size_t>(N * H)] = c;
          break;
        }
        case Cell::gru: {
          const double r = sigmoid_ref(gi[0] + gh[0]), z = sigmoid_ref(gi[1] + gh[1]);
          const double nn = std::tanh(gi[2] + r * gh[2]);
          out.v[o] = (1 - z) * nn + z * hp;
          break;
        }
        case Cell::rnn_tanh:
          out.v[o] = std::tanh(gi[0] + gh[0]);
          break;
        case Cell::rnn_relu:
          out.v[o] = std::max(gi[0] + gh[0], 0.0);
          break;
      }
    }
  }
  return out;
}

OpCase cell_case(Cell cell, const std::string& name, int64_t N, int64_t I, int64_t H, bool bias) {
  static const char* const kOps[] = {"lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell"};
  const int64_t G = gates_of(cell);
  const Shape x = N ? Shape{N, I} : Shape{I}, h = N ? Shape{N, H} : Shape{H};
  std::vector<InputSpec> inputs = {F(x), F(h)};
  if (cell == Cell::lstm) inputs.push_back(F(h));
  inputs.push_back(F({G * H, I}, -1, 1));
  inputs.push_back(F({G * H, H}, -1, 1));
  if (bias) {
    inputs.push_back(F({G * H}, -1, 1));
    inputs.push_back(F({G * H}, -1, 1));
  }
  OpFn run = [cell, bias](const std::vector<Tensor>& t) {
    const size_t w = cell == Cell::lstm ? 3 : 2;
    const Tensor b_ih = bias ? t[w + 2] : Tensor(), b_hh = bias ? t[w + 3] : Tensor();
    switch (cell) {
      case Cell::lstm: {
        auto [hy, cy] = lstm_cell(t[0], t[1], t[2], t[w], t[w + 1], b_ih, b_hh);
        return stack({hy, cy}, 0);  // both outputs reach the comparison and the gradient check
      }
      case Cell::gru:
        return gru_cell(t[0], t[1], t[w], t[w + 1], b_ih, b_hh);
      case Cell::rnn_tanh:
        return rnn_tanh_cell(t[0], t[1], t[w], t[w + 1], b_ih, b_hh);
      case Cell::rnn_relu:
        break;
    }
    return rnn_relu_cell(t[0], t[1], t[w], t[w + 1], b_ih, b_hh);
  };
  RefFn ref = [cell, bias](const std::vector<RefTensor>& t) { return ref_cell(cell, bias, t); };
  OpCase c{std::string(kOps[static_cast<int>(cell)]) + "/" + name, inputs, run, ref};
  c.tol_scale = 2;  // two chained GEMVs and gate nonlinearities in the lower-precision dtypes
  return c;
}

std::vector<OpCase> rnn_op_cases() {
  return {
      cell_case(Cell::lstm, "batched", 3, 4, 5, true),
      cell_case(Cell::lstm, "unbatched_no_bias", 0, 3, 2, false),
      cell_case(Cell::gru, "batched", 2, 4, 3, true),
      cell_case(Cell::gru, "unbatched", 0, 3, 4, true),
      cell_case(Cell::gru, "no_bias", 3, 2, 3, false),
      cell_case(Cell::rnn_tanh, "batched", 3, 4, 5, true),
      cell_case(Cell::rnn_tanh, "unbatched_no_bias", 0, 3, 4, false),
      cell_case(Cell::rnn_relu, "batched", 2, 3, 4, true),
      cell_case(Cell::rnn_relu, "unbatched", 0, 4, 3, true),
  };
}

TEST(OpHarness, Rnn) { run_cases(rnn_op_cases()); }
TEST(OpHarnessCuda, Rnn) { run_cases_on_cuda(rnn_op_cases()); }

}  // namespace
}  // namespace fabric::harness
