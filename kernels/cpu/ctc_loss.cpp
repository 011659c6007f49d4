// CPU CTC loss, forward and backward: torch 1.13's LossCTC.cpp loops statement for statement (the
// same log-sum-exp forms with std::exp/std::log in the input's type, the same loop directions and
// the same max guards), so the losses and gradients carry torch's bits. Samples are independent,
// so they are split over the OpenMP threads without changing a bit.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/run_tasks.h"
#include "tensor/ctc_loss_kernels.h"
#include "tensor/error.h"

namespace fabric::cpu {
namespace {

// Below this many alpha (or beta) cells in all, one thread does it all.
constexpr int64_t kParallelCells = 1 << 14;

// One sample's view of the operands: lp(t, c) and the extended target l'(s) (blank at even s,
// the target's (s / 2)-th label at odd s).
template <typename S>
struct Sample {
  const S* lp;  // log_probs[0, b, 0]
  int64_t lp_t_stride;
  const int64_t* target;
  int64_t blank, input_length, target_length;

  S log_prob(int64_t t, int64_t c) const { return lp[t * lp_t_stride + c]; }
  int64_t prime(int64_t s) const { return s % 2 == 0 ? blank : target[s / 2]; }
};

template <typename S>
Sample<S> sample(const CtcLossOperands& d, int64_t b) {
  return {static_cast<const S*>(d.log_probs) + b * d.C,
          d.N * d.C,
          d.targets + d.target_offset[b],
          d.blank,
          d.input_lengths[b],
          d.target_lengths[b]};
}

// ctc_loss_cpu_template's body for sample b: alpha over rows 0..input_length-1, then the
// negative log likelihood.
template <typename S>
void forward_sample(const CtcLossDesc& d, int64_t b) {
  constexpr S neginf = -std::numeric_limits<S>::infinity();
  const Sample<S> x = sample<S>(d, b);
  S* la = static_cast<S*>(d.log_alpha) + b * d.T * d.width;  // la[t * width + s]
  S* nll = static_cast<S*>(d.nll);
  const int64_t W = d.width;
  std::fill(la, la + W, neginf);  // torch fills row 0 of every sample first
  if (x.input_length == 0) {
    // torch 1.13 reads the row before the sample's (another sample's alphas, or memory before
    // the buffer for the first): an empty path is certain for an empty target, else impossible,
    // as later torch releases define it.
    nll[b] = -(x.target_length == 0 ? S(0) : neginf);
    return;
  }
  la[0] = x.log_prob(0, x.blank);
  if (x.target_length > 0) la[1] = x.log_prob(0, x.prime(1));
  for (int64_t t = 1; t < x.input_length; ++t) {
    const S* prev = la + (t - 1) * W;
    S* row = la + t * W;
    for (int64_t s = 0; s < 2 * x.target_length + 1; ++s) {
      const int64_t current = x.prime(s);
      S la1 = prev[s];
      S lamax = la1;
      S la2, la3;
      if (s > 0) {
        la2 = prev[s - 1];
        if (la2 > lamax) lamax = la2;
      } else {
        la2 = neginf;
      }
      if (s > 1 && x.prime(s - 2) != current) {
        la3 = prev[s - 2];
        if (la3 > lamax) lamax = la3;
      } else {
        la3 = neginf;
      }
      if (lamax == neginf) lamax = 0;  // no -inf - -inf
      row[s] = std::log(std::exp(la1 - lamax) + std::exp(la2 - lamax) + std::exp(la3 - lamax)) +
               lamax + x.log_prob(t, current);
    }
  }
  const S* last = la + (x.input_length - 1) * W;
  if (x.target_length == 0) {
    nll[b] = -last[0];  // no blank-then-label end state to merge
    return;
  }
  const S l1 = last[x.target_length * 2];
  const S l2 = last[x.target_length * 2 - 1];
  S m = std::max(l1, l2);
  m = (m == neginf) ? 0 : m;
  const S log_likelihood = std::log(std::exp(l1 - m) + std::exp(l2 - m)) + m;
  nll[b] = -log_likelihood;
}

// ctc_loss_backward_cpu_template's body for sample b: beta from the last input row down, each
// cell's alpha * beta log-added into the gradient slot of its label, then the gradient itself.
template <typename S>
void backward_sample(const CtcLossBackwardDesc& d, int64_t b) {
  constexpr S neginf = -std::numeric_limits<S>::infinity();
  const int64_t W = d.width, C = d.C, g_t_stride = d.N * d.C;
  S* grad = static_cast<S*>(d.grad) + b * C;  // grad(t, c) = grad[t * g_t_stride + c]
  auto g = [&](int64_t t, int64_t c) -> S& { return grad[t * g_t_stride + c]; };
  const S nll = static_cast<const S*>(d.nll)[b];
  if (d.zero_infinity && nll == std::numeric_limits<S>::infinity()) {
    for (int64_t t = 0; t < d.T; ++t) std::fill(&g(t, 0), &g(t, 0) + C, S(0));
    return;
  }
  const Sample<S> x = sample<S>(d, b);
  const S* la = static_cast<const S*>(d.log_alpha) + b * d.T * W;
  S* lb = static_cast<S*>(d.log_beta) + b * d.T * W;
  const int64_t il = x.input_length, tl = x.target_length;
  for (int64_t t = 0; t < il; ++t) std::fill(&g(t, 0), &g(t, 0) + C, neginf);  // log of 0
  if (il > 0) {
    S* last = lb + (il - 1) * W;
    std::fill(last, last + W, neginf);
    last[2 * tl] = x.log_prob(il - 1, x.blank);
    g(il - 1, x.blank) = la[(il - 1) * W + 2 * tl] + last[2 * tl];
    if (tl > 0) {
      const int64_t current = x.prime(2 * tl - 1);
      last[2 * tl - 1] = x.log_prob(il - 1, current);
      // A blank and a label: different slots, so no log-add.
      g(il - 1, current) = la[(il - 1) * W + 2 * tl - 1] + last[2 * tl - 1];
    }
  }
  for (int64_t t = il - 2; t >= 0; --t) {
    const S* next = lb + (t + 1) * W;
    S* row = lb + t * W;
    for (int64_t s = 2 * tl; s >= 0; --s) {
      S lb1 = next[s];
      S lbmax = lb1;
      S lb2, lb3;
      const int64_t current = x.prime(s);
      if (s < 2 * tl) {
        lb2 = next[s + 1];
        if (lb2 > lbmax) lbmax = lb2;
      } else {
        lb2 = neginf;
      }
      if (s < 2 * tl - 1 && x.prime(s + 2) != current) {
        lb3 = next[s + 2];
        if (lb3 > lbmax) lbmax = lb3;
      } else {
        lb3 = neginf;
      }
      if (lbmax == neginf) lbmax = 0;
      row[s] = std::log(std::exp(lb1 - lbmax) + std::exp(lb2 - lbmax) + std::exp(lb3 - lbmax)) +
               lbmax + x.log_prob(t, current);
      const S log_alpha_beta = la[t * W + s] + row[s];
      S& lcab = g(t, current);
      if (lcab == neginf) {
        lcab = log_alpha_beta;
      } else {
        const S max = std::max(lcab, log_alpha_beta);
        lcab = std::log(std::exp(lcab - max) + std::exp(log_alpha_beta - max)) + max;
      }
    }
  }
  const S gr = static_cast<const S*>(d.grad_out)[b];
  for (int64_t t = 0; t < il; ++t) {
    for (int64_t c = 0; c < C; ++c) {
      S& res = g(t, c);
      const S lp = x.log_prob(t, c);
      res = (std::exp(lp) - std::exp(res + nll - lp)) * gr;
    }
  }
  for (int64_t t = il; t < d.T; ++t) std::fill(&g(t, 0), &g(t, 0) + C, S(0));
}

template <typename Desc, typename Body>
void for_each_sample(const Desc& d, const Body& body) {
  run_tasks(d.N, d.N * d.T * d.width >= kParallelCells, body);
}

void ctc_loss_kernel(const CtcLossDesc& d) {
  if (d.dtype == DType::float64) {
    for_each_sample(d, [&](int64_t b) { forward_sample<double>(d, b); });
  } else {
    FABRIC_CHECK(d.dtype == DType::float32, DTypeError, "ctc_loss: no CPU kernel for ",
                 dtype_name(d.dtype), " (expected float32 or float64)");
    for_each_sample(d, [&](int64_t b) { forward_sample<float>(d, b); });
  }
}

void ctc_loss_backward_kernel(const CtcLossBackwardDesc& d) {
  if (d.dtype == DType::float64) {
    for_each_sample(d, [&](int64_t b) { backward_sample<double>(d, b); });
  } else {
    FABRIC_CHECK(d.dtype == DType::float32, DTypeError, "ctc_loss_backward: no CPU kernel for ",
                 dtype_name(d.dtype), " (expected float32 or float64)");
    for_each_sample(d, [&](int64_t b) { backward_sample<float>(d, b); });
  }
}

}  // namespace

FABRIC_REGISTER_KERNEL(ctc_loss_stub, cpu, ctc_loss_kernel);
FABRIC_REGISTER_KERNEL(ctc_loss_backward_stub, cpu, ctc_loss_backward_kernel);

}  // namespace fabric::cpu
