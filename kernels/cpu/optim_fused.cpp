// Fused CPU optimizer updates (SGD, Adam/AdamW): each element's parameter, gradient and state are
// loaded once, updated in registers and stored once, over OpenMP chunks. Both float64 (scalar code)
// and float32 (AVX-512) follow PyTorch 1.13's single-tensor implementations op by op and match them
// bit for bit: each PyTorch op rounds once, and its CPU kernels fuse exactly these multiply-adds
// (measured against torch 1.13, tools/fixtures/make_optim_fixtures.py):
//   a.add(b, alpha=s)          fma(b, s, a)
//   a.addcmul(b, c, value=s)   fma(s * b, c, a)
//   a.addcdiv(b, c, value=s)   a + (s * b) / c       (no fusion)
//   a.mul(s), a / s, a.sqrt(), a + s  one rounding each
// bfloat16/float16 parameters compute in float32 and round each stored tensor once.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/cpu/optim_loop.h"
#include "kernels/cpu/vec_math.h"
#include "tensor/error.h"
#include "tensor/optim_kernels.h"

// Every fusion below is written out; the compiler must not add any (g++ contracts a * b + c into
// an fma by default, which would fuse exp_avg_sq.mul_(beta2) into the addcmul_ that follows it).
#pragma GCC optimize("fp-contract=off")

namespace fabric::cpu {
namespace {

using optim_loop::check_dtype;
using optim_loop::for_chunks_typed;

// torch.maximum: NaN in either operand gives NaN.
inline double maximum_nan(double a, double b) { return (std::isnan(a) || std::isnan(b)) ? a + b : std::max(a, b); }
inline __m512 maximum_nan(__m512 a, __m512 b) {
  const __m512 r = _mm512_max_ps(a, b);  // b when either is NaN
  return _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q), a);
}
inline __m512 negate(__m512 x) { return _mm512_xor_ps(x, _mm512_set1_ps(-0.0f)); }

// The step's scalars, computed in float64 as PyTorch computes them in Python.
struct AdamScalars {
  double step_size, bc2_sqrt, decay;
};
AdamScalars adam_scalars(const AdamKernelArgs& a) {
  AdamScalars s{};
  const double bias_correction1 = 1 - std::pow(a.beta1, a.step);
  const double bias_correction2 = 1 - std::pow(a.beta2, a.step);
  s.step_size = a.lr / bias_correction1;
  s.bc2_sqrt = std::sqrt(bias_correction2);
  s.decay = 1 - a.lr * a.weight_decay;
  return s;
}

void adam_f64(int64_t b, int64_t e, double* p, const double* g, double* m, double* v, double* mx,
              const AdamKernelArgs& a, const AdamScalars& s) {
  const double wd = a.weight_decay, beta1 = a.beta1, c1 = 1 - a.beta1, beta2 = a.beta2,
               c2 = 1 - a.beta2, bc2s = s.bc2_sqrt, eps = a.eps, decay = s.decay,
               neg_step = -s.step_size;
  const bool has_wd = wd != 0, decoupled = a.decoupled_weight_decay, maximize = a.maximize,
             amsgrad = a.amsgrad;
  for (int64_t i = b; i < e; ++i) {
    double gi = maximize ? -g[i] : g[i];
    double pi = p[i];
    if (has_wd) {
      if (decoupled) {
        pi = pi * decay;  // param.mul_(1 - lr * weight_decay)
      } else {
        gi = std::fma(pi, wd, gi);  // grad.add(param, alpha=weight_decay)
      }
    }
    // exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
    const double mi = std::fma(gi, c1, m[i] * beta1);
    m[i] = mi;
    // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    double vi = std::fma(c2 * gi, gi, v[i] * beta2);
    v[i] = vi;
    if (amsgrad) {
      mx[i] = maximum_nan(mx[i], vi);
      vi = mx[i];
    }
    const double denom = std::sqrt(vi) / bc2s + eps;  // (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps)
    p[i] = pi + (neg_step * mi) / denom;  // param.addcdiv_(exp_avg, denom, value=-step_size)
  }
}

// The same ops in float32 on 16 lanes, with the scalars rounded to float as PyTorch's float32
// kernels take them. T is float, BFloat16 or Half (stored values rounded once).
template <class T>
void adam_vec(int64_t b, int64_t e, T* p, const T* g, T* m, T* v, T* mx, const AdamKernelArgs& a,
              const AdamScalars& s) {
  const __m512 beta1 = vec::splat(static_cast<float>(a.beta1));
  const __m512 c1 = vec::splat(static_cast<float>(1 - a.beta1));
  const __m512 wd = vec::splat(static_cast<float>(a.weight_decay));
  const __m512 decay = vec::splat(static_cast<float>(s.decay));
  const __m512 beta2 = vec::splat(static_cast<float>(a.beta2));
  const __m512 c2 = vec::splat(static_cast<float>(1 - a.beta2));
  const __m512 bc2s = vec::splat(static_cast<float>(s.bc2_sqrt));
  const __m512 eps = vec::splat(static_cast<float>(a.eps));
  const __m512 neg_step = vec::splat(static_cast<float>(-s.step_size));
  // Flags in locals: the intrinsic stores may alias anything, which would force reloads of `a`.
  const bool has_wd = a.weight_decay != 0, decoupled = a.decoupled_weight_decay,
             maximize = a.maximize, amsgrad = a.amsgrad;
  for (int64_t i = b; i < e; i += 16) {
    const __mmask16 k = vec::tail_mask(e - i);
    __m512 gi = vec::load(g + i, k);
    if (maximize) gi = negate(gi);
    __m512 pi = vec::load(p + i, k);
    if (has_wd) {
      if (decoupled) {
        pi = _mm512_mul_ps(pi, decay);
      } else {
        gi = _mm512_fmadd_ps(pi, wd, gi);
      }
    }
    const __m512 mi = _mm512_fmadd_ps(gi, c1, _mm512_mul_ps(vec::load(m + i, k), beta1));
    __m512 vi =
        _mm512_fmadd_ps(_mm512_mul_ps(c2, gi), gi, _mm512_mul_ps(vec::load(v + i, k), beta2));
    vec::store(m + i, mi, k);
    vec::store(v + i, vi, k);
    if (amsgrad) {
      vi = maximum_nan(vec::load(mx + i, k), vi);
      vec::store(mx + i, vi, k);
    }
    // Within the step the fp32 state values are used (PyTorch's fused Adam does the same for
    // bf16/fp16); the stored state is rounded once.
    const __m512 denom = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), bc2s), eps);
    pi = _mm512_add_ps(pi, _mm512_div_ps(_mm512_mul_ps(neg_step, mi), denom));
    vec::store(p + i, pi, k);
  }
}

void adam_step_kernel(DType dt, int64_t n, void* param, const void* grad, void* exp_avg, void* exp_avg_sq,
                      void* max_exp_avg_sq, const AdamKernelArgs& a) {
  check_dtype(dt, "adam_step");
  FABRIC_CHECK(!a.amsgrad || max_exp_avg_sq != nullptr, ValueError,
               "adam_step: amsgrad needs a max_exp_avg_sq buffer");
  if (n <= 0) return;
  const AdamScalars s = adam_scalars(a);
  for_chunks_typed(
      dt, n, [&](auto... chunk) { adam_f64(chunk..., a, s); },
      [&](auto... chunk) { adam_vec(chunk..., a, s); }, param, grad, exp_avg, exp_avg_sq,
      max_exp_avg_sq);
}

void sgd_f64(int64_t b, int64_t e, double* p, const double* g, double* buf, const SgdKernelArgs& a) {
  const double wd = a.weight_decay, mom = a.momentum, keep = 1 - a.dampening, neg_lr = -a.lr;
  for (int64_t i = b; i < e; ++i) {
    double gi = a.maximize ? -g[i] : g[i];
    if (wd != 0) gi = std::fma(p[i], wd, gi);  // grad.add(param, alpha=weight_decay)
    if (mom != 0) {
      double bi = a.first_step ? gi : std::fma(gi, keep, buf[i] * mom);  // buf.mul_(m).add_(g, alpha=1-d)
      buf[i] = bi;
      gi = a.nesterov ? std::fma(bi, mom, gi) : bi;  // grad.add(buf, alpha=momentum)
    }
    p[i] = std::fma(gi, neg_lr, p[i]);  // param.add_(grad, alpha=-lr)
  }
}

template <class T>
void sgd_vec(int64_t b, int64_t e, T* p, const T* g, T* buf, const SgdKernelArgs& a) {
  const __m512 wd = vec::splat(static_cast<float>(a.weight_decay));
  const __m512 mom = vec::splat(static_cast<float>(a.momentum));
  const __m512 keep = vec::splat(static_cast<float>(1 - a.dampening));
  const __m512 neg_lr = vec::splat(static_cast<float>(-a.lr));
  const bool has_wd = a.weight_decay != 0, has_mom = a.momentum != 0, maximize = a.maximize,
             first = a.first_step, nesterov = a.nesterov;
  for (int64_t i = b; i < e; i += 16) {
    const __mmask16 k = vec::tail_mask(e - i);
    __m512 gi = vec::load(g + i, k);
    if (maximize) gi = negate(gi);
    const __m512 pi = vec::load(p + i, k);
    if (has_wd) gi = _mm512_fmadd_ps(pi, wd, gi);
    if (has_mom) {
      // Within the step the fp32 value is used; a bf16/fp16 buffer is rounded once, on store.
      const __m512 bi = first ? gi : _mm512_fmadd_ps(gi, keep, _mm512_mul_ps(vec::load(buf + i, k), mom));
      vec::store(buf + i, bi, k);
      gi = nesterov ? _mm512_fmadd_ps(bi, mom, gi) : bi;
    }
    vec::store(p + i, _mm512_fmadd_ps(gi, neg_lr, pi), k);
  }
}

void sgd_step_kernel(DType dt, int64_t n, void* param, const void* grad, void* momentum_buffer,
                     const SgdKernelArgs& a) {
  check_dtype(dt, "sgd_step");
  FABRIC_CHECK(a.momentum == 0 || momentum_buffer != nullptr, ValueError,
               "sgd_step: momentum ", a.momentum, " needs a momentum buffer");
  if (n <= 0) return;
  for_chunks_typed(
      dt, n, [&](auto... chunk) { sgd_f64(chunk..., a); },
      [&](auto... chunk) { sgd_vec(chunk..., a); }, param, grad, momentum_buffer);
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(adam_step_stub, cpu, &cpu::adam_step_kernel);
FABRIC_REGISTER_KERNEL(sgd_step_stub, cpu, &cpu::sgd_step_kernel);
}  // namespace fabric
