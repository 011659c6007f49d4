// CPU kernels for log_sigmoid, hardshrink, softshrink and threshold, forward and backward
// (tensor/activation_extra_kernels.h): fp32/bf16/fp16 on AVX-512 in fp32, float64 in scalar libm
// code. Masks are selected, not multiplied: torch's 0 stays 0 for an infinite gradient.
#include <cmath>
#include <type_traits>

#include "kernels/cpu/elementwise_common.h"
#include "kernels/cpu/vec_log1p_expm1.h"
#include "tensor/activation_extra_kernels.h"

namespace fabric::cpu {
namespace {

using namespace ew;
using vec::splat;

// v rounded to T and widened back to fp32 (exactly); float: v itself.
template <typename T>
inline __m512 round_through(__m512 v) {
  if constexpr (std::is_same_v<T, Half>) {
    return _mm512_cvtph_ps(_mm512_cvtps_ph(v, vec::kHalfRound));
  } else if constexpr (std::is_same_v<T, BFloat16>) {
    return vec::bf16_widen(vec::bf16_round(v));
  } else {
    return v;
  }
}

// z / (1 + z) for z = exp(-|x|): the sigmoid of -|x|, which log_sigmoid's gradient is made of.
// torch's CPU backward reads z from the buffer its forward saved in the tensor's dtype, so for
// bf16 (and fp16, as torch >= 2.1 does) z is rounded to T before the division; fp32 keeps it.
template <typename T>
inline __m512 sigmoid_of_neg_abs_ps(__m512 x) {
  const __m512 z =
      round_through<T>(vec::exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), vec::abs_ps(x))));
  return _mm512_div_ps(z, _mm512_add_ps(splat(1.0f), z));
}

// -lambd <= x <= lambd (false for NaN): where the shrinks give 0 and their gradient 0.
inline __mmask16 within_lambd(__m512 x, float lambd) {
  return _mm512_cmp_ps_mask(x, splat(-lambd), _CMP_GE_OQ) &
         _mm512_cmp_ps_mask(x, splat(lambd), _CMP_LE_OQ);
}

template <typename T>
void vec_forward(ExtraActivation op, const ExtraActivationParams& p, const StridedLoop& loop) {
  const float lambd = static_cast<float>(p.lambd);
  switch (op) {
    case ExtraActivation::log_sigmoid:
      return unary_f32_loop<T>(
          loop,
          [](__m512 x) {
            const __m512 z = vec::exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), vec::abs_ps(x)));
            // vminps returns its second operand on NaN: NaN propagates.
            return _mm512_sub_ps(_mm512_min_ps(_mm512_setzero_ps(), x), vec::log1p_ps(z));
          },
          true);
    case ExtraActivation::hardshrink:
      return unary_f32_loop<T>(loop, [=](__m512 x) {
        return _mm512_mask_mov_ps(x, within_lambd(x, lambd), _mm512_setzero_ps());
      });
    case ExtraActivation::softshrink:
      return unary_f32_loop<T>(loop, [=](__m512 x) {
        const __mmask16 above = _mm512_cmp_ps_mask(x, splat(lambd), _CMP_GT_OQ);
        const __mmask16 below = _mm512_cmp_ps_mask(x, splat(-lambd), _CMP_LT_OQ);
        const __m512 r = _mm512_maskz_mov_ps(above, _mm512_sub_ps(x, splat(lambd)));
        return _mm512_mask_mov_ps(r, below, _mm512_add_ps(x, splat(lambd)));
      });
    case ExtraActivation::threshold: {
      const float th = static_cast<float>(p.threshold), value = static_cast<float>(p.value);
      return unary_f32_loop<T>(loop, [=](__m512 x) {
        return _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(x, splat(th), _CMP_LE_OQ), splat(value));
      });
    }
  }
}

template <typename T>
void vec_backward(ExtraActivation op, const ExtraActivationParams& p, const StridedLoop& loop) {
  const float lambd = static_cast<float>(p.lambd);
  switch (op) {
    case ExtraActivation::log_sigmoid:
      // torch's: (x < 0 ? 1 - z / (1 + z) : z / (1 + z)) * g, one rounding to T at the end.
      return binary_f32_loop<T>(
          loop, nullptr,
          [](__m512 g, __m512 x) {
            const __m512 s = sigmoid_of_neg_abs_ps<T>(x);
            const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
            return _mm512_mul_ps(g, _mm512_mask_sub_ps(s, neg, splat(1.0f), s));
          },
          true);
    case ExtraActivation::hardshrink:
    case ExtraActivation::softshrink:
      return binary_f32_loop<T>(loop, nullptr, [=](__m512 g, __m512 x) {
        return _mm512_mask_mov_ps(g, within_lambd(x, lambd), _mm512_setzero_ps());
      });
    case ExtraActivation::threshold: {
      const float th = static_cast<float>(p.threshold);
      return binary_f32_loop<T>(loop, nullptr, [=](__m512 g, __m512 x) {
        return _mm512_mask_mov_ps(g, _mm512_cmp_ps_mask(x, splat(th), _CMP_LE_OQ),
                                  _mm512_setzero_ps());
      });
    }
  }
}

double f64_value(ExtraActivation op, const ExtraActivationParams& p, double x) {
  switch (op) {
    case ExtraActivation::log_sigmoid:
      return std::isnan(x) ? x : std::min(x, 0.0) - std::log1p(std::exp(-std::fabs(x)));
    case ExtraActivation::hardshrink:
      return x >= -p.lambd && x <= p.lambd ? 0.0 : x;
    case ExtraActivation::softshrink:
      return x > p.lambd ? x - p.lambd : x < -p.lambd ? x + p.lambd : 0.0;
    case ExtraActivation::threshold:
      return x <= p.threshold ? p.value : x;
  }
  return x;
}

double f64_grad(ExtraActivation op, const ExtraActivationParams& p, double g, double x) {
  switch (op) {
    case ExtraActivation::log_sigmoid: {
      const double z = std::exp(-std::fabs(x)), s = z / (1.0 + z);
      return g * (x < 0 ? 1.0 - s : s);
    }
    case ExtraActivation::hardshrink:
    case ExtraActivation::softshrink:
      return x >= -p.lambd && x <= p.lambd ? 0.0 : g;
    case ExtraActivation::threshold:
      return x <= p.threshold ? 0.0 : g;
  }
  return g;
}

void f64_forward(ExtraActivation op, const ExtraActivationParams& p, const StridedLoop& loop) {
  for_each_row(loop, [&](char* const* ptr, int64_t n, const int64_t* s) {
    for (int64_t i = 0; i < n; ++i)
      store_elem<double>(ptr[0] + i * s[0], f64_value(op, p, load_elem<double>(ptr[1] + i * s[1])));
  });
}

void f64_backward(ExtraActivation op, const ExtraActivationParams& p, const StridedLoop& loop) {
  for_each_row(loop, [&](char* const* ptr, int64_t n, const int64_t* s) {
    for (int64_t i = 0; i < n; ++i)
      store_elem<double>(ptr[0] + i * s[0], f64_grad(op, p, load_elem<double>(ptr[1] + i * s[1]),
                                                     load_elem<double>(ptr[2] + i * s[2])));
  });
}

[[noreturn]] void no_kernel(const char* what, DType dt) {
  throw DTypeError(::fabric::detail::cat(what, ": no CPU kernel for ", dtype_name(dt),
                                         " (expected float64, float32, float16 or bfloat16)"));
}

void forward_kernel(ExtraActivation op, const ExtraActivationParams& p, const StridedLoop& loop) {
  const DType dt = loop.ops[0].dtype;
  switch (dt) {
    case DType::float32:
      return vec_forward<float>(op, p, loop);
    case DType::bfloat16:
      return vec_forward<BFloat16>(op, p, loop);
    case DType::float16:
      return vec_forward<Half>(op, p, loop);
    case DType::float64:
      return f64_forward(op, p, loop);
    default:
      no_kernel("activation kernel", dt);
  }
}

void backward_kernel(ExtraActivation op, const ExtraActivationParams& p, const StridedLoop& loop) {
  const DType dt = loop.ops[0].dtype;
  switch (dt) {
    case DType::float32:
      return vec_backward<float>(op, p, loop);
    case DType::bfloat16:
      return vec_backward<BFloat16>(op, p, loop);
    case DType::float16:
      return vec_backward<Half>(op, p, loop);
    case DType::float64:
      return f64_backward(op, p, loop);
    default:
      no_kernel("activation_backward", dt);
  }
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(extra_activation_stub, cpu, &cpu::forward_kernel);
FABRIC_REGISTER_KERNEL(extra_activation_backward_stub, cpu, &cpu::backward_kernel);
}  // namespace fabric
