// Tensor-core building blocks of the mma attention kernels (kernels/cuda/attention_mma_kernels.cu):
// thin wrappers over single PTX instructions, kept in this one header so that a host emulator can
// replace exactly these functions. Register layouts are the PTX ISA's ("Matrix Fragments for
// mma.m16n8k16 with floating point type"; "Warp-level matrix load instruction: ldmatrix"); the
// kernel file's header comment restates the parts it relies on.
//
// mma.sync and ldmatrix are warp-collective: every lane of the warp must execute the same call;
// the cp.async wrappers are per thread.
// The bf16 mma needs sm_80; built for an older architecture, the wrappers trap (the host side never
// launches the kernels there, see attention_mma_kernels.cu).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "tensor/dtype.h"

// 1 where the mma kernels' bodies are compiled: the host pass and device passes for sm_80+.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#define FABRIC_MMA_ARCH_OK 0
#else
#define FABRIC_MMA_ARCH_OK 1
#endif

namespace fabric::cuda::mma {

// d += a b for one 16x8x16 tile: a is 16x16 (row-major fragment, 4 registers of two 16-bit
// elements), b is 16x8 (column-major fragment, 2 registers), d is the 16x8 fp32 accumulator.
// T (BFloat16 or Half) is the element type of a and b.
template <typename T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4],
                                          const uint32_t (&b)[2]) {
#if FABRIC_MMA_ARCH_OK
  if constexpr (std::is_same_v<T, BFloat16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    static_assert(std::is_same_v<T, Half>, "mma_16816: bf16 or f16 operands");
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
#else
  __trap();
#endif
}

// Four 8x8 matrices of 16-bit elements from shared memory: lane l gives the address of row l % 8
// of matrix l / 8 (16 bytes, 16-byte aligned); register r[m] receives lane l's fragment of matrix
// m: row l / 4, columns 2 (l % 4) and 2 (l % 4) + 1 (the lower column in the lower half).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
#if FABRIC_MMA_ARCH_OK
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
#else
  __trap();
#endif
}

// The same with .trans: each matrix is read column-major, so lane l receives the elements at
// stored rows 2 (l % 4) and 2 (l % 4) + 1 of stored column l / 4.
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) {
#if FABRIC_MMA_ARCH_OK
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
#else
  __trap();
#endif
}

// Two floats rounded to nearest even into T and packed: lo in the lower 16 bits (the register
// layout of an mma operand pair). cvt puts its first source operand in the upper half.
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  uint32_t r = 0;
#if FABRIC_MMA_ARCH_OK
  if constexpr (std::is_same_v<T, BFloat16>) {
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  } else {
    static_assert(std::is_same_v<T, Half>, "pack2: bf16 or f16");
    asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  }
#else
  __trap();
#endif
  return r;
}

// cp.async (sm_80, PTX ISA "Data Movement and Conversion Instructions: cp.async"): 16 bytes from
// global to shared memory, asynchronously and bypassing L1 (.cg). The first src_bytes bytes (0 to
// 16) are read from src and the rest of the 16 are zero-filled; src must still be a valid global
// address when src_bytes is 0. dst and src are 16-byte aligned. The copy joins this thread's open
// cp.async group; cp_async_commit closes the group, and cp_async_wait<N> blocks until at most the
// N most recently committed groups of this thread are pending (every older one is complete). A
// completed copy is visible to the issuing thread; other threads see it only after a barrier that
// follows the issuing thread's wait.
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, int src_bytes) {
#if FABRIC_MMA_ARCH_OK
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  const size_t s = __cvta_generic_to_global(src);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(s), "r"(src_bytes)
               : "memory");
#else
  __trap();
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#if FABRIC_MMA_ARCH_OK
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#else
  __trap();
#endif
}

template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if FABRIC_MMA_ARCH_OK
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#else
  __trap();
#endif
}

// The block's dynamic shared memory (the size is the launch's third parameter).
__device__ __forceinline__ unsigned char* dynamic_smem() {
  extern __shared__ __align__(16) unsigned char fabric_mma_smem[];
  return fabric_mma_smem;
}

}  // namespace fabric::cuda::mma
