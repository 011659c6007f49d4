// CPU kernels for the fused activation backward: AVX-512 over fp32/bf16/fp16 rows (computed in
// fp32; strided rows gathered into contiguous blocks first, for the same bits), scalar double
// math for float64.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/gelu_split.h"
#include "kernels/cpu/vec_math.h"
#include "tensor/activation_backward.h"
#include "tensor/gelu_tanh_math.h"

namespace fabric::cpu {
namespace {

constexpr double kInvSqrt2 = 0.7071067811865476;
constexpr double kInvSqrt2Pi = 0.3989422804014327;

// f'(saved) in double: the reference formulas.
double derivative(ActGrad k, double s) {
  switch (k) {
    case ActGrad::gelu_erf:
      return 0.5 * (1.0 + std::erf(s * kInvSqrt2)) + s * std::exp(-0.5 * s * s) * kInvSqrt2Pi;
    case ActGrad::gelu_tanh:
      return gelu_tanh::derivative(s);  // no 1 + tanh cancellation
    case ActGrad::silu: {
      const double sg = 1.0 / (1.0 + std::exp(-s));
      return sg * (1.0 + s * (1.0 - sg));
    }
    case ActGrad::sigmoid: return s * (1.0 - s);
    case ActGrad::tanh:
      return 1.0 - s * s;
    default: break;  // the parameterised kinds: grad_of
  }
  return 0;
}

// f'(saved) on 16 fp32 lanes.
inline __m512 derivative_ps(ActGrad k, __m512 s) {
  using namespace vec;
  switch (k) {
    case ActGrad::gelu_erf: return gelu_erf_grad_ps(s);  // rows take gelu_erf_row's split
    case ActGrad::gelu_tanh:
      return gelu_tanh_grad_ps(s);  // rows take gelu_tanh_row
    case ActGrad::silu: {
      const __m512 sg = sigmoid_ps(s);
      return _mm512_mul_ps(sg, _mm512_fmadd_ps(s, _mm512_sub_ps(splat(1.0f), sg), splat(1.0f)));
    }
    case ActGrad::sigmoid: return _mm512_mul_ps(s, _mm512_sub_ps(splat(1.0f), s));
    case ActGrad::tanh:
      return _mm512_fnmadd_ps(s, s, splat(1.0f));
    default: break;  // the parameterised kinds: grad_ps
  }
  return s;
}

// ---- the parameterised activations (saved: input x), torch's formulas at the kinks -------------
// Regions where torch's gradient is 0 are selected, not multiplied: 0, not g * 0 (NaN for g = inf).

// sigmoid(t) in double, overflow-free for either sign of t.
double sigmoid(double t) {
  if (t >= 0) return 1.0 / (1.0 + std::exp(-t));
  const double e = std::exp(t);
  return e / (1.0 + e);
}

double grad_of(ActGrad k, const ActivationParams& p, double g, double x) {
  switch (k) {
    case ActGrad::relu:  // saved: the output; a NaN one passes the gradient (threshold_backward)
      return x <= 0 ? 0.0 : g;
    case ActGrad::leaky_relu:
      return x > 0 ? g : g * p.negative_slope;
    case ActGrad::elu:
      return x <= 0 ? g * p.input_scale * (p.alpha * p.scale) * std::exp(x * p.input_scale)
                    : g * p.scale;
    case ActGrad::softplus: {
      const double t = x * p.beta;
      return t > p.threshold ? g : g * sigmoid(t);
    }
    case ActGrad::hardtanh:
      return x <= p.min_val || x >= p.max_val ? 0.0 : g;
    case ActGrad::mish: {
      const double tsp = std::tanh(std::max(x, 0.0) + std::log1p(std::exp(-std::fabs(x))));
      return g * (tsp + x * sigmoid(x) * (1.0 - tsp * tsp));
    }
    case ActGrad::hardswish:
      return x < -3.0 ? 0.0 : x <= 3.0 ? g * (x / 3.0 + 0.5) : g;
    case ActGrad::hardsigmoid:
      return x > -3.0 && x < 3.0 ? g * static_cast<double>(1.0f / 6.0f) : 0.0;
    default:
      return g * derivative(k, x);
  }
}

inline __m512 grad_ps(ActGrad k, const ActivationParams& p, __m512 g, __m512 x) {
  using namespace vec;
  const __m512 zero = _mm512_setzero_ps();
  switch (k) {
    case ActGrad::relu:  // not (x <= 0), unordered true: a NaN output passes the gradient
      return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, zero, _CMP_NLE_UQ), g);
    case ActGrad::leaky_relu:
      return _mm512_mask_mov_ps(_mm512_mul_ps(g, splat(static_cast<float>(p.negative_slope))),
                                _mm512_cmp_ps_mask(x, zero, _CMP_GT_OQ), g);
    case ActGrad::elu: {
      const float in_scale = static_cast<float>(p.input_scale);
      const __m512 neg = _mm512_mul_ps(
          _mm512_mul_ps(g, splat(static_cast<float>(p.input_scale * p.alpha * p.scale))),
          exp_ps(_mm512_mul_ps(x, splat(in_scale))));
      return _mm512_mask_mov_ps(_mm512_mul_ps(g, splat(static_cast<float>(p.scale))),
                                _mm512_cmp_ps_mask(x, zero, _CMP_LE_OQ), neg);
    }
    case ActGrad::softplus: {
      const __m512 t = _mm512_mul_ps(x, splat(static_cast<float>(p.beta)));
      return _mm512_mask_mov_ps(
          _mm512_mul_ps(g, sigmoid_ps(t)),
          _mm512_cmp_ps_mask(t, splat(static_cast<float>(p.threshold)), _CMP_GT_OQ), g);
    }
    case ActGrad::hardtanh: {
      const __mmask16 out =
          _mm512_cmp_ps_mask(x, splat(static_cast<float>(p.min_val)), _CMP_LE_OQ) |
          _mm512_cmp_ps_mask(x, splat(static_cast<float>(p.max_val)), _CMP_GE_OQ);
      return _mm512_mask_mov_ps(g, out, zero);
    }
    case ActGrad::mish: {
      const __m512 tsp = tanh_softplus_ps(x);
      const __m512 d = _mm512_fmadd_ps(_mm512_mul_ps(x, sigmoid_ps(x)),
                                       _mm512_fnmadd_ps(tsp, tsp, splat(1.0f)), tsp);
      return _mm512_mul_ps(g, d);
    }
    case ActGrad::hardswish: {
      const __m512 mid =
          _mm512_mul_ps(g, _mm512_add_ps(_mm512_div_ps(x, splat(3.0f)), splat(0.5f)));
      __m512 r = _mm512_mask_mov_ps(g, _mm512_cmp_ps_mask(x, splat(3.0f), _CMP_LE_OQ), mid);
      return _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, splat(-3.0f), _CMP_LT_OQ), zero);
    }
    case ActGrad::hardsigmoid: {
      const __mmask16 in = _mm512_cmp_ps_mask(x, splat(-3.0f), _CMP_GT_OQ) &
                           _mm512_cmp_ps_mask(x, splat(3.0f), _CMP_LT_OQ);
      return _mm512_maskz_mov_ps(in, _mm512_mul_ps(g, splat(1.0f / 6.0f)));
    }
    default:
      return _mm512_mul_ps(g, derivative_ps(k, x));
  }
}

template <typename T>
void row_vec(ActGrad k, const ActivationParams& p, T* out, const T* g, const T* s, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    vec::store(out + i, grad_ps(k, p, vec::load(g + i), vec::load(s + i)));
  if (i < n) {
    const __mmask16 m = vec::tail_mask(n - i);
    vec::store(out + i, grad_ps(k, p, vec::load(g + i, m), vec::load(s + i, m)), m);
  }
}

// GELU (erf): the lane-split driver of gelu_split.h over blocks, prefetching ahead of the three
// streams (the derivative's exp-based half runs only on the x < -1 and x >= 1.31 lanes).
template <typename T>
void gelu_erf_row(T* out, const T* g, const T* x, int64_t n) {
  for (int64_t i = 0; i < n; i += gelu::kBlock) {
    const int64_t m = std::min(gelu::kBlock, n - i);
    gelu::prefetch_ahead(g + i, m);
    gelu::prefetch_ahead(x + i, m);
    gelu::prefetchw_ahead(out + i, m);
    gelu::split_block(
        x + i, m, [](__m512 v) { return vec::gelu_erf_grad_is_large(v); },
        [](__m512 v) { return vec::gelu_erf_grad_small_ps(v); },
        [](__m512 v) { return vec::gelu_erf_grad_large_ps(v); },
        [&](int64_t j, __m512 d, __mmask16 live) {
          T* o = out + i + j;
          if (live == 0xFFFF)
            vec::store(o, _mm512_mul_ps(vec::load(g + i + j), d));
          else
            vec::store(o, _mm512_mul_ps(vec::load(g + i + j, live), d), live);
        });
  }
}

// GELU (tanh): float32 rows take the float32-accurate derivative, bfloat16/float16 rows the cheaper
// one their precision allows; software prefetch ahead of the three streams, as gelu_erf_row.
// Gradients that T rounds to zero (magnitude at most half its smallest subnormal, ties to even)
// are PyTorch's g * (+0) (gelu_tanh_backward_ps).
template <typename T>
void gelu_tanh_row(T* out, const T* g, const T* x, int64_t n) {
  constexpr bool kFull = std::is_same_v<T, float>;
  constexpr float kZeroBelow = std::is_same_v<T, float>      ? 0.0f
                               : std::is_same_v<T, BFloat16> ? 0x1p-134f
                                                             : 0x1p-25f;  // float16
  const auto grad = [](__m512 gv, __m512 xv) {
    return vec::gelu_tanh_backward_ps<kFull>(gv, xv, kZeroBelow);
  };
  for (int64_t i = 0; i < n; i += gelu::kBlock) {
    const int64_t m = std::min(gelu::kBlock, n - i);
    gelu::prefetch_ahead(g + i, m);
    gelu::prefetch_ahead(x + i, m);
    gelu::prefetchw_ahead(out + i, m);
    int64_t j = i;
    for (; j + 16 <= i + m; j += 16) vec::store(out + j, grad(vec::load(g + j), vec::load(x + j)));
    if (j < i + m) {
      const __mmask16 t = vec::tail_mask(i + m - j);
      vec::store(out + j, grad(vec::load(g + j, t), vec::load(x + j, t)), t);
    }
  }
}

// One contiguous row of fp32/bf16/fp16: the vector kernels, computed in fp32.
template <typename T>
void contiguous_row(ActGrad k, const ActivationParams& prm, T* out, const T* g, const T* s,
                    int64_t n) {
  if (k == ActGrad::gelu_erf) return gelu_erf_row(out, g, s, n);
  if (k == ActGrad::gelu_tanh) return gelu_tanh_row(out, g, s, n);
  row_vec(k, prm, out, g, s, n);
}

// A strided row of fp32/bf16/fp16 (a transposed or broadcast operand): gathered into contiguous
// blocks and run through contiguous_row, so that every element gets the same bits as in a
// contiguous tensor (no second, differently rounded formula for the strided layout).
template <typename T>
void strided_row(ActGrad k, const ActivationParams& prm, char* const* p, int64_t n,
                 const int64_t* st) {
  constexpr int64_t kBlock = 256;
  alignas(64) T out[kBlock], g[kBlock], s[kBlock];
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t m = std::min(kBlock, n - i0);
    for (int64_t i = 0; i < m; ++i) {
      g[i] = *reinterpret_cast<const T*>(p[1] + (i0 + i) * st[1]);
      s[i] = *reinterpret_cast<const T*>(p[2] + (i0 + i) * st[2]);
    }
    contiguous_row(k, prm, out, g, s, m);
    for (int64_t i = 0; i < m; ++i) *reinterpret_cast<T*>(p[0] + (i0 + i) * st[0]) = out[i];
  }
}

void activation_backward_kernel(ActGrad k, const ActivationParams& prm, const StridedLoop& loop) {
  const DType dt = loop.ops[0].dtype;
  visit_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, BFloat16> ||
                  std::is_same_v<T, Half>) {
      for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* st) {
        constexpr int64_t sz = sizeof(T);
        if (st[0] == sz && st[1] == sz && st[2] == sz)
          contiguous_row(k, prm, reinterpret_cast<T*>(p[0]), reinterpret_cast<const T*>(p[1]),
                         reinterpret_cast<const T*>(p[2]), n);
        else
          strided_row<T>(k, prm, p, n, st);
      });
    } else if constexpr (std::is_same_v<T, double>) {
      for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* st) {
        for (int64_t i = 0; i < n; ++i) {
          const double g = *reinterpret_cast<const double*>(p[1] + i * st[1]);
          const double s = *reinterpret_cast<const double*>(p[2] + i * st[2]);
          double r = grad_of(k, prm, g, s);
          // PyTorch's zero gradient (gelu_tanh::with_torch_zero): g * 0's sign.
          if (k == ActGrad::gelu_tanh && r == 0) r = g * 0.0;
          *reinterpret_cast<double*>(p[0] + i * st[0]) = r;
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
