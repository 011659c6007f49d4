// CPU kernels for the parameterised activations (tensor/activation_kernels.h): fp32/bf16/fp16 on
// AVX-512 in fp32 (vec_math.h's exp/log), float64 in scalar libm code. softplus takes
// log1p(exp(t)) as max(t, 0) + log1p(exp(-|t|)): torch's value where torch's is finite, and no
// overflow to inf for large t (torch's float kernel gives inf past exp's range).
#include <cmath>

#include "kernels/cpu/elementwise_common.h"
#include "kernels/cpu/vec_log1p_expm1.h"
#include "tensor/activation_kernels.h"

namespace fabric::cpu {
namespace {

using namespace ew;
using vec::splat;

// log1p(u) for u in [0, 1] to within a few ulp: log(w) for w = 1 + u, plus the rounding error of w
// relative to w, (u - (w - 1)) / w (the division as a refined reciprocal: it only corrects).
inline __m512 log1p_unit_ps(__m512 u) {
  const __m512 w = _mm512_add_ps(splat(1.0f), u);
  __m512 r = _mm512_rcp14_ps(w);
  r = _mm512_mul_ps(r, _mm512_fnmadd_ps(w, r, splat(2.0f)));  // one Newton step: ~28 bits
  const __m512 err = _mm512_sub_ps(u, _mm512_sub_ps(w, splat(1.0f)));
  return _mm512_fmadd_ps(err, r, vec::log_ps(w));
}

// log1p(exp(t)); NaN propagates.
inline __m512 softplus_unit_ps(__m512 t) {
  const __m512 u = vec::exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), vec::abs_ps(t)));
  return _mm512_add_ps(_mm512_max_ps(_mm512_setzero_ps(), t), log1p_unit_ps(u));
}

// min(max(x + 3, 0), 6): vmaxps/vminps return their second operand on NaN, so NaN propagates.
inline __m512 relu6_of_x_plus_3_ps(__m512 x) {
  return _mm512_min_ps(splat(6.0f),
                       _mm512_max_ps(_mm512_setzero_ps(), _mm512_add_ps(x, splat(3.0f))));
}

template <typename T>
void vec_activation(ActivationOp op, const ActivationParams& p, const StridedLoop& loop) {
  switch (op) {
    case ActivationOp::leaky_relu: {
      const float slope = static_cast<float>(p.negative_slope);
      return unary_f32_loop<T>(loop, [=](__m512 x) {
        const __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ);
        return _mm512_mask_mov_ps(_mm512_mul_ps(x, splat(slope)), pos, x);
      });
    }
    case ActivationOp::elu: {
      const float neg_coef = static_cast<float>(p.alpha * p.scale);
      const float pos_coef = static_cast<float>(p.scale);
      const float in_scale = static_cast<float>(p.input_scale);
      return unary_f32_loop<T>(
          loop,
          [=](__m512 x) {
            // expm1 as torch's vectorised elu (Sleef_expm1f): exp(x) - 1 cancels for small
            // |x| (6e-4 relative at x = -1e-4).
            const __m512 neg =
                _mm512_mul_ps(vec::expm1_ps(_mm512_mul_ps(x, splat(in_scale))), splat(neg_coef));
            const __mmask16 le0 = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LE_OQ);
            return _mm512_mask_mov_ps(_mm512_mul_ps(x, splat(pos_coef)), le0, neg);
          },
          true);
    }
    case ActivationOp::softplus: {
      const float beta = static_cast<float>(p.beta);
      const float inv_beta = 1.0f / beta;  // a multiplication: about an ulp from torch's division
      const float threshold = static_cast<float>(p.threshold);
      return unary_f32_loop<T>(
          loop,
          [=](__m512 x) {
            const __m512 t = _mm512_mul_ps(x, splat(beta));
            const __m512 soft = _mm512_mul_ps(softplus_unit_ps(t), splat(inv_beta));
            const __mmask16 linear = _mm512_cmp_ps_mask(t, splat(threshold), _CMP_GT_OQ);
            return _mm512_mask_mov_ps(soft, linear, x);
          },
          true);
    }
    case ActivationOp::hardtanh: {
      const float lo = static_cast<float>(p.min_val), hi = static_cast<float>(p.max_val);
      // max then min, as clamp: min_val > max_val gives max_val everywhere; NaN propagates.
      return unary_f32_loop<T>(
          loop, [=](__m512 x) { return _mm512_min_ps(splat(hi), _mm512_max_ps(splat(lo), x)); });
    }
    case ActivationOp::mish:
      return unary_f32_loop<T>(
          loop, [](__m512 x) { return _mm512_mul_ps(x, vec::tanh_softplus_ps(x)); }, true);
    case ActivationOp::hardswish:
      return unary_f32_loop<T>(loop, [](__m512 x) {
        return _mm512_div_ps(_mm512_mul_ps(x, relu6_of_x_plus_3_ps(x)), splat(6.0f));
      });
    case ActivationOp::hardsigmoid:
      return unary_f32_loop<T>(
          loop, [](__m512 x) { return _mm512_div_ps(relu6_of_x_plus_3_ps(x), splat(6.0f)); });
  }
}

// NaN-propagating clamp, max first (clamp's order).
double clamp_nan(double x, double lo, double hi) {
  if (std::isnan(x)) return x;
  return std::min(std::max(x, lo), hi);
}

double softplus_unit(double t) { return std::max(t, 0.0) + std::log1p(std::exp(-std::fabs(t))); }

double f64_value(ActivationOp op, const ActivationParams& p, double x) {
  switch (op) {
    case ActivationOp::leaky_relu:
      return x > 0 ? x : x * p.negative_slope;
    case ActivationOp::elu:
      return x <= 0 ? std::expm1(x * p.input_scale) * (p.alpha * p.scale) : x * p.scale;
    case ActivationOp::softplus: {
      const double t = x * p.beta;
      if (std::isnan(t)) return t;
      return t > p.threshold ? x : softplus_unit(t) / p.beta;
    }
    case ActivationOp::hardtanh:
      return std::isnan(x) ? x : std::min(std::max(x, p.min_val), p.max_val);
    case ActivationOp::mish:
      return std::isnan(x) ? x : x * std::tanh(softplus_unit(x));
    case ActivationOp::hardswish:
      return x * clamp_nan(x + 3.0, 0.0, 6.0) / 6.0;
    case ActivationOp::hardsigmoid:
      return clamp_nan(x + 3.0, 0.0, 6.0) / 6.0;
  }
  return x;
}

void f64_activation(ActivationOp op, const ActivationParams& p, const StridedLoop& loop) {
  for_each_row(loop, [&](char* const* ptr, int64_t n, const int64_t* s) {
    for (int64_t i = 0; i < n; ++i)
      store_elem<double>(ptr[0] + i * s[0], f64_value(op, p, load_elem<double>(ptr[1] + i * s[1])));
  });
}

void activation_kernel(ActivationOp op, const ActivationParams& p, const StridedLoop& loop) {
  const DType dt = loop.ops[0].dtype;
  switch (dt) {
    case DType::float32:
      return vec_activation<float>(op, p, loop);
    case DType::bfloat16:
      return vec_activation<BFloat16>(op, p, loop);
    case DType::float16:
      return vec_activation<Half>(op, p, loop);
    case DType::float64:
      return f64_activation(op, p, loop);
    default:
      break;
  }
  throw DTypeError(::fabric::detail::cat("activation kernel: no CPU kernel for ", dtype_name(dt),
                                         " (expected float64, float32, float16 or bfloat16)"));
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(activation_stub, cpu, &cpu::activation_kernel);
}  // namespace fabric
