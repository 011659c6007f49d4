// The CTC loss kernels (torch 1.13's ctc_loss_cpu_template and ctc_loss_backward_cpu_template in
// aten/src/ATen/native/LossCTC.cpp): the forward's log-space alphas and per-sample negative log
// likelihoods, and the backward's log-space betas folded into the gradient. The stubs take value
// types only; tensor/ops_ctc_loss.cpp checks the arguments, lays the operands out and records.
#pragma once
#include <cstdint>

#include "tensor/dispatch_stub.h"
#include "tensor/dtype.h"

namespace fabric {

// What both kernels read. log_probs is (T, N, C), contiguous, float32 or float64 (`dtype`);
// sample b's targets are targets[target_offset[b] + k] for k < target_lengths[b] (contiguous
// int64: padded rows or the concatenation), each in [0, C); input_lengths[b] in [0, T] and
// target_lengths[b] >= 0 (the op checked them). log_alpha is (N, T, width), contiguous, width =
// 2 * max(target_lengths) + 1.
struct CtcLossOperands {
  DType dtype = DType::float32;
  int64_t T = 0, N = 0, C = 0, blank = 0, width = 1;
  const void* log_probs = nullptr;
  const int64_t* targets = nullptr;
  const int64_t* target_offset = nullptr;
  const int64_t* input_lengths = nullptr;
  const int64_t* target_lengths = nullptr;
};

// Writes nll (N) and log_alpha: row t = 0 of every sample to -inf but the first two states, rows
// 1..input_length-1 in torch's order and rounding; the rows past a sample's input length are left
// unwritten (the backward never reads them).
struct CtcLossDesc : CtcLossOperands {
  void* log_alpha = nullptr;
  void* nll = nullptr;
};
using CtcLossFn = void (*)(const CtcLossDesc& d);
FABRIC_DECLARE_STUB(ctc_loss_stub, CtcLossFn);

// Writes grad (T, N, C), contiguous: d loss_b / d log_probs[t, b, c] times grad_out[b] for
// t < input_lengths[b], 0 past it; all 0 for a sample whose nll is +inf when zero_infinity.
// nll and log_alpha are the forward's; log_beta is scratch of log_alpha's shape.
struct CtcLossBackwardDesc : CtcLossOperands {
  const void* grad_out = nullptr;  // (N)
  const void* nll = nullptr;
  const void* log_alpha = nullptr;
  void* log_beta = nullptr;
  void* grad = nullptr;
  bool zero_infinity = false;
};
using CtcLossBackwardFn = void (*)(const CtcLossBackwardDesc& d);
FABRIC_DECLARE_STUB(ctc_loss_backward_stub, CtcLossBackwardFn);

}  // namespace fabric
