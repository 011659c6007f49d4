// RNN, LSTM and GRU over a PackedSequence, as torch's packed layers: at step t only the first
// batch_sizes[t] sequences (sorted longest first) advance, so every sequence's final state is the
// one after its own last step and the reverse direction starts each sequence at its own end.
#include <algorithm>

#include "nn/recurrent.h"
#include "nn/recurrent_cells.h"
#include "tensor/ops.h"
#include "tensor/shape.h"

namespace fabric::nn {

PackedLSTMOutput RecurrentBase::run_packed(const PackedSequence& input, const Tensor& h0,
                                           const Tensor& c0) {
  const std::string name = type_name();
  const Config& c = config_;
  const Tensor& data = input.data;
  FABRIC_CHECK(data.defined() && data.dim() == 2, ShapeError, name,
               ": expected a PackedSequence with 2-D data (sum(lengths), H_in), got ",
               data.defined() ? shape_str(data.sizes()) : std::string("undefined data"));
  FABRIC_CHECK(data.size(-1) == c.input_size, ShapeError, name,
               ": input.size(-1) must be equal to input_size. Expected ", c.input_size, ", got ",
               data.size(-1), " (packed data of shape ", shape_str(data.sizes()), ")");
  FABRIC_CHECK(is_floating(data.dtype()) && !is_fp8(data.dtype()), DTypeError, name,
               ": expected a floating input (float64/float32/float16/bfloat16), got ",
               dtype_name(data.dtype()));
  FABRIC_CHECK(
      input.batch_sizes.defined() && input.batch_sizes.dim() == 1 && input.batch_sizes.numel() > 0,
      ValueError, name, ": expected a PackedSequence with 1-D batch_sizes");
  const std::vector<int64_t> batch_sizes =
      input.batch_sizes.to(Device::cpu()).to(DType::int64).to_vector<int64_t>();
  int64_t rows = 0;
  for (int64_t bs : batch_sizes) rows += bs;
  FABRIC_CHECK(rows == data.size(0), ShapeError, name, ": the PackedSequence's batch_sizes sum to ",
               rows, " rows but its data has shape ", shape_str(data.sizes()));
  check_batch_sizes(name.c_str(), batch_sizes);
  const bool lstm = cell_ == Cell::lstm;
  FABRIC_CHECK(lstm || !c0.defined(), ValueError, name, ": only LSTM takes c0");
  const int64_t T = static_cast<int64_t>(batch_sizes.size()), N = batch_sizes[0];
  const int64_t D = c.bidirectional ? 2 : 1;
  // The states are given in the batch's original order; the packed rows are sorted.
  auto to_sorted = [&](const Tensor& given, const Tensor& state) {
    if (!given.defined() || !input.sorted_indices.defined()) return state;
    return index_select(state, 1, input.sorted_indices.to(state.device()));
  };
  const Tensor h_init = to_sorted(h0, initial_state("h0", h0, true, N, output_size(), data));
  const Tensor c_init =
      lstm ? to_sorted(c0, initial_state("c0", c0, true, N, c.hidden_size, data)) : Tensor();

  std::vector<Tensor> h_n, c_n;
  Tensor layer_in = data;  // (sum(lengths), features)
  for (int64_t layer = 0; layer < c.num_layers; ++layer) {
    std::vector<Tensor> directions;
    for (int64_t dir = 0; dir < D; ++dir) {
      const int64_t k = layer * D + dir;
      const Weights& w = weights_[static_cast<size_t>(k)];
      const Tensor h_all = h_init.select(0, k), c_all = lstm ? c_init.select(0, k) : Tensor();
      const std::vector<Tensor> x_gates = split(linear(layer_in, w.w_ih, w.b_ih), batch_sizes, 0);
      std::vector<Tensor> steps(static_cast<size_t>(T));
      Tensor h, cs;
      if (dir == 0) {
        // Sequences end longest-last: when batch_sizes drops, the rows past it are finished and
        // their states set aside (later-finishing rows have lower indices).
        h = h_all, cs = c_all;
        std::vector<Tensor> done_h, done_c;
        int64_t running = N;
        for (int64_t t = 0; t < T; ++t) {
          const int64_t bs = batch_sizes[static_cast<size_t>(t)];
          if (bs < running) {
            done_h.push_back(h.narrow(0, bs, running - bs));
            h = h.narrow(0, 0, bs);
            if (lstm) {
              done_c.push_back(cs.narrow(0, bs, running - bs));
              cs = cs.narrow(0, 0, bs);
            }
            running = bs;
          }
          advance(w, x_gates[static_cast<size_t>(t)], h, cs);
          steps[static_cast<size_t>(t)] = h;
        }
        std::reverse(done_h.begin(), done_h.end());
        std::reverse(done_c.begin(), done_c.end());
        done_h.insert(done_h.begin(), h);
        h = cat(done_h, 0);
        if (lstm) {
          done_c.insert(done_c.begin(), cs);
          cs = cat(done_c, 0);
        }
      } else {
        // Backwards in time, a sequence joins at its own last step with its initial state.
        int64_t running = 0;
        for (int64_t t = T - 1; t >= 0; --t) {
          const int64_t bs = batch_sizes[static_cast<size_t>(t)];
          if (bs > running) {
            const Tensor h_new = h_all.narrow(0, running, bs - running);
            h = h.defined() ? cat({h, h_new}, 0) : h_new;
            if (lstm) {
              const Tensor c_new = c_all.narrow(0, running, bs - running);
              cs = cs.defined() ? cat({cs, c_new}, 0) : c_new;
            }
            running = bs;
          }
          advance(w, x_gates[static_cast<size_t>(t)], h, cs);
          steps[static_cast<size_t>(t)] = h;
        }
      }
      directions.push_back(cat(steps, 0));  // (sum(lengths), H), packed as the input
      h_n.push_back(h);
      if (lstm) c_n.push_back(cs);
    }
    layer_in = D == 1 ? directions[0] : cat(directions, -1);
    if (c.dropout > 0 && is_training() && layer + 1 < c.num_layers)
      layer_in = dropout(layer_in, c.dropout, true, c.generator);
  }
  PackedLSTMOutput out;
  const Tensor unsorted = unsorted_indices_of(input);
  out.output = {layer_in, input.batch_sizes, input.sorted_indices, unsorted};
  // Back to the batch's original order.
  auto to_original = [&](const Tensor& state) {
    if (!unsorted.defined()) return state;
    return index_select(state, 1, unsorted.to(state.device()));
  };
  out.h_n = to_original(stack(h_n, 0));
  if (lstm) out.c_n = to_original(stack(c_n, 0));
  return out;
}

PackedLSTMOutput RecurrentBase::call_run_packed(const PackedSequence& input, const Tensor& h0,
                                                const Tensor& c0) {
  // The hooks see tensors: the data stands for the PackedSequence; its layout (batch_sizes and
  // the permutations, integer tensors) is bound by value, as a recompute in backward needs it.
  std::vector<Tensor> inputs{input.data, h0};
  if (cell_ == Cell::lstm) inputs.push_back(c0);
  const PackedSequence layout{Tensor(), input.batch_sizes, input.sorted_indices,
                              input.unsorted_indices};
  const std::vector<Tensor> out =
      call_forward_outputs(std::move(inputs), [self = this, layout](const std::vector<Tensor>& in) {
        PackedSequence packed = layout;
        packed.data = in[0];
        PackedLSTMOutput r = self->run_packed(packed, in[1], in.size() > 2 ? in[2] : Tensor());
        return std::vector<Tensor>{r.output.data, r.h_n, r.c_n};
      });
  PackedLSTMOutput r;
  r.output = {out[0], input.batch_sizes, input.sorted_indices, unsorted_indices_of(input)};
  r.h_n = out[1];
  r.c_n = out[2];
  return r;
}

PackedRNNOutput RNN::forward_packed(const PackedSequence& input, const Tensor& h0) {
  PackedLSTMOutput r = call_run_packed(input, h0, Tensor());
  return {r.output, r.h_n};
}

PackedLSTMOutput LSTM::forward_packed(const PackedSequence& input, const Tensor& h0,
                                      const Tensor& c0) {
  return call_run_packed(input, h0, c0);
}

PackedRNNOutput GRU::forward_packed(const PackedSequence& input, const Tensor& h0) {
  PackedLSTMOutput r = call_run_packed(input, h0, Tensor());
  return {r.output, r.h_n};
}

}  // namespace fabric::nn
