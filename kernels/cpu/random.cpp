// CPU random generation and dropout: Philox4x32-10 on 16 counters at a time (AVX-512
// vpmuludq, with a portable loop elsewhere), tiles of blocks spread over OpenMP. Element i
// depends only on (seed, offset, i), per the contract in tensor/random_kernels.h.

// g++ 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm*_undefined_*() (GCC
// PR105593); the state must be set before <immintrin.h> is first read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <bit>
#include <cmath>
#include <cstring>
#include <numbers>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/philox.h"
#include "kernels/cpu/run_tasks.h"
#include "tensor/random_kernels.h"

// AVX-512, or its emulation over AVX2 halves (x86_simd.h) in builds for CPUs without it.
#include "kernels/cpu/x86_simd.h"

namespace fabric::cpu {
namespace {

constexpr int kLanes = 16;
constexpr int64_t kTileBlocks = 256;               // blocks per task: 4 KiB of words, stays in L1
constexpr int64_t kParallelMinBlocks = 4096;       // below this a draw runs on one thread

// 32x32 -> 64-bit products of all 16 lanes, split into high and low words.
inline void mul_hi_lo(__m512i a, __m512i m, __m512i& hi, __m512i& lo) {
  const __m512i even = _mm512_mul_epu32(a, m);                        // lanes 0, 2, ...
  const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);  // lanes 1, 3, ...
  lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
  hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
}

// 16 blocks with counters first .. first+15 into words[0 .. 64).
inline void philox16(uint32_t key0, uint32_t key1, uint64_t first, uint32_t* words) {
  const __m512i base = _mm512_set1_epi64(static_cast<long long>(first));
  const __m512i lo8 = _mm512_add_epi64(base, _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7));
  const __m512i hi8 = _mm512_add_epi64(base, _mm512_setr_epi64(8, 9, 10, 11, 12, 13, 14, 15));
  __m512i c0 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(lo8)), _mm512_cvtepi64_epi32(hi8), 1);
  __m512i c1 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(_mm512_srli_epi64(lo8, 32))),
                                  _mm512_cvtepi64_epi32(_mm512_srli_epi64(hi8, 32)), 1);
  __m512i c2 = _mm512_setzero_si512(), c3 = _mm512_setzero_si512();
  const __m512i m0 = _mm512_set1_epi32(static_cast<int>(kPhiloxM0));
  const __m512i m1 = _mm512_set1_epi32(static_cast<int>(kPhiloxM1));
  uint32_t k0 = key0, k1 = key1;
  for (int r = 0; r < 10; ++r) {
    __m512i hi0, lo0, hi1, lo1;
    mul_hi_lo(c0, m0, hi0, lo0);
    mul_hi_lo(c2, m1, hi1, lo1);
    c0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), _mm512_set1_epi32(static_cast<int>(k0)));
    c1 = lo1;
    c2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), _mm512_set1_epi32(static_cast<int>(k1)));
    c3 = lo0;
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  // Transpose the four word vectors into 16 consecutive 4-word blocks.
  const __m512i t0 = _mm512_unpacklo_epi32(c0, c1), t1 = _mm512_unpackhi_epi32(c0, c1);
  const __m512i t2 = _mm512_unpacklo_epi32(c2, c3), t3 = _mm512_unpackhi_epi32(c2, c3);
  const __m512i u0 = _mm512_unpacklo_epi64(t0, t2), u1 = _mm512_unpackhi_epi64(t0, t2);  // blocks 0,4,8,12 / 1,5,9,13
  const __m512i u2 = _mm512_unpacklo_epi64(t1, t3), u3 = _mm512_unpackhi_epi64(t1, t3);  // blocks 2,6,.. / 3,7,..
  const __m512i v0 = _mm512_shuffle_i32x4(u0, u1, 0x44), v1 = _mm512_shuffle_i32x4(u2, u3, 0x44);  // 0,4,1,5 / 2,6,3,7
  const __m512i v2 = _mm512_shuffle_i32x4(u0, u1, 0xEE), v3 = _mm512_shuffle_i32x4(u2, u3, 0xEE);
  _mm512_storeu_si512(words + 0, _mm512_shuffle_i32x4(v0, v1, 0x88));
  _mm512_storeu_si512(words + 16, _mm512_shuffle_i32x4(v0, v1, 0xDD));
  _mm512_storeu_si512(words + 32, _mm512_shuffle_i32x4(v2, v3, 0x88));
  _mm512_storeu_si512(words + 48, _mm512_shuffle_i32x4(v2, v3, 0xDD));
}

}  // namespace

void philox_blocks(uint64_t seed, uint64_t first, int64_t count, uint32_t* words) {
  const uint32_t key0 = static_cast<uint32_t>(seed), key1 = static_cast<uint32_t>(seed >> 32);
  int64_t base = 0;
  for (; base + kLanes <= count; base += kLanes)
    philox16(key0, key1, first + static_cast<uint64_t>(base), words + 4 * base);
  for (; base < count; base += kLanes) {
    alignas(64) uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
    for (int l = 0; l < kLanes; ++l) {
      const uint64_t ctr = first + static_cast<uint64_t>(base + l);
      c0[l] = static_cast<uint32_t>(ctr);
      c1[l] = static_cast<uint32_t>(ctr >> 32);
      c2[l] = 0;
      c3[l] = 0;
    }
    uint32_t k0 = key0, k1 = key1;
    for (int r = 0; r < 10; ++r) {
#pragma omp simd
      for (int l = 0; l < kLanes; ++l) {
        const uint64_t p0 = static_cast<uint64_t>(kPhiloxM0) * c0[l];
        const uint64_t p1 = static_cast<uint64_t>(kPhiloxM1) * c2[l];
        const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1[l] ^ k0;
        const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3[l] ^ k1;
        c0[l] = n0;
        c1[l] = static_cast<uint32_t>(p1);
        c2[l] = n2;
        c3[l] = static_cast<uint32_t>(p0);
      }
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
    const int64_t m = std::min<int64_t>(kLanes, count - base);
    for (int l = 0; l < m; ++l) {
      uint32_t* w = words + 4 * (base + l);
      w[0] = c0[l];
      w[1] = c1[l];
      w[2] = c2[l];
      w[3] = c3[l];
    }
  }
}

namespace {

// ln(x) for normal floats in (0, 1] and sin/cos(2*pi*u) for u in [0, 1): branch-free (so the
// Box-Muller loop vectorises) Cephes polynomials, within a few ulp of libm.
inline float log_unit(float x) {
  const uint32_t ix = std::bit_cast<uint32_t>(x);
  float e = static_cast<float>(static_cast<int>(ix >> 23) - 127);
  float m = std::bit_cast<float>((ix & 0x7FFFFFu) | 0x3F800000u);  // [1, 2)
  const bool big = m > 1.41421356f;
  m = big ? m * 0.5f : m;
  e = big ? e + 1.0f : e;
  const float f = m - 1.0f, z = f * f;
  float y = 7.0376836292e-2f;
  y = y * f - 1.1514610310e-1f;
  y = y * f + 1.1676998740e-1f;
  y = y * f - 1.2420140846e-1f;
  y = y * f + 1.4249322787e-1f;
  y = y * f - 1.6668057665e-1f;
  y = y * f + 2.0000714765e-1f;
  y = y * f - 2.4999993993e-1f;
  y = y * f + 3.3333331174e-1f;
  y = y * f * z;
  y += -2.12194440e-4f * e;
  y += -0.5f * z;
  return f + y + 0.693359375f * e;
}

// sqrt(t) for t >= 0 by Newton's iteration on 1/sqrt (within an ulp or two): std::sqrt keeps an
// errno branch under g++'s default -fmath-errno, which stops the loop from vectorising.
inline float sqrt_nonneg(float t) {
  const float x = std::max(t, 1e-30f);
  float y = std::bit_cast<float>(0x5F375A86u - (std::bit_cast<uint32_t>(x) >> 1));
  for (int i = 0; i < 3; ++i) y = y * (1.5f - 0.5f * x * y * y);
  return t * y;
}

inline void sincos_2pi(float u, float& s_out, float& c_out) {
  const float q = static_cast<float>(static_cast<int>(u * 4.0f + 0.5f));  // nearest quarter turn, 0..4
  const float a = (u - q * 0.25f) * (2.0f * std::numbers::pi_v<float>);  // exact reduction, |a| <= pi/4
  const float z = a * a;
  const float s = a + a * z * ((-1.9515295891e-4f * z + 8.3321608736e-3f) * z - 1.6666654611e-1f);
  const float c = 1.0f - 0.5f * z + z * z * ((2.443315711809948e-5f * z - 1.388731625493765e-3f) * z +
                                             4.166664568298827e-2f);
  const int k = static_cast<int>(q) & 3;
  const float sv = k == 0 ? s : k == 1 ? c : k == 2 ? -s : -c;
  const float cv = k == 0 ? c : k == 1 ? -s : k == 2 ? -c : s;
  s_out = sv;
  c_out = cv;
}

// Runs body(words, first_element, n_elements) over tiles of the draw, in parallel when large.
// `words` holds the tile's blocks; first_element is the draw index of words' first value.
template <typename Body>
void for_each_tile(int64_t n, int64_t per_block, uint64_t seed, uint64_t offset, Body&& body) {
  if (n <= 0) return;
  const int64_t blocks = (n + per_block - 1) / per_block;
  const int64_t tiles = (blocks + kTileBlocks - 1) / kTileBlocks;
  auto run = [&](int64_t t) {
    alignas(64) uint32_t words[4 * kTileBlocks];
    const int64_t b0 = t * kTileBlocks, nb = std::min(kTileBlocks, blocks - b0);
    philox_blocks(seed, offset + static_cast<uint64_t>(b0), nb, words);
    const int64_t e0 = b0 * per_block;
    body(words, e0, std::min(n - e0, nb * per_block));
  };
  run_tasks(tiles, blocks >= kParallelMinBlocks, run);
}

template <typename T>
constexpr int significand_bits() {
  if constexpr (std::is_same_v<T, Half>) return 11;
  if constexpr (std::is_same_v<T, BFloat16>) return 8;
  return 24;
}

inline double u53(uint32_t lo, uint32_t hi) {
  return static_cast<double>(((static_cast<uint64_t>(hi) << 32) | lo) >> 11) * 0x1p-53;
}

// 16-bit outputs are computed in float32 into a tile buffer and rounded by the vectorised bulk
// conversion (GCC does not vectorise the Half/BFloat16 struct conversions).
template <typename T>
inline void store_floats(const float* src, T* dst, int64_t m) {
  if constexpr (std::is_same_v<T, float>) {
    std::memcpy(dst, src, static_cast<size_t>(m) * sizeof(float));
  } else {
    convert(DType::float32, src, dtype_v<T>, dst, m);
  }
}

// T is float, Half or BFloat16: values computed in float32, rounded once.
template <typename T>
void uniform_f32(T* out, int64_t n, uint64_t seed, uint64_t offset, double low, double high) {
  constexpr int d = significand_bits<T>();
  const float lo = static_cast<float>(low), span = static_cast<float>(high - low);
  const float scale = std::ldexp(1.0f, -d);
  for_each_tile(n, 4, seed, offset, [=](const uint32_t* w, int64_t e0, int64_t m) {
    alignas(64) float v[4 * kTileBlocks];
    for (int64_t i = 0; i < m; ++i) v[i] = lo + span * (static_cast<float>(static_cast<int32_t>(w[i] >> (32 - d))) * scale);
    store_floats(v, out + e0, m);
  });
}

void uniform_f64(double* out, int64_t n, uint64_t seed, uint64_t offset, double low, double high) {
  const double span = high - low;
  for_each_tile(n, 2, seed, offset, [&](const uint32_t* w, int64_t e0, int64_t m) {
    double* o = out + e0;
    for (int64_t i = 0; i < m; ++i) o[i] = low + span * u53(w[2 * i], w[2 * i + 1]);
  });
}

template <typename T>
void normal_f32(T* out, int64_t n, uint64_t seed, uint64_t offset, double mean, double std) {
  const float mu = static_cast<float>(mean), sigma = static_cast<float>(std);
  for_each_tile(n, 4, seed, offset, [=](const uint32_t* w, int64_t e0, int64_t m) {
    alignas(64) float z[4 * kTileBlocks];
    const int64_t pairs = (m + 1) / 2;
    for (int64_t j = 0; j < pairs; ++j) {
      // 1 - u1 lies in [2^-24, 1], so the log is finite.
      const float u1 = static_cast<float>(w[2 * j] >> 8) * 0x1p-24f;
      const float u2 = static_cast<float>(w[2 * j + 1] >> 8) * 0x1p-24f;
      const float r = sqrt_nonneg(-2.0f * log_unit(1.0f - u1));
      float sn, cs;
      sincos_2pi(u2, sn, cs);
      z[2 * j] = r * cs;
      z[2 * j + 1] = r * sn;
    }
    for (int64_t i = 0; i < m; ++i) z[i] = mu + sigma * z[i];
    store_floats(z, out + e0, m);
  });
}

void normal_f64(double* out, int64_t n, uint64_t seed, uint64_t offset, double mean, double std) {
  constexpr double two_pi = 2.0 * std::numbers::pi;
  for_each_tile(n, 2, seed, offset, [&](const uint32_t* w, int64_t e0, int64_t m) {
    double* o = out + e0;
    for (int64_t i = 0; i < m; i += 2) {
      const uint32_t* b = w + 2 * i;  // block i/2
      const double u1 = u53(b[0], b[1]), u2 = u53(b[2], b[3]);
      const double r = std::sqrt(-2.0 * std::log(1.0 - u1));
      const double theta = two_pi * u2;
      o[i] = mean + std * (r * std::cos(theta));
      if (i + 1 < m) o[i + 1] = mean + std * (r * std::sin(theta));
    }
  });
}

template <typename T>
void randint_fill(T* out, int64_t n, uint64_t seed, uint64_t offset, int64_t low, uint64_t range) {
  const uint64_t ulow = static_cast<uint64_t>(low);
  if (range <= (uint64_t{1} << 32)) {
    for_each_tile(n, 4, seed, offset, [&](const uint32_t* w, int64_t e0, int64_t m) {
      T* o = out + e0;
      for (int64_t i = 0; i < m; ++i) {
        const uint64_t v = ulow + ((static_cast<uint64_t>(w[i]) * range) >> 32);
        o[i] = scalar_cast<T>(static_cast<int64_t>(v));
      }
    });
  } else {
    for_each_tile(n, 2, seed, offset, [&](const uint32_t* w, int64_t e0, int64_t m) {
      T* o = out + e0;
      for (int64_t i = 0; i < m; ++i) {
        const uint64_t r = (static_cast<uint64_t>(w[2 * i + 1]) << 32) | w[2 * i];
        const auto prod = static_cast<unsigned __int128>(r) * range;
        o[i] = scalar_cast<T>(static_cast<int64_t>(ulow + static_cast<uint64_t>(prod >> 64)));
      }
    });
  }
}

void random_fill_kernel(void* out, DType dtype, int64_t n, uint64_t seed, uint64_t offset, const RandomParams& p) {
  if (p.dist == RandomDist::randint) {
    visit_dtype(dtype, [&](auto tag) {
      using T = decltype(tag);
      randint_fill(static_cast<T*>(out), n, seed, offset, p.low, p.range);
    });
    return;
  }
  const bool uni = p.dist == RandomDist::uniform;
  switch (dtype) {
    case DType::float64:
      return uni ? uniform_f64(static_cast<double*>(out), n, seed, offset, p.a, p.b)
                 : normal_f64(static_cast<double*>(out), n, seed, offset, p.a, p.b);
    case DType::float32:
      return uni ? uniform_f32(static_cast<float*>(out), n, seed, offset, p.a, p.b)
                 : normal_f32(static_cast<float*>(out), n, seed, offset, p.a, p.b);
    case DType::float16:
      return uni ? uniform_f32(static_cast<Half*>(out), n, seed, offset, p.a, p.b)
                 : normal_f32(static_cast<Half*>(out), n, seed, offset, p.a, p.b);
    case DType::bfloat16:
      return uni ? uniform_f32(static_cast<BFloat16*>(out), n, seed, offset, p.a, p.b)
                 : normal_f32(static_cast<BFloat16*>(out), n, seed, offset, p.a, p.b);
    default:
      throw DTypeError(::fabric::detail::cat("random fill: no CPU kernel for ", dtype_name(dtype)));
  }
}

template <typename T>
void dropout_typed(const T* in, T* out, T* mask, int64_t n, double p, uint64_t seed, uint64_t offset) {
  // keep iff k < threshold for the 24-bit k = w >> 8: probability ceil((1-p) 2^24) / 2^24.
  const int32_t threshold = dropout_keep_threshold(p);
  // The mask holds torch's scale (dropout_scale), and the product uses it, as PyTorch's
  // input * mask does.
  const T scale_t = static_cast<T>(dropout_scale(p, dtype_v<T>));
  for_each_tile(n, kDropoutValuesPerBlock, seed, offset, [=](const uint32_t* w, int64_t e0, int64_t m) {
    const T* x = in + e0;
    T* o = out + e0;
    T* k = mask + e0;
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
      const T scale = scale_t;
      for (int64_t i = 0; i < m; ++i) {
        const T s = static_cast<int32_t>(w[i] >> 8) < threshold ? scale : T(0);
        k[i] = s;
        o[i] = x[i] * s;
      }
    } else {
      // 16-bit: the mask is a bit pattern select; the product goes through float32.
      const uint16_t scale_bits = scale_t.x;
      const float scale = static_cast<float>(scale_t);
      alignas(64) float xf[4 * kTileBlocks];
      convert(dtype_v<T>, x, DType::float32, xf, m);
      auto* kb = reinterpret_cast<uint16_t*>(k);
      for (int64_t i = 0; i < m; ++i) {
        const bool keep = static_cast<int32_t>(w[i] >> 8) < threshold;
        kb[i] = keep ? scale_bits : uint16_t{0};
        xf[i] = xf[i] * (keep ? scale : 0.0f);
      }
      store_floats(xf, o, m);
    }
  });
}

void dropout_kernel(const void* in, void* out, void* mask, DType dtype, int64_t n, double p, uint64_t seed,
                    uint64_t offset) {
  switch (dtype) {
    case DType::float64:
      return dropout_typed(static_cast<const double*>(in), static_cast<double*>(out), static_cast<double*>(mask), n,
                           p, seed, offset);
    case DType::float32:
      return dropout_typed(static_cast<const float*>(in), static_cast<float*>(out), static_cast<float*>(mask), n, p,
                           seed, offset);
    case DType::float16:
      return dropout_typed(static_cast<const Half*>(in), static_cast<Half*>(out), static_cast<Half*>(mask), n, p,
                           seed, offset);
    case DType::bfloat16:
      return dropout_typed(static_cast<const BFloat16*>(in), static_cast<BFloat16*>(out),
                           static_cast<BFloat16*>(mask), n, p, seed, offset);
    default:
      throw DTypeError(::fabric::detail::cat("dropout: no CPU kernel for ", dtype_name(dtype)));
  }
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(random_fill_stub, cpu, &cpu::random_fill_kernel);
FABRIC_REGISTER_KERNEL(dropout_stub, cpu, &cpu::dropout_kernel);
}  // namespace fabric
