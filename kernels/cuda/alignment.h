// Address alignment, as the CUDA paths ask it: 16-byte loads and stores (the wide row, piece and
// column kernels, cuDNN's and cuBLASLt's tensor-core kernels, cuBLASLt's FP8 scales and epilogue
// pointers) need the address to be a multiple of their size, and cuBLASLt's plans are keyed by the
// alignment each operand has. Free of CUDA headers (host tests and .cpp files use it).
#pragma once
#include <cstdint>

namespace fabric::cuda {

// Whether p is a multiple of `bytes` (a power of two).
inline bool aligned_to(const void* p, int64_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(bytes) == 0;
}
inline bool aligned16(const void* p) { return aligned_to(p, 16); }

// The largest power of two, at most 256 (cuBLASLt's default expectation), dividing p and also
// `stride_bytes` (a batch stride every address of the operand steps by; 0 for none).
inline uint32_t address_alignment(const void* p, uint64_t stride_bytes = 0) {
  const uint64_t a = reinterpret_cast<uintptr_t>(p) | stride_bytes | 256u;
  return static_cast<uint32_t>(a & (~a + 1));
}

}  // namespace fabric::cuda
