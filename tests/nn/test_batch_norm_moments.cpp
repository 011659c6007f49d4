// batch_norm's training statistics on (N, C) inputs, which the CPU takes in one read through
// channel_moments_stub (kernels/cpu/channel_moments.cpp: blocks of rows, each two-pass in cache,
// merged with Chan's update): mean, biased variance in the output and unbiased variance in
// running_var against a float64 reference, at shapes that exercise one block, many blocks and
// groups, single-row blocks (C wider than a block), C = 1, odd C, N below the thread count, and
// a large offset (a one-pass E[x^2] - E[x]^2 would lose the variance there); half inputs; and the
// same bits at every thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "autograd/grad_mode.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/shape.h"
#include "tests/common/omp_threads.h"

namespace fabric {
namespace {

void set_threads(int n) { OmpThreads::set(n); }  // tests/common/omp_threads.h
int max_threads() { return OmpThreads::max_threads(); }

struct Reference {
  std::vector<double> mean, var;  // biased var
};

Reference reference(const Tensor& x) {
  const int64_t N = x.size(0), C = x.size(1);
  const std::vector<double> v = x.to(DType::float64).contiguous().to_vector<double>();
  Reference r{std::vector<double>(C, 0.0), std::vector<double>(C, 0.0)};
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) r.mean[c] += v[n * C + c];
  for (int64_t c = 0; c < C; ++c) r.mean[c] /= static_cast<double>(N);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const double d = v[n * C + c] - r.mean[c];
      r.var[c] += d * d;
    }
  for (int64_t c = 0; c < C; ++c) r.var[c] /= static_cast<double>(N);
  return r;
}

struct Result {
  Tensor out, running_mean, running_var;
};

// Training batch_norm with momentum 1: the running statistics become the batch's.
Result run_batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const int64_t C = x.size(1);
  // Running statistics in the statistics' dtype (float64 for float64 inputs), so that they hold
  // the batch's values unrounded.
  const TensorOptions o{.dtype = x.dtype() == DType::float64 ? DType::float64 : DType::float32};
  Result r{Tensor(), zeros({C}, o), ones({C}, o)};
  NoGradGuard no_grad;
  r.out = batch_norm(x, r.running_mean, r.running_var, weight, bias, true, 1.0, 1e-5);
  return r;
}

void check_against_reference(const Tensor& x, double tol, const std::string& what) {
  const int64_t N = x.size(0), C = x.size(1);
  const Tensor weight = add(rand({C}), 0.5), bias = randn({C});
  const Result got = run_batch_norm(x, weight, bias);
  const Reference ref = reference(x);
  const std::vector<double> rm = got.running_mean.to(DType::float64).to_vector<double>();
  const std::vector<double> rv = got.running_var.to(DType::float64).to_vector<double>();
  const std::vector<double> w = weight.to(DType::float64).to_vector<double>();
  const std::vector<double> b = bias.to(DType::float64).to_vector<double>();
  const std::vector<double> xv = x.to(DType::float64).contiguous().to_vector<double>();
  const std::vector<double> out = got.out.to(DType::float64).contiguous().to_vector<double>();
  const double eps = x.dtype() == DType::float64 ? 2.3e-16 : 1.2e-7;
  for (int64_t c = 0; c < C; ++c) {
    // The mean's error relative to the spread, plus its own rounding (an offset mean of 1000
    // in float32 is 6e-5 a step).
    const double mean_tol = tol * (std::sqrt(ref.var[c]) + 1e-3) + 2 * eps * std::abs(ref.mean[c]);
    ASSERT_NEAR(rm[c], ref.mean[c], mean_tol) << what << " mean, channel " << c;
    const double unbiased = ref.var[c] * static_cast<double>(N) / static_cast<double>(N - 1);
    ASSERT_NEAR(rv[c], unbiased, tol * std::max(unbiased, 1e-6)) << what << " var, channel " << c;
  }
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const double invstd = 1 / std::sqrt(ref.var[c] + 1e-5);
      const double want = (xv[n * C + c] - ref.mean[c]) * invstd * w[c] + b[c];
      // Plus the mean's own rounding (saved in the statistics' dtype), scaled as x is.
      const double mean_rounding = 2 * eps * std::abs(ref.mean[c]) * invstd * w[c];
      ASSERT_NEAR(out[n * C + c], want, tol * 10 * std::max(1.0, std::abs(want)) + mean_rounding)
          << what << " out (" << n << ", " << c << ")";
    }
}

TEST(BatchNormMoments, MatchFloat64ReferenceAcrossShapes) {
  manual_seed(7);
  // (N, C): one block; N below the thread count; C = 1 with several blocks; odd C; many
  // blocks and groups; C wider than a block (one row per block); a partial last block.
  const std::vector<Shape> shapes = {{2, 3},      {5, 1},     {70000, 1}, {3, 67},
                                     {300, 1000}, {3, 40000}, {4097, 65}, {33, 2049}};
  for (const Shape& s : shapes) {
    for (const DType dt : {DType::float32, DType::float64}) {
      const std::string what = shape_str(s) + " " + std::string(dtype_name(dt));
      const double tol = dt == DType::float64 ? 1e-11 : 2e-5;
      check_against_reference(randn(s, {.dtype = dt}), tol, what);
      // A large common offset: deviations must come from a mean, not from E[x^2] - E[x]^2.
      check_against_reference(add(randn(s, {.dtype = dt}), 1000.0), tol * 10, what + " + 1000");
    }
  }
}

TEST(BatchNormMoments, HalfInputsKeepFloatStatistics) {
  manual_seed(8);
  for (const DType dt : {DType::float16, DType::bfloat16}) {
    const Tensor x = add(mul(randn({513, 70}), 2.0), 3.0).to(dt);
    const Tensor w = ones({70}, {.dtype = dt}), b = zeros({70}, {.dtype = dt});
    const Result got = run_batch_norm(x, w, b);
    const Reference ref = reference(x);  // of the half values themselves
    const std::vector<double> rm = got.running_mean.to(DType::float64).to_vector<double>();
    for (int64_t c = 0; c < 70; ++c)
      ASSERT_NEAR(rm[c], ref.mean[c], 1e-3) << dtype_name(dt) << " channel " << c;
  }
}

TEST(BatchNormMoments, SameBitsAtEveryThreadCount) {
  manual_seed(9);
  const Tensor x = add(randn({4096, 300}), 5.0);
  const Tensor w = rand({300}), b = randn({300});
  const int threads = max_threads();
  set_threads(1);
  const Result one = run_batch_norm(x, w, b);
  for (const int t : {2, 3, 5}) {
    set_threads(t);
    const Result r = run_batch_norm(x, w, b);
    EXPECT_TRUE(bits_equal(r.out, one.out)) << t << " threads";
    EXPECT_TRUE(bits_equal(r.running_mean, one.running_mean)) << t << " threads";
    EXPECT_TRUE(bits_equal(r.running_var, one.running_var)) << t << " threads";
  }
  set_threads(threads);
}

}  // namespace
}  // namespace fabric
