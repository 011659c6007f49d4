// The probes of x86_simd_probe_ops.inc on the AVX2 emulation: tests/CMakeLists.txt compiles this
// file for x86-64-v3, so that kernels/cpu/x86_simd.h takes kernels/cpu/avx512_emulation.h even on
// an AVX-512 build machine. (x86_simd.h's opaque_ps is defined differently here than in the
// AVX-512 files; it is always inlined and unused here, so no copy of it is emitted to clash.)
#include "kernels/cpu/x86_simd.h"
#include "tests/kernels/x86_simd_probe.h"

#if defined(__AVX512F__) || !defined(FABRIC_AVX512_NAME)
#error "x86_simd_probe_emulated.cpp must be compiled without AVX-512 (-march=x86-64-v3)"
#endif

namespace fabric::x86_simd_probe::emulated {
#include "tests/kernels/x86_simd_probe_ops.inc"
}  // namespace fabric::x86_simd_probe::emulated

namespace fabric::x86_simd_probe {
OpTable emulated_ops() {
  return {emulated::kOps, static_cast<int>(sizeof emulated::kOps / sizeof(Op))};
}
}  // namespace fabric::x86_simd_probe
