// Dispatch stubs for random generation, and the contract every device's kernel follows so that
// a draw is bit-identical on any device and thread count: which Philox block and which words
// produce element i, and how words become values.
#pragma once
#include <cmath>
#include <cstdint>

#include "tensor/dispatch_stub.h"
#include "tensor/dtype.h"
#include "tensor/float_formats.h"

namespace fabric {

// ---- Philox4x32-10 (Random123) ------------------------------------------------------------------
inline constexpr uint32_t kPhiloxM0 = 0xD2511F53u, kPhiloxM1 = 0xCD9E8D57u;
inline constexpr uint32_t kPhiloxW0 = 0x9E3779B9u, kPhiloxW1 = 0xBB67AE85u;

// One block: ctr (4 words) under key {k0, k1} -> out (4 words). Scalar reference; kernels run
// the same rounds over many counters at once.
constexpr void philox4x32_10(const uint32_t ctr[4], uint32_t k0, uint32_t k1, uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  for (int r = 0; r < 10; ++r) {
    const uint64_t p0 = static_cast<uint64_t>(kPhiloxM0) * c0;
    const uint64_t p1 = static_cast<uint64_t>(kPhiloxM1) * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c0 = n0;
    c1 = static_cast<uint32_t>(p1);
    c2 = n2;
    c3 = static_cast<uint32_t>(p0);
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

// ---- the element -> (block, words) contract ------------------------------------------------------
// A draw of n values starting at generator offset `off` uses blocks with counter
// (hi = 0, lo = off + b), b = i / per_block, and the words of block b in order:
//  uniform, float32/float16/bfloat16 (4 per block): word k -> u = (w >> (32-d)) * 2^-d, d = the
//      dtype's significand bits (24 / 11 / 8), so u lies exactly on the dtype's grid and never
//      rounds up to 1; value = low + (high-low)*u in float32, rounded once to the dtype.
//  uniform, float64 (2 per block): words (2k, 2k+1) -> 53 bits of (w[2k+1] << 32 | w[2k]) >> 11.
//  normal, float32/float16/bfloat16 (4 per block): Box-Muller on the pairs (w0, w1) and (w2, w3)
//      with 24-bit uniforms u1, u2: r = sqrt(-2 ln(1-u1)), values r*cos(2πu2), r*sin(2πu2), in
//      float32; mean + std*z rounded to the dtype. (The CPU kernel evaluates ln/sqrt/sincos with
//      its own branch-free polynomials, within ~2 ulp of libm; another device matches the CPU
//      bit for bit only if it uses the same ones, otherwise to a few ulp.)
//  normal, float64 (2 per block): u1 from words (0,1), u2 from words (2,3) (53 bits each).
//  randint with range <= 2^32 (4 per block): low + ((uint64)w * range >> 32).
//  randint with range > 2^32 (2 per block): low + ((uint128)(w[2k+1] << 32 | w[2k]) * range >> 64).
//  dropout (4 per block): keep element i iff (w >> 8) < ceil((1-p) * 2^24).
enum class RandomDist : uint8_t { uniform, normal, randint };

struct RandomParams {
  RandomDist dist = RandomDist::uniform;
  double a = 0, b = 1;   // uniform: low, high; normal: mean, std
  int64_t low = 0;       // randint: [low, low + range)
  uint64_t range = 1;
};

constexpr int64_t random_values_per_block(const RandomParams& p, DType dtype) {
  if (p.dist == RandomDist::randint) return p.range <= (uint64_t{1} << 32) ? 4 : 2;
  return dtype == DType::float64 ? 2 : 4;
}
inline constexpr int64_t kDropoutValuesPerBlock = 4;
// Dropout keeps an element iff its word's top 24 bits (w >> 8) are below this: probability
// ceil((1-p) 2^24) / 2^24.
inline int32_t dropout_keep_threshold(double p) {
  return static_cast<int32_t>(std::ceil((1.0 - p) * 16777216.0));
}

// The value a kept element is multiplied by: torch's _dropout_impl computes
// noise.bernoulli_(1 - p).div_(1 - p) in the input's dtype, so 1 - p is rounded to that dtype
// first and the quotient computed in float (double for float64) and rounded again: float32 at
// p = 0.04 is 1.04166675, not 1/(1 - p) = 1.04166663; bfloat16 at p = 0.01 is 1.015625. 0 when
// p == 1. Exactly representable in `dtype`.
inline double dropout_scale(double p, DType dtype) {
  if (p >= 1) return 0.0;
  switch (dtype) {
    case DType::float64:
      return 1.0 / (1.0 - p);
    case DType::bfloat16:
      return static_cast<float>(BFloat16(1.0f / static_cast<float>(BFloat16(1.0 - p))));
    case DType::float16:
      return static_cast<float>(Half(1.0f / static_cast<float>(Half(1.0 - p))));
    default:
      return 1.0f / static_cast<float>(1.0 - p);
  }
}

constexpr uint64_t random_blocks_for(int64_t n, int64_t per_block) {
  return static_cast<uint64_t>((n + per_block - 1) / per_block);
}

// Fills n contiguous elements of `dtype` at `out` from blocks starting at counter `offset`.
using RandomFillFn = void (*)(void* out, DType dtype, int64_t n, uint64_t seed, uint64_t offset,
                              const RandomParams& params);
FABRIC_DECLARE_STUB(random_fill_stub, RandomFillFn);

// Inverted dropout over n contiguous elements: mask[i] = keep ? dropout_scale(p, dtype) : 0,
// out[i] = in[i] * mask[i] (computed in float32 for 16-bit dtypes, as a multiply, so inf/NaN
// inputs of dropped elements give NaN, as in PyTorch). 0 <= p <= 1.
using DropoutFn = void (*)(const void* in, void* out, void* mask, DType dtype, int64_t n, double p,
                           uint64_t seed, uint64_t offset);
FABRIC_DECLARE_STUB(dropout_stub, DropoutFn);

}  // namespace fabric
