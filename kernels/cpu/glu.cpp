// CPU kernels of glu's fused forward and backward (tensor/glu_kernels.h): one pass reading both
// halves, fp32/bf16/fp16 on AVX-512 in fp32 (vec_math.h's sigmoid), float64 in scalar libm code,
// in torch's formulas and operation order. Parallel through for_each_row (OpenMP).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/cpu/elementwise_common.h"
#include "tensor/glu_kernels.h"

namespace fabric::cpu {
namespace {

using namespace ew;

// (grad_a, grad_b) from (grad, a, b): s * g and ((1 - s) * s) * a * g, s = sigmoid(b).
struct GluGrads {
  __m512 ga, gb;
};
FABRIC_VEC_INLINE GluGrads glu_grads_ps(__m512 g, __m512 a, __m512 b) {
  const __m512 s = vec::sigmoid_ps(b);
  const __m512 ds = _mm512_mul_ps(_mm512_sub_ps(vec::splat(1.0f), s), s);
  return {_mm512_mul_ps(s, g), _mm512_mul_ps(_mm512_mul_ps(ds, a), g)};
}

// `stream`: non-temporal stores where both outputs are aligned to a vector (so the whole row
// streams): outputs past the caches skip their read-for-ownership (glu_16M's fwd+bwd at 1
// thread measured 18.0 -> 14.7 ms).
template <typename T>
void backward_contig(T* ga, T* gb, const T* g, const T* a, const T* b, int64_t n, bool stream) {
  constexpr uintptr_t kAlign = 16 * sizeof(T);
  stream =
      stream && (reinterpret_cast<uintptr_t>(ga) | reinterpret_cast<uintptr_t>(gb)) % kAlign == 0;
  int64_t i = 0;
  if (stream) {
    for (; i + 16 <= n; i += 16) {
      const GluGrads r = glu_grads_ps(vec::load(g + i), vec::load(a + i), vec::load(b + i));
      vec::stream(ga + i, r.ga);
      vec::stream(gb + i, r.gb);
    }
    _mm_sfence();
  }
  for (; i + 16 <= n; i += 16) {
    const GluGrads r = glu_grads_ps(vec::load(g + i), vec::load(a + i), vec::load(b + i));
    vec::store(ga + i, r.ga);
    vec::store(gb + i, r.gb);
  }
  if (i < n) {
    const __mmask16 m = vec::tail_mask(n - i);
    const GluGrads r = glu_grads_ps(vec::load(g + i, m), vec::load(a + i, m), vec::load(b + i, m));
    vec::store(ga + i, r.ga, m);
    vec::store(gb + i, r.gb, m);
  }
}

template <typename T>
void vec_forward(const StridedLoop& loop) {
  // Not `heavy` (unlike sigmoid alone): with two inputs per output, non-temporal stores of a
  // large output measured 7.0 -> 6.4 ms on glu_16M at 1 thread.
  binary_f32_loop<T>(loop, nullptr,
                     [](__m512 a, __m512 b) { return _mm512_mul_ps(a, vec::sigmoid_ps(b)); });
}

template <typename T>
void vec_backward(const StridedLoop& loop) {
  const bool stream = use_streaming(loop);
  for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* s) {
    constexpr int64_t sz = sizeof(T);
    if (s[0] == sz && s[1] == sz && s[2] == sz && s[3] == sz && s[4] == sz) {
      backward_contig(reinterpret_cast<T*>(p[0]), reinterpret_cast<T*>(p[1]),
                      reinterpret_cast<const T*>(p[2]), reinterpret_cast<const T*>(p[3]),
                      reinterpret_cast<const T*>(p[4]), n, stream);
      return;
    }
    // Any other layout (strided halves, a broadcast grad): staged through L1 as fp32.
    alignas(64) float buf[5][kStage];
    for (int64_t base = 0; base < n; base += kStage) {
      const int64_t m = std::min(kStage, n - base);
      for (int k = 2; k < 5; ++k) {
        const char* src = p[k] + base * s[k];
        for (int64_t j = 0; j < m; ++j)
          buf[k][j] = static_cast<float>(load_elem<T>(src + j * s[k]));
      }
      backward_contig(buf[0], buf[1], buf[2], buf[3], buf[4], m, false);
      for (int k = 0; k < 2; ++k) {
        char* dst = p[k] + base * s[k];
        for (int64_t j = 0; j < m; ++j) store_elem<T>(dst + j * s[k], T(buf[k][j]));
      }
    }
  });
}

double sigmoid_f64(double b) { return 1.0 / (1.0 + std::exp(-b)); }

void f64_forward(const StridedLoop& loop) {
  for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* s) {
    for (int64_t i = 0; i < n; ++i)
      store_elem<double>(p[0] + i * s[0], load_elem<double>(p[1] + i * s[1]) *
                                              sigmoid_f64(load_elem<double>(p[2] + i * s[2])));
  });
}

void f64_backward(const StridedLoop& loop) {
  for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* s) {
    for (int64_t i = 0; i < n; ++i) {
      const double g = load_elem<double>(p[2] + i * s[2]);
      const double a = load_elem<double>(p[3] + i * s[3]);
      const double sb = sigmoid_f64(load_elem<double>(p[4] + i * s[4]));
      store_elem<double>(p[0] + i * s[0], sb * g);
      store_elem<double>(p[1] + i * s[1], (1.0 - sb) * sb * a * g);
    }
  });
}

[[noreturn]] void no_kernel(const char* what, DType dt) {
  throw DTypeError(::fabric::detail::cat(what, ": no CPU kernel for ", dtype_name(dt),
                                         " (expected float64, float32, float16 or bfloat16)"));
}

void forward_kernel(const StridedLoop& loop) {
  switch (const DType dt = loop.ops[0].dtype) {
    case DType::float32:
      return vec_forward<float>(loop);
    case DType::bfloat16:
      return vec_forward<BFloat16>(loop);
    case DType::float16:
      return vec_forward<Half>(loop);
    case DType::float64:
      return f64_forward(loop);
    default:
      no_kernel("glu", dt);
  }
}

void backward_kernel(const StridedLoop& loop) {
  switch (const DType dt = loop.ops[0].dtype) {
    case DType::float32:
      return vec_backward<float>(loop);
    case DType::bfloat16:
      return vec_backward<BFloat16>(loop);
    case DType::float16:
      return vec_backward<Half>(loop);
    case DType::float64:
      return f64_backward(loop);
    default:
      no_kernel("glu_backward", dt);
  }
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(glu_stub, cpu, &cpu::forward_kernel);
FABRIC_REGISTER_KERNEL(glu_backward_stub, cpu, &cpu::backward_kernel);
}  // namespace fabric
