// Test helper: fixture rows that store torch's values as bit patterns (one uint64 per element:
// a float64's bits, or a float32's in the low 32 bits) as a tensor of that dtype.
#pragma once
#include <bit>
#include <cstdint>
#include <vector>

#include "tensor/factory.h"

namespace fabric::test {

inline Tensor from_bits(const std::vector<uint64_t>& bits, const Shape& shape, DType dtype) {
  if (dtype == DType::float64) {
    std::vector<double> v;
    for (uint64_t b : bits) v.push_back(std::bit_cast<double>(b));
    return from_vector(v, shape);
  }
  std::vector<float> v;
  for (uint64_t b : bits) v.push_back(std::bit_cast<float>(static_cast<uint32_t>(b)));
  return from_vector(v, shape);
}

}  // namespace fabric::test
