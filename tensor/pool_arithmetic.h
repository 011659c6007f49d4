// The compute type of the pooling kernels and the rounding of their 16-bit backward, one
// host/device header for the CPU kernels and their CUDA twins: torch's 16-bit scalar arithmetic
// computes each operation in float32 and rounds its result to the storage type (and turns an
// integer operand into it first).
#pragma once
#include <type_traits>

#include "tensor/host_device.h"

namespace fabric::pool_arith {

// float64 computes in double, every other float type in float32.
template <typename T>
using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

// v rounded to T: the identity for float and double.
template <typename T>
FABRIC_HD_INLINE acc_t<T> round_to(acc_t<T> v) {
  if constexpr (std::is_same_v<T, acc_t<T>>) {
    return v;
  } else {
    return static_cast<acc_t<T>>(static_cast<T>(v));
  }
}

}  // namespace fabric::pool_arith
