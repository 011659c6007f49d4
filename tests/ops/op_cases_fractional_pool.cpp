// Harness cases for fractional_max_pool2d/3d (tensor/fractional_max_pool.h) with the samples
// given (a fixed, non-differentiable input), against a naive float64 reference written here,
// with finite-difference gradients, batched and unbatched. The samples and sizes are picked so
// that torch's window starts come out alike in float32 and float64 (binary fractions times an
// alpha of 1.5, 1.75 or 2): the reference computes them in double.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "tensor/fractional_max_pool.h"
#include "tests/ops/op_harness.h"

namespace fabric::harness {
namespace {

using Sizes = std::vector<int64_t>;

// torch's generate_intervals.
Sizes starts(double sample, int64_t in, int64_t out, int64_t k) {
  Sizes s(static_cast<size_t>(out));
  if (out > 1) {
    const double alpha = static_cast<double>(in - k) / static_cast<double>(out - 1);
    for (int64_t i = 0; i + 1 < out; ++i)
      s[i] = static_cast<int64_t>((static_cast<double>(i) + sample) * alpha) -
             static_cast<int64_t>(sample * alpha);
  }
  if (out > 0) s[out - 1] = in - k;
  return s;
}

// Every plane's windows (T, H, W; the 2-d op as T = 1) reduced with max. Samples [0] move W and
// [1] H in 2-d; [0] T, [1] H, [2] W in 3-d.
RefTensor ref_fractional(const RefTensor& x, const RefTensor& samples, int64_t dims,
                         const Sizes& k_in, const Sizes& out_in) {
  Sizes in(x.shape.end() - dims, x.shape.end()), k = k_in, out = out_in;
  if (k.size() == 1) k.assign(dims, k[0]);
  if (out.size() == 1) out.assign(dims, out[0]);
  if (dims == 2) {
    in.insert(in.begin(), 1);
    k.insert(k.begin(), 1);
    out.insert(out.begin(), 1);
  }
  const int64_t in_plane = in[0] * in[1] * in[2], planes = x.numel() / in_plane;
  Shape os(x.shape.begin(), x.shape.end() - dims);
  os.insert(os.end(), out.end() - dims, out.end());
  RefTensor r{os, {}};
  for (int64_t p = 0; p < planes; ++p) {
    const double* s = samples.v.data() + p * dims;
    const Sizes st = dims == 3 ? starts(s[0], in[0], out[0], k[0]) : Sizes{0};
    const Sizes sh = starts(s[1], in[1], out[1], k[1]);
    const Sizes sw = starts(dims == 3 ? s[2] : s[0], in[2], out[2], k[2]);
    for (int64_t a = 0; a < out[0]; ++a)
      for (int64_t b = 0; b < out[1]; ++b)
        for (int64_t c = 0; c < out[2]; ++c) {
          double best = -std::numeric_limits<double>::infinity();
          for (int64_t t = st[a]; t < st[a] + k[0]; ++t)
            for (int64_t h = sh[b]; h < sh[b] + k[1]; ++h)
              for (int64_t w = sw[c]; w < sw[c] + k[2]; ++w)
                best = std::max(best, x.v[p * in_plane + (t * in[1] + h) * in[2] + w]);
          r.v.push_back(best);
        }
  }
  return r;
}

OpCase fractional_case(int64_t dims, std::string name, Shape x, Sizes k, Sizes out,
                       std::vector<double> samples) {
  const bool batched = static_cast<int64_t>(x.size()) == dims + 2;
  const Shape s{batched ? x[0] : 1, x[batched ? 1 : 0], dims};
  OpCase c;
  c.name = std::string(dims == 2 ? "fractional_max_pool2d/" : "fractional_max_pool3d/") + name;
  c.inputs = {F(x), NoGrad(V(s, std::move(samples)))};
  c.run = [=](const std::vector<Tensor>& in) {
    return dims == 2 ? fractional_max_pool2d(in[0], k, out, {}, in[1])
                     : fractional_max_pool3d(in[0], k, out, {}, in[1]);
  };
  c.reference = [=](const std::vector<RefTensor>& in) {
    return ref_fractional(in[0], in[1], dims, k, out);
  };
  // torch's CPU kernel takes float64 and float32 only.
  c.dtypes = {DType::float64, DType::float32};
  return c;
}

std::vector<OpCase> fractional_pool_cases() {
  return {
      // alpha: H (9 - 2) / 4 = 1.75, W (8 - 2) / 3 = 2.
      fractional_case(2, "k2_batched", {2, 2, 9, 8}, {2}, {5, 4},
                      {0.25, 0.5, 0.75, 0.125, 0.0, 0.875, 0.625, 0.375}),
      // alpha (7 - 3) / 2 = 2 both ways.
      fractional_case(2, "k3_unbatched", {3, 7, 7}, {3}, {3},
                      {0.5, 0.25, 0.75, 0.0, 0.125, 0.9375}),
      // alpha: T (8 - 2) / 3 = 2, H (6 - 2) / 2 = 2, W (5 - 2) / 2 = 1.5.
      fractional_case(3, "k2_batched", {1, 2, 8, 6, 5}, {2}, {4, 3, 3},
                      {0.25, 0.5, 0.75, 0.875, 0.125, 0.375}),
      // alpha (5 - 2) / 2 = 1.5 each way.
      fractional_case(3, "k2_unbatched", {2, 5, 5, 5}, {2}, {3},
                      {0.5, 0.25, 0.75, 0.0, 0.625, 0.375}),
  };
}

TEST(OpHarness, FractionalPool) { run_cases(fractional_pool_cases()); }
TEST(OpHarnessCuda, FractionalPool) { run_cases_on_cuda(fractional_pool_cases()); }

}  // namespace
}  // namespace fabric::harness
