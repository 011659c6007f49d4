// torch.nn.functional.ctc_loss (torch 1.13): the Connectionist Temporal Classification loss of
// per-frame log-probabilities against unaligned label sequences (tensor/ops_ctc_loss.cpp, CPU
// kernel kernels/cpu/ctc_loss.cpp).
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

#include "tensor/tensor.h"

namespace fabric {

// log_probs: (T, N, C) or, for one sample, (T, C), float32 or float64 (float32 under CPU
// autocast), normally a log_softmax over C. targets: padded (N, S) with S >= max target length,
// or the samples' labels concatenated (sum(target_lengths)); for one sample (S) or (1, S). Any
// dtype, read as int64 like torch's; the labels read must lie in [0, C) (blank among them is
// allowed). input_lengths (each in [0, T]) and target_lengths (each >= 0): one per sample, as
// int64 vectors or as integral tensors of N elements (any shape, any device). blank in [0, C).
// reduction "none" gives the per-sample losses (N) (0-d for one sample), "sum" their sum, "mean"
// the mean of each loss divided by its target length clamped to >= 1. A target that no path of
// its input length can emit costs +inf; zero_infinity turns such losses, and their gradients,
// into 0. The gradient w.r.t. log_probs is torch's (node CtcLossBackward0). CUDA tensors run the
// CPU kernel on host copies (a synchronisation), giving the CPU's values.
Tensor ctc_loss(const Tensor& log_probs, const Tensor& targets,
                const std::vector<int64_t>& input_lengths,
                const std::vector<int64_t>& target_lengths, int64_t blank = 0,
                std::string_view reduction = "mean", bool zero_infinity = false);
Tensor ctc_loss(const Tensor& log_probs, const Tensor& targets, const Tensor& input_lengths,
                const Tensor& target_lengths, int64_t blank = 0,
                std::string_view reduction = "mean", bool zero_infinity = false);

// What the ctc_loss node keeps for its derivative (torch's _ctc_loss saves the same): the
// lengths, the options, the int64 targets' layout and the forward's log_alpha (N, T, 2 *
// max(target_lengths) + 1), on the host.
struct CtcLossAttrs {
  std::vector<int64_t> input_lengths, target_lengths, target_offset;
  int64_t blank = 0;
  bool zero_infinity = false;
  Tensor log_alpha;
};

// torch's _ctc_loss_backward: d (sum_b grad_out[b] * nll[b]) / d log_probs, (T, N, C) in
// log_probs' dtype and on its device. log_probs (T, N, C) and targets (int64, contiguous, read at
// a.target_offset) are the forward's operands, nll (N) its output. Records nothing.
Tensor ctc_loss_backward(const Tensor& grad_out, const Tensor& log_probs, const Tensor& targets,
                         const Tensor& nll, const CtcLossAttrs& a);

}  // namespace fabric
