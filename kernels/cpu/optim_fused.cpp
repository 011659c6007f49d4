// Fused CPU optimizer updates (SGD, Adam/AdamW): each element's parameter, gradient and state are
// loaded once, updated in registers and stored once, over OpenMP chunks. float64 is scalar code
// that follows PyTorch's single-tensor implementation op by op; the float32 family is AVX-512.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/cpu/vec_math.h"
#include "tensor/error.h"
#include "tensor/optim_kernels.h"

namespace fabric::cpu {
namespace {

// Work items are multiples of 16 lanes so only the last one has a partial vector.
constexpr int64_t kChunk = int64_t{1} << 14;
constexpr int64_t kParallelMin = int64_t{1} << 15;

template <class F>
void parallel_chunks(int64_t n, const F& f) {
  if (n < kParallelMin || omp_get_max_threads() == 1) {
    f(int64_t{0}, n);
    return;
  }
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) f(c * kChunk, std::min(n, (c + 1) * kChunk));
}

void check_dtype(DType dt, const char* kernel) {
  FABRIC_CHECK(dt == DType::float64 || dt == DType::float32 || dt == DType::bfloat16 || dt == DType::float16,
               DTypeError, kernel, ": parameters of dtype ", dtype_name(dt),
               " are not supported (expected float64, float32, bfloat16 or float16)");
}

// torch.maximum: NaN in either operand gives NaN.
inline double maximum_nan(double a, double b) { return (std::isnan(a) || std::isnan(b)) ? a + b : std::max(a, b); }
inline __m512 maximum_nan(__m512 a, __m512 b) {
  const __m512 r = _mm512_max_ps(a, b);  // b when either is NaN
  return _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q), a);
}
inline __m512 negate(__m512 x) { return _mm512_xor_ps(x, _mm512_set1_ps(-0.0f)); }

// The step's scalars, computed in float64 as PyTorch computes them in Python.
struct AdamScalars {
  double step_size, bc2_sqrt, lerp_coeff, decay;
  bool lerp_small;  // exp_avg.lerp_(g, w): m + w*(g-m) for |w| < 0.5, else g + (w-1)*(g-m)
};
AdamScalars adam_scalars(const AdamKernelArgs& a) {
  AdamScalars s{};
  const double bias_correction1 = 1 - std::pow(a.beta1, a.step);
  const double bias_correction2 = 1 - std::pow(a.beta2, a.step);
  s.step_size = a.lr / bias_correction1;
  s.bc2_sqrt = std::sqrt(bias_correction2);
  const double w = 1 - a.beta1;
  s.lerp_small = std::abs(w) < 0.5;
  s.lerp_coeff = s.lerp_small ? w : w - 1;
  s.decay = 1 - a.lr * a.weight_decay;
  return s;
}

void adam_f64(int64_t b, int64_t e, double* p, const double* g, double* m, double* v, double* mx,
              const AdamKernelArgs& a, const AdamScalars& s) {
  const double wd = a.weight_decay, beta2 = a.beta2, c2 = 1 - a.beta2, neg_step = -s.step_size;
  for (int64_t i = b; i < e; ++i) {
    double gi = a.maximize ? -g[i] : g[i];
    double pi = p[i];
    if (wd != 0) {
      if (a.decoupled_weight_decay) {
        pi = pi * s.decay;                 // param.mul_(1 - lr * weight_decay)
      } else {
        gi = std::fma(pi, wd, gi);         // grad.add(param, alpha=weight_decay)
      }
    }
    m[i] = std::fma(s.lerp_coeff, gi - m[i], s.lerp_small ? m[i] : gi);  // lerp_(grad, 1 - beta1)
    double vi = v[i] * beta2;              // exp_avg_sq.mul_(beta2)
    vi = vi + c2 * gi * gi;                // .addcmul_(grad, grad, value=1 - beta2)
    v[i] = vi;
    if (a.amsgrad) {
      mx[i] = maximum_nan(mx[i], vi);
      vi = mx[i];
    }
    const double denom = std::sqrt(vi) / s.bc2_sqrt + a.eps;
    p[i] = pi + neg_step * m[i] / denom;   // param.addcdiv_(exp_avg, denom, value=-step_size)
  }
}

// float32 arithmetic on 16 lanes; T is float, BFloat16 or Half (stored values rounded once).
template <class T>
void adam_vec(int64_t b, int64_t e, T* p, const T* g, T* m, T* v, T* mx, const AdamKernelArgs& a,
              const AdamScalars& s) {
  const float wf = static_cast<float>(1 - a.beta1);
  const bool small = std::abs(wf) < 0.5f;
  const __m512 coeff = vec::splat(small ? wf : wf - 1.0f);
  const __m512 wd = vec::splat(static_cast<float>(a.weight_decay));
  const __m512 decay = vec::splat(static_cast<float>(s.decay));
  const __m512 beta2 = vec::splat(static_cast<float>(a.beta2));
  const __m512 c2 = vec::splat(static_cast<float>(1 - a.beta2));
  const __m512 bc2s = vec::splat(static_cast<float>(s.bc2_sqrt));
  const __m512 eps = vec::splat(static_cast<float>(a.eps));
  const __m512 neg_step = vec::splat(static_cast<float>(-s.step_size));
  // Flags in locals: the intrinsic stores may alias anything, which would force reloads of `a`.
  const bool has_wd = a.weight_decay != 0, decoupled = a.decoupled_weight_decay, maximize = a.maximize,
             amsgrad = a.amsgrad;
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
    __m512 mi = vec::load(m + i, k);
    mi = _mm512_fmadd_ps(coeff, _mm512_sub_ps(gi, mi), small ? mi : gi);
    __m512 vi = _mm512_mul_ps(vec::load(v + i, k), beta2);
    vi = _mm512_add_ps(vi, _mm512_mul_ps(_mm512_mul_ps(c2, gi), gi));
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
  auto run = [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    T* p = static_cast<T*>(param);
    const T* g = static_cast<const T*>(grad);
    T* m = static_cast<T*>(exp_avg);
    T* v = static_cast<T*>(exp_avg_sq);
    T* mx = static_cast<T*>(max_exp_avg_sq);
    parallel_chunks(n, [&](int64_t b, int64_t e) {
      if constexpr (std::is_same_v<T, double>) {
        adam_f64(b, e, p, g, m, v, mx, a, s);
      } else {
        adam_vec<T>(b, e, p, g, m, v, mx, a, s);
      }
    });
  };
  switch (dt) {
    case DType::float64: run(static_cast<double*>(nullptr)); break;
    case DType::float32: run(static_cast<float*>(nullptr)); break;
    case DType::bfloat16: run(static_cast<BFloat16*>(nullptr)); break;
    default: run(static_cast<Half*>(nullptr)); break;
  }
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
  auto run = [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    T* p = static_cast<T*>(param);
    const T* g = static_cast<const T*>(grad);
    T* buf = static_cast<T*>(momentum_buffer);
    parallel_chunks(n, [&](int64_t b, int64_t e) {
      if constexpr (std::is_same_v<T, double>) {
        sgd_f64(b, e, p, g, buf, a);
      } else {
        sgd_vec<T>(b, e, p, g, buf, a);
      }
    });
  };
  switch (dt) {
    case DType::float64: run(static_cast<double*>(nullptr)); break;
    case DType::float32: run(static_cast<float*>(nullptr)); break;
    case DType::bfloat16: run(static_cast<BFloat16*>(nullptr)); break;
    default: run(static_cast<Half*>(nullptr)); break;
  }
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(adam_step_stub, cpu, &cpu::adam_step_kernel);
FABRIC_REGISTER_KERNEL(sgd_step_stub, cpu, &cpu::sgd_step_kernel);
}  // namespace fabric
