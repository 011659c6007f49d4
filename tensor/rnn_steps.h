// The recurrent cells after their input projection. A cell is step(linear(input, w_ih, b_ih), ...):
// the public cells (tensor/ops.h) compute the projection for one time step, the nn layers
// (nn/recurrent.cpp) for every step of the sequence in one GEMM, as torch's CPU layers do, which
// leaves only the hidden-state GEMM inside the time loop. No argument checks here: callers check.
#pragma once
#include <tuple>

#include "tensor/tensor.h"

namespace fabric {

// x_gates (N, 4H) or (4H): W_ih x + b_ih, gates in torch's order (input, forget, cell, output).
std::tuple<Tensor, Tensor> lstm_step(const Tensor& x_gates, const Tensor& hx, const Tensor& cx,
                                     const Tensor& w_hh, const Tensor& b_hh);
// x_gates (N, 3H): W_ih x + b_ih, gates in torch's order (reset, update, new).
Tensor gru_step(const Tensor& x_gates, const Tensor& hx, const Tensor& w_hh, const Tensor& b_hh);
// x_gates (N, H): tanh or relu of x_gates + W_hh h + b_hh.
Tensor rnn_step(const Tensor& x_gates, const Tensor& hx, const Tensor& w_hh, const Tensor& b_hh,
                bool use_tanh);

}  // namespace fabric
