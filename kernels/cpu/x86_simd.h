// The x86 intrinsics of the CPU kernels: <immintrin.h>, and on a CPU without AVX-512 (AVX2 ones:
// AMD EPYC before Zen 4, Intel before Skylake-SP) the AVX-512 intrinsics those kernels use,
// emulated on pairs of AVX2 registers (avx512_emulation.h). The kernels are written once, for
// 16-lane vectors; an AVX-512 build compiles them to the real instructions, unchanged.
#pragma once

// g++ 12's AVX-512 headers trip -W(maybe-)uninitialized on their own _mm*_undefined_*() (GCC
// PR105593); the state must be set before <immintrin.h> is first read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#if !defined(__AVX512F__)
#include "kernels/cpu/avx512_emulation.h"
#elif !defined(__AVX512BW__) || !defined(__AVX512VL__) || !defined(__AVX512DQ__)
#error "the CPU kernels need AVX-512 F/BW/VL/DQ together, or no AVX-512 at all (AVX2 and FMA)"
#endif

namespace fabric::cpu {

// v unchanged, but opaque to the optimiser: a product passed through it is rounded on its own,
// never fused into an fma by -ffp-contract=fast. One zmm register under AVX-512, two ymm halves
// under the emulation.
inline __attribute__((always_inline)) __m512 opaque_ps(__m512 v) {
#if defined(__AVX512F__)
  asm("" : "+v"(v));
  return v;
#else
  __m256 l = avx512::lo(v), h = avx512::hi(v);
  asm("" : "+x"(l), "+x"(h));
  return avx512::join(l, h);
#endif
}

}  // namespace fabric::cpu
