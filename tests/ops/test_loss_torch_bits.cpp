// Losses against torch 1.13's own bits where its CPU kernels round in an order of their own:
// nll_loss's cascade sum (cross_entropy / nll_loss "sum" and "mean", with and without a weight),
// cross_entropy with probability targets of another dtype (log-softmax in the input's dtype),
// binary_cross_entropy_with_logits' closed-form gradients (finite at infinite logits), and
// torch's acceptance of uint8 class targets, negative label smoothing and the deprecated
// "elementwise_mean". The literals come from tools/fixtures/make_loss_torch_bits.py, whose
// inputs are the exact formulas ramp / class_targets / probabilities below.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/capture_warnings.h"

namespace fabric {
namespace {

const double kInf = std::numeric_limits<double>::infinity();

// ((i * 7919 + 13) % 1000) / 125 - 4 in double, then in `dt` (the generator's ramp).
Tensor ramp(int64_t n, DType dt, const Shape& shape) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<double>((i * 7919 + 13) % 1000) / 125 - 4;
  return from_vector(v, shape).to(dt);
}

// -100 (ignored) when i % 7 == 3, else (i * 31) % classes.
Tensor class_targets(int64_t n, int64_t classes) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = i % 7 == 3 ? -100 : (i * 31) % classes;
  return from_vector(v, {n});
}

// ((i * 3 + j * 5) % 7) / 8: nonnegative class weights of each row (torch does not need them to
// add up to 1).
Tensor probabilities(int64_t rows, int64_t cols, DType dt) {
  std::vector<double> v;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) v.push_back(static_cast<double>((i * 3 + j * 5) % 7) / 8);
  return from_vector(v, {rows, cols}).to(dt);
}

Tensor leaf(Tensor t) {
  t.set_requires_grad(true);
  return t;
}

// Bit-for-bit equality of a tensor (any floating dtype, read as doubles: exact) with torch's
// values: NaN matches NaN, and the sign of a zero counts.
void expect_bits(const Tensor& got, const std::vector<double>& want, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what;
  const std::vector<double> g = got.detach().to(DType::float64).contiguous().to_vector<double>();
  ASSERT_EQ(g.size(), want.size()) << what;
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::isnan(want[i]) && std::isnan(g[i])) continue;
    EXPECT_EQ(std::bit_cast<uint64_t>(g[i]), std::bit_cast<uint64_t>(want[i]))
        << what << " [" << i << "]: got " << g[i] << " (" << std::hexfloat << g[i] << "), torch "
        << want[i] << std::defaultfloat;
  }
}

// torch's nll kernel sums the counted positions by its 8-level cascade (100 rows: levels of
// 16), not pairwise; "mean" divides that by the count (or the cascade's sum of the weights).
// The ignored rows (i % 7 == 3) neither add nor advance the cascade.
TEST(LossTorchBits, NllAndCrossEntropySumAndMeanAreTorchsCascade) {
  struct Want {
    DType dt;
    const char* reduction;
    double ce, nll, nll_weighted, ce_weighted;
  };
  const Want rows[] = {
      {DType::float32, "mean", 0x1.07ae180000000p+2, 0x1.8012600000000p-8, -0x1.178ef60000000p-3,
       0x1.fb924e0000000p+1},
      {DType::float32, "sum", 0x1.6251f00000000p+8, 0x1.020c580000000p-1, -0x1.0472b00000000p+3,
       0x1.d8dfce0000000p+7},
      {DType::float64, "mean", 0x1.07ae172cd6e03p+2, 0x1.80124a038643cp-8, -0x1.178ef5f0b9460p-3,
       0x1.fb924cb90e5c0p+1},
      {DType::float64, "sum", 0x1.6251ef2440bd4p+8, 0x1.020c49ba5e358p-1, -0x1.0472b020c49bbp+3,
       0x1.d8dfcc7a67e0bp+7},
  };
  const int64_t n = 100, classes = 10;
  const Tensor t = class_targets(n, classes);
  for (const Want& w : rows) {
    SCOPED_TRACE(std::string(dtype_name(w.dt)) + " " + w.reduction);
    const Tensor x = ramp(n * classes, w.dt, {n, classes});
    std::vector<double> wv;
    for (int64_t k = 0; k < classes; ++k) wv.push_back(static_cast<double>(k + 1) / 8);
    const Tensor weight = from_vector(wv, {classes}).to(w.dt);
    expect_bits(cross_entropy(x, t, -100, w.reduction), {w.ce}, "cross_entropy");
    expect_bits(nll_loss(x, t, -100, w.reduction), {w.nll}, "nll_loss");
    expect_bits(nll_loss(x, t, -100, w.reduction, weight), {w.nll_weighted}, "nll_loss weighted");
    expect_bits(cross_entropy(x, t, -100, w.reduction, 0.0, weight), {w.ce_weighted},
                "cross_entropy weighted");
  }
}

// Every target ignored: torch's cascade adds nothing and "mean" is 0 / 0.
TEST(LossTorchBits, AllTargetsIgnoredGiveTorchsZeroSumAndNanMean) {
  const Tensor x = ramp(12, DType::float32, {4, 3});
  const Tensor t = from_vector(std::vector<int64_t>{-100, -100, -100, -100}, {4});
  expect_bits(cross_entropy(x, t, -100, "sum"), {0.0}, "sum");
  EXPECT_TRUE(std::isnan(cross_entropy(x, t, -100, "mean").item<float>()));
  EXPECT_TRUE(std::isnan(nll_loss(x, t, -100, "mean").item<float>()));
}

// torch's cross_entropy_loss_prob_target takes the log-softmax in the input's dtype and
// promotes only at the product with the target: a float32 input with float64 probabilities has
// float32 log-probabilities (a float64 loss), and the input's gradient comes back in float32.
TEST(LossTorchBits, ProbabilityTargetsOfAnotherDtypePromoteOnlyAtTheProduct) {
  struct Want {
    DType x_dt, t_dt;
    double out;
    std::vector<double> grad_x, grad_t;
  };
  const std::vector<Want> rows = {
      {DType::float32,
       DType::float64,
       0x1.50b066c400000p+2,
       {0x1.44e21a0000000p-13, 0x1.5d714c0000000p-4,  0x1.0b230a0000000p-5,  0x1.1d787e0000000p-5,
        -0x1.3930be0000000p-3, 0x1.3c42a80000000p-3,  0x1.93bb980000000p-4,  -0x1.e9dafe0000000p-4,
        -0x1.6e814c0000000p-4, -0x1.67c9300000000p-5, -0x1.7e54940000000p-3, -0x1.fe40d60000000p-4,
        -0x1.fe2c300000000p-5, 0x1.642f020000000p-2,  0x1.a5100c0000000p-6,  0x1.badba80000000p-4,
        0x1.6d90f40000000p-4,  -0x1.c0c68e0000000p-4, -0x1.1bf8e40000000p-4, -0x1.2eb4a40000000p-6},
       {0x1.007a620000000p+1, 0x1.536cb40000000p-3, 0x1.4f99ae0000000p-2, 0x1.f57d020000000p-2,
        0x1.4db02c0000000p-1, 0x1.66a50c0000000p-3, 0x1.5935da0000000p-2, 0x1.ff192e0000000p-2,
        0x1.527e400000000p-1, 0x1.a56fec0000000p-1, 0x1.9eb02c0000000p+0, 0x1.c829020000000p+0,
        0x1.f1a1d80000000p+0, 0x1.b1aab80000000p-4, 0x1.124e020000000p-2, 0x1.66a50c0000000p-3,
        0x1.5935dc0000000p-2, 0x1.ff192e0000000p-2, 0x1.527e400000000p-1, 0x1.a56fec0000000p-1}},
      {DType::float64,
       DType::float32,
       0x1.50b066b8fb59dp+2,
       {0x1.44e225e47c398p-13, 0x1.5d714a64b4963p-4,  0x1.0b2305a52fa48p-5,  0x1.1d787cf1055e8p-5,
        -0x1.3930be6160aaep-3, 0x1.3c42a6fb07c8bp-3,  0x1.93bb95a3799d2p-4,  -0x1.e9dafd687e071p-4,
        -0x1.6e814e65857e2p-4, -0x1.67c92f970b528p-5, -0x1.7e54940ba85dbp-3, -0x1.fe40d6d50c346p-4,
        -0x1.fe2c304095475p-5, 0x1.642f03ff341bcp-2,  0x1.a5101c3f5c900p-6,  0x1.badba5992ab42p-4,
        0x1.6d90f6e0639bcp-4,  -0x1.c0c68e37d6a4fp-4, -0x1.1bf8e5e5cbc6cp-4, -0x1.2eb4a16faf916p-6},
       {0x1.007a600000000p+1, 0x1.536cb60000000p-3, 0x1.4f99ae0000000p-2, 0x1.f57d020000000p-2,
        0x1.4db02c0000000p-1, 0x1.66a50c0000000p-3, 0x1.5935da0000000p-2, 0x1.ff192e0000000p-2,
        0x1.527e420000000p-1, 0x1.a56fec0000000p-1, 0x1.9eb02c0000000p+0, 0x1.c829020000000p+0,
        0x1.f1a1d60000000p+0, 0x1.b1aab60000000p-4, 0x1.124e020000000p-2, 0x1.66a50c0000000p-3,
        0x1.5935da0000000p-2, 0x1.ff192e0000000p-2, 0x1.527e420000000p-1, 0x1.a56fec0000000p-1}},
  };
  for (const Want& w : rows) {
    SCOPED_TRACE(std::string(dtype_name(w.x_dt)) + " input, " + std::string(dtype_name(w.t_dt)) +
                 " target");
    const Tensor x = leaf(ramp(20, w.x_dt, {4, 5}));
    const Tensor p = leaf(probabilities(4, 5, w.t_dt));
    const Tensor loss = cross_entropy(x, p);
    EXPECT_EQ(loss.dtype(), DType::float64);
    expect_bits(loss, {w.out}, "loss");
    loss.backward();
    EXPECT_EQ(x.grad().dtype(), w.x_dt);
    expect_bits(x.grad(), w.grad_x, "grad x");
    expect_bits(p.grad(), w.grad_t, "grad target");
  }
}

// torch 1.13 differentiates binary_cross_entropy_with_logits by closed forms: the input's
// gradient (sigmoid(x) - t) * g (with pos_weight ((pw t + 1 - t) sigmoid(x) - pw t) * g), the
// target's -x * g (with pos_weight (log_sigmoid(-x) - log_sigmoid(x) pw) * g), each times the
// weight and divided by numel for "mean". At x = -inf / +inf they are 0 or -g * t, and +-inf for
// the target, where the composed forward's own derivative was NaN. (The values avoid the float32
// logits where fabric's log_sigmoid kernel is an ulp off torch's SLEEF log1p, e.g. 0.75: a
// difference of that kernel, not of this rule.)
TEST(LossTorchBits, BceWithLogitsGradientsAreTorchsClosedForms) {
  const std::vector<double> xs = {-kInf, kInf,  -kInf,  kInf, 0.0,  -3.25, 2.5,  40.0,
                                  -40.0, 0.625, -0.125, 1.5,  -6.0, 9.5,   -0.5, 3.0};
  const std::vector<double> ts = {0.0, 1.0, 1.0,   0.0, 0.5, 0.25,  0.75,  1.0,
                                  0.0, 0.5, 0.875, 0.0, 1.0, 0.625, 0.375, 0.125};
  struct Want {
    DType dt;
    const char* reduction;
    bool pos_weight;
    std::vector<double> grad_x, grad_t;
  };
  const std::vector<Want> rows = {
      {DType::float32,
       "sum",
       false,
       {0x0.0p+0, 0x0.0p+0, -0x1.c000000000000p+0, 0x1.c000000000000p+0, 0x0.0p+0,
        -0x1.7d1c380000000p-2, 0x1.380fe80000000p-2, 0x0.0p+0, 0x1.124a000000000p-57,
        0x1.0f3a5e0000000p-2, -0x1.6bf6ae0000000p-1, 0x1.6e45fa0000000p+0, -0x1.bee46c0000000p+0,
        0x1.4feed40000000p-1, 0x1.2362a00000000p-8, 0x1.72c0d20000000p+0},
       {kInf, -kInf, kInf, -kInf, -0x0.0p+0, 0x1.6c00000000000p+2, -0x1.1800000000000p+2,
        -0x1.1800000000000p+6, 0x1.1800000000000p+6, -0x1.1800000000000p+0, 0x1.c000000000000p-3,
        -0x1.5000000000000p+1, 0x1.5000000000000p+3, -0x1.0a00000000000p+4, 0x1.c000000000000p-1,
        -0x1.5000000000000p+2}},
      {DType::float32,
       "sum",
       true,
       {0x0.0p+0, 0x0.0p+0, -0x1.1800000000000p+2, 0x1.c000000000000p+0, -0x1.5000000000000p-1,
        -0x1.0101b20000000p+0, 0x1.3e43a00000000p-3, 0x0.0p+0, 0x1.124a000000000p-57,
        -0x1.8ab3b00000000p-3, -0x1.ee553a0000000p+0, 0x1.6e45fa0000000p+0, -0x1.174ec40000000p+2,
        0x1.4fdeb80000000p-1, -0x1.37716c0000000p-1, 0x1.6ec4fc0000000p+0},
       {kInf, -kInf, kInf, -kInf, 0x1.d1cb800000000p+0, 0x1.ca320c0000000p+3, -0x1.0abf1c0000000p+2,
        -0x1.1800000000000p+6, 0x1.5e00000000000p+7, 0x1.02c7900000000p-5, 0x1.1a8da40000000p+1,
        -0x1.0c533c0000000p+1, 0x1.a41a9e0000000p+4, -0x1.09ff320000000p+4, 0x1.b74a360000000p+1,
        -0x1.47d65c0000000p+2}},
      {DType::float32,
       "mean",
       false,
       {0x0.0p+0, 0x0.0p+0, -0x1.5000000000000p-4, 0x1.c000000000000p-4, 0x0.0p+0,
        -0x1.7d1c380000000p-8, 0x1.380fe80000000p-7, 0x0.0p+0, 0x1.124a000000000p-61,
        0x1.5308f60000000p-6, -0x1.6bf6ae0000000p-7, 0x1.6e45fa0000000p-5, -0x1.4f2b500000000p-4,
        0x1.4feed40000000p-5, 0x1.6c3b480000000p-12, 0x1.72c0d20000000p-6},
       {kInf, -kInf, kInf, -kInf, -0x0.0p+0, 0x1.6c00000000000p-4, -0x1.1800000000000p-3,
        -0x1.a400000000000p+1, 0x1.1800000000000p+2, -0x1.5e00000000000p-4, 0x1.c000000000000p-9,
        -0x1.5000000000000p-4, 0x1.f800000000000p-2, -0x1.0a00000000000p+0, 0x1.1800000000000p-4,
        -0x1.5000000000000p-4}},
      {DType::float32,
       "mean",
       true,
       {0x0.0p+0, 0x0.0p+0, -0x1.a400000000000p-3, 0x1.c000000000000p-4, -0x1.a400000000000p-5,
        -0x1.0101b20000000p-6, 0x1.3e43a00000000p-8, 0x0.0p+0, 0x1.124a000000000p-61,
        -0x1.ed609c0000000p-7, -0x1.ee553a0000000p-6, 0x1.6e45fa0000000p-5, -0x1.a2f6260000000p-3,
        0x1.4fdeb80000000p-5, -0x1.854dc80000000p-5, 0x1.6ec4fc0000000p-6},
       {kInf, -kInf, kInf, -kInf, 0x1.231f300000000p-3, 0x1.ca320c0000000p-3, -0x1.0abf1c0000000p-3,
        -0x1.a400000000000p+1, 0x1.5e00000000000p+3, 0x1.4379740000000p-9, 0x1.1a8da40000000p-5,
        -0x1.0c533c0000000p-4, 0x1.3b13f60000000p+0, -0x1.09ff320000000p+0, 0x1.128e620000000p-2,
        -0x1.47d65c0000000p-4}},
      {DType::float64,
       "sum",
       false,
       {0x0.0p+0, 0x0.0p+0, -0x1.c000000000000p+0, 0x1.c000000000000p+0, 0x0.0p+0,
        -0x1.7d1c373d2b1d3p-2, 0x1.380fe87fb9064p-2, 0x0.0p+0, 0x1.124a00067b6e0p-57,
        0x1.0f3a58ccd186ap-2, -0x1.6bf6ae64e42abp-1, 0x1.6e45fb45449f2p+0, -0x1.bee46b77b64d0p+0,
        0x1.4feed502a6f31p-1, 0x1.23625c724e120p-8, 0x1.72c0d24b01b65p+0},
       {kInf, -kInf, kInf, -kInf, -0x0.0p+0, 0x1.6c00000000000p+2, -0x1.1800000000000p+2,
        -0x1.1800000000000p+6, 0x1.1800000000000p+6, -0x1.1800000000000p+0, 0x1.c000000000000p-3,
        -0x1.5000000000000p+1, 0x1.5000000000000p+3, -0x1.0a00000000000p+4, 0x1.c000000000000p-1,
        -0x1.5000000000000p+2}},
      {DType::float64,
       "sum",
       true,
       {0x0.0p+0, 0x0.0p+0, -0x1.1800000000000p+2, 0x1.c000000000000p+0, -0x1.5000000000000p-1,
        -0x1.0101b2fd06d21p+0, 0x1.3e439c1ed25b0p-3, 0x0.0p+0, 0x1.124a00067b6e0p-57,
        -0x1.8ab3c93322a86p-3, -0x1.ee5539a4a7d17p+0, 0x1.6e45fb45449f2p+0, -0x1.174ec32ad1f02p+2,
        0x1.4fdebcb52376ep-1, -0x1.37716c9f1acc1p-1, 0x1.6ec4f9b912088p+0},
       {kInf, -kInf, kInf, -kInf, 0x1.d1cb7eea86c0bp+0, 0x1.ca320aaa04b27p+3, -0x1.0abf1c3d1d86bp+2,
        -0x1.1800000000000p+6, 0x1.5e00000000000p+7, 0x1.02c785d189318p-5, 0x1.1a8da37cb8944p+1,
        -0x1.0c533c487c32ap+1, 0x1.a41a9e5a61793p+4, -0x1.09ff31fa26892p+4, 0x1.b74a34b3fa320p+1,
        -0x1.47d65aed4e937p+2}},
      {DType::float64,
       "mean",
       false,
       {0x0.0p+0, 0x0.0p+0, -0x1.5000000000000p-4, 0x1.c000000000000p-4, 0x0.0p+0,
        -0x1.7d1c373d2b1d3p-8, 0x1.380fe87fb9064p-7, 0x0.0p+0, 0x1.124a00067b6e0p-61,
        0x1.5308ef0005e84p-6, -0x1.6bf6ae64e42abp-7, 0x1.6e45fb45449f2p-5, -0x1.4f2b5099c8b9cp-4,
        0x1.4feed502a6f31p-5, 0x1.6c3af38ee1968p-12, 0x1.72c0d24b01b65p-6},
       {kInf, -kInf, kInf, -kInf, -0x0.0p+0, 0x1.6c00000000000p-4, -0x1.1800000000000p-3,
        -0x1.a400000000000p+1, 0x1.1800000000000p+2, -0x1.5e00000000000p-4, 0x1.c000000000000p-9,
        -0x1.5000000000000p-4, 0x1.f800000000000p-2, -0x1.0a00000000000p+0, 0x1.1800000000000p-4,
        -0x1.5000000000000p-4}},
      {DType::float64,
       "mean",
       true,
       {0x0.0p+0, 0x0.0p+0, -0x1.a400000000000p-3, 0x1.c000000000000p-4, -0x1.a400000000000p-5,
        -0x1.0101b2fd06d21p-6, 0x1.3e439c1ed25b0p-8, 0x0.0p+0, 0x1.124a00067b6e0p-61,
        -0x1.ed60bb7feb528p-7, -0x1.ee5539a4a7d17p-6, 0x1.6e45fb45449f2p-5, -0x1.a2f624c03ae83p-3,
        0x1.4fdebcb52376ep-5, -0x1.854dc7c6e17f1p-5, 0x1.6ec4f9b912088p-6},
       {kInf, -kInf, kInf, -kInf, 0x1.231f2f5294387p-3, 0x1.ca320aaa04b27p-3, -0x1.0abf1c3d1d86bp-3,
        -0x1.a400000000000p+1, 0x1.5e00000000000p+3, 0x1.43796745eb7dep-9, 0x1.1a8da37cb8944p-5,
        -0x1.0c533c487c32ap-4, 0x1.3b13f6c3c91aep+0, -0x1.09ff31fa26892p+0, 0x1.128e60f07c5f4p-2,
        -0x1.47d65aed4e937p-4}},
  };
  for (const Want& w : rows) {
    SCOPED_TRACE(std::string(dtype_name(w.dt)) + " " + w.reduction +
                 (w.pos_weight ? " pos_weight" : ""));
    const Tensor x = leaf(from_vector(xs, {16}).to(w.dt));
    const Tensor t = leaf(from_vector(ts, {16}).to(w.dt));
    std::vector<double> wv;  // "mean" rows carry a weight: (k % 5 + 1) / 4
    for (int64_t k = 0; k < 16; ++k) wv.push_back(static_cast<double>(k % 5 + 1) / 4);
    const Tensor weight =
        std::string(w.reduction) == "mean" ? from_vector(wv, {16}).to(w.dt) : Tensor();
    const Tensor pw = w.pos_weight ? full({1}, 2.5, {.dtype = w.dt}) : Tensor();
    const Tensor loss = binary_cross_entropy_with_logits(x, t, weight, pw, w.reduction);
    loss.backward(full({}, 1.75, {.dtype = w.dt}));
    expect_bits(x.grad(), w.grad_x, "grad x");
    expect_bits(t.grad(), w.grad_t, "grad target");
  }
}

// torch's nll kernels take uint8 class targets as well as int64: the same losses as int64 ones.
TEST(LossTorchBits, Uint8ClassTargetsAreAccepted) {
  const Tensor x = ramp(24, DType::float32, {6, 4});
  const Tensor t64 = from_vector(std::vector<int64_t>{0, 1, 3, 2, 1, 3}, {6});
  const Tensor t8 = t64.to(DType::uint8);
  const Tensor w = from_vector(std::vector<double>{0.5, 1.0, 1.5, 2.0}, {4}).to(DType::float32);
  for (const char* red : {"mean", "sum", "none"}) {
    SCOPED_TRACE(red);
    const std::vector<double> want = cross_entropy(x, t64, -100, red).to_vector<double>();
    expect_bits(cross_entropy(x, t8, -100, red), want, "cross_entropy");
    expect_bits(cross_entropy(x, t8, -100, red, 0.0, w),
                cross_entropy(x, t64, -100, red, 0.0, w).to_vector<double>(),
                "cross_entropy weighted");
    expect_bits(nll_loss(x, t8, -100, red), nll_loss(x, t64, -100, red).to_vector<double>(),
                "nll_loss");
  }
  // ignore_index compares the class value, as torch's kernel widens each target.
  expect_bits(cross_entropy(x, t8, 3), cross_entropy(x, t64, 3).to_vector<double>(), "ignored");
}

// torch smooths labels only by a value > 0: a negative one is no smoothing (class indices and
// probabilities alike); above 1 is refused.
TEST(LossTorchBits, NegativeLabelSmoothingIsNoSmoothing) {
  const Tensor x = ramp(24, DType::float64, {6, 4});
  const Tensor t = from_vector(std::vector<int64_t>{0, 1, 3, 2, 1, 3}, {6});
  const Tensor p = probabilities(6, 4, DType::float64);
  const Tensor w = from_vector(std::vector<double>{0.5, 1.0, 1.5, 2.0}, {4});
  for (double ls : {-0.1, -2.0}) {
    SCOPED_TRACE(ls);
    expect_bits(cross_entropy(x, t, -100, "mean", ls), cross_entropy(x, t).to_vector<double>(),
                "class indices");
    expect_bits(cross_entropy(x, t, -100, "mean", ls, w),
                cross_entropy(x, t, -100, "mean", 0.0, w).to_vector<double>(), "weighted");
    expect_bits(cross_entropy(x, p, -100, "mean", ls), cross_entropy(x, p).to_vector<double>(),
                "probabilities");
  }
  EXPECT_THROW(cross_entropy(x, t, -100, "mean", 1.5), ValueError);
  EXPECT_THROW(cross_entropy(x, p, -100, "mean", 1.5), ValueError);
}

// torch's _Reduction.get_enum: "elementwise_mean" warns that it is deprecated, then means "mean".
TEST(LossTorchBits, ElementwiseMeanWarnsAndIsMean) {
  const Tensor x = ramp(24, DType::float32, {6, 4});
  const Tensor y = probabilities(6, 4, DType::float32);
  const Tensor t = from_vector(std::vector<int64_t>{0, 1, 3, 2, 1, 3}, {6});
  const std::string message =
      "reduction='elementwise_mean' is deprecated, please use reduction='mean' instead.";
  struct Row {
    const char* op;
    std::function<Tensor(std::string_view)> call;
  };
  const std::vector<Row> rows = {
      {"cross_entropy", [&](std::string_view r) { return cross_entropy(x, t, -100, r); }},
      {"nll_loss", [&](std::string_view r) { return nll_loss(x, t, -100, r); }},
      {"mse_loss", [&](std::string_view r) { return mse_loss(x, y, r); }},
      {"l1_loss", [&](std::string_view r) { return l1_loss(x, y, r); }},
      {"binary_cross_entropy_with_logits",
       [&](std::string_view r) {
         return binary_cross_entropy_with_logits(x, y, Tensor(), Tensor(), r);
       }},
      {"margin_ranking_loss",
       [&](std::string_view r) { return margin_ranking_loss(x, y, sign(sub(y, 0.4)), 0.1, r); }},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.op);
    test::CapturedWarnings warnings;
    const Tensor got = row.call("elementwise_mean");
    ASSERT_EQ(warnings.messages().size(), 1u);
    EXPECT_EQ(warnings.messages()[0], message);
    expect_bits(got, row.call("mean").to_vector<double>(), "value");
  }
}

}  // namespace
}  // namespace fabric
