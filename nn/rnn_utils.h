// torch.nn.utils.rnn (1.13): padding a batch of variable-length sequences and packing it, so a
// recurrent layer runs each sequence only over its own steps (RNN/LSTM/GRU::forward_packed in
// nn/recurrent.h). Everything is built from differentiable ops (pad, stack, cat, index_select,
// split), so gradients flow from a packed output back to the padded input.
#pragma once
#include <optional>
#include <tuple>
#include <vector>

#include "tensor/tensor.h"

namespace fabric::nn {

// torch's PackedSequence. data: each time step's active rows one after the other (step 0's
// batch_sizes[0] rows, then step 1's batch_sizes[1] rows, ...), the sequences sorted by
// decreasing length; batch_sizes: int64 CPU (L_max), how many sequences are still running at
// each step. sorted_indices / unsorted_indices: the batch permutation into / out of that sorted
// order (undefined, torch's None, when the batch was already sorted).
struct PackedSequence {
  Tensor data;
  Tensor batch_sizes;
  Tensor sorted_indices;
  Tensor unsorted_indices;
};

// The permutation back to the batch's original order: unsorted_indices, or, when only
// sorted_indices is given (PackedSequence{f(p.data), p.batch_sizes, p.sorted_indices}), its
// inverse, as torch's PackedSequence computes it; undefined for an unpermuted batch.
Tensor unsorted_indices_of(const PackedSequence& sequence);

// ValueError naming `op` unless `batch_sizes` is what packing makes: positive, non-increasing.
void check_batch_sizes(const char* op, const std::vector<int64_t>& batch_sizes);

// A list of (L_i, *) tensors padded with `padding_value` to (L_max, B, *) ((B, L_max, *) with
// batch_first). The trailing dims must agree.
Tensor pad_sequence(const std::vector<Tensor>& sequences, bool batch_first = false,
                    double padding_value = 0.0);

// Packs a padded batch (L, B, *) ((B, L, *) with batch_first) whose sequence b is lengths[b]
// steps long (0 < lengths[b] <= L). enforce_sorted: lengths must already be decreasing (as
// torch, for ONNX export); otherwise the batch is sorted here and the permutation kept.
PackedSequence pack_padded_sequence(const Tensor& input, const std::vector<int64_t>& lengths,
                                    bool batch_first = false, bool enforce_sorted = true);
// lengths as a 1-D integer tensor, as torch also takes.
PackedSequence pack_padded_sequence(const Tensor& input, const Tensor& lengths,
                                    bool batch_first = false, bool enforce_sorted = true);

// The inverse: (padded (L, B, *) or (B, L, *), lengths int64 CPU (B)) in the batch's original
// order. total_length pads the time dim up to that many steps (at least the longest sequence),
// e.g. to undo a DataParallel-style split. `auto [padded, lengths] = pad_packed_sequence(p);`
std::tuple<Tensor, Tensor> pad_packed_sequence(const PackedSequence& sequence,
                                               bool batch_first = false, double padding_value = 0.0,
                                               std::optional<int64_t> total_length = std::nullopt);

// pack_padded_sequence(pad_sequence(sequences), their lengths, enforce_sorted).
PackedSequence pack_sequence(const std::vector<Tensor>& sequences, bool enforce_sorted = true);

}  // namespace fabric::nn
