// torch.nn.utils.rnn: pad_sequence, pack_padded_sequence, pad_packed_sequence, pack_sequence.
#include "nn/rnn_utils.h"

#include <algorithm>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/shape.h"

namespace fabric::nn {
namespace {

// pad()'s argument that grows dim 0 of a rank-`dim` tensor by `extra` rows at its end (pad lists
// pairs from the last dim backwards).
std::vector<int64_t> pad_dim0_end(int64_t dim, int64_t extra) {
  std::vector<int64_t> p(static_cast<size_t>(2 * dim), 0);
  p.back() = extra;
  return p;
}

}  // namespace

Tensor unsorted_indices_of(const PackedSequence& sequence) {
  if (sequence.unsorted_indices.defined() || !sequence.sorted_indices.defined())
    return sequence.unsorted_indices;
  const std::vector<int64_t> sorted =
      sequence.sorted_indices.to(Device::cpu()).to(DType::int64).to_vector<int64_t>();
  std::vector<int64_t> unsorted(sorted.size(), -1);
  for (size_t i = 0; i < sorted.size(); ++i) {
    const int64_t b = sorted[i];
    FABRIC_CHECK(b >= 0 && b < int64_t(sorted.size()) && unsorted[size_t(b)] < 0, ValueError,
                 "PackedSequence: sorted_indices must be a permutation of 0..", sorted.size() - 1,
                 ", got ", shape_str(sorted));
    unsorted[size_t(b)] = int64_t(i);
  }
  return from_vector(unsorted).to(sequence.sorted_indices.device());
}

void check_batch_sizes(const char* op, const std::vector<int64_t>& batch_sizes) {
  for (size_t t = 0; t < batch_sizes.size(); ++t)
    FABRIC_CHECK(batch_sizes[t] > 0 && (t == 0 || batch_sizes[t] <= batch_sizes[t - 1]), ValueError,
                 op, ": a PackedSequence's batch_sizes must be positive and non-increasing, got ",
                 shape_str(batch_sizes), " as batch_sizes");
}

Tensor pad_sequence(const std::vector<Tensor>& sequences, bool batch_first, double padding_value) {
  FABRIC_CHECK(!sequences.empty(), ValueError, "pad_sequence: received an empty list of sequences");
  const Tensor& first = sequences[0];
  FABRIC_CHECK(first.defined() && first.dim() >= 1, ShapeError,
               "pad_sequence: expected every sequence to be at least 1-D (L_i, *), got sequence 0 "
               "of shape ",
               first.defined() ? shape_str(first.sizes()) : std::string("undefined"));
  const Shape trailing(first.sizes().begin() + 1, first.sizes().end());
  int64_t max_len = 0;
  for (size_t i = 0; i < sequences.size(); ++i) {
    const Tensor& s = sequences[i];
    FABRIC_CHECK(s.defined() && s.dim() == first.dim() &&
                     Shape(s.sizes().begin() + 1, s.sizes().end()) == trailing,
                 ShapeError, "pad_sequence: every sequence must have sequence 0's trailing dims ",
                 shape_str(trailing), " after its length, got sequence ", i, " of shape ",
                 s.defined() ? shape_str(s.sizes()) : std::string("undefined"));
    max_len = std::max(max_len, s.size(0));
  }
  std::vector<Tensor> padded;
  padded.reserve(sequences.size());
  // In sequence 0's dtype, as torch's (which copies every sequence into sequences[0].new_full).
  for (const Tensor& in : sequences) {
    const Tensor s = in.to(first.dtype());
    padded.push_back(s.size(0) == max_len ? s
                                          : pad(s, pad_dim0_end(s.dim(), max_len - s.size(0)),
                                                "constant", padding_value));
  }
  return stack(padded, batch_first ? 0 : 1);
}

PackedSequence pack_padded_sequence(const Tensor& input, const std::vector<int64_t>& lengths,
                                    bool batch_first, bool enforce_sorted) {
  FABRIC_CHECK(input.defined() && input.dim() >= 2, ShapeError,
               "pack_padded_sequence: expected a padded input of at least 2-D (",
               batch_first ? "B, L" : "L, B", ", *), got ",
               input.defined() ? shape_str(input.sizes()) : std::string("undefined"));
  FABRIC_CHECK(input.numel() > 0, ShapeError,
               "pack_padded_sequence: cannot pack empty tensors, got input of shape ",
               shape_str(input.sizes()));
  // (L, B, *) from here on.
  Tensor x = batch_first ? input.transpose(0, 1) : input;
  const int64_t L = x.size(0), B = x.size(1);
  FABRIC_CHECK(static_cast<int64_t>(lengths.size()) == B, ValueError,
               "pack_padded_sequence: expected len(lengths) to be equal to batch_size, but got ",
               lengths.size(), " (batch_size=", B, ")");
  for (size_t b = 0; b < lengths.size(); ++b) {
    FABRIC_CHECK(lengths[b] > 0, ValueError,
                 "pack_padded_sequence: length of all samples has to be greater than 0, but "
                 "lengths[",
                 b, "] = ", lengths[b]);
    FABRIC_CHECK(lengths[b] <= L, ValueError, "pack_padded_sequence: lengths[", b,
                 "] = ", lengths[b], " exceeds the input's ", L, " time steps (input of shape ",
                 shape_str(input.sizes()), ")");
  }
  PackedSequence out;
  std::vector<int64_t> sorted = lengths;
  if (enforce_sorted) {
    for (size_t b = 1; b < lengths.size(); ++b)
      FABRIC_CHECK(lengths[b] <= lengths[b - 1], ValueError,
                   "pack_padded_sequence: `lengths` array must be sorted in decreasing order when "
                   "`enforce_sorted` is True (lengths[",
                   b - 1, "] = ", lengths[b - 1], " < lengths[", b, "] = ", lengths[b],
                   "). You can pass `enforce_sorted=False` to pack_padded_sequence and/or "
                   "pack_sequence to sidestep this requirement if you do not need ONNX "
                   "exportability.");
  } else {
    // Longest first; ties keep their batch order (a stable sort).
    auto [values, indices] = sort(from_vector(lengths), 0, true);
    sorted = values.to_vector<int64_t>();
    // On the input's device, as torch keeps them (batch_sizes stays on the CPU).
    out.sorted_indices = indices.to(input.device());
    out.unsorted_indices = argsort(indices, 0).to(input.device());  // the inverse permutation
    x = index_select(x, 1, out.sorted_indices);
  }
  std::vector<int64_t> batch_sizes(static_cast<size_t>(sorted[0]));
  std::vector<Tensor> steps;
  for (int64_t t = 0; t < sorted[0]; ++t) {
    const auto running =
        std::count_if(sorted.begin(), sorted.end(), [t](int64_t len) { return len > t; });
    batch_sizes[static_cast<size_t>(t)] = running;
    steps.push_back(x.select(0, t).narrow(0, 0, running));
  }
  out.data = cat(steps, 0);
  out.batch_sizes = from_vector(batch_sizes);
  return out;
}

PackedSequence pack_padded_sequence(const Tensor& input, const Tensor& lengths, bool batch_first,
                                    bool enforce_sorted) {
  FABRIC_CHECK(lengths.defined() && lengths.dim() == 1 && !is_floating(lengths.dtype()), ValueError,
               "pack_padded_sequence: expected lengths as a 1-D integer tensor, got ",
               lengths.defined() ? shape_str(lengths.sizes()) : std::string("undefined"), " ",
               lengths.defined() ? dtype_name(lengths.dtype()) : "");
  const Tensor l = lengths.to(Device::cpu()).to(DType::int64);
  return pack_padded_sequence(input, l.to_vector<int64_t>(), batch_first, enforce_sorted);
}

std::tuple<Tensor, Tensor> pad_packed_sequence(const PackedSequence& sequence, bool batch_first,
                                               double padding_value,
                                               std::optional<int64_t> total_length) {
  FABRIC_CHECK(sequence.data.defined() && sequence.data.dim() >= 1 &&
                   sequence.batch_sizes.defined() && sequence.batch_sizes.dim() == 1 &&
                   sequence.batch_sizes.numel() > 0,
               ValueError,
               "pad_packed_sequence: expected a PackedSequence with data (sum(lengths), *) and "
               "1-D batch_sizes");
  const std::vector<int64_t> batch_sizes =
      sequence.batch_sizes.to(Device::cpu()).to(DType::int64).to_vector<int64_t>();
  check_batch_sizes("pad_packed_sequence", batch_sizes);
  const int64_t steps = static_cast<int64_t>(batch_sizes.size()), B = batch_sizes[0];
  int64_t rows = 0;
  for (int64_t bs : batch_sizes) rows += bs;
  FABRIC_CHECK(rows == sequence.data.size(0), ShapeError,
               "pad_packed_sequence: batch_sizes sum to ", rows, " rows but data has shape ",
               shape_str(sequence.data.sizes()));
  const int64_t T = total_length.value_or(steps);
  FABRIC_CHECK(T >= steps, ValueError,
               "pad_packed_sequence: expected total_length to be at least the length of the "
               "longest sequence in input, but got total_length=",
               T, " and max sequence length being ", steps);
  const Tensor& data = sequence.data;
  std::vector<Tensor> padded_steps;
  for (const Tensor& chunk : split(data, batch_sizes, 0))
    padded_steps.push_back(
        chunk.size(0) == B
            ? chunk
            : pad(chunk, pad_dim0_end(chunk.dim(), B - chunk.size(0)), "constant", padding_value));
  Tensor padded = stack(padded_steps, 0);  // (steps, B, *)
  if (T > steps)
    padded = pad(padded, pad_dim0_end(padded.dim(), T - steps), "constant", padding_value);
  // Sequence b (in sorted order) runs while batch_sizes[t] > b.
  std::vector<int64_t> lengths(static_cast<size_t>(B), 0);
  for (int64_t bs : batch_sizes)
    for (int64_t b = 0; b < bs; ++b) ++lengths[static_cast<size_t>(b)];
  Tensor lengths_t = from_vector(lengths);
  if (const Tensor unsorted = unsorted_indices_of(sequence); unsorted.defined()) {
    padded = index_select(padded, 1, unsorted.to(data.device()));
    lengths_t = index_select(lengths_t, 0, unsorted.to(Device::cpu()));
  }
  if (batch_first) padded = padded.transpose(0, 1);
  return {padded, lengths_t};
}

PackedSequence pack_sequence(const std::vector<Tensor>& sequences, bool enforce_sorted) {
  FABRIC_CHECK(!sequences.empty(), ValueError,
               "pack_sequence: received an empty list of sequences");
  std::vector<int64_t> lengths;
  for (const Tensor& s : sequences) lengths.push_back(s.defined() && s.dim() >= 1 ? s.size(0) : 0);
  return pack_padded_sequence(pad_sequence(sequences), lengths, false, enforce_sorted);
}

}  // namespace fabric::nn
