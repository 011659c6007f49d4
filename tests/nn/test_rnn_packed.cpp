// torch.nn.utils.rnn (nn/rnn_utils.h) and RNN / LSTM / GRU::forward_packed against torch 1.13
// (tests/nn/rnn_packed_torch_rows.h, from tools/fixtures/make_rnn_packed_rows.py): values and
// every gradient in float64; plus pack_sequence and the argument errors.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "nn/recurrent.h"
#include "nn/rnn_utils.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"
#include "tests/nn/mha_test_helpers.h"
#include "tests/nn/rnn_packed_torch_rows.h"

namespace fabric::nn {
namespace {

using mha_testing::expect_close;
using mha_testing::f64;

void expect_ints(const Tensor& got, const std::vector<int64_t>& want, const std::string& what) {
  if (want.empty()) {
    EXPECT_FALSE(got.defined()) << what << " should be None";
    return;
  }
  ASSERT_TRUE(got.defined()) << what;
  EXPECT_EQ(got.dtype(), DType::int64) << what;
  EXPECT_EQ(got.to_vector<int64_t>(), want) << what;
}

Tensor leaf(const std::vector<double>& values, const Shape& shape) {
  if (values.empty()) return Tensor();
  return f64(values, shape).set_requires_grad(true);
}

TEST(RnnPacked, PadSequenceMatchesTorch) {
  for (const testing::PadSequenceRow& r : testing::pad_sequence_rows()) {
    SCOPED_TRACE(r.name);
    std::vector<Tensor> seqs;
    for (size_t i = 0; i < r.shapes.size(); ++i) seqs.push_back(leaf(r.sequences[i], r.shapes[i]));
    const Tensor out = pad_sequence(seqs, r.batch_first, r.padding_value);
    EXPECT_EQ(out.sizes(), r.out_shape);
    expect_close(out, r.out, "padded");
    backward(sum(mul(out, f64(r.g_out, out.sizes()))));
    for (size_t i = 0; i < seqs.size(); ++i)
      expect_close(seqs[i].grad(), r.sequence_grads[i], "sequence " + std::to_string(i) + " grad");
  }
}

TEST(RnnPacked, PackPadRoundTripMatchesTorch) {
  for (const testing::PackRoundTripRow& r : testing::pack_round_trip_rows()) {
    SCOPED_TRACE(r.name);
    const Tensor x = leaf(r.input, r.input_shape);
    const PackedSequence p = pack_padded_sequence(x, r.lengths, r.batch_first, r.enforce_sorted);
    EXPECT_EQ(p.data.sizes(), r.data_shape);
    expect_close(p.data, r.data, "data");
    expect_ints(p.batch_sizes, r.batch_sizes, "batch_sizes");
    expect_ints(p.sorted_indices, r.sorted_indices, "sorted_indices");
    expect_ints(p.unsorted_indices, r.unsorted_indices, "unsorted_indices");
    const std::optional<int64_t> total =
        r.total_length > 0 ? std::optional<int64_t>(r.total_length) : std::nullopt;
    auto [padded, lengths] = pad_packed_sequence(p, r.batch_first, r.padding_value, total);
    EXPECT_EQ(padded.sizes(), r.padded_shape);
    expect_close(padded, r.padded, "padded");
    expect_ints(lengths, r.out_lengths, "lengths");
    backward(add(sum(mul(p.data, f64(r.g_data, p.data.sizes()))),
                 sum(mul(padded, f64(r.g_padded, padded.sizes())))));
    expect_close(x.grad(), r.input_grad, "input grad");
  }
}

// pack_sequence is pack_padded_sequence of pad_sequence with the sequences' own lengths.
TEST(RnnPacked, PackSequenceIsPackOfPad) {
  const std::vector<Tensor> seqs = {f64({1, 2, 3, 4}, {2, 2}), f64({5, 6, 7, 8, 9, 10}, {3, 2}),
                                    f64({11, 12}, {1, 2})};
  const PackedSequence p = pack_sequence(seqs, false);
  // Sorted longest first: sequence 1 (3 steps), 0 (2), 2 (1).
  expect_close(p.data, {5, 6, 1, 2, 11, 12, 7, 8, 3, 4, 9, 10}, "data");
  expect_ints(p.batch_sizes, {3, 2, 1}, "batch_sizes");
  expect_ints(p.sorted_indices, {1, 0, 2}, "sorted_indices");
  expect_ints(p.unsorted_indices, {1, 0, 2}, "unsorted_indices");
  auto [padded, lengths] = pad_packed_sequence(p, true);
  expect_ints(lengths, {2, 3, 1}, "lengths");
  expect_close(padded, {1, 2, 3, 4, 0, 0, 5, 6, 7, 8, 9, 10, 11, 12, 0, 0, 0, 0}, "padded");
  const std::vector<Tensor> sorted = {seqs[1], seqs[0], seqs[2]};
  expect_ints(pack_sequence(sorted).batch_sizes, {3, 2, 1}, "enforce_sorted batch_sizes");
  // Lengths as an integer tensor, as torch also takes them.
  const PackedSequence from_tensor =
      pack_padded_sequence(pad_sequence(seqs), from_vector<int32_t>({2, 3, 1}), false, false);
  expect_close(from_tensor.data, {5, 6, 1, 2, 11, 12, 7, 8, 3, 4, 9, 10},
               "data from lengths tensor");
}

struct PackedResult {
  std::shared_ptr<Module> module;
  PackedSequence out;
  Tensor h_n, c_n;
};

PackedResult run_row(const testing::PackedRnnRow& r, const PackedSequence& x, const Tensor& h0,
                     const Tensor& c0) {
  const std::string kind = r.kind;
  if (kind == "LSTM") {
    auto m = make<LSTM>({.input_size = r.input_size,
                         .hidden_size = r.hidden_size,
                         .num_layers = r.num_layers,
                         .batch_first = r.batch_first,
                         .bidirectional = r.bidirectional,
                         .proj_size = r.proj_size});
    mha_testing::load_params(*m, r.param_names, r.params);
    auto [out, h_n, c_n] = m->forward_packed(x, h0, c0);
    return {m, out, h_n, c_n};
  }
  if (kind == "GRU") {
    auto m = make<GRU>({.input_size = r.input_size,
                        .hidden_size = r.hidden_size,
                        .num_layers = r.num_layers,
                        .batch_first = r.batch_first,
                        .bidirectional = r.bidirectional});
    mha_testing::load_params(*m, r.param_names, r.params);
    auto [out, h_n] = m->forward_packed(x, h0);
    return {m, out, h_n, Tensor()};
  }
  auto m = make<RNN>({.input_size = r.input_size,
                      .hidden_size = r.hidden_size,
                      .num_layers = r.num_layers,
                      .batch_first = r.batch_first,
                      .bidirectional = r.bidirectional});
  mha_testing::load_params(*m, r.param_names, r.params);
  auto [out, h_n] = m->forward_packed(x, h0);
  return {m, out, h_n, Tensor()};
}

TEST(RnnPacked, RecurrentLayersOnPackedInputMatchTorch) {
  for (const testing::PackedRnnRow& r : testing::packed_rnn_rows()) {
    SCOPED_TRACE(r.name);
    const int64_t D = r.bidirectional ? 2 : 1, B = static_cast<int64_t>(r.lengths.size());
    const int64_t h_features = r.proj_size > 0 ? r.proj_size : r.hidden_size;
    const Tensor x = leaf(r.input, r.input_shape);
    const Tensor h0 = leaf(r.h0, {r.num_layers * D, B, h_features});
    const Tensor c0 = leaf(r.c0, {r.num_layers * D, B, r.hidden_size});
    const PackedSequence packed =
        pack_padded_sequence(x, r.lengths, r.batch_first, r.enforce_sorted);
    const PackedResult res = run_row(r, packed, h0, c0);
    expect_close(res.out.data, r.out_data, "output data");
    expect_ints(res.out.batch_sizes, packed.batch_sizes.to_vector<int64_t>(), "batch_sizes");
    expect_close(res.h_n, r.h_n, "h_n");
    Tensor loss = add(sum(mul(res.out.data, f64(r.g_out, res.out.data.sizes()))),
                      sum(mul(res.h_n, f64(r.g_h, res.h_n.sizes()))));
    if (!r.c_n.empty()) {
      expect_close(res.c_n, r.c_n, "c_n");
      loss = add(loss, sum(mul(res.c_n, f64(r.g_c, res.c_n.sizes()))));
    }
    backward(loss);
    expect_close(x.grad(), r.input_grad, "padded input grad");
    if (h0.defined()) expect_close(h0.grad(), r.h0_grad, "h0 grad");
    if (c0.defined()) expect_close(c0.grad(), r.c0_grad, "c0 grad");
    const Module::NamedTensors params = res.module->named_parameters();
    ASSERT_EQ(params.size(), r.param_grads.size());
    for (size_t i = 0; i < params.size(); ++i)
      expect_close(params[i].second.grad(), r.param_grads[i], params[i].first + " grad");
  }
}

TEST(RnnPacked, Errors) {
  struct Row {
    const char* name;
    std::function<void()> call;
    const char* message;
  };
  const Tensor padded = zeros({4, 3, 2});
  const std::vector<Row> value_rows = {
      {"unsorted_lengths",
       [&] {
         pack_padded_sequence(padded, {2, 3, 1});
       },
       "pack_padded_sequence: `lengths` array must be sorted in decreasing order when "
       "`enforce_sorted` is True"},
      {"zero_length",
       [&] {
         pack_padded_sequence(padded, {4, 0, 1}, false, false);
       },
       "pack_padded_sequence: length of all samples has to be greater than 0, but lengths[1] = 0"},
      {"length_past_input",
       [&] {
         pack_padded_sequence(padded, {5, 3, 1});
       },
       "pack_padded_sequence: lengths[0] = 5 exceeds the input's 4 time steps"},
      {"lengths_count",
       [&] {
         pack_padded_sequence(padded, {3, 2});
       },
       "pack_padded_sequence: expected len(lengths) to be equal to batch_size, but got 2 "
       "(batch_size=3)"},
      {"total_length",
       [&] {
         pad_packed_sequence(pack_padded_sequence(padded, {4, 2, 1}), false, 0.0, 3);
       },
       "pad_packed_sequence: expected total_length to be at least the length of the longest "
       "sequence in input, but got total_length=3 and max sequence length being 4"},
      {"empty_list", [] { pad_sequence({}); }, "pad_sequence: received an empty list of sequences"},
      {"float_lengths_tensor",
       [&] {
         pack_padded_sequence(padded, from_vector<double>({4, 2, 1}));
       },
       "pack_padded_sequence: expected lengths as a 1-D integer tensor, got (3,) float64"},
      {"pack_empty_list", [] { pack_sequence({}); },
       "pack_sequence: received an empty list of sequences"},
  };
  for (const Row& r : value_rows) {
    SCOPED_TRACE(r.name);
    EXPECT_CONTAINS(thrown<ValueError>(r.call), r.message);
  }
  auto lstm = make<LSTM>({.input_size = 2, .hidden_size = 3, .num_layers = 2});
  auto gru = make<GRU>({.input_size = 3, .hidden_size = 3});
  const PackedSequence packed = pack_padded_sequence(padded, {4, 2, 1});
  const std::vector<Row> shape_rows = {
      {"trailing_dims",
       [] {
         pad_sequence({zeros({2, 3}), zeros({2, 4})});
       },
       "pad_sequence: every sequence must have sequence 0's trailing dims (3,) after its length, "
       "got sequence 1 of shape (2, 4)"},
      {"empty_input",
       [] {
         pack_padded_sequence(zeros({0, 3, 2}), {1, 1, 1});
       },
       "pack_padded_sequence: cannot pack empty tensors"},
      {"packed_input_size", [&] { gru->forward_packed(packed); },
       "GRU: input.size(-1) must be equal to input_size. Expected 3, got 2"},
      {"packed_h0_shape",
       [&] {
         lstm->forward_packed(packed, zeros({2, 2, 3}));
       },
       "LSTM: expected h0 of shape (2, 3, 3) (num_layers * num_directions, N, hidden_size), got "
       "(2, 2, 3)"},
  };
  for (const Row& r : shape_rows) {
    SCOPED_TRACE(r.name);
    EXPECT_CONTAINS(thrown<ShapeError>(r.call), r.message);
  }
}

}  // namespace
}  // namespace fabric::nn
