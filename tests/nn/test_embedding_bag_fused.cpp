// nn::embedding_bag's fused CPU path against a float64 reference written out here: every mode,
// padding_idx (in and out of the mean's count), per_sample_weights, include_last_offset, empty
// bags, 1-D input with offsets, int32 and int64 indices, bags enough to run on several threads,
// float64/float32/bfloat16/float16 tables, with and without a graph; the gradients of the weight
// and of per_sample_weights, max's first-of-equal-maxima rule and a second derivative; the fused
// sum/mean weight gradient (no graph to record) bit for bit against the recorded ops' one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "nn/embedding_bag.h"
#include "tensor/embedding_bag_kernels.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/omp_threads.h"

namespace fabric::nn {
namespace {

struct BagCase {
  const char* name;
  int64_t num, dim;
  std::string mode;
  int64_t padding;  // -1: none
  bool include_last_offset;
  std::vector<int64_t> input_shape, input, offsets;  // offsets empty with a 2-D input
  bool per_sample_weights;
};

struct Reference {
  std::vector<double> out, weight_grad, psw_grad;
};

// torch 1.13's definition, element by element in float64.
Reference reference(const BagCase& c, const std::vector<double>& w, const std::vector<double>& psw,
                    const std::vector<double>& g) {
  const int64_t n = static_cast<int64_t>(c.input.size()), D = c.dim;
  std::vector<int64_t> bounds;
  if (c.input_shape.size() == 2) {
    for (int64_t b = 0; b <= c.input_shape[0]; ++b) bounds.push_back(b * c.input_shape[1]);
  } else {
    bounds = c.offsets;
    if (!c.include_last_offset) bounds.push_back(n);
  }
  const int64_t B = static_cast<int64_t>(bounds.size()) - 1;
  Reference r;
  r.out.assign(static_cast<size_t>(B * D), 0.0);
  r.weight_grad.assign(static_cast<size_t>(c.num * D), 0.0);
  r.psw_grad.assign(static_cast<size_t>(n), 0.0);
  for (int64_t b = 0; b < B; ++b) {
    std::vector<int64_t> kept;
    for (int64_t i = bounds[b]; i < bounds[b + 1]; ++i)
      if (c.input[i] != c.padding) kept.push_back(i);
    for (int64_t j = 0; j < D; ++j) {
      double& o = r.out[b * D + j];
      const double gj = g[b * D + j];
      if (c.mode == "max") {
        int64_t best = -1;
        for (int64_t i : kept)
          if (best < 0 || w[c.input[i] * D + j] > w[c.input[best] * D + j]) best = i;
        if (best < 0) continue;
        o = w[c.input[best] * D + j];
        r.weight_grad[c.input[best] * D + j] += gj;
        continue;
      }
      const double scale = c.mode == "mean" ? 1.0 / std::max<double>(1, kept.size()) : 1.0;
      for (int64_t i : kept) {
        const double s = psw.empty() ? 1.0 : psw[i];
        o += s * w[c.input[i] * D + j];
        r.weight_grad[c.input[i] * D + j] += s * gj * scale;
        r.psw_grad[i] += gj * w[c.input[i] * D + j];
      }
      o *= scale;
    }
  }
  return r;
}

std::vector<double> normal(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> dist;
  std::vector<double> v(n);
  for (double& x : v) x = dist(gen);
  return v;
}

std::vector<int64_t> uniform_rows(size_t n, int64_t num, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int64_t> dist(0, num - 1);
  std::vector<int64_t> v(n);
  for (int64_t& x : v) x = dist(gen);
  return v;
}

// A case of many bags of 0 to 24 lookups each (several threads' worth of work).
BagCase many_bags(const char* name, const std::string& mode, int64_t padding, bool psw,
                  bool include_last_offset) {
  std::mt19937 gen(7);
  std::uniform_int_distribution<int64_t> length(0, 24);
  BagCase c{name, 500, 37, mode, padding, include_last_offset, {}, {}, {0}, psw};
  for (int b = 0; b < 400; ++b) c.offsets.push_back(c.offsets.back() + length(gen));
  const int64_t n = c.offsets.back();
  if (!include_last_offset) c.offsets.pop_back();
  c.input = uniform_rows(static_cast<size_t>(n), c.num, 11);
  for (int64_t i = 0; i < n; i += 5) c.input[i] = 3;  // padding_idx often, when it is 3
  c.input_shape = {n};
  return c;
}

std::vector<BagCase> cases() {
  return {
      {"sum_2d", 13, 9, "sum", -1, false, {5, 7}, uniform_rows(35, 13, 1), {}, false},
      {"mean_2d_padding",
       13,
       9,
       "mean",
       4,
       false,
       {5, 7},
       {4,  4,  4, 4, 4, 4, 4, 1, 4, 2, 3, 4,  5, 6,  7, 8, 9, 10,
        11, 12, 0, 4, 4, 1, 1, 1, 4, 4, 0, 12, 4, 12, 0, 4, 4},
       {},
       false},
      {"max_2d_padding",
       13,
       9,
       "max",
       4,
       false,
       {5, 7},
       {4,  4,  4, 4, 4, 4, 4, 1, 4, 2, 3, 4,  5, 6,  7, 8, 9, 10,
        11, 12, 0, 4, 4, 1, 1, 1, 4, 4, 0, 12, 4, 12, 0, 4, 4},
       {},
       false},
      {"sum_1d_empty_bags_psw",
       10,
       5,
       "sum",
       -1,
       false,
       {12},
       uniform_rows(12, 10, 2),
       {0, 0, 3, 3, 7, 12},
       true},
      {"sum_last_offset_psw_padding",
       10,
       5,
       "sum",
       2,
       true,
       {12},
       {2, 1, 2, 5, 9, 2, 0, 3, 2, 2, 7, 8},
       {0, 4, 4, 9, 11},
       true},
      {"mean_1d_last_offset_empty",
       10,
       6,
       "mean",
       -1,
       true,
       {9},
       uniform_rows(9, 10, 3),
       {0, 0, 2, 2, 9},
       false},
      {"max_1d_empty_bags",
       10,
       6,
       "max",
       -1,
       false,
       {9},
       uniform_rows(9, 10, 4),
       {0, 0, 4, 4, 9},
       false},
      {"max_last_offset", 10, 6, "max", 1, true, {9}, uniform_rows(9, 10, 5), {0, 3, 3, 8}, false},
      {"no_bags", 10, 4, "mean", -1, false, {0}, {}, {}, false},
      many_bags("many_sum_psw", "sum", 3, true, false),
      many_bags("many_mean", "mean", 3, false, true),
      many_bags("many_max", "max", 3, false, false),
      many_bags("many_mean_no_padding", "mean", -1, false, false),
  };
}

struct BagRun {
  Tensor out, weight_grad, psw_grad;
};

BagRun run_case(const BagCase& c, DType dtype, DType index_dtype, bool grad,
                const std::vector<double>& w, const std::vector<double>& psw,
                const std::vector<double>& g) {
  Tensor weight = from_vector(w, {c.num, c.dim}).to(dtype);
  Tensor per_sample = psw.empty() ? Tensor() : from_vector(psw, c.input_shape).to(dtype);
  if (grad) {
    weight.set_requires_grad(true);
    if (per_sample.defined()) per_sample.set_requires_grad(true);
  }
  const Tensor input = from_vector(c.input, c.input_shape).to(index_dtype);
  const Tensor offsets =
      c.input_shape.size() == 2
          ? Tensor()
          : from_vector(c.offsets, {static_cast<int64_t>(c.offsets.size())}).to(index_dtype);
  const std::optional<int64_t> padding =
      c.padding < 0 ? std::nullopt : std::optional<int64_t>(c.padding);
  BagRun r;
  if (!grad) {
    NoGradGuard no_grad;
    r.out =
        embedding_bag(weight, input, offsets, c.mode, per_sample, c.include_last_offset, padding);
    return r;
  }
  r.out = embedding_bag(weight, input, offsets, c.mode, per_sample, c.include_last_offset, padding);
  EXPECT_EQ(grad_fn_name(r.out), "EmbeddingBagBackward0");
  sum(mul(r.out, from_vector(g, r.out.sizes()).to(dtype))).backward();
  r.weight_grad = weight.grad();
  if (per_sample.defined()) r.psw_grad = per_sample.grad();
  return r;
}

void expect_near(const Tensor& got, const std::vector<double>& want, double tol,
                 const std::string& what) {
  ASSERT_TRUE(got.defined()) << what;
  const std::vector<double> v = got.to(DType::float64).contiguous().to_vector<double>();
  ASSERT_EQ(v.size(), want.size()) << what;
  for (size_t i = 0; i < v.size(); ++i)
    ASSERT_NEAR(v[i], want[i], tol * (1.0 + std::abs(want[i]))) << what << " element " << i;
}

// The table's values as the dtype holds them, so that the reference sees what the kernel reads.
std::vector<double> rounded(const std::vector<double>& v, DType dtype) {
  if (v.empty()) return v;
  return from_vector(v, {static_cast<int64_t>(v.size())})
      .to(dtype)
      .to(DType::float64)
      .to_vector<double>();
}

TEST(EmbeddingBagFused, MatchesAFloat64Reference) {
  struct Precision {
    DType dtype;
    double tol;
  };
  for (const BagCase& c : cases()) {
    const int64_t bags = c.input_shape.size() == 2
                             ? c.input_shape[0]
                             : static_cast<int64_t>(c.offsets.size()) - c.include_last_offset;
    const std::vector<double> w0 = normal(static_cast<size_t>(c.num * c.dim), 21);
    const std::vector<double> psw0 =
        c.per_sample_weights ? normal(c.input.size(), 22) : std::vector<double>();
    const std::vector<double> g0 =
        normal(static_cast<size_t>(std::max<int64_t>(bags, 0) * c.dim), 23);
    for (const Precision& p : {Precision{DType::float64, 1e-12}, Precision{DType::float32, 1e-5},
                               Precision{DType::bfloat16, 2e-2}, Precision{DType::float16, 3e-3}}) {
      const std::vector<double> w = rounded(w0, p.dtype), psw = rounded(psw0, p.dtype),
                                g = rounded(g0, p.dtype);
      const Reference ref = reference(c, w, psw, g);
      for (DType index_dtype : {DType::int64, DType::int32}) {
        for (bool grad : {false, true}) {
          SCOPED_TRACE(std::string(c.name) + " " + std::string(dtype_name(p.dtype)) + " " +
                       std::string(dtype_name(index_dtype)) + (grad ? " grad" : " no_grad"));
          const BagRun r = run_case(c, p.dtype, index_dtype, grad, w, psw, g);
          EXPECT_EQ(r.out.dtype(), p.dtype);
          expect_near(r.out, ref.out, p.tol, "output");
          // The 16-bit gradients are sums rounded along the way: checked in the wider dtypes.
          if (!grad || p.dtype == DType::bfloat16 || p.dtype == DType::float16) continue;
          expect_near(r.weight_grad, ref.weight_grad, p.tol, "weight grad");
          if (c.per_sample_weights) expect_near(r.psw_grad, ref.psw_grad, p.tol, "psw grad");
        }
      }
    }
  }
}

// The weight gradient of sum/mean without a graph to record is the fused kernel's; with
// create_graph it is the recorded gather and index_add. Both are the same bits, at any thread
// count: backward() (fused), the op-layer kernel called directly and grad(create_graph) (recorded).
TEST(EmbeddingBagFused, FusedWeightGradientIsTheRecordedOnesBits) {
  int checked = 0;
  for (const BagCase& c : cases()) {
    if (c.mode == "max") continue;
    const std::vector<int64_t> bounds0 = [&] {
      std::vector<int64_t> b;
      if (c.input_shape.size() == 2) {
        for (int64_t k = 0; k <= c.input_shape[0]; ++k) b.push_back(k * c.input_shape[1]);
      } else {
        b = c.offsets;
        if (!c.include_last_offset) b.push_back(static_cast<int64_t>(c.input.size()));
      }
      return b;
    }();
    const int64_t bags = static_cast<int64_t>(bounds0.size()) - 1;
    const std::vector<double> w = normal(static_cast<size_t>(c.num * c.dim), 31);
    const std::vector<double> psw =
        c.per_sample_weights ? normal(c.input.size(), 32) : std::vector<double>();
    // Bag gradients of many magnitudes, so that rounding order shows in the low bits.
    std::vector<double> g = normal(static_cast<size_t>(bags * c.dim), 33);
    for (size_t k = 0; k < g.size(); ++k) g[k] *= std::ldexp(1.0, static_cast<int>(k % 23) - 11);
    const std::optional<int64_t> padding =
        c.padding < 0 ? std::nullopt : std::optional<int64_t>(c.padding);
    for (DType dtype : {DType::float32, DType::float64, DType::bfloat16, DType::float16}) {
      for (DType index_dtype : {DType::int64, DType::int32}) {
        SCOPED_TRACE(std::string(c.name) + " " + std::string(dtype_name(dtype)) + " " +
                     std::string(dtype_name(index_dtype)));
        const Tensor input = from_vector(c.input, c.input_shape).to(index_dtype);
        const Tensor offsets =
            c.input_shape.size() == 2
                ? Tensor()
                : from_vector(c.offsets, {static_cast<int64_t>(c.offsets.size())}).to(index_dtype);
        const Tensor grad_out = from_vector(g, {bags, c.dim}).to(dtype);
        const auto weight_grad = [&](bool create_graph) {
          const Tensor weight = from_vector(w, {c.num, c.dim}).to(dtype).set_requires_grad(true);
          const Tensor per_sample =
              psw.empty() ? Tensor()
                          : from_vector(psw, c.input_shape).to(dtype).set_requires_grad(true);
          const Tensor out = embedding_bag(weight, input, offsets, c.mode, per_sample,
                                           c.include_last_offset, padding);
          if (!create_graph) {
            backward(out, grad_out);
            return weight.grad();
          }
          return grad({out}, {weight}, {grad_out}, std::nullopt, /*create_graph=*/true)[0];
        };
        const Tensor recorded = weight_grad(true);
        const Tensor direct = embedding_bag_backward_fused(
            grad_out, from_vector(c.input, {static_cast<int64_t>(c.input.size())}), bounds0, c.num,
            c.mode == "sum" ? EmbeddingBagMode::sum : EmbeddingBagMode::mean,
            psw.empty() ? Tensor() : from_vector(psw, {static_cast<int64_t>(psw.size())}).to(dtype),
            c.padding);
        ASSERT_TRUE(direct.defined());
        EXPECT_TRUE(bits_equal(direct, recorded));
        for (int threads : {1, 2, 3}) {
          OmpThreads scope(threads);
          EXPECT_TRUE(bits_equal(weight_grad(false), recorded)) << threads << " threads";
        }
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 9 * 4 * 2);
}

// A bag longer than bfloat16 counts exactly: the recorded mean divides by the count as the dtype
// holds it (257 -> 256), and the fused gradient keeps those bits.
TEST(EmbeddingBagFused, FusedMeanGradientDividesByTheCountAsTheDtypeHoldsIt) {
  const Tensor input = from_vector(uniform_rows(257 * 2, 40, 41), {2, 257});
  const Tensor g = from_vector(normal(2 * 8, 42), {2, 8}).to(DType::bfloat16);
  const auto weight_grad = [&](bool create_graph) {
    const Tensor weight =
        from_vector(normal(40 * 8, 43), {40, 8}).to(DType::bfloat16).set_requires_grad(true);
    const Tensor out = embedding_bag(weight, input, Tensor(), "mean");
    if (create_graph) return grad({out}, {weight}, {g}, std::nullopt, true)[0];
    backward(out, g);
    return weight.grad();
  };
  EXPECT_TRUE(bits_equal(weight_grad(false), weight_grad(true)));
}

// The fused gradient stays the composition's on what it does not cover: max, and a dtype the
// kernel has no loop for are left to it (undefined here).
TEST(EmbeddingBagFused, FusedWeightGradientLeavesMaxToTheComposition) {
  const Tensor g = from_vector<float>({1, 2}, {1, 2});
  const Tensor idx = from_vector<int64_t>({0, 1}, {2});
  EXPECT_FALSE(embedding_bag_backward_fused(g, idx, {0, 2}, 3, EmbeddingBagMode::max, Tensor(), -1)
                   .defined());
  EXPECT_FALSE(embedding_bag_backward_fused(g.to(DType::int64), idx, {0, 2}, 3,
                                            EmbeddingBagMode::sum, Tensor(), -1)
                   .defined());
}

// max keeps the first of equal maxima (torch's strict >), so the gradient goes to that row only.
TEST(EmbeddingBagFused, MaxTiesGoToTheFirstLookup) {
  const Tensor weight =
      from_vector<double>({0, 0, 1, 5, 1, 5, 2, 2}, {4, 2}).set_requires_grad(true);
  const Tensor input = from_vector<int64_t>({2, 1, 3}, {1, 3});
  const Tensor out = embedding_bag(weight, input, Tensor(), "max");
  EXPECT_EQ(out.to_vector<double>(), (std::vector<double>{2, 5}));
  sum(out).backward();
  EXPECT_EQ(weight.grad().to_vector<double>(), (std::vector<double>{0, 0, 0, 0, 0, 1, 1, 0}));
}

// The node's gradients are recorded ops: per_sample_weights' gradient, dot(g[bag], weight[row]),
// differentiates again to the weight: d/dW[row] of sum_k c_k gp_k is sum_k c_k g[bag_k].
TEST(EmbeddingBagFused, PerSampleWeightsGradientDifferentiatesAgain) {
  const Tensor weight = from_vector<double>(normal(12, 5), {4, 3}).set_requires_grad(true);
  const Tensor psw = from_vector<double>({0.5, -1, 2, 3}, {4}).set_requires_grad(true);
  const Tensor input = from_vector<int64_t>({1, 3, 1, 0}, {4});
  const Tensor offsets = from_vector<int64_t>({0, 2}, {2});
  const Tensor g = from_vector<double>({1, 2, 3, -1, -2, -3}, {2, 3});
  const Tensor out = embedding_bag(weight, input, offsets, "sum", psw);
  const Tensor gp = grad({sum(mul(out, g))}, {psw}, {}, std::nullopt, /*create_graph=*/true)[0];
  const std::vector<double> c = {1, 10, 100, 1000};
  sum(mul(gp, from_vector<double>(c, {4}))).backward();
  // Rows: 1 <- c0 g0 + c2 g1, 3 <- c1 g0, 0 <- c3 g1.
  const std::vector<double> want = {-1000, -2000, -3000, 1 - 100, 2 - 200, 3 - 300,
                                    0,     0,     0,     10,      20,      30};
  EXPECT_EQ(weight.grad().to_vector<double>(), want);
}

// backward reads the indices again: writing into them first raises, as torch's saved indices do.
TEST(EmbeddingBagFused, IndicesWrittenBeforeBackwardRaise) {
  const Tensor weight = from_vector<double>(normal(12, 6), {4, 3}).set_requires_grad(true);
  Tensor input = from_vector<int64_t>({1, 3, 1, 0}, {2, 2});
  const Tensor out = embedding_bag(weight, input, Tensor(), "mean");
  input.copy_(from_vector<int64_t>({0, 0, 0, 0}, {2, 2}));
  EXPECT_THROW(sum(out).backward(), Error);
}

}  // namespace
}  // namespace fabric::nn
