// Fused CPU updates of the adaptive-rate optimizers RMSprop and Adagrad. Both follow PyTorch 1.13's
// single-tensor implementations op by op, in float64 and in float32, so that both dtypes match it
// bit for bit: each PyTorch op rounds once, and its CPU kernels fuse exactly these multiply-adds
// (measured against torch 1.13, tools/fixtures/make_optim_fixtures.py):
//   a.add(b, alpha=s)          fma(b, s, a)
//   a.addcmul(b, c, value=s)   fma(s * b, c, a)
//   a.addcdiv(b, c, value=s)   a + (s * b) / c       (no fusion)
//   a.mul(s), a.sqrt(), a + s  one rounding each
// bfloat16/float16 parameters compute in float32 and round each stored tensor once (as Adam's).
#include <cmath>
#include <cstdint>

#include "kernels/cpu/optim_loop.h"
#include "kernels/cpu/vec_math.h"
#include "tensor/optim_kernels.h"

// Every fusion below is written out; the compiler must not add any (g++ contracts a * b + c into
// an fma by default, which would round differently from PyTorch's separate mul_ and addcdiv_).
#pragma GCC optimize("fp-contract=off")

namespace fabric::cpu {
namespace {

using optim_loop::check_dtype;
using optim_loop::for_chunks_typed;

inline __m512 negate(__m512 x) { return _mm512_xor_ps(x, _mm512_set1_ps(-0.0f)); }

// ---- RMSprop ------------------------------------------------------------------------------------

void rmsprop_f64(int64_t b, int64_t e, double* p, const double* g, double* sq, double* ga,
                 double* buf, const RmspropKernelArgs& a) {
  const double alpha = a.alpha, c1 = 1 - a.alpha, wd = a.weight_decay, eps = a.eps,
               mom = a.momentum, neg_lr = -a.lr;
  const bool has_wd = wd != 0, centered = a.centered, has_mom = mom > 0, maximize = a.maximize;
  for (int64_t i = b; i < e; ++i) {
    double gi = maximize ? -g[i] : g[i];
    if (has_wd) gi = std::fma(p[i], wd, gi);  // grad.add(param, alpha=weight_decay)
    // square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
    const double si = std::fma(c1 * gi, gi, sq[i] * alpha);
    sq[i] = si;
    double avg;
    if (centered) {
      // grad_avg.mul_(alpha).add_(grad, alpha=1 - alpha)
      const double gai = std::fma(gi, c1, ga[i] * alpha);
      ga[i] = gai;
      // square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
      avg = std::sqrt(std::fma(-gai, gai, si));
    } else {
      avg = std::sqrt(si);
    }
    avg = avg + eps;
    if (has_mom) {
      const double bi = buf[i] * mom + gi / avg;  // buf.mul_(momentum).addcdiv_(grad, avg)
      buf[i] = bi;
      p[i] = std::fma(bi, neg_lr, p[i]);  // param.add_(buf, alpha=-lr)
    } else {
      p[i] = p[i] + (neg_lr * gi) / avg;  // param.addcdiv_(grad, avg, value=-lr)
    }
  }
}

// The same ops in float32 on 16 lanes, with the scalars rounded to float as PyTorch's float32
// kernels take them.
template <class T>
void rmsprop_vec(int64_t b, int64_t e, T* p, const T* g, T* sq, T* ga, T* buf,
                 const RmspropKernelArgs& a) {
  const __m512 alpha = vec::splat(static_cast<float>(a.alpha));
  const __m512 c1 = vec::splat(static_cast<float>(1 - a.alpha));
  const __m512 wd = vec::splat(static_cast<float>(a.weight_decay));
  const __m512 eps = vec::splat(static_cast<float>(a.eps));
  const __m512 mom = vec::splat(static_cast<float>(a.momentum));
  const __m512 neg_lr = vec::splat(static_cast<float>(-a.lr));
  // Flags in locals: the intrinsic stores may alias anything, which would force reloads of `a`.
  const bool has_wd = a.weight_decay != 0, centered = a.centered, has_mom = a.momentum > 0,
             maximize = a.maximize;
  for (int64_t i = b; i < e; i += 16) {
    const __mmask16 k = vec::tail_mask(e - i);
    __m512 gi = vec::load(g + i, k);
    if (maximize) gi = negate(gi);
    __m512 pi = vec::load(p + i, k);
    if (has_wd) gi = _mm512_fmadd_ps(pi, wd, gi);
    const __m512 si =
        _mm512_fmadd_ps(_mm512_mul_ps(c1, gi), gi, _mm512_mul_ps(vec::load(sq + i, k), alpha));
    vec::store(sq + i, si, k);
    __m512 avg;
    if (centered) {
      const __m512 gai = _mm512_fmadd_ps(gi, c1, _mm512_mul_ps(vec::load(ga + i, k), alpha));
      vec::store(ga + i, gai, k);
      avg = _mm512_sqrt_ps(_mm512_fmadd_ps(negate(gai), gai, si));
    } else {
      avg = _mm512_sqrt_ps(si);
    }
    avg = _mm512_add_ps(avg, eps);
    if (has_mom) {
      const __m512 bi =
          _mm512_add_ps(_mm512_mul_ps(vec::load(buf + i, k), mom), _mm512_div_ps(gi, avg));
      vec::store(buf + i, bi, k);
      pi = _mm512_fmadd_ps(bi, neg_lr, pi);
    } else {
      pi = _mm512_add_ps(pi, _mm512_div_ps(_mm512_mul_ps(neg_lr, gi), avg));
    }
    vec::store(p + i, pi, k);
  }
}

void rmsprop_step_kernel(DType dt, int64_t n, void* param, const void* grad, void* square_avg,
                         void* grad_avg, void* momentum_buffer, const RmspropKernelArgs& a) {
  check_dtype(dt, "rmsprop_step");
  FABRIC_CHECK(!a.centered || grad_avg != nullptr, ValueError,
               "rmsprop_step: centered needs a grad_avg buffer");
  FABRIC_CHECK(!(a.momentum > 0) || momentum_buffer != nullptr, ValueError,
               "rmsprop_step: momentum ", a.momentum, " needs a momentum buffer");
  if (n <= 0) return;
  for_chunks_typed(
      dt, n, [&](auto... chunk) { rmsprop_f64(chunk..., a); },
      [&](auto... chunk) { rmsprop_vec(chunk..., a); }, param, grad, square_avg, grad_avg,
      momentum_buffer);
}

// ---- Adagrad ------------------------------------------------------------------------------------

// PyTorch's clr, in float64 as Python computes it.
double adagrad_clr(const AdagradKernelArgs& a) { return a.lr / (1 + (a.step - 1) * a.lr_decay); }

void adagrad_f64(int64_t b, int64_t e, double* p, const double* g, double* sum,
                 const AdagradKernelArgs& a, double neg_clr) {
  const double wd = a.weight_decay, eps = a.eps;
  const bool has_wd = wd != 0, maximize = a.maximize;
  for (int64_t i = b; i < e; ++i) {
    double gi = maximize ? -g[i] : g[i];
    if (has_wd) gi = std::fma(p[i], wd, gi);     // grad.add(param, alpha=weight_decay)
    const double si = std::fma(gi, gi, sum[i]);  // state_sum.addcmul_(grad, grad, value=1)
    sum[i] = si;
    const double std_i = std::sqrt(si) + eps;  // state_sum.sqrt().add_(eps)
    p[i] = p[i] + (neg_clr * gi) / std_i;      // param.addcdiv_(grad, std, value=-clr)
  }
}

template <class T>
void adagrad_vec(int64_t b, int64_t e, T* p, const T* g, T* sum, const AdagradKernelArgs& a,
                 double neg_clr) {
  const __m512 wd = vec::splat(static_cast<float>(a.weight_decay));
  const __m512 eps = vec::splat(static_cast<float>(a.eps));
  const __m512 nclr = vec::splat(static_cast<float>(neg_clr));
  const bool has_wd = a.weight_decay != 0, maximize = a.maximize;
  for (int64_t i = b; i < e; i += 16) {
    const __mmask16 k = vec::tail_mask(e - i);
    __m512 gi = vec::load(g + i, k);
    if (maximize) gi = negate(gi);
    const __m512 pi = vec::load(p + i, k);
    if (has_wd) gi = _mm512_fmadd_ps(pi, wd, gi);
    const __m512 si = _mm512_fmadd_ps(gi, gi, vec::load(sum + i, k));
    vec::store(sum + i, si, k);
    const __m512 std_i = _mm512_add_ps(_mm512_sqrt_ps(si), eps);
    vec::store(p + i, _mm512_add_ps(pi, _mm512_div_ps(_mm512_mul_ps(nclr, gi), std_i)), k);
  }
}

void adagrad_step_kernel(DType dt, int64_t n, void* param, const void* grad, void* sum,
                         const AdagradKernelArgs& a) {
  check_dtype(dt, "adagrad_step");
  FABRIC_CHECK(sum != nullptr, ValueError, "adagrad_step: needs a sum buffer");
  if (n <= 0) return;
  const double neg_clr = -adagrad_clr(a);
  for_chunks_typed(
      dt, n, [&](auto... chunk) { adagrad_f64(chunk..., a, neg_clr); },
      [&](auto... chunk) { adagrad_vec(chunk..., a, neg_clr); }, param, grad, sum);
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(rmsprop_step_stub, cpu, &cpu::rmsprop_step_kernel);
FABRIC_REGISTER_KERNEL(adagrad_step_stub, cpu, &cpu::adagrad_step_kernel);
}  // namespace fabric
