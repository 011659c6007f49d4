// Harness cases for the 1-d pools (max_pool1d, avg_pool1d, adaptive_avg_pool1d of
// nn/functional_pool1d.h), compositions over the 2-d pools, each against a naive float64
// reference written here, with finite-difference gradients, batched and unbatched.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "nn/functional_pool1d.h"
#include "tests/ops/op_harness.h"

namespace fabric::harness {
namespace {

// Windows of k every s over L padded by p: -inf padding for max, zeros counted for avg.
RefTensor ref_pool1d(const RefTensor& x, int64_t k, int64_t s, int64_t p, bool max) {
  const int64_t L = x.shape.back(), OL = (L + 2 * p - k) / s + 1, rows = x.numel() / L;
  Shape os = x.shape;
  os.back() = OL;
  RefTensor out{os, std::vector<double>(static_cast<size_t>(rows * OL))};
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < OL; ++o) {
      double acc = max ? -std::numeric_limits<double>::infinity() : 0.0;
      for (int64_t i = o * s - p; i < o * s - p + k; ++i) {
        if (i < 0 || i >= L) continue;
        const double v = x.v[r * L + i];
        acc = max ? std::max(acc, v) : acc + v;
      }
      out.v[r * OL + o] = max ? acc : acc / static_cast<double>(k);
    }
  return out;
}

// Output o averages [floor(o * L / out), ceil((o + 1) * L / out)).
RefTensor ref_adaptive_pool1d(const RefTensor& x, int64_t out_size) {
  const int64_t L = x.shape.back(), rows = x.numel() / L;
  Shape os = x.shape;
  os.back() = out_size;
  RefTensor out{os, std::vector<double>(static_cast<size_t>(rows * out_size))};
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out_size; ++o) {
      const auto lo = static_cast<int64_t>(std::floor(static_cast<double>(o) * L / out_size));
      const auto hi = static_cast<int64_t>(std::ceil(static_cast<double>(o + 1) * L / out_size));
      double acc = 0;
      for (int64_t i = lo; i < hi; ++i) acc += x.v[r * L + i];
      out.v[r * out_size + o] = acc / static_cast<double>(hi - lo);
    }
  return out;
}

OpCase pool1d_case(bool max, std::string name, Shape x, int64_t k, std::optional<int64_t> s,
                   int64_t p) {
  return {
      std::string(max ? "max_pool1d/" : "avg_pool1d/") + name,
      {F(std::move(x))},
      [=](const std::vector<Tensor>& t) {
        return max ? nn::max_pool1d(t[0], k, s, p) : nn::avg_pool1d(t[0], k, s, p);
      },
      [=](const std::vector<RefTensor>& t) { return ref_pool1d(t[0], k, s.value_or(k), p, max); }};
}

OpCase adaptive_pool1d_case(std::string name, Shape x, int64_t out_size) {
  return {"adaptive_avg_pool1d/" + name,
          {F(std::move(x))},
          [=](const std::vector<Tensor>& t) { return nn::adaptive_avg_pool1d(t[0], out_size); },
          [=](const std::vector<RefTensor>& t) { return ref_adaptive_pool1d(t[0], out_size); }};
}

std::vector<OpCase> pool1d_cases() {
  return {
      pool1d_case(true, "k3", {2, 3, 7}, 3, std::nullopt, 0),
      pool1d_case(true, "k3_s2_p1", {2, 3, 8}, 3, 2, 1),
      pool1d_case(true, "k2_s1_unbatched", {3, 6}, 2, 1, 0),
      pool1d_case(false, "k3", {2, 3, 7}, 3, std::nullopt, 0),
      pool1d_case(false, "k4_s2_p2", {2, 3, 9}, 4, 2, 2),
      pool1d_case(false, "k2_s1_p1_unbatched", {3, 5}, 2, 1, 1),
      adaptive_pool1d_case("3_of_7", {2, 3, 7}, 3),
      adaptive_pool1d_case("1_global", {2, 4, 6}, 1),
      adaptive_pool1d_case("5_of_4_unbatched", {3, 4}, 5),
  };
}

}  // namespace

TEST(OpHarness, Pool1d) { run_cases(pool1d_cases()); }
TEST(OpHarnessCuda, Pool1d) { run_cases_on_cuda(pool1d_cases()); }

}  // namespace fabric::harness
