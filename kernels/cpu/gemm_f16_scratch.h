// Per-thread scratch for the f16 GEMM routes' converted operands and staged outputs (gemm_via_f32,
// gemm_f16_split): grow-only, so that a steady training step does not allocate, and 64-byte
// aligned, because oneDNN's AMX bf16 kernels lose 15-25 % on malloc's 16-byte alignment (see
// tools/bench/bench_gemm.cpp) and std::vector gives no more.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace fabric::cpu::detail {

template <typename T>
class ScratchBuffer {
 public:
  ScratchBuffer() = default;
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  ~ScratchBuffer() { std::free(data_); }

  // At least n elements; the contents are unspecified (not kept when the buffer grows).
  T* get(int64_t n) {
    if (n > capacity_) {
      std::free(data_);
      data_ = nullptr;
      capacity_ = 0;
      const size_t bytes = (size_t(n) * sizeof(T) + 4095) / 4096 * 4096;
      data_ = static_cast<T*>(std::aligned_alloc(64, bytes));
      if (!data_) throw std::bad_alloc();
      capacity_ = int64_t(bytes / sizeof(T));
    }
    return data_;
  }

 private:
  T* data_ = nullptr;
  int64_t capacity_ = 0;
};

}  // namespace fabric::cpu::detail
