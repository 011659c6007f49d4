// torch's recurrent cells (torch._VF.lstm_cell, gru_cell, rnn_tanh_cell, rnn_relu_cell) as
// compositions of linear, sigmoid/tanh/relu, chunk, mul and add in torch 1.13's own formulas, so
// autograd (double backward included), autocast of the inner ops and the CUDA backend come from
// those ops. Each cell applies its own autocast class first (CUDA: lower), as ATen does.
#include "tensor/autocast.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/rnn_steps.h"
#include "tensor/shape.h"

namespace fabric {
namespace {

void check_floating(const char* op, const char* what, const Tensor& t) {
  FABRIC_CHECK(is_floating(t.dtype()) && !is_fp8(t.dtype()), DTypeError, op, ": expected ", what,
               " of a floating dtype (float64/float32/float16/bfloat16), got ",
               dtype_name(t.dtype()), " of shape ", shape_str(t.sizes()));
}

// torch's check_rnn_cell_forward_input / _hidden, plus the weight shapes torch leaves to the
// matmul: gates = number of gate blocks stacked in w_ih/w_hh (LSTM 4, GRU 3, RNN 1).
void check_cell(const char* op, int64_t gates, const Tensor& input, const Tensor& hx,
                const Tensor& cx, const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih,
                const Tensor& b_hh) {
  FABRIC_CHECK(input.defined() && hx.defined() && w_ih.defined() && w_hh.defined(), ValueError, op,
               ": input, hx, w_ih and w_hh must be defined");
  check_floating(op, "an input", input);
  FABRIC_CHECK(input.dim() == 1 || input.dim() == 2, ShapeError, op,
               ": expected input to be 1-D (I) or 2-D (N, I), got shape ",
               shape_str(input.sizes()));
  FABRIC_CHECK(w_ih.dim() == 2 && w_hh.dim() == 2 && w_ih.size(0) % gates == 0, ShapeError, op,
               ": expected w_ih (", gates, "*H, I) and w_hh (", gates, "*H, H), got w_ih ",
               shape_str(w_ih.sizes()), " and w_hh ", shape_str(w_hh.sizes()));
  const int64_t H = w_ih.size(0) / gates;
  FABRIC_CHECK(w_hh.size(0) == gates * H && w_hh.size(1) == H, ShapeError, op,
               ": expected w_hh of shape ", shape_str({gates * H, H}), " to match w_ih ",
               shape_str(w_ih.sizes()), ", got ", shape_str(w_hh.sizes()));
  for (const Tensor* b : {&b_ih, &b_hh})
    FABRIC_CHECK(!b->defined() || b->sizes() == Shape{gates * H}, ShapeError, op,
                 ": expected biases of shape ", shape_str({gates * H}), ", got ",
                 shape_str(b->sizes()));
  FABRIC_CHECK(input.size(-1) == w_ih.size(1), ShapeError, op,
               ": input has inconsistent input_size: got ", input.size(-1), ", expected ",
               w_ih.size(1));
  for (const Tensor* h : {&hx, &cx}) {
    if (!h->defined()) continue;
    const char* name = h == &hx ? "hx" : "cx";
    FABRIC_CHECK(h->dim() == input.dim(), ShapeError, op, ": expected ", name, " to be ",
                 input.dim(), "-D like the input ", shape_str(input.sizes()), ", got ",
                 shape_str(h->sizes()));
    FABRIC_CHECK(input.dim() == 1 || h->size(0) == input.size(0), ShapeError, op,
                 ": input batch size ", input.size(0), " doesn't match ", name, " batch size ",
                 h->size(0));
    FABRIC_CHECK(h->size(-1) == H, ShapeError, op, ": ", name,
                 " has inconsistent hidden_size: got ", h->size(-1), ", expected ", H);
  }
}

Tensor simple_cell(OpId id, const char* op, bool use_tanh, Tensor input, Tensor hx, Tensor w_ih,
                   Tensor w_hh, Tensor b_ih, Tensor b_hh) {
  apply_autocast(id, {&input, &hx, &w_ih, &w_hh, &b_ih, &b_hh});
  check_cell(op, 1, input, hx, Tensor(), w_ih, w_hh, b_ih, b_hh);
  return rnn_step(linear(input, w_ih, b_ih), hx, w_hh, b_hh, use_tanh);
}

}  // namespace

std::tuple<Tensor, Tensor> lstm_step(const Tensor& x_gates, const Tensor& hx, const Tensor& cx,
                                     const Tensor& w_hh, const Tensor& b_hh) {
  const std::vector<Tensor> g = chunk(add(x_gates, linear(hx, w_hh, b_hh)), 4, -1);
  const Tensor i = sigmoid(g[0]), f = sigmoid(g[1]), c_new = tanh(g[2]), o = sigmoid(g[3]);
  Tensor cy = add(mul(f, cx), mul(i, c_new));
  Tensor hy = mul(o, tanh(cy));
  return {hy, cy};
}

Tensor gru_step(const Tensor& x_gates, const Tensor& hx, const Tensor& w_hh, const Tensor& b_hh) {
  // b_hn stays inside the reset product, as torch: n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
  const std::vector<Tensor> gi = chunk(x_gates, 3, -1);
  const std::vector<Tensor> gh = chunk(linear(hx, w_hh, b_hh), 3, -1);
  const Tensor r = sigmoid(add(gi[0], gh[0]));
  const Tensor z = sigmoid(add(gi[1], gh[1]));
  const Tensor n = tanh(add(gi[2], mul(r, gh[2])));
  // h' = (1 - z) * n + z * h, written as torch's n + z * (h - n).
  return add(n, mul(z, sub(hx, n)));
}

Tensor rnn_step(const Tensor& x_gates, const Tensor& hx, const Tensor& w_hh, const Tensor& b_hh,
                bool use_tanh) {
  const Tensor pre = add(x_gates, linear(hx, w_hh, b_hh));
  return use_tanh ? tanh(pre) : relu(pre);
}

std::tuple<Tensor, Tensor> lstm_cell(const Tensor& input_in, const Tensor& hx_in,
                                     const Tensor& cx_in, const Tensor& w_ih_in,
                                     const Tensor& w_hh_in, const Tensor& b_ih_in,
                                     const Tensor& b_hh_in) {
  Tensor input = input_in, hx = hx_in, cx = cx_in, w_ih = w_ih_in, w_hh = w_hh_in, b_ih = b_ih_in,
         b_hh = b_hh_in;
  apply_autocast(OpId::lstm_cell, {&input, &hx, &cx, &w_ih, &w_hh, &b_ih, &b_hh});
  FABRIC_CHECK(cx.defined(), ValueError, "lstm_cell: cx must be defined");
  check_cell("lstm_cell", 4, input, hx, cx, w_ih, w_hh, b_ih, b_hh);
  return lstm_step(linear(input, w_ih, b_ih), hx, cx, w_hh, b_hh);
}

Tensor gru_cell(const Tensor& input_in, const Tensor& hx_in, const Tensor& w_ih_in,
                const Tensor& w_hh_in, const Tensor& b_ih_in, const Tensor& b_hh_in) {
  Tensor input = input_in, hx = hx_in, w_ih = w_ih_in, w_hh = w_hh_in, b_ih = b_ih_in,
         b_hh = b_hh_in;
  apply_autocast(OpId::gru_cell, {&input, &hx, &w_ih, &w_hh, &b_ih, &b_hh});
  check_cell("gru_cell", 3, input, hx, Tensor(), w_ih, w_hh, b_ih, b_hh);
  return gru_step(linear(input, w_ih, b_ih), hx, w_hh, b_hh);
}

Tensor rnn_tanh_cell(const Tensor& input, const Tensor& hx, const Tensor& w_ih, const Tensor& w_hh,
                     const Tensor& b_ih, const Tensor& b_hh) {
  return simple_cell(OpId::rnn_tanh_cell, "rnn_tanh_cell", true, input, hx, w_ih, w_hh, b_ih, b_hh);
}

Tensor rnn_relu_cell(const Tensor& input, const Tensor& hx, const Tensor& w_ih, const Tensor& w_hh,
                     const Tensor& b_ih, const Tensor& b_hh) {
  return simple_cell(OpId::rnn_relu_cell, "rnn_relu_cell", false, input, hx, w_ih, w_hh, b_ih,
                     b_hh);
}

}  // namespace fabric
