// Compares a tensor with a row of tests/tensor/torch_cpu_rng_rows.h (torch 1.13's values for the
// same call after the same seed) byte for byte, through the row's hash; a mismatch prints the
// first values of both.
#pragma once
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "tensor/random.h"
#include "tensor/tensor.h"
#include "tests/common/fnv1a.h"
#include "tests/tensor/torch_cpu_rng_rows.h"

namespace fabric::testing {

inline const TorchCpuRngRow& torch_cpu_rng_row(const std::string& name) {
  for (const TorchCpuRngRow& row : torch_cpu_rng_rows())
    if (name == row.name) return row;
  throw std::runtime_error("no torch_cpu_rng row named " + name);
}

inline void expect_torch_values(const std::string& name, const Tensor& t) {
  const TorchCpuRngRow& row = torch_cpu_rng_row(name);
  ASSERT_EQ(std::string(dtype_name(t.dtype())), row.dtype) << name;
  ASSERT_EQ(t.numel(), row.numel) << name;
  const Tensor flat = t.contiguous().reshape({-1}).to(DType::float64);
  std::string ours, torch;
  for (size_t i = 0; i < row.head.size(); ++i) {
    ours += std::to_string(flat.data<double>()[i]) + " ";
    torch += std::to_string(row.head[i]) + " ";
    EXPECT_EQ(flat.data<double>()[i], row.head[i]) << name << " element " << i;
  }
  EXPECT_EQ(fnv1a(t), row.fnv1a) << name
                                 << ": the values differ from torch's; first values ours: " << ours
                                 << "torch: " << torch;
}

// Makes the default generator a torch_cpu one seeded with `seed` for a scope (modules and ops
// that take no generator draw from it), restoring its state after.
class TorchDefaultGenerator {
 public:
  explicit TorchDefaultGenerator(uint64_t seed) : saved_(default_generator().state()) {
    default_generator().manual_seed(seed);
    default_generator().set_algorithm(RngAlgorithm::torch_cpu);
  }
  ~TorchDefaultGenerator() { default_generator().set_state(saved_); }
  TorchDefaultGenerator(const TorchDefaultGenerator&) = delete;
  TorchDefaultGenerator& operator=(const TorchDefaultGenerator&) = delete;

 private:
  GeneratorState saved_;
};

}  // namespace fabric::testing
