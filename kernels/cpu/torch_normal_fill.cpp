// torch 1.13's normal_fill_16_AVX2 (aten/src/ATen/native/cpu/DistributionTemplates.h) with the
// log256_ps and sincos256_ps of its avx_mathfun.h (Cephes logf/sinf/cosf), 8 lanes at a time, as
// Debian's build compiles them: GCC fused, in statement order, each product whose only use is an
// add into an fma, so of `y = y * z; t = e * q; y = y + t` the first product is fused
// (fma(y, z, e * q)), and `y = y * z; t = z * 0.5; y = y - t` is fms(y, z, z * 0.5). Written here
// with explicit fma intrinsics and no product that GCC could fuse again; checked bit for bit
// against Debian's torch (tests/tensor/test_torch_cpu_rng.cpp).
#include <immintrin.h>

#include "tensor/torch_cpu_rng.h"

namespace fabric::cpu {
namespace {

// avx_mathfun.h declares its constants as float arrays initialised from double literals: each
// is the double rounded to float, which for a few decimals differs from the float literal.
inline __m256 c(double v) { return _mm256_set1_ps(static_cast<float>(v)); }
inline __m256 bits(int32_t v) { return _mm256_castsi256_ps(_mm256_set1_epi32(v)); }

// log256_ps: ln x for x > 0; NaN lanes for x <= 0.
inline __m256 cephes_log(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 invalid = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LE_OS);
  x = _mm256_max_ps(x, bits(0x00800000));  // no denormals
  __m256i exponent = _mm256_srli_epi32(_mm256_castps_si256(x), 23);
  x = _mm256_or_ps(_mm256_and_ps(x, bits(~0x7f800000)), _mm256_set1_ps(0.5f));  // [0.5, 1)
  exponent = _mm256_sub_epi32(exponent, _mm256_set1_epi32(0x7f));
  __m256 e = _mm256_add_ps(_mm256_cvtepi32_ps(exponent), one);
  const __m256 below = _mm256_cmp_ps(x, c(0.707106781186547524), _CMP_LT_OS);
  const __m256 tmp = _mm256_and_ps(x, below);
  x = _mm256_sub_ps(x, one);
  e = _mm256_sub_ps(e, _mm256_and_ps(one, below));
  x = _mm256_add_ps(x, tmp);
  const __m256 z = _mm256_mul_ps(x, x);
  __m256 y = c(7.0376836292E-2);
  for (double p : {-1.1514610310E-1, 1.1676998740E-1, -1.2420140846E-1, 1.4249322787E-1,
                   -1.6668057665E-1, 2.0000714765E-1, -2.4999993993E-1, 3.3333331174E-1})
    y = _mm256_fmadd_ps(y, x, c(p));
  y = _mm256_mul_ps(y, x);
  y = _mm256_fmadd_ps(y, z, _mm256_mul_ps(e, c(-2.12194440e-4)));
  y = _mm256_fnmadd_ps(z, _mm256_set1_ps(0.5f), y);
  x = _mm256_add_ps(x, y);
  x = _mm256_fmadd_ps(e, c(0.693359375), x);
  return _mm256_or_ps(x, invalid);
}

// sincos256_ps: both from one range reduction of |x| by π/4.
inline void cephes_sincos(__m256 x, __m256& s, __m256& co) {
  const __m256 sign_mask = bits(static_cast<int32_t>(0x80000000u));
  __m256 sign_sin = _mm256_and_ps(x, sign_mask);
  x = _mm256_andnot_ps(sign_mask, x);
  __m256i j = _mm256_cvttps_epi32(_mm256_mul_ps(x, c(1.27323954473516)));  // 4/π
  j = _mm256_and_si256(_mm256_add_epi32(j, _mm256_set1_epi32(1)), _mm256_set1_epi32(~1));
  const __m256 y = _mm256_cvtepi32_ps(j);
  const __m256i four = _mm256_set1_epi32(4);
  const __m256 swap_sin = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_and_si256(j, four), 29));
  const __m256 poly_mask = _mm256_castsi256_ps(
      _mm256_cmpeq_epi32(_mm256_and_si256(j, _mm256_set1_epi32(2)), _mm256_setzero_si256()));
  x = _mm256_fmadd_ps(y, c(-0.78515625), x);  // x - y·π/4 in three pieces
  x = _mm256_fmadd_ps(y, c(-2.4187564849853515625e-4), x);
  x = _mm256_fmadd_ps(y, c(-3.77489497744594108e-8), x);
  const __m256i cos_bits =
      _mm256_slli_epi32(_mm256_andnot_si256(_mm256_sub_epi32(j, _mm256_set1_epi32(2)), four), 29);
  const __m256 sign_cos = _mm256_castsi256_ps(cos_bits);
  sign_sin = _mm256_xor_ps(sign_sin, swap_sin);
  const __m256 z = _mm256_mul_ps(x, x);
  __m256 yc = _mm256_fmadd_ps(c(2.443315711809948E-005), z, c(-1.388731625493765E-003));
  yc = _mm256_fmadd_ps(yc, z, c(4.166664568298827E-002));
  yc = _mm256_mul_ps(yc, z);
  yc = _mm256_fmsub_ps(yc, z, _mm256_mul_ps(z, _mm256_set1_ps(0.5f)));
  yc = _mm256_add_ps(yc, _mm256_set1_ps(1.0f));
  __m256 ys = _mm256_fmadd_ps(c(-1.9515295891E-4), z, c(8.3321608736E-3));
  ys = _mm256_fmadd_ps(ys, z, c(-1.6666654611E-1));
  ys = _mm256_mul_ps(ys, z);
  ys = _mm256_fmadd_ps(ys, x, x);
  // Each result takes one polynomial and +0 from the other, as torch's masks and adds do.
  const __m256 sin_from_ys = _mm256_and_ps(poly_mask, ys);
  const __m256 sin_from_yc = _mm256_andnot_ps(poly_mask, yc);
  ys = _mm256_sub_ps(ys, sin_from_ys);
  yc = _mm256_sub_ps(yc, sin_from_yc);
  s = _mm256_xor_ps(_mm256_add_ps(sin_from_yc, sin_from_ys), sign_sin);
  co = _mm256_xor_ps(_mm256_add_ps(yc, ys), sign_cos);
}

void normal_fill_16_blocks(float* data, int64_t blocks, float mean, float std) {
  const __m256 two_pi = _mm256_set1_ps(static_cast<float>(2.0 * 3.14159265358979323846));
  const __m256 mean_v = _mm256_set1_ps(mean), std_v = _mm256_set1_ps(std);
  for (int64_t b = 0; b < blocks; ++b, data += 16) {
    const __m256 u1 = _mm256_sub_ps(_mm256_set1_ps(1.0f), _mm256_loadu_ps(data));
    const __m256 u2 = _mm256_loadu_ps(data + 8);
    const __m256 radius = _mm256_sqrt_ps(_mm256_mul_ps(_mm256_set1_ps(-2.0f), cephes_log(u1)));
    __m256 s, co;
    cephes_sincos(_mm256_mul_ps(two_pi, u2), s, co);
    _mm256_storeu_ps(data, _mm256_fmadd_ps(_mm256_mul_ps(radius, co), std_v, mean_v));
    _mm256_storeu_ps(data + 8, _mm256_fmadd_ps(_mm256_mul_ps(radius, s), std_v, mean_v));
  }
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(torch_normal_fill_16_stub, cpu, &cpu::normal_fill_16_blocks);
}  // namespace fabric
