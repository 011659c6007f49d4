// Test data whose float32 sums depend on the order of the additions: magnitudes from 2^-10 to
// 2^21 of both signs with 12-bit mantissas (a linear congruential sequence from `seed`), so a
// kernel that claims to add the same values in the same order as its reference is caught when it
// does not.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace fabric {

inline std::vector<float> order_sensitive(size_t n, uint32_t seed) {
  std::vector<float> v(n);
  for (float& e : v) {
    seed = seed * 1664525u + 1013904223u;
    const float mag = std::ldexp(1.0f, static_cast<int>(seed >> 27) - 10);  // 2^-10 .. 2^21
    e = ((seed >> 8) & 1 ? -mag : mag) * (1.0f + static_cast<float>(seed >> 12 & 0xFFF) / 4096.0f);
  }
  return v;
}

}  // namespace fabric
