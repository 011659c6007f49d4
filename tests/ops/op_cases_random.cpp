// Harness cases for dropout: each run draws from a fresh generator with a fixed seed, so every
// dtype and layout sees the same mask, checked against a naive reference that draws the mask
// from philox4x32 itself (the contract of tensor/random_kernels.h) and by finite differences.
#include <gtest/gtest.h>

#include <cmath>

#include "tensor/random.h"
#include "tests/ops/op_harness.h"

namespace fabric::harness {
namespace {

OpFn run_dropout(double p, uint64_t seed) {
  return [p, seed](const std::vector<Tensor>& in) {
    Generator g(seed);
    return dropout(in[0], p, true, &g);
  };
}

RefFn ref_dropout(double p, uint64_t seed) {
  return [p, seed](const std::vector<RefTensor>& in) {
    RefTensor out = in[0];
    const uint32_t threshold = static_cast<uint32_t>(std::ceil((1.0 - p) * 16777216.0));
    for (int64_t i = 0; i < out.numel(); ++i) {
      const PhiloxBlock b = philox4x32(seed, 0, static_cast<uint64_t>(i / 4));
      const bool keep = (b.v[i % 4] >> 8) < threshold;
      out.v[i] = keep ? out.v[i] / (1.0 - p) : 0.0 * out.v[i];
    }
    return out;
  };
}

std::vector<OpCase> random_cases() {
  std::vector<OpCase> cases;
  const std::vector<std::pair<std::string, Shape>> shapes = {
      {"1d", {7}}, {"2d", {5, 6}}, {"3d", {2, 3, 9}}, {"size0", {0, 3}}, {"size1", {1, 1}}, {"0dim", {}},
      {"large", {64, 130}}};
  for (const auto& [sname, shape] : shapes) {
    for (double p : {0.0, 0.3, 0.5, 0.9, 1.0}) {
      const uint64_t seed = 1000 + static_cast<uint64_t>(p * 10);
      cases.push_back({.name = "dropout/" + sname + "/p=" + std::to_string(p),
                       .inputs = {F(shape)},
                       .run = run_dropout(p, seed),
                       .reference = ref_dropout(p, seed)});
    }
  }
  // Not training: the identity whatever p is.
  cases.push_back({.name = "dropout/eval",
                   .inputs = {F({4, 5})},
                   .run = [](const std::vector<Tensor>& in) { return dropout(in[0], 0.5, false); },
                   .reference = ref_unary([](double x) { return x; })});
  return cases;
}

TEST(OpHarness, Random) { run_cases(random_cases()); }
TEST(OpHarnessCuda, Random) { run_cases_on_cuda(random_cases()); }

}  // namespace
}  // namespace fabric::harness
