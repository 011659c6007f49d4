// The probes of x86_simd_probe_ops.inc on the AVX-512 instructions: tests/CMakeLists.txt compiles
// this file with AVX-512 F/BW/DQ/VL on any build machine; only a CPU that has them may call it.
#include "kernels/cpu/x86_simd.h"
#include "tests/kernels/x86_simd_probe.h"

#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512DQ__) || \
    !defined(__AVX512VL__)
#error "x86_simd_probe_hardware.cpp needs -mavx512f -mavx512bw -mavx512dq -mavx512vl"
#endif

namespace fabric::x86_simd_probe::hardware {
#include "tests/kernels/x86_simd_probe_ops.inc"
}  // namespace fabric::x86_simd_probe::hardware

namespace fabric::x86_simd_probe {
OpTable hardware_ops() {
  return {hardware::kOps, static_cast<int>(sizeof hardware::kOps / sizeof(Op))};
}
}  // namespace fabric::x86_simd_probe
