// CPU kernels for the fused activation backward: AVX-512 over contiguous fp32/bf16/fp16 rows
// (computed in fp32), scalar double math for float64 and strided rows.
#include <cmath>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/vec_math.h"
#include "tensor/activation_backward.h"

namespace fabric::cpu {
namespace {

constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kInvSqrt2 = 0.7071067811865476;
constexpr double kInvSqrt2Pi = 0.3989422804014327;

// f'(saved) in double: the reference formulas.
double derivative(ActGrad k, double s) {
  switch (k) {
    case ActGrad::gelu_erf:
      return 0.5 * (1.0 + std::erf(s * kInvSqrt2)) + s * std::exp(-0.5 * s * s) * kInvSqrt2Pi;
    case ActGrad::gelu_tanh: {
      const double u = kSqrt2OverPi * (s + 0.044715 * s * s * s);
      const double t = std::tanh(u);
      return 0.5 * (1.0 + t) + 0.5 * s * (1.0 - t * t) * kSqrt2OverPi * (1.0 + 3.0 * 0.044715 * s * s);
    }
    case ActGrad::silu: {
      const double sg = 1.0 / (1.0 + std::exp(-s));
      return sg * (1.0 + s * (1.0 - sg));
    }
    case ActGrad::sigmoid: return s * (1.0 - s);
    case ActGrad::tanh: return 1.0 - s * s;
    case ActGrad::relu: return s <= 0 ? 0.0 : 1.0;  // NaN passes the gradient, as torch's threshold_backward
  }
  return 0;
}

// f'(saved) on 16 fp32 lanes.
inline __m512 derivative_ps(ActGrad k, __m512 s) {
  using namespace vec;
  switch (k) {
    case ActGrad::gelu_erf: {
      const __m512 cdf = _mm512_fmadd_ps(splat(0.5f), erf_ps(_mm512_mul_ps(s, splat(0.70710678f))), splat(0.5f));
      const __m512 pdf = _mm512_mul_ps(exp_ps(_mm512_mul_ps(splat(-0.5f), _mm512_mul_ps(s, s))), splat(0.39894228f));
      return _mm512_fmadd_ps(s, pdf, cdf);
    }
    case ActGrad::gelu_tanh: {
      const __m512 s2 = _mm512_mul_ps(s, s);
      const __m512 u = _mm512_mul_ps(splat(0.7978845608f), _mm512_fmadd_ps(_mm512_mul_ps(splat(0.044715f), s2), s, s));
      const __m512 t = tanh_ps(u);
      const __m512 du = _mm512_mul_ps(splat(0.7978845608f), _mm512_fmadd_ps(splat(3.0f * 0.044715f), s2, splat(1.0f)));
      const __m512 sech2 = _mm512_fnmadd_ps(t, t, splat(1.0f));
      const __m512 left = _mm512_fmadd_ps(splat(0.5f), t, splat(0.5f));
      return _mm512_fmadd_ps(_mm512_mul_ps(_mm512_mul_ps(splat(0.5f), s), sech2), du, left);
    }
    case ActGrad::silu: {
      const __m512 sg = sigmoid_ps(s);
      return _mm512_mul_ps(sg, _mm512_fmadd_ps(s, _mm512_sub_ps(splat(1.0f), sg), splat(1.0f)));
    }
    case ActGrad::sigmoid: return _mm512_mul_ps(s, _mm512_sub_ps(splat(1.0f), s));
    case ActGrad::tanh: return _mm512_fnmadd_ps(s, s, splat(1.0f));
    case ActGrad::relu:
      // Not (s <= 0), unordered true: NaN passes the gradient, as torch's threshold_backward.
      return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(s, _mm512_setzero_ps(), _CMP_NLE_UQ), splat(1.0f));
  }
  return s;
}

template <typename T>
void row_vec(ActGrad k, T* out, const T* g, const T* s, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    vec::store(out + i, _mm512_mul_ps(vec::load(g + i), derivative_ps(k, vec::load(s + i))));
  if (i < n) {
    const __mmask16 m = vec::tail_mask(n - i);
    vec::store(out + i, _mm512_mul_ps(vec::load(g + i, m), derivative_ps(k, vec::load(s + i, m))), m);
  }
}

void activation_backward_kernel(ActGrad k, const StridedLoop& loop) {
  const DType dt = loop.ops[0].dtype;
  visit_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, BFloat16> || std::is_same_v<T, Half> ||
                  std::is_same_v<T, double>) {
      for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* st) {
        constexpr int64_t sz = sizeof(T);
        if constexpr (!std::is_same_v<T, double>) {
          if (st[0] == sz && st[1] == sz && st[2] == sz) {
            row_vec(k, reinterpret_cast<T*>(p[0]), reinterpret_cast<const T*>(p[1]),
                    reinterpret_cast<const T*>(p[2]), n);
            return;
          }
        }
        for (int64_t i = 0; i < n; ++i) {
          const double g = scalar_cast<double>(*reinterpret_cast<const T*>(p[1] + i * st[1]));
          const double s = scalar_cast<double>(*reinterpret_cast<const T*>(p[2] + i * st[2]));
          *reinterpret_cast<T*>(p[0] + i * st[0]) = scalar_cast<T>(g * derivative(k, s));
        }
      });
    }
  });
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(activation_backward_stub, cpu, &cpu::activation_backward_kernel);
}
