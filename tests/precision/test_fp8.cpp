// FP8 delayed scaling (spec §8) and the scaled casts (spec §1): the 6-step table, the cast checks,
// the update rules (most_recent, margin, zero/NaN/inf/tiny amax, amax reduction), the recipe and
// its parsing, state round trips, and the emulated FP8 GEMM against exact references.
#include <gtest/gtest.h>

#include "tests/common/expect_error.h"

#include <bit>
#include <cfloat>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "precision/context_guard.h"
#include "precision/fp8_meta.h"
#include "precision/fp8_ops.h"
#include "precision/fp8_recipe.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::precision {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr auto kFwd = Fp8Direction::forward;
constexpr auto kBwd = Fp8Direction::backward;


std::vector<float> f32(const Tensor& t) { return t.to(DType::float32).to_vector<float>(); }

// Column `slot` of a (len, K) history, rows top to bottom.
std::vector<float> history_col(const FP8Meta& m, Fp8Direction d, int64_t slot) {
  std::vector<float> col;
  for (int64_t r = 0; r < m.recipe().amax_history_len; ++r) col.push_back(m.amax_at(d, r, slot));
  return col;
}

void expect_same_bits(const std::vector<float>& got, const std::vector<float>& want,
                      const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(want[i]))
        << what << "[" << i << "]: got " << got[i] << ", want " << want[i];
  }
}

DelayedScaling e4m3_len4() {
  return {.margin = 0,
          .fp8_format = Fp8Format::E4M3,
          .amax_history_len = 4,
          .amax_compute_algo = AmaxComputeAlgo::max};
}

// ---- the spec's 6-step example
// --------------------------------------------------------------------

TEST(FP8Meta, SpecSixStepTable) {
  FP8Meta meta(1, e4m3_len4());
  const int64_t slot = FP8Meta::index(0, Fp8ForwardSlot::input);
  const float step_amax[6] = {2, 4, 1, 0.5f, 0.5f, 0.5f};
  const float scale_used[6] = {1, 224, 112, 112, 112, 112};
  const std::vector<std::vector<float>> at_update = {{2, 0, 0, 0},       {4, 0, 0, 2},
                                                     {1, 0, 2, 4},       {0.5f, 2, 4, 1},
                                                     {0.5f, 4, 1, 0.5f}, {0.5f, 1, 0.5f, 0.5f}};
  const float new_scale[6] = {224, 112, 112, 112, 112, 448};
  const std::vector<std::vector<float>> after_roll = {{0, 0, 0, 2},       {0, 0, 2, 4},
                                                      {0, 2, 4, 1},       {0, 4, 1, 0.5f},
                                                      {0, 1, 0.5f, 0.5f}, {0, 0.5f, 0.5f, 0.5f}};
  for (int step = 0; step < 6; ++step) {
    SCOPED_TRACE("step " + std::to_string(step + 1));
    EXPECT_EQ(meta.scale_at(kFwd, slot), scale_used[step]);
    // The input tensor's max |x| is the step's amax, hit by a negative element.
    const float a = step_amax[step];
    Tensor x = from_vector<float>({a / 4, -a, a / 2, 0.0f}, {2, 2});
    Fp8Quantized q = fp8_quantize(meta, kFwd, slot, x);
    EXPECT_EQ(q.q.dtype(), DType::float8_e4m3fn);
    EXPECT_EQ(q.scale_inv, 1.0f / scale_used[step]);
    EXPECT_EQ(history_col(meta, kFwd, slot), at_update[step]);
    meta.update(kFwd);
    EXPECT_EQ(meta.scale_at(kFwd, slot), new_scale[step]);
    EXPECT_EQ(history_col(meta, kFwd, slot), after_roll[step]);
  }
  // Untouched slots (weight, output) never moved.
  EXPECT_EQ(meta.scale_at(kFwd, 1), 1.0f);
  EXPECT_EQ(history_col(meta, kFwd, 2), (std::vector<float>{0, 0, 0, 0}));
  // The backward meta is updated separately.
  EXPECT_EQ(f32(meta.scale(kBwd)), (std::vector<float>{1, 1}));
}

TEST(FP8Meta, ShapesAndInitialState) {
  FP8Meta meta(3, {.amax_history_len = 5});
  EXPECT_EQ(meta.num_slots(kFwd), 9);
  EXPECT_EQ(meta.num_slots(kBwd), 6);
  EXPECT_EQ(meta.scale(kFwd).shape(), (Shape{9}));
  EXPECT_EQ(meta.amax_history(kFwd).shape(), (Shape{5, 9}));
  EXPECT_EQ(meta.amax_history(kBwd).shape(), (Shape{5, 6}));
  EXPECT_EQ(meta.scale(kBwd).dtype(), DType::float32);
  EXPECT_EQ(f32(meta.scale(kBwd)), std::vector<float>(6, 1.0f));
  EXPECT_EQ(f32(meta.amax_history(kFwd)), std::vector<float>(45, 0.0f));
  EXPECT_EQ(FP8Meta::index(2, Fp8ForwardSlot::output), 8);
  EXPECT_EQ(FP8Meta::index(1, Fp8BackwardSlot::grad_input), 3);
  EXPECT_EQ(meta.format(kFwd), Fp8Format::E4M3);
  EXPECT_EQ(meta.format(kBwd), Fp8Format::E5M2);  // HYBRID by default
  EXPECT_FALSE(meta.used());
  EXPECT_CONTAINS(thrown<IndexError>([&] { meta.record_amax_value(kBwd, 6, 1.0f); }), "slot 6");
  EXPECT_CONTAINS(thrown<ValueError>([] { FP8Meta bad(0); }), "num_gemms");
  EXPECT_CONTAINS(thrown<DTypeError>([&] {
                    meta.record_amax(kFwd, 0, from_vector<int64_t>({1, 2}));
                  }),
                  "int64");
}

// ---- update rules -----------------------------------------------------------------------------

TEST(FP8Meta, MostRecentUsesRowZeroOnly) {
  DelayedScaling r = e4m3_len4();
  r.amax_compute_algo = AmaxComputeAlgo::most_recent;
  FP8Meta meta(1, r);
  FP8Meta ref(1, e4m3_len4());  // "max" fed the same amaxes
  for (float a : {4.0f, 1.0f}) {
    meta.record_amax_value(kFwd, 0, a);
    ref.record_amax_value(kFwd, 0, a);
    meta.update(kFwd);
    ref.update(kFwd);
  }
  EXPECT_EQ(meta.scale_at(kFwd, 0), 448.0f);  // 448 / 1
  EXPECT_EQ(ref.scale_at(kFwd, 0), 112.0f);   // 448 / max(4, 1)
  // The history still rolls the same way.
  EXPECT_EQ(history_col(meta, kFwd, 0), (std::vector<float>{0, 0, 4, 1}));
}

TEST(FP8Meta, HistoryLengthOne) {
  FP8Meta meta(1, {.fp8_format = Fp8Format::E4M3, .amax_history_len = 1});
  meta.record_amax_value(kFwd, 0, 4.0f);
  meta.update(kFwd);
  EXPECT_EQ(meta.scale_at(kFwd, 0), 112.0f);
  EXPECT_EQ(history_col(meta, kFwd, 0), (std::vector<float>{0}));
  meta.record_amax_value(kFwd, 0, 1.0f);
  meta.update(kFwd);
  EXPECT_EQ(meta.scale_at(kFwd, 0), 448.0f);  // nothing older is remembered
}

TEST(FP8Meta, MarginAndBackwardFormat) {
  DelayedScaling r{.margin = 1, .fp8_format = Fp8Format::HYBRID, .amax_history_len = 4};
  FP8Meta meta(1, r);
  meta.record_amax_value(kFwd, 0, 2.0f);
  meta.update(kFwd);
  EXPECT_EQ(meta.scale_at(kFwd, 0), 112.0f);  // 448 * 2^-1 / 2
  meta.record_amax_value(kBwd, 1, 1.0f);
  meta.update(kBwd);
  EXPECT_EQ(meta.scale_at(kBwd, 1), 28672.0f);  // 57344 * 2^-1 / 1
  EXPECT_EQ(meta.scale_at(kBwd, 0), 1.0f);

  FP8Meta e4(1, {.margin = 3, .fp8_format = Fp8Format::E4M3, .amax_history_len = 4});
  e4.record_amax_value(kBwd, 0, 7.0f);
  e4.update(kBwd);
  EXPECT_EQ(e4.scale_at(kBwd, 0), 56.0f / 7.0f);  // E4M3 backward too: 448/8 in fp32, / 7 in fp32
}

TEST(FP8Meta, ZeroAmaxKeepsScaleAndDoesNotRoll) {
  FP8Meta meta(1, e4m3_len4());
  // A fresh meta: nothing recorded, nothing changes.
  meta.update(kFwd);
  EXPECT_EQ(f32(meta.scale(kFwd)), std::vector<float>(3, 1.0f));
  EXPECT_EQ(f32(meta.amax_history(kFwd)), std::vector<float>(12, 0.0f));

  meta.record_amax_value(kFwd, 0, 2.0f);
  meta.record_amax_value(kFwd, 1, 8.0f);
  meta.update(kFwd);
  ASSERT_EQ(meta.scale_at(kFwd, 0), 224.0f);
  ASSERT_EQ(history_col(meta, kFwd, 0), (std::vector<float>{0, 0, 0, 2}));
  // An all-zero tensor on slot 0 and a real one on slot 1: slot 0 stays put, slot 1 rolls.
  meta.record_amax(kFwd, 0, zeros({3, 3}));
  meta.record_amax_value(kFwd, 1, 4.0f);
  meta.update(kFwd);
  EXPECT_EQ(meta.scale_at(kFwd, 0), 224.0f);
  EXPECT_EQ(history_col(meta, kFwd, 0), (std::vector<float>{0, 0, 0, 2}));
  EXPECT_EQ(meta.scale_at(kFwd, 1), 56.0f);  // 448 / max(8, 4)
  EXPECT_EQ(history_col(meta, kFwd, 1), (std::vector<float>{0, 0, 8, 4}));
}

TEST(FP8Meta, NaNAmaxIgnored) {
  FP8Meta meta(1, e4m3_len4());
  meta.record_amax(kFwd, 0, from_vector<float>({kNaN, 3.0f, -1.0f}));
  EXPECT_EQ(meta.amax_at(kFwd, 0, 0), 3.0f);
  meta.record_amax_value(kFwd, 0, kNaN);
  EXPECT_EQ(meta.amax_at(kFwd, 0, 0), 3.0f);
  // An all-NaN tensor records nothing.
  meta.record_amax(kFwd, 1, from_vector<float>({kNaN, kNaN}));
  EXPECT_EQ(meta.amax_at(kFwd, 0, 1), 0.0f);
  // Across tensors of one step the row-0 entry is a running max.
  meta.record_amax(kFwd, 0, from_vector<float>({-2.5f}));
  EXPECT_EQ(meta.amax_at(kFwd, 0, 0), 3.0f);
  meta.record_amax(kFwd, 0, from_vector<float>({-5.0f}).to(DType::bfloat16));
  EXPECT_EQ(meta.amax_at(kFwd, 0, 0), 5.0f);
  meta.update(kFwd);
  EXPECT_EQ(meta.scale_at(kFwd, 0), 448.0f / 5.0f);
  EXPECT_EQ(meta.scale_at(kFwd, 1), 1.0f);
}

TEST(FP8Meta, InfAmaxKeepsScaleTinyAmaxGivesFltMax) {
  FP8Meta meta(1, e4m3_len4());
  meta.record_amax_value(kFwd, 0, 4.0f);
  meta.update(kFwd);
  ASSERT_EQ(meta.scale_at(kFwd, 0), 112.0f);
  meta.record_amax(kFwd, 0, from_vector<float>({1.0f, -kInf}));
  EXPECT_EQ(meta.amax_at(kFwd, 0, 0), kInf);
  meta.update(kFwd);
  EXPECT_EQ(meta.scale_at(kFwd, 0), 112.0f);  // amax inf: not finite, scale kept
  EXPECT_EQ(history_col(meta, kFwd, 0),
            (std::vector<float>{0, 0, 4, kInf}));  // but the history rolled

  FP8Meta tiny(1, e4m3_len4());
  const float denorm_min = std::numeric_limits<float>::denorm_min();
  tiny.record_amax_value(kFwd, 2, denorm_min);
  tiny.update(kFwd);
  EXPECT_EQ(tiny.scale_at(kFwd, 2), FLT_MAX);  // 448 / 2^-149 overflows fp32
}

TEST(FP8Meta, AmaxReduction) {
  FP8Meta meta(1, e4m3_len4());
  int calls = 0;
  // The other rank saw larger amaxes on slots 0 and 2.
  const std::vector<float> other = {8.0f, 0.0f, 2.0f};
  meta.set_amax_reducer(
      [&](Tensor& amaxes) {
        ++calls;
        ASSERT_EQ(amaxes.shape(), (Shape{3}));
        amaxes = maximum(amaxes, from_vector<float>(other));
      },
      2);
  meta.record_amax_value(kFwd, 0, 4.0f);
  meta.record_amax_value(kFwd, 1, 1.0f);
  meta.update(kFwd);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(meta.scale_at(kFwd, 0), 56.0f);   // 448 / 8 (reduced)
  EXPECT_EQ(meta.scale_at(kFwd, 1), 448.0f);  // 448 / 1 (local max)
  EXPECT_EQ(meta.scale_at(kFwd, 2), 224.0f);  // only the other rank saw slot 2
  EXPECT_EQ(history_col(meta, kFwd, 0), (std::vector<float>{0, 0, 0, 8}));

  // reduce_amax = false: the reducer is not consulted.
  DelayedScaling r = e4m3_len4();
  r.reduce_amax = false;
  FP8Meta local(1, r);
  local.set_amax_reducer([&](Tensor&) { ++calls; }, 2);
  local.record_amax_value(kFwd, 0, 4.0f);
  local.update(kFwd);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(local.scale_at(kFwd, 0), 112.0f);

  // world size 1: no reduction either.
  FP8Meta single(1, e4m3_len4());
  single.set_amax_reducer([&](Tensor&) { ++calls; }, 1);
  single.update(kFwd);
  EXPECT_EQ(calls, 1);
  EXPECT_CONTAINS(thrown<ValueError>([&] { single.set_amax_reducer({}, 4); }), "reducer");
  FP8Meta broken(1, e4m3_len4());
  broken.set_amax_reducer([](Tensor& a) { a = zeros({2}); }, 2);
  EXPECT_CONTAINS(thrown<ShapeError>([&] { broken.update(kFwd); }), "(3)");
}

// ---- casts ------------------------------------------------------------------------------------

TEST(FP8Ops, SpecCastChecks) {
  Fp8Quantized q =
      fp8_quantize(from_vector<float>({1.0f, -2.0f, 0.3f, 0.0f}), 224.0f, Fp8Format::E4M3);
  EXPECT_EQ(q.q.dtype(), DType::float8_e4m3fn);
  EXPECT_EQ(f32(q.q), (std::vector<float>{224, -448, 64, 0}));
  EXPECT_EQ(std::bit_cast<uint32_t>(q.scale_inv), std::bit_cast<uint32_t>(0.004464285913854837f));
  EXPECT_EQ(static_cast<double>(q.scale_inv), 0.004464285913854837);
  expect_same_bits(f32(fp8_dequantize(q.q, q.scale_inv)),
                   {1.0f, -2.0f, static_cast<float>(0.2857142984867096), 0.0f}, "dequantized");
  EXPECT_EQ(static_cast<double>(f32(fp8_dequantize(q.q, q.scale_inv))[2]), 0.2857142984867096);

  // 4.5 at scale 112 is 504: saturates to 448 (the non-saturating cast would give NaN).
  Fp8Quantized s = fp8_quantize(from_vector<float>({4.5f, -4.5f}), 112.0f, Fp8Format::E4M3);
  EXPECT_EQ(f32(s.q), (std::vector<float>{448, -448}));
  EXPECT_TRUE(std::isnan(f32(from_vector<float>({504.0f}).to(DType::float8_e4m3fn))[0]));

  // A backward tensor at scale 1 with 60000 -> E5M2 57344.
  FP8Meta meta(1);  // HYBRID
  Fp8Quantized b = fp8_quantize(meta, kBwd, FP8Meta::index(0, Fp8BackwardSlot::grad_output),
                                from_vector<float>({60000.0f, -70000.0f, 1.0f}));
  EXPECT_EQ(b.q.dtype(), DType::float8_e5m2);
  EXPECT_EQ(f32(b.q), (std::vector<float>{57344, -57344, 1}));
  EXPECT_EQ(b.scale_inv, 1.0f);
  EXPECT_EQ(meta.amax_at(kBwd, 0, 0), 70000.0f);
}

TEST(FP8Ops, SaturatingCastEdgeCases) {
  Tensor x = from_vector<float>(
      {kInf, -kInf, kNaN, 464.0f, 465.0f, 0.001f, std::ldexp(1.0f, -10), 1.12f, -369.6f});
  std::vector<float> e4 = f32(fp8_saturating_cast(x, Fp8Format::E4M3));
  EXPECT_EQ(e4[0], 448.0f);
  EXPECT_EQ(e4[1], -448.0f);
  EXPECT_TRUE(std::isnan(e4[2]));
  EXPECT_EQ(e4[3], 448.0f);
  EXPECT_EQ(e4[4], 448.0f);
  EXPECT_EQ(e4[5], std::ldexp(1.0f, -9));
  EXPECT_EQ(e4[6], 0.0f);  // the tie with 0 goes to even
  EXPECT_EQ(e4[7], 1.125f);
  EXPECT_EQ(e4[8], -384.0f);
  std::vector<float> e5 = f32(fp8_saturating_cast(
      from_vector<float>({kInf, 61440.0f, -62000.0f, 1e-5f, kNaN}), Fp8Format::E5M2));
  EXPECT_EQ(e5[0], 57344.0f);
  EXPECT_EQ(e5[1], 57344.0f);
  EXPECT_EQ(e5[2], -57344.0f);
  EXPECT_EQ(e5[3], std::ldexp(1.0f, -16));
  EXPECT_TRUE(std::isnan(e5[4]));
  // Strided (transposed) and bf16 inputs go through the same kernel.
  Tensor m = from_vector<float>({1, 500, -600, 2}, {2, 2}).t();
  EXPECT_EQ(f32(fp8_saturating_cast(m, Fp8Format::E4M3)), (std::vector<float>{1, -448, 448, 2}));
  EXPECT_EQ(
      f32(fp8_quantize(from_vector<float>({3.0f}).to(DType::bfloat16), 200.0f, Fp8Format::E4M3).q),
      (std::vector<float>{448.0f}));
}

TEST(FP8Ops, QuantizeErrors) {
  Tensor x = from_vector<float>({1.0f});
  EXPECT_CONTAINS(thrown<ValueError>([&] { fp8_quantize(x, 1.0f, Fp8Format::HYBRID); }), "HYBRID");
  EXPECT_CONTAINS(thrown<ValueError>([&] { fp8_quantize(x, 0.0f, Fp8Format::E4M3); }), "scale");
  EXPECT_CONTAINS(thrown<ValueError>([&] { fp8_quantize(x, kInf, Fp8Format::E4M3); }), "scale");
  EXPECT_CONTAINS(
      thrown<DTypeError>([&] { fp8_quantize(from_vector<int32_t>({1}), 1.0f, Fp8Format::E4M3); }),
      "int32");
  EXPECT_CONTAINS(thrown<DTypeError>([&] { fp8_dequantize(x, 1.0f); }), "float32");
  Tensor q = fp8_quantize(x, 1.0f, Fp8Format::E4M3).q;
  EXPECT_CONTAINS(thrown<DTypeError>([&] { fp8_dequantize(q, 1.0f, DType::int8); }), "out_dtype");
  EXPECT_EQ(fp8_dequantize(q, 0.5f, DType::bfloat16).dtype(), DType::bfloat16);
}

// ---- GEMM -------------------------------------------------------------------------------------

Tensor random_normal(const Shape& s, uint32_t seed, float stddev) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, stddev);
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  std::vector<float> v(static_cast<size_t>(n));
  for (float& f : v) f = nd(rng);
  return from_vector<float>(v, s);
}

// Exact reference: the fp8 values are exact in double, and so are these short dot products.
std::vector<double> exact_product(const Tensor& a_q, const Tensor& b_q) {
  const std::vector<float> a = f32(a_q);
  const std::vector<float> bt = f32(b_q);  // row-major of the logical (K, N) view
  const int64_t m = a_q.size(0), k = a_q.size(1), n = b_q.size(1);
  std::vector<double> c(static_cast<size_t>(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t p = 0; p < k; ++p) c[i * n + j] += double(a[i * k + p]) * double(bt[p * n + j]);
  return c;
}

TEST(FP8Ops, GemmIsExactOnIntegerOperands) {
  // Integers in [-16, 16] are exact in E4M3 and E5M2, and the fp32 sums stay exact, so the
  // emulation must equal (A·B) * sinv_a * sinv_b to the bit whatever the accumulation order.
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> u(-16, 16);
  std::vector<float> av(5 * 64), bv(64 * 7);
  for (float& f : av) f = static_cast<float>(u(rng));
  for (float& f : bv) f = static_cast<float>(u(rng));
  Tensor a_q = fp8_saturating_cast(from_vector<float>(av, {5, 64}), Fp8Format::E4M3);
  Tensor b_q = fp8_saturating_cast(from_vector<float>(bv, {64, 7}), Fp8Format::E5M2);
  EXPECT_EQ(f32(a_q), av);
  const float sa = 1.0f / 224.0f, sb = 1.0f / 3.0f;
  Tensor c = fp8_gemm(a_q, sa, b_q, sb);
  EXPECT_EQ(c.dtype(), DType::float32);
  EXPECT_EQ(c.shape(), (Shape{5, 7}));
  const std::vector<double> ref = exact_product(a_q, b_q);
  std::vector<float> want;
  for (double r : ref) want.push_back(static_cast<float>(r) * sa * sb);
  expect_same_bits(f32(c), want, "fp8_gemm");
  // bf16 output is the fp32 result rounded once.
  expect_same_bits(f32(fp8_gemm(a_q, sa, b_q, sb, DType::bfloat16)), f32(c.to(DType::bfloat16)),
                   "bf16 out");
}

TEST(FP8Ops, GemmEqualsProductOfDequantizedOperands) {
  // A linear layer's forward: x (M, K) times weight (N, K) transposed, both E4M3 with the
  // scales delayed scaling would pick (powers of two here, so dequantization is exact and the
  // two computations agree to the bit).
  Tensor x = random_normal({6, 32}, 1, 1.0f);
  Tensor w = random_normal({10, 32}, 2, 0.05f);
  Fp8Quantized xq = fp8_quantize(x, 64.0f, Fp8Format::E4M3);
  Fp8Quantized wq = fp8_quantize(w, 2048.0f, Fp8Format::E4M3);
  Tensor c = fp8_gemm(xq.q, xq.scale_inv, wq.q.t(), wq.scale_inv);
  Tensor deq = matmul(fp8_dequantize(xq.q, xq.scale_inv), fp8_dequantize(wq.q, wq.scale_inv).t());
  expect_same_bits(f32(c), f32(deq), "gemm vs dequantized product");

  // Arbitrary scales: within fp32 rounding of the exact product, and close to the fp32 GEMM of
  // the unquantized operands (E4M3 keeps 3 mantissa bits).
  const float ax = amax(abs(x)).item<float>(), aw = amax(abs(w)).item<float>();
  Fp8Quantized xq2 = fp8_quantize(x, 448.0f / ax, Fp8Format::E4M3);
  Fp8Quantized wq2 = fp8_quantize(w, 448.0f / aw, Fp8Format::E4M3);
  Tensor c2 = fp8_gemm(xq2.q, xq2.scale_inv, wq2.q.t(), wq2.scale_inv);
  const std::vector<double> ref = exact_product(xq2.q, wq2.q.t());
  const std::vector<float> got = f32(c2);
  const std::vector<float> full = f32(matmul(x, w.t()));
  // Each E4M3 rounding is within 2^-4 relative (plus half a subnormal step), so a product is
  // within ~0.13 of |x||w| relative: the bound per output is that times sum |x||w|.
  const std::vector<float> abs_prod = f32(matmul(abs(x), abs(w).t()));
  for (size_t i = 0; i < got.size(); ++i) {
    const double want = ref[i] * xq2.scale_inv * wq2.scale_inv;
    EXPECT_NEAR(got[i], want, 1e-5 * std::fabs(want) + 1e-7) << i;
    EXPECT_NEAR(got[i], full[i], 0.13 * abs_prod[i] + 1e-3) << i;
  }

  // Autocast does not change the emulation.
  {
    ContextGuard ac = autocast_context(DeviceType::cpu, DType::bfloat16);
    expect_same_bits(f32(fp8_gemm(xq.q, xq.scale_inv, wq.q.t(), wq.scale_inv)), f32(c),
                     "under autocast");
  }
}

TEST(FP8Ops, GemmErrors) {
  Tensor a = fp8_saturating_cast(ones({2, 3}), Fp8Format::E4M3);
  Tensor b = fp8_saturating_cast(ones({4, 5}), Fp8Format::E4M3);
  EXPECT_CONTAINS(thrown<ShapeError>([&] { fp8_gemm(a, 1.0f, b, 1.0f); }), "(2, 3)");
  EXPECT_CONTAINS(thrown<DTypeError>([&] { fp8_gemm(ones({2, 3}), 1.0f, b, 1.0f); }), "float32");
  EXPECT_CONTAINS(thrown<DTypeError>([&] { fp8_gemm(a, 1.0f, b.t(), 1.0f, DType::int32); }),
                  "out_dtype");
  // Batched operands follow matmul's broadcasting.
  Tensor batch = fp8_saturating_cast(ones({4, 2, 3}), Fp8Format::E4M3);
  Tensor r = fp8_gemm(batch, 0.5f, fp8_saturating_cast(full({3, 5}, 2.0), Fp8Format::E5M2), 0.25f);
  EXPECT_EQ(r.shape(), (Shape{4, 2, 5}));
  EXPECT_EQ(f32(r), std::vector<float>(40, 0.75f));  // 3 * 2 * 0.5 * 0.25
}

// ---- recipe -----------------------------------------------------------------------------------

TEST(FP8Recipe, DefaultsAndFormats) {
  DelayedScaling r;
  EXPECT_EQ(r.margin, 0);
  EXPECT_EQ(r.fp8_format, Fp8Format::HYBRID);
  EXPECT_EQ(r.amax_history_len, 1024);
  EXPECT_EQ(r.amax_compute_algo, AmaxComputeAlgo::max);
  EXPECT_TRUE(r.reduce_amax);
  EXPECT_EQ(r.format_for(kFwd), Fp8Format::E4M3);
  EXPECT_EQ(r.format_for(kBwd), Fp8Format::E5M2);
  EXPECT_EQ(r.fp8_max_for(kBwd), 57344.0f);
  EXPECT_EQ(fp8_dtype(Fp8Format::E5M2), DType::float8_e5m2);
  EXPECT_EQ(
      r.str(),
      "margin=0, format=HYBRID, amax_history_len=1024, amax_compute_algo=max, reduce_amax=True");
  DelayedScaling e{.fp8_format = Fp8Format::E4M3};
  EXPECT_EQ(e.format_for(kBwd), Fp8Format::E4M3);
  EXPECT_CONTAINS(thrown<ValueError>([] { fp8_max(Fp8Format::HYBRID); }), "HYBRID");
}

TEST(FP8Recipe, E5M2Rejected) {
  DelayedScaling r{.fp8_format = Fp8Format::E5M2};
  EXPECT_CONTAINS(thrown<ValueError>([&] { r.validate(); }), "E5M2");
  EXPECT_CONTAINS(thrown<ValueError>([&] { FP8Meta m(1, r); }), "E5M2");
  EXPECT_CONTAINS(
      thrown<ValueError>([] {
        DelayedScaling::from_map(std::map<std::string, std::string>{{"fp8_format", "E5M2"}});
      }),
      "E5M2");
  EXPECT_CONTAINS(thrown<ValueError>([] { FP8Meta m(1, {.amax_history_len = 0}); }),
                  "amax_history_len");
}

TEST(FP8Recipe, ParsesStringsAndMaps) {
  DelayedScaling r = DelayedScaling::from_map(
      std::map<std::string, std::string>{{"fp8_format", "hybrid"},
                                         {"margin", " 2"},
                                         {"amax_history_len", "16"},
                                         {"amax_compute_algo", "most_recent"},
                                         {"reduce_amax", "false"}});
  EXPECT_EQ(r, (DelayedScaling{.margin = 2,
                               .fp8_format = Fp8Format::HYBRID,
                               .amax_history_len = 16,
                               .amax_compute_algo = AmaxComputeAlgo::most_recent,
                               .reduce_amax = false}));
  EXPECT_EQ(fp8_format_from_name("Format.E4M3"), Fp8Format::E4M3);
  DelayedScaling typed =
      DelayedScaling::from_map(PrecisionState{{"fp8_format", std::string("E4M3")},
                                              {"amax_history_len", int64_t{8}},
                                              {"reduce_amax", true}});
  EXPECT_EQ(typed.fp8_format, Fp8Format::E4M3);
  EXPECT_EQ(typed.amax_history_len, 8);
  EXPECT_EQ(DelayedScaling::from_map(r.to_state()), r);
  EXPECT_CONTAINS(
      thrown<ValueError>([] {
        DelayedScaling::from_map(std::map<std::string, std::string>{{"amax_history", "4"}});
      }),
      "unknown key 'amax_history'");
  EXPECT_CONTAINS(thrown<ValueError>([] {
                    DelayedScaling::from_map(std::map<std::string, std::string>{{"margin", "1.5"}});
                  }),
                  "'margin'");
  EXPECT_CONTAINS(
      thrown<ValueError>([] {
        DelayedScaling::from_map(std::map<std::string, std::string>{{"amax_compute_algo", "mean"}});
      }),
      "'mean'");
  EXPECT_CONTAINS(
      thrown<ValueError>([] {
        DelayedScaling::from_map(std::map<std::string, std::string>{{"reduce_amax", "maybe"}});
      }),
      "reduce_amax");
}

// ---- state ------------------------------------------------------------------------------------

TEST(FP8Meta, StateRoundTrip) {
  DelayedScaling r{.margin = 1,
                   .fp8_format = Fp8Format::HYBRID,
                   .amax_history_len = 3,
                   .amax_compute_algo = AmaxComputeAlgo::most_recent,
                   .reduce_amax = false};
  FP8Meta meta(2, r);
  const float amaxes[3] = {3.0f, 0.75f, 12.0f};
  for (int step = 0; step < 3; ++step) {
    for (int64_t k = 0; k < 6; ++k)
      meta.record_amax_value(kFwd, k, amaxes[step] * static_cast<float>(k + 1));
    for (int64_t k = 0; k < 4; ++k)
      meta.record_amax_value(kBwd, k, 1000.0f * amaxes[(step + k) % 3]);
    meta.update(kFwd);
    meta.update(kBwd);
  }
  meta.record_amax_value(kFwd, 4, 9.0f);  // a half-finished step is saved too
  FP8MetaState st = meta.state_dict();
  ASSERT_EQ(st.tensors.size(), 4u);
  EXPECT_EQ(st.tensors.at("amax_history_bwd").shape(), (Shape{3, 4}));
  EXPECT_EQ(std::get<int64_t>(st.extra.at("num_gemms")), 2);
  EXPECT_EQ(std::get<std::string>(st.extra.at("fp8_format")), "HYBRID");

  FP8Meta restored(2);  // default recipe: load replaces it
  restored.load_state_dict(st);
  EXPECT_EQ(restored.recipe(), r);
  for (Fp8Direction d : {kFwd, kBwd}) {
    expect_same_bits(f32(restored.scale(d)), f32(meta.scale(d)), "scale");
    expect_same_bits(f32(restored.amax_history(d)), f32(meta.amax_history(d)), "history");
  }
  // The state is a copy: later steps of the original do not leak into it, and both continue alike.
  meta.update(kFwd);
  restored.update(kFwd);
  expect_same_bits(f32(restored.scale(kFwd)), f32(meta.scale(kFwd)), "after update");
  EXPECT_NE(f32(st.tensors.at("amax_history_fwd")), f32(meta.amax_history(kFwd)));
}

TEST(FP8Meta, LoadStateErrorsLeaveStateUntouched) {
  FP8Meta src(1, e4m3_len4());
  src.record_amax_value(kFwd, 0, 2.0f);
  src.update(kFwd);
  FP8MetaState good = src.state_dict();

  FP8Meta dst(1, e4m3_len4());
  FP8Meta two(2, e4m3_len4());
  EXPECT_CONTAINS(thrown<ValueError>([&] { two.load_state_dict(good); }), "num_gemms 1");
  FP8MetaState missing = good;
  missing.tensors.erase("scale_bwd");
  EXPECT_CONTAINS(thrown<KeyError>([&] { dst.load_state_dict(missing); }), "scale_bwd");
  FP8MetaState no_recipe = good;
  no_recipe.extra.erase("margin");
  EXPECT_CONTAINS(thrown<KeyError>([&] { dst.load_state_dict(no_recipe); }), "margin");
  FP8MetaState bad_shape = good;
  bad_shape.tensors["amax_history_fwd"] = zeros({5, 3});
  EXPECT_CONTAINS(thrown<ShapeError>([&] { dst.load_state_dict(bad_shape); }), "amax_history_fwd");
  FP8MetaState bad_dtype = good;
  bad_dtype.tensors["scale_fwd"] = ones({3}, {.dtype = DType::float64});
  EXPECT_CONTAINS(thrown<DTypeError>([&] { dst.load_state_dict(bad_dtype); }), "scale_fwd");
  EXPECT_EQ(f32(dst.scale(kFwd)), std::vector<float>(3, 1.0f));
  EXPECT_FALSE(dst.used());
  dst.load_state_dict(good);
  EXPECT_EQ(dst.scale_at(kFwd, 0), 224.0f);
  EXPECT_EQ(history_col(dst, kFwd, 0), (std::vector<float>{0, 0, 0, 2}));
}

// ---- FP8 linear ---------------------------------------------------------------------------------

TEST(FP8Linear, ForwardBackwardMatchManualFp8Gemms) {
  FP8Meta meta(2, {.amax_history_len = 8});  // HYBRID; this layer is GEMM 1
  const int64_t gemm = 1;
  Tensor x = random_normal({2, 3, 16}, 11, 1.0f).set_requires_grad(true);
  Tensor w = random_normal({8, 16}, 12, 0.2f).set_requires_grad(true);
  Tensor b = random_normal({8}, 13, 0.1f).set_requires_grad(true);
  Tensor c = random_normal({2, 3, 8}, 14, 1.0f);  // loss = sum(y * c), so dY = c

  // Step 1 runs at scale 1; update the forward meta and step again at the delayed scales.
  for (int step = 0; step < 2; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    zero_grad(x);
    zero_grad(w);
    zero_grad(b);
    const float sx = meta.scale_at(kFwd, FP8Meta::index(gemm, Fp8ForwardSlot::input));
    const float sw = meta.scale_at(kFwd, FP8Meta::index(gemm, Fp8ForwardSlot::weight));
    const float sg = meta.scale_at(kBwd, FP8Meta::index(gemm, Fp8BackwardSlot::grad_output));
    Tensor y = fp8_linear(meta, gemm, x, w, b);
    EXPECT_EQ(y.shape(), (Shape{2, 3, 8}));
    EXPECT_EQ(grad_fn_name(y), "Fp8LinearBackward0");
    const float ax = amax(abs(x.detach())).item<float>(), aw = amax(abs(w.detach())).item<float>();
    EXPECT_EQ(meta.amax_at(kFwd, 0, FP8Meta::index(gemm, Fp8ForwardSlot::input)), ax);
    EXPECT_EQ(meta.amax_at(kFwd, 0, FP8Meta::index(gemm, Fp8ForwardSlot::weight)), aw);
    EXPECT_EQ(meta.amax_at(kFwd, 0, FP8Meta::index(0, Fp8ForwardSlot::input)), 0.0f);  // other GEMM

    Fp8Quantized xq = fp8_quantize(x.detach().reshape({6, 16}), sx, Fp8Format::E4M3);
    Fp8Quantized wq = fp8_quantize(w.detach(), sw, Fp8Format::E4M3);
    Tensor want_y =
        add(fp8_gemm(xq.q, xq.scale_inv, wq.q.t(), wq.scale_inv), b.detach()).reshape({2, 3, 8});
    expect_same_bits(f32(y), f32(want_y), "y");

    sum(mul(y, c)).backward();
    EXPECT_EQ(meta.amax_at(kBwd, 0, FP8Meta::index(gemm, Fp8BackwardSlot::grad_output)),
              amax(abs(c)).item<float>());
    Fp8Quantized gq = fp8_quantize(c.reshape({6, 8}), sg, Fp8Format::E5M2);
    expect_same_bits(f32(x.grad()),
                     f32(fp8_gemm(gq.q, gq.scale_inv, wq.q, wq.scale_inv).reshape({2, 3, 16})),
                     "dx");
    expect_same_bits(f32(w.grad()), f32(fp8_gemm(gq.q.t(), gq.scale_inv, xq.q, xq.scale_inv)),
                     "dw");
    expect_same_bits(f32(b.grad()), f32(sum(c.reshape({6, 8}), {0})), "db");

    // And all of it near the fp32 linear: FP8 keeps 2-3 mantissa bits.
    const std::vector<float> ref_y = f32(linear(x.detach(), w.detach(), b.detach()));
    const std::vector<float> got_y = f32(y);
    for (size_t i = 0; i < ref_y.size(); ++i) EXPECT_NEAR(got_y[i], ref_y[i], 0.35) << i;
    meta.update(kFwd);
    meta.update(kBwd);
  }
  EXPECT_EQ(meta.scale_at(kBwd, FP8Meta::index(gemm, Fp8BackwardSlot::grad_output)),
            57344.0f / amax(abs(c)).item<float>());
}

// Transformer Engine adds the bias in the GEMM's float32 epilogue: a bfloat16 output is rounded
// once, after the bias, not after the product and again after the sum.
TEST(FP8Linear, BiasJoinsTheProductBeforeTheOneRounding) {
  FP8Meta meta(1, {.amax_history_len = 1});
  const Tensor x = random_normal({64, 32}, 21, 1.0f).to(DType::bfloat16);
  const Tensor w = random_normal({16, 32}, 22, 1.0f).to(DType::bfloat16);
  const Tensor b = random_normal({16}, 23, 3.0f).to(DType::bfloat16);
  const Tensor y = fp8_linear(meta, 0, x, w, b);  // scale 1 for both operands
  Fp8Quantized xq = fp8_quantize(x.to(DType::float32), 1.0f, Fp8Format::E4M3);
  Fp8Quantized wq = fp8_quantize(w.to(DType::float32), 1.0f, Fp8Format::E4M3);
  const Tensor acc = fp8_gemm(xq.q, xq.scale_inv, wq.q.t(), wq.scale_inv, DType::float32);
  expect_same_bits(f32(y), f32(add(acc, b.to(DType::float32)).to(DType::bfloat16)), "y");
  // The data tells the orders apart: rounding the product first gives other values.
  EXPECT_NE(f32(y), f32(add(acc.to(DType::bfloat16), b)));
}

TEST(FP8Linear, NoGraphWithoutGradAndErrors) {
  FP8Meta meta(1);
  Tensor x = random_normal({4, 16}, 3, 1.0f);
  Tensor w = random_normal({8, 16}, 4, 0.2f).set_requires_grad(true);
  {
    NoGradGuard ng;
    Tensor y = fp8_linear(meta, 0, x, w);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.dtype(), DType::float32);
  }
  Tensor yb = fp8_linear(meta, 0, x.to(DType::bfloat16), w);
  EXPECT_EQ(yb.dtype(), DType::bfloat16);
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    fp8_linear(meta, 0, random_normal({4, 15}, 5, 1.0f), w);
                  }),
                  "(4, 15)");
  EXPECT_CONTAINS(thrown<ShapeError>([&] { fp8_linear(meta, 0, x, w, zeros({7})); }), "bias");
  EXPECT_CONTAINS(thrown<IndexError>([&] { fp8_linear(meta, 1, x, w); }), "gemm 1");
  EXPECT_CONTAINS(
      thrown<DTypeError>([&] { fp8_linear(meta, 0, fp8_saturating_cast(x, Fp8Format::E4M3), w); }),
      "float8");
}

}  // namespace
}  // namespace fabric::precision
