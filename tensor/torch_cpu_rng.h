// PyTorch's CPU random stream and the transforms its CPU kernels apply to it (torch 1.13 as Debian
// builds it: the AVX2 kernels, whose compiler fused every product-then-add into an fma), so that
// a torch_cpu Generator (tensor/random.h) gives torch's numbers for a seed.
//
// The stream is CPUGeneratorImpl's: the standard 32-bit Mersenne Twister seeded with the seed's
// low 32 bits (at::mt19937 is std::mt19937's algorithm and seeding), a 64-bit draw is
// (first << 32) | second, and a float64 Box–Muller pair leaves its second value cached for the next
// scalar normal draw, across calls, until the next seeding.
#pragma once
#include <cmath>
#include <cstdint>
#include <mutex>
#include <optional>
#include <random>

#include "tensor/dispatch_stub.h"

namespace fabric {

class TorchCpuRng {
 public:
  explicit TorchCpuRng(uint64_t seed) { reseed(seed); }
  // A snapshot: the stream and its cached normal (each copy has its own lock).
  TorchCpuRng(const TorchCpuRng& other)
      : engine_(other.engine_), next_normal_(other.next_normal_) {}
  TorchCpuRng& operator=(const TorchCpuRng& other) {
    engine_ = other.engine_;
    next_normal_ = other.next_normal_;
    return *this;
  }

  void reseed(uint64_t seed) {
    engine_.seed(static_cast<uint32_t>(seed));
    next_normal_.reset();
  }
  uint32_t random() { return static_cast<uint32_t>(engine_()); }
  uint64_t random64() {
    const uint64_t first = random();
    return first << 32 | random();
  }
  // Held for the whole of one tensor's draw, as torch holds its generator's mutex.
  std::unique_lock<std::mutex> lock() { return std::unique_lock<std::mutex>(mutex_); }

  // ---- torch's distributions (at::uniform_real_distribution and friends) ----
  // A uniform value of a dtype with `digits` significand bits (24 float32, 11 float16, 8
  // bfloat16): the low `digits` bits of one 32-bit draw, scaled into [0, 1), then
  // fma(u, width, from) in float32.
  float uniform_float(int digits, float from, float width) {
    const float scale = digits == 24 ? 0x1p-24f : digits == 11 ? 0x1p-11f : 0x1p-8f;
    return std::fmaf(static_cast<float>(random() & ((uint32_t{1} << digits) - 1)) * scale, width,
                     from);
  }
  // float64: the low 53 bits of a 64-bit draw, fma(u, width, from).
  double uniform_double(double from, double width) {
    return std::fma(static_cast<double>(random64() & ((uint64_t{1} << 53) - 1)) * 0x1p-53, width,
                    from);
  }
  // at::normal_distribution<double>: the cached value if there is one, else a Box–Muller pair from
  // two uniform_double draws (u1 the angle, u2 the radius) whose sine half is cached;
  // fma(z, std, mean).
  double normal_double(double mean, double std);
  // transformation::uniform_int_from_to: a 64-bit draw when range >= 2^32, else a 32-bit one;
  // base + draw % range.
  int64_t uniform_int(uint64_t range, int64_t base);
  // at::bernoulli_distribution<double>: uniform_double(0, 1) < p.
  bool bernoulli(double p) { return uniform_double(0.0, 1.0) < p; }

  friend bool operator==(const TorchCpuRng& a, const TorchCpuRng& b) {
    return a.engine_ == b.engine_ && a.next_normal_ == b.next_normal_;
  }

 private:
  std::mt19937 engine_;
  std::optional<double> next_normal_;  // torch's next_double_normal_sample (before mean/std)
  std::mutex mutex_;
};

// torch's normal_fill_16 kernels: each block of 16 uniforms in [0, 1) becomes 16 normals, pairs
// (j, j + 8) giving radius·cos(θ), radius·sin(θ) with radius = sqrt(-2 ln(1 - u_j)),
// θ = 2π u_(j+8), each then fma(·, std, mean).
//  float32: normal_fill_16_AVX2, with the Cephes log/sincos polynomials of its avx_mathfun.h
//           (the CPU kernel, kernels/cpu/torch_normal_fill.cpp); `blocks` consecutive blocks.
//  float64: the scalar kernel with libm's log/cos/sin, one block.
using TorchNormalFill16Fn = void (*)(float* data, int64_t blocks, float mean, float std);
FABRIC_DECLARE_STUB(torch_normal_fill_16_stub, TorchNormalFill16Fn);
void torch_normal_fill_16(double* data, double mean, double std);

}  // namespace fabric
