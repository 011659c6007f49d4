// Shared pieces of the CPU elementwise kernels: compute-type traits, the fp32-family row drivers
// (a contiguous AVX-512 fast path, with non-temporal stores for huge outputs of copy-like ops, and
// an L1 staging buffer for any other layout) and the threshold for bypassing the caches.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <type_traits>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/vec_math.h"
#include "tensor/dtype.h"
#include "tensor/error.h"
#include "tensor/strided_loop.h"

namespace fabric::cpu::ew {

// fp32, bf16 and fp16 compute in fp32 vectors; everything else in scalar code of its own type.
template <typename T>
inline constexpr bool is_f32_family_v =
    std::is_same_v<T, float> || std::is_same_v<T, BFloat16> || std::is_same_v<T, Half>;
template <typename T>
using opmath_t =
    std::conditional_t<std::is_same_v<T, BFloat16> || std::is_same_v<T, Half>, float, T>;

// Output bytes from which the contiguous paths of copy-like ops use non-temporal stores: such an
// output cannot stay in cache for the next op anyway, and skipping read-for-ownership saves a
// third of the traffic of c = a + b. FABRIC_NT_STORE_MIN_BYTES overrides (0 disables streaming).
inline int64_t stream_min_bytes() {
  static const int64_t v = [] {
    const char* e = std::getenv("FABRIC_NT_STORE_MIN_BYTES");
    if (e && *e) {
      const long long x = std::atoll(e);
      return x <= 0 ? INT64_MAX : static_cast<int64_t>(x);
    }
    return int64_t{16} << 20;
  }();
  return v;
}
inline bool use_streaming(const StridedLoop& loop) {
  return loop.numel() * itemsize(loop.ops[0].dtype) >= stream_min_bytes();
}

// Kernels throw only here, before any parallel region: an exception must not leave an OpenMP
// region.
inline void reject_fp8(DType t, const char* kernel) {
  FABRIC_CHECK(!is_fp8(t), DTypeError, kernel, ": no CPU kernel for ", dtype_name(t),
               " (fp8 values are converted, not computed on)");
}

template <typename T>
inline T load_elem(const char* p) {
  return *reinterpret_cast<const T*>(p);
}
template <typename T>
inline void store_elem(char* p, T v) {
  *reinterpret_cast<T*>(p) = v;
}

// Elements staged per block on the layout-agnostic path (its 2 KiB fp32 buffers stay in L1).
inline constexpr int64_t kStage = 512;

// ---- unary fp32-family rows: F is __m512(__m512) -------------------------------------------
template <typename T, typename F>
inline void unary_contig(T* out, const T* in, int64_t n, const F& f, bool stream) {
  int64_t i = 0;
  if (stream) {
    const uintptr_t mis = reinterpret_cast<uintptr_t>(out) & (16 * sizeof(T) - 1);
    if (mis % sizeof(T) == 0) {
      if (mis) {
        i = std::min<int64_t>(n, static_cast<int64_t>((16 * sizeof(T) - mis) / sizeof(T)));
        const __mmask16 m = vec::tail_mask(i);
        vec::store(out, f(vec::load(in, m)), m);
      }
      for (; i + 16 <= n; i += 16) vec::stream(out + i, f(vec::load(in + i)));
      _mm_sfence();
    }
  }
  for (; i + 32 <= n; i += 32) {
    vec::store(out + i, f(vec::load(in + i)));
    vec::store(out + i + 16, f(vec::load(in + i + 16)));
  }
  for (; i < n; i += 16) {
    const __mmask16 m = vec::tail_mask(n - i);
    vec::store(out + i, f(vec::load(in + i, m)), m);
  }
}

// Any other row layout: stages up to kStage elements as fp32, runs block(in, out, m) on the
// contiguous buffer (in == out allowed), writes back rounded to T.
template <typename T, typename Block>
inline void unary_staged(char* out, int64_t os, const char* in, int64_t is, int64_t n,
                         const Block& block) {
  alignas(64) float buf[kStage];
  for (int64_t base = 0; base < n; base += kStage) {
    const int64_t m = std::min(kStage, n - base);
    const char* src = in + base * is;
    for (int64_t j = 0; j < m; ++j) buf[j] = static_cast<float>(load_elem<T>(src + j * is));
    block(buf, buf, m);
    char* dst = out + base * os;
    for (int64_t j = 0; j < m; ++j) store_elem<T>(dst + j * os, T(buf[j]));
  }
}

// `heavy`: an op with enough arithmetic per element (exp, tanh, GELU, ...) that its stores stay
// regular: measured here, non-temporal stores help copy-like ops but slow compute-bound ones.
template <typename T, typename F>
void unary_f32_loop(const StridedLoop& loop, const F& f, bool heavy = false) {
  const bool stream = !heavy && use_streaming(loop);
  for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* s) {
    constexpr int64_t sz = sizeof(T);
    if (s[0] == sz && s[1] == sz) {
      unary_contig(reinterpret_cast<T*>(p[0]), reinterpret_cast<const T*>(p[1]), n, f, stream);
    } else {
      unary_staged<T>(p[0], s[0], p[1], s[1], n, [&](const float* in, float* out, int64_t m) {
        unary_contig(out, in, m, f, false);
      });
    }
  });
}

// ---- binary fp32-family rows: F is __m512(__m512, __m512) ------------------------------------
// A_BC / B_BC: that input is one value broadcast along the row (stride 0 or a scalar operand).
// The inputs may be narrower than the output (TA/TB bf16 or fp16 beside an fp32 output): the
// loads widen them exactly.
template <bool A_BC, bool B_BC, typename T, typename TA, typename TB, typename F>
inline void binary_contig(T* out, const TA* a, const TB* b, __m512 abc, __m512 bbc, int64_t n,
                          const F& f, bool stream) {
  auto va = [&](int64_t i) {
    if constexpr (A_BC)
      return abc;
    else
      return vec::load(a + i);
  };
  auto vb = [&](int64_t i) {
    if constexpr (B_BC)
      return bbc;
    else
      return vec::load(b + i);
  };
  auto va_m = [&](int64_t i, __mmask16 m) {
    if constexpr (A_BC)
      return abc;
    else
      return vec::load(a + i, m);
  };
  auto vb_m = [&](int64_t i, __mmask16 m) {
    if constexpr (B_BC)
      return bbc;
    else
      return vec::load(b + i, m);
  };
  int64_t i = 0;
  if (stream) {
    const uintptr_t mis = reinterpret_cast<uintptr_t>(out) & (16 * sizeof(T) - 1);
    if (mis % sizeof(T) == 0) {
      if (mis) {
        i = std::min<int64_t>(n, static_cast<int64_t>((16 * sizeof(T) - mis) / sizeof(T)));
        const __mmask16 m = vec::tail_mask(i);
        vec::store(out, f(va_m(0, m), vb_m(0, m)), m);
      }
      for (; i + 16 <= n; i += 16) vec::stream(out + i, f(va(i), vb(i)));
      _mm_sfence();
    }
  }
  for (; i + 32 <= n; i += 32) {
    vec::store(out + i, f(va(i), vb(i)));
    vec::store(out + i + 16, f(va(i + 16), vb(i + 16)));
  }
  for (; i < n; i += 16) {
    const __mmask16 m = vec::tail_mask(n - i);
    vec::store(out + i, f(va_m(i, m), vb_m(i, m)), m);
  }
}

template <typename T, typename TA = T, typename TB = T, typename F>
inline void binary_staged(char* out, int64_t os, const char* a, int64_t as, const char* b,
                          int64_t bs, const float* b_scalar, int64_t n, const F& f) {
  // Only what is strided or of another type is staged: a unit-stride float32 operand is read, or
  // written, in place (a transposed operand beside two row-major ones paid three staging loops).
  constexpr int64_t kF = sizeof(float);
  const bool direct_a = std::is_same_v<TA, float> && as == kF;
  const bool direct_b = std::is_same_v<TB, float> && bs == kF && !b_scalar;
  const bool direct_o = std::is_same_v<T, float> && os == kF;
  alignas(64) float ba[kStage];
  alignas(64) float bb[kStage];
  alignas(64) float bo[kStage];
  for (int64_t base = 0; base < n; base += kStage) {
    const int64_t m = std::min(kStage, n - base);
    const char* pa = a + base * as;
    const char* pb = b_scalar ? nullptr : b + base * bs;
    const float* ra = direct_a ? reinterpret_cast<const float*>(pa) : ba;
    const float* rb = direct_b ? reinterpret_cast<const float*>(pb) : bb;
    float* ro = direct_o ? reinterpret_cast<float*>(out + base * os) : bo;
    if (!direct_a)
      for (int64_t j = 0; j < m; ++j) ba[j] = static_cast<float>(load_elem<TA>(pa + j * as));
    if (b_scalar)
      std::fill(bb, bb + m, *b_scalar);
    else if (!direct_b)
      for (int64_t j = 0; j < m; ++j) bb[j] = static_cast<float>(load_elem<TB>(pb + j * bs));
    binary_contig<false, false>(ro, ra, rb, __m512{}, __m512{}, m, f, false);
    if (!direct_o) {
      char* po = out + base * os;
      for (int64_t j = 0; j < m; ++j) store_elem<T>(po + j * os, T(bo[j]));
    }
  }
}

// TA/TB: the inputs' element types when narrower than the output's T (see binary_contig).
template <typename T, typename TA = T, typename TB = T, typename F>
void binary_f32_loop(const StridedLoop& loop, const float* b_scalar, const F& f,
                     bool heavy = false) {
  const bool stream = !heavy && use_streaming(loop);
  for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* s) {
    constexpr int64_t sz = sizeof(T), asz = sizeof(TA), bsz = sizeof(TB);
    const int64_t as = s[1], bs = b_scalar ? 0 : s[2];
    const char* bp = b_scalar ? nullptr : p[2];
    if (s[0] == sz && (as == asz || as == 0) && (bs == bsz || bs == 0)) {
      T* o = reinterpret_cast<T*>(p[0]);
      const TA* a = reinterpret_cast<const TA*>(p[1]);
      const TB* b = reinterpret_cast<const TB*>(bp);
      const __m512 abc = as == 0 ? vec::splat(static_cast<float>(*a)) : __m512{};
      const __m512 bbc = b_scalar  ? vec::splat(*b_scalar)
                         : bs == 0 ? vec::splat(static_cast<float>(*b))
                                   : __m512{};
      if (as == asz && (bs == bsz)) {
        binary_contig<false, false>(o, a, b, abc, bbc, n, f, stream);
      } else if (as == asz) {
        binary_contig<false, true>(o, a, b, abc, bbc, n, f, stream);
      } else if (bs == bsz) {
        binary_contig<true, false>(o, a, b, abc, bbc, n, f, stream);
      } else {
        binary_contig<true, true>(o, a, b, abc, bbc, n, f, stream);
      }
    } else {
      binary_staged<T, TA, TB>(p[0], s[0], p[1], as, bp, bs, b_scalar, n, f);
    }
  });
}

// Applies a float -> float function lane by lane (libm-only functions: sin, cos, pow).
template <typename G>
inline __m512 per_lane(__m512 x, G g) {
  alignas(64) float t[16];
  _mm512_store_ps(t, x);
  for (float& v : t) v = g(v);
  return _mm512_load_ps(t);
}

}  // namespace fabric::cpu::ew
