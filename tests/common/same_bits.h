// A gtest check that two tensors hold the same bits: dtype, shape and bytes element by element
// (NaN payloads and -0 vs +0 count), naming the first element that differs.
#pragma once
#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace fabric {

inline void expect_same_bits(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  const Tensor g = got.contiguous(), w = want.contiguous();
  const auto* gp = static_cast<const unsigned char*>(g.data_ptr());
  const auto* wp = static_cast<const unsigned char*>(w.data_ptr());
  const int64_t es = g.element_size();
  for (int64_t i = 0; i < g.numel(); ++i) {
    if (std::memcmp(gp + i * es, wp + i * es, static_cast<size_t>(es)) != 0) {
      const auto gv = g.reshape({-1}).to(DType::float64).to_vector<double>();
      const auto wv = w.reshape({-1}).to(DType::float64).to_vector<double>();
      ADD_FAILURE() << what << ": element " << i << " is " << gv[i] << ", want " << wv[i];
      return;
    }
  }
}

// The same for float vectors (kernel outputs against their reference's), bit for bit.
inline void expect_same_bits(const std::vector<float>& got, const std::vector<float>& want,
                             const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t j = 0; j < got.size(); ++j) {
    ASSERT_EQ(std::bit_cast<uint32_t>(got[j]), std::bit_cast<uint32_t>(want[j]))
        << what << " [" << j << "]: " << got[j] << ", want " << want[j];
  }
}

}  // namespace fabric
