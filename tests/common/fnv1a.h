// FNV-1a (64-bit) of a tensor's bytes, contiguous and little-endian: the hash the torch fixture
// scripts print for a result (tools/fixtures/*.py), so a test compares whole tensors with torch's
// bit for bit through one number. Pass a previous hash as `h` to chain several tensors.
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace fabric::testing {

inline constexpr uint64_t kFnv1aStart = 0xcbf29ce484222325ull;

inline uint64_t fnv1a(const Tensor& t, uint64_t h = kFnv1aStart) {
  const Tensor c = t.contiguous();
  const auto* bytes = static_cast<const unsigned char*>(c.data_ptr());
  for (int64_t i = 0; i < c.numel() * itemsize(c.dtype()); ++i)
    h = (h ^ bytes[i]) * 0x100000001b3ull;
  return h;
}

}  // namespace fabric::testing
