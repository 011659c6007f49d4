// torch 1.13's CPU distributions over its Mersenne Twister, and its float64 normal_fill_16 (the
// float32 one is a CPU kernel: kernels/cpu/torch_normal_fill.cpp). Every product-then-add of
// torch's source is written as the fma its compiler made of it. Checked bit for bit against
// Debian's torch (tests/tensor/test_torch_cpu_rng.cpp).
#include "tensor/torch_cpu_rng.h"

#include <cmath>
#include <numbers>

namespace fabric {

double TorchCpuRng::normal_double(double mean, double std) {
  if (next_normal_) {
    const double z = *next_normal_;
    next_normal_.reset();
    return std::fma(z, std, mean);
  }
  const double u1 = uniform_double(0.0, 1.0);
  const double u2 = uniform_double(0.0, 1.0);
  const double r = std::sqrt(-2.0 * std::log(1.0 - u2));
  const double theta = 2.0 * std::numbers::pi * u1;
  next_normal_ = r * std::sin(theta);
  return std::fma(r * std::cos(theta), std, mean);
}

int64_t TorchCpuRng::uniform_int(uint64_t range, int64_t base) {
  const uint64_t draw = range >= (uint64_t{1} << 32) ? random64() : random();
  return static_cast<int64_t>(draw % range + static_cast<uint64_t>(base));
}

FABRIC_DEFINE_STUB(torch_normal_fill_16_stub, TorchNormalFill16Fn);

void torch_normal_fill_16(double* data, double mean, double std) {
  for (int j = 0; j < 8; ++j) {
    const double u1 = 1.0 - data[j];
    const double u2 = data[j + 8];
    const double radius = std::sqrt(-2.0 * std::log(u1));
    const double theta = 2.0 * std::numbers::pi * u2;
    data[j] = std::fma(radius * std::cos(theta), std, mean);
    data[j + 8] = std::fma(radius * std::sin(theta), std, mean);
  }
}

}  // namespace fabric
