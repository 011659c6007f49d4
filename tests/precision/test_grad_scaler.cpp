// GradScaler (spec §4): the worked sequence, the cap, the stage machine, gradient dtypes/layouts,
// state_dict, disabled/sharded scalers, and the fused unscale kernel against a scalar reference.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "optim/sgd.h"
#include "precision/grad_scaler.h"
#include "tensor/amp_kernels.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"

namespace fabric::precision {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

Tensor leaf(const std::vector<float>& v, DType dt = DType::float32) {
  Tensor t = from_vector<float>(v).to(dt);
  t.set_requires_grad(true);
  return t;
}

std::vector<uint32_t> bits(const Tensor& t) {
  std::vector<float> v = t.to(DType::float32).to_vector<float>();
  std::vector<uint32_t> b;
  for (float f : v) b.push_back(std::bit_cast<uint32_t>(f));
  return b;
}


// One iteration of loss = sum(w * c): scaled backward gives grad = c * scale.
void scaled_backward(GradScaler& scaler, const Tensor& w, const Tensor& c) {
  Tensor loss = sum(mul(w, c));
  scaler.scale(loss).backward();
}

double number(const PrecisionState& s, const std::string& k) {
  const StateValue& v = s.at(k);
  if (auto* d = std::get_if<double>(&v)) return *d;
  return static_cast<double>(std::get<int64_t>(v));
}

// ---- the worked example -------------------------------------------------------------------------

TEST(GradScaler, SpecWorkedSequence) {
  GradScaler scaler(
      {.init_scale = 65536.0, .growth_factor = 2.0, .backoff_factor = 0.5, .growth_interval = 3});
  const std::vector<float> c_vals = {0.5f, -1.0f, 0.25f, 2.0f};
  Tensor c = from_vector<float>(c_vals);
  Tensor w = leaf({1.0f, 2.0f, 3.0f, 4.0f});
  optim::SGD opt({w}, {.lr = 0.1});
  // The same SGD fed the true gradient directly, stepped only where the scaler steps.
  Tensor w_ref = leaf({1.0f, 2.0f, 3.0f, 4.0f});
  optim::SGD ref({w_ref}, {.lr = 0.1});

  const int found_inf[] = {0, 0, 1, 0, 0, 0, 0};
  const double want_scale[] = {65536, 65536, 32768, 32768, 32768, 65536, 65536};
  const int64_t want_tracker[] = {1, 2, 0, 1, 2, 0, 1};
  EXPECT_EQ(scaler.get_scale(), 65536.0);  // init_scale before the first scale()
  for (int it = 0; it < 7; ++it) {
    SCOPED_TRACE("iteration " + std::to_string(it + 1));
    opt.zero_grad();
    const double s = scaler.get_scale();
    scaled_backward(scaler, w, c);
    // The gradient is scaled exactly (powers of two).
    std::vector<float> g = w.grad().to_vector<float>();
    for (size_t i = 0; i < g.size(); ++i) EXPECT_EQ(g[i], static_cast<float>(c_vals[i] * s));
    if (found_inf[it]) w.grad().data<float>()[2] = kInf;
    const std::vector<uint32_t> before = bits(w);

    const bool stepped = scaler.step(opt);
    EXPECT_EQ(stepped, found_inf[it] == 0);
    EXPECT_EQ(scaler.found_inf(opt), found_inf[it] != 0);
    if (stepped) {
      // Unscaled back to exactly c before the step.
      EXPECT_EQ(w.grad().to_vector<float>(), c_vals);
      fabric::set_grad(w_ref, c.clone());
      ref.step();
      EXPECT_EQ(bits(w), bits(w_ref));
      EXPECT_NE(bits(w), before);
    } else {
      EXPECT_EQ(bits(w), before);  // skipped: the weights are bit-identical
    }
    scaler.update();
    EXPECT_EQ(scaler.get_scale(), want_scale[it]);
    EXPECT_EQ(scaler.growth_tracker(), want_tracker[it]);
  }
  const PrecisionState sd = scaler.state_dict();
  ASSERT_EQ(sd.size(), 5u);
  EXPECT_EQ(std::get<double>(sd.at("scale")), 65536.0);
  EXPECT_EQ(std::get<double>(sd.at("growth_factor")), 2.0);
  EXPECT_EQ(std::get<double>(sd.at("backoff_factor")), 0.5);
  EXPECT_EQ(std::get<int64_t>(sd.at("growth_interval")), 3);
  EXPECT_EQ(std::get<int64_t>(sd.at("_growth_tracker")), 1);
}

TEST(GradScaler, ScaleCapsBelowFloat32Infinity) {
  const double cap = std::ldexp(1.0, 127);
  GradScaler scaler({.init_scale = cap, .growth_interval = 1});
  Tensor w = leaf({1.0f, -1.0f});
  optim::SGD opt({w}, {.lr = 0.0});
  for (int it = 0; it < 3; ++it) {
    opt.zero_grad();
    scaled_backward(scaler, w, from_vector<float>({std::ldexp(1.0f, -100), 0.0f}));
    EXPECT_TRUE(scaler.step(opt));
    scaler.update();
    EXPECT_EQ(scaler.get_scale(), cap) << "2^128 would be inf: the scale must stay";
    EXPECT_EQ(scaler.growth_tracker(), 0);
  }
}

TEST(GradScaler, BacksOffAndGrowsInFloat) {
  // backoff 0.3 is not a power of two: the new scale is f32(scale * 0.3) computed in double.
  GradScaler scaler(
      {.init_scale = 1000.0, .growth_factor = 3.0, .backoff_factor = 0.3, .growth_interval = 1});
  Tensor w = leaf({1.0f});
  optim::SGD opt({w});
  scaled_backward(scaler, w, from_vector<float>({kNaN}));
  EXPECT_FALSE(scaler.step(opt));
  scaler.update();
  EXPECT_EQ(scaler.get_scale(), static_cast<double>(static_cast<float>(1000.0 * 0.3)));
  opt.zero_grad();
  scaled_backward(scaler, w, from_vector<float>({1.0f}));
  EXPECT_TRUE(scaler.step(opt));
  scaler.update();
  EXPECT_EQ(scaler.get_scale(), static_cast<double>(static_cast<float>(
                                    static_cast<double>(static_cast<float>(300.0)) * 3.0)));
}

// ---- the stage machine and argument errors ------------------------------------------------------

TEST(GradScaler, StageErrors) {
  GradScaler scaler;
  Tensor w = leaf({1.0f, 2.0f});
  optim::SGD opt({w});
  EXPECT_CONTAINS(thrown<ValueError>([&] { scaler.unscale_(opt); }), "scale(loss)");

  scaled_backward(scaler, w, from_vector<float>({1.0f, 1.0f}));
  scaler.unscale_(opt);
  EXPECT_CONTAINS(thrown<ValueError>([&] { scaler.unscale_(opt); }), "already been called");
  EXPECT_TRUE(scaler.step(opt));  // unscaled already: step does not unscale again
  EXPECT_EQ(w.grad().to_vector<float>(), (std::vector<float>{1.0f, 1.0f}));
  EXPECT_CONTAINS(thrown<ValueError>([&] { scaler.unscale_(opt); }), "after step()");
  EXPECT_CONTAINS(thrown<ValueError>([&] { scaler.step(opt); }), "already been called");
  scaler.update();
  EXPECT_THROW(scaler.found_inf(opt), ValueError);  // update() resets the per-optimizer records

  // After update() the stages are fresh again.
  opt.zero_grad();
  scaled_backward(scaler, w, from_vector<float>({2.0f, 2.0f}));
  scaler.unscale_(opt);
  EXPECT_FALSE(scaler.found_inf(opt));
  EXPECT_TRUE(scaler.step(opt));
  scaler.update();

  // No gradients at all: nothing recorded, as the reference asserts.
  opt.zero_grad();
  scaler.scale(sum(w));
  EXPECT_CONTAINS(thrown<ValueError>([&] { scaler.step(opt); }), "no inf checks");
  GradScaler fresh;
  fresh.scale(sum(w));
  EXPECT_CONTAINS(thrown<ValueError>([&] { fresh.update(); }), "no inf checks");
}

// The records are per optimizer: one destroyed halfway through an iteration (unscaled, then
// abandoned) and a new one that happens to get its address start afresh; a live optimizer's
// records stay until update(), as the reference's.
TEST(GradScaler, ANewOptimizerAtADeadOnesAddressStartsAfresh) {
  GradScaler scaler;
  Tensor w = leaf({1.0f, 2.0f});
  std::optional<optim::SGD> opt;
  opt.emplace(std::vector<Tensor>{w});
  scaled_backward(scaler, w, from_vector<float>({1.0f, 1.0f}));
  scaler.unscale_(*opt);
  opt.reset();
  opt.emplace(std::vector<Tensor>{w});  // same storage, same address
  EXPECT_THROW(scaler.found_inf(*opt),
               ValueError);  // not unscaled: the dead one's record is not its
  EXPECT_NO_THROW(scaler.unscale_(*opt));
  EXPECT_TRUE(scaler.step(*opt));
  scaler.update();
}

TEST(GradScaler, OptionErrors) {
  EXPECT_CONTAINS(thrown<ValueError>([] { GradScaler({.growth_factor = 1.0}); }), "growth_factor");
  EXPECT_CONTAINS(thrown<ValueError>([] { GradScaler({.backoff_factor = 1.0}); }),
                  "backoff_factor");
  EXPECT_CONTAINS(thrown<ValueError>([] { GradScaler({.growth_interval = 0}); }),
                  "growth_interval");
  EXPECT_CONTAINS(thrown<ValueError>([] { GradScaler({.init_scale = 1e39}); }), "init_scale");
  EXPECT_NO_THROW(
      GradScaler({.growth_factor = 0.5, .enabled = false}));  // checked only when enabled
  GradScaler s;
  EXPECT_THROW(s.set_growth_factor(0.9), ValueError);
  EXPECT_THROW(s.set_backoff_factor(1.5), ValueError);
  EXPECT_THROW(s.set_growth_interval(0), ValueError);
  s.set_growth_interval(7);
  EXPECT_EQ(s.growth_interval(), 7);
}

TEST(GradScaler, Fp16GradientsAreAnErrorUnlessSharded) {
  Tensor w32 = leaf({1.0f, 2.0f});
  Tensor w16 = leaf({1.0f, 2.0f}, DType::float16);
  {
    GradScaler scaler({.init_scale = 4.0});
    optim::SGD opt({w32, w16});
    scaler.scale(sum(w32));
    fabric::set_grad(w32, from_vector<float>({8.0f, 8.0f}));
    fabric::set_grad(w16, from_vector<float>({8.0f, 8.0f}).to(DType::float16));
    EXPECT_EQ(thrown<ValueError>([&] { scaler.unscale_(opt); }),
              "Attempting to unscale FP16 gradients.");
    // Checked before any gradient is touched.
    EXPECT_EQ(w32.grad().to_vector<float>(), (std::vector<float>{8.0f, 8.0f}));
  }
  {
    GradScaler sharded({.init_scale = 4.0, .allow_fp16_grads = true});
    optim::SGD opt({w32, w16});
    sharded.scale(sum(w32));
    fabric::set_grad(w32, from_vector<float>({8.0f, 8.0f}));
    fabric::set_grad(
        w16, from_vector<float>({8.0f, 70000.0f}).to(DType::float16));  // 70000 -> inf in fp16
    sharded.unscale_(opt);
    EXPECT_TRUE(sharded.found_inf(opt));
    EXPECT_EQ(w32.grad().to_vector<float>(), (std::vector<float>{2.0f, 2.0f}));
    EXPECT_EQ(w16.grad().dtype(), DType::float16);
    EXPECT_EQ(w16.grad().to_vector<float>()[0], 2.0f);
  }
  {
    GradScaler scaler;
    Tensor wi = leaf({1.0f});
    optim::SGD opt({wi});
    scaler.scale(sum(wi));
    fabric::set_grad_unchecked(wi, from_vector<int64_t>({1}));  // set_grad refuses it already
    EXPECT_CONTAINS(thrown<DTypeError>([&] { scaler.unscale_(opt); }), "int64");
  }
}

// ---- the unscale arithmetic
// ----------------------------------------------------------------------

// f32(1/f64(s)) equals the correctly rounded float reciprocal (53 >= 2*24 + 2 bits, so the double
// rounding is innocuous); what is observable is that grads are *multiplied* by that float
// inverse (not divided by the scale), in each dtype's opmath.
TEST(GradScaler, MultipliesByTheFloatInverseOfTheScale) {
  const float inv = static_cast<float>(1.0 / 3.0);
  GradScaler scaler({.init_scale = 3.0});
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-100.0f, 100.0f);
  std::vector<float> g32(64);
  for (float& v : g32) v = u(rng);
  Tensor w32 = leaf(std::vector<float>(64, 0.0f));
  Tensor w64 = leaf({0.0f}, DType::float64);
  optim::SGD opt({w32, w64});
  scaler.scale(sum(w32));
  fabric::set_grad(w32, from_vector<float>(g32));
  fabric::set_grad(w64, from_vector<double>({1.0}));
  scaler.unscale_(opt);
  EXPECT_FALSE(scaler.found_inf(opt));
  // float64: an exact double product by the float inverse, not 1/3.
  EXPECT_EQ(w64.grad().to_vector<double>()[0], static_cast<double>(inv));
  EXPECT_NE(w64.grad().to_vector<double>()[0], 1.0 / 3.0);
  const std::vector<float> got = w32.grad().to_vector<float>();
  int differs_from_division = 0;
  for (size_t i = 0; i < g32.size(); ++i) {
    EXPECT_EQ(got[i], g32[i] * inv) << i;
    differs_from_division += (g32[i] * inv != g32[i] / 3.0f);
  }
  EXPECT_GT(differs_from_division, 0) << "the data should tell multiplication from division";
}

TEST(GradScaler, DetectsNaNAsWellAsInf) {
  for (float bad : {kInf, -kInf, kNaN}) {
    GradScaler scaler({.init_scale = 1024.0});
    Tensor w = leaf({1.0f, 2.0f, 3.0f});
    optim::SGD opt({w}, {.lr = 1.0});
    scaled_backward(scaler, w, from_vector<float>({1.0f, 1.0f, 1.0f}));
    w.grad().data<float>()[1] = bad;
    const std::vector<uint32_t> before = bits(w);
    EXPECT_FALSE(scaler.step(opt)) << bad;
    EXPECT_EQ(bits(w), before);
    scaler.update();
    EXPECT_EQ(scaler.get_scale(), 512.0);
  }
}

TEST(GradScaler, NonContiguousGradientsAreUnscaledInPlace) {
  GradScaler scaler({.init_scale = 8.0});
  Tensor wv = zeros({3, 4});
  wv.set_requires_grad(true);
  Tensor w2 = leaf(std::vector<float>(6, 0.0f));
  optim::SGD opt({wv, w2});
  scaler.scale(sum(wv));
  // A (3, 4) gradient that is the transpose of a contiguous (4, 3) buffer.
  Tensor base = mul(arange(0, 12, 1, DType::float32).view({4, 3}), 8.0);
  Tensor gt = base.t();
  ASSERT_FALSE(gt.is_contiguous());
  fabric::set_grad(wv, gt);
  // A (6,) gradient taking every other element of a (12,) buffer.
  Tensor base2 = mul(arange(0, 12, 1, DType::float32), 8.0);
  fabric::set_grad(w2, base2.slice(0, 0, 12, 2));
  scaler.unscale_(opt);
  EXPECT_FALSE(scaler.found_inf(opt));
  EXPECT_TRUE(wv.grad().is_same(gt));  // in place: the same tensor, the same storage
  std::vector<float> want(12);
  for (int i = 0; i < 12; ++i) want[static_cast<size_t>(i)] = static_cast<float>(i);
  EXPECT_EQ(base.to_vector<float>(), want);
  // Only the gradient's elements (the even ones) were unscaled.
  EXPECT_EQ(base2.to_vector<float>(),
            (std::vector<float>{0, 8, 2, 24, 4, 40, 6, 56, 8, 72, 10, 88}));
}

TEST(GradScaler, Bfloat16Gradients) {
  GradScaler scaler({.init_scale = 3.0});
  Tensor w = leaf({0.0f, 0.0f, 0.0f, 0.0f}, DType::bfloat16);
  optim::SGD opt({w}, {.lr = 1.0});
  scaler.scale(sum(w.to(DType::float32)));
  const std::vector<float> g = {3.0f, 1.0f, -300.0f, 0.0078125f};
  fabric::set_grad(w, from_vector<float>(g).to(DType::bfloat16));
  EXPECT_TRUE(scaler.step(opt));
  const float inv = static_cast<float>(1.0 / 3.0);
  const std::vector<float> got = w.grad().to_vector<float>();
  for (size_t i = 0; i < g.size(); ++i) {
    const float gi = static_cast<float>(BFloat16(g[i]));
    EXPECT_EQ(got[i], static_cast<float>(BFloat16(gi * inv)))
        << i;  // fp32 opmath, one bf16 rounding
  }
  EXPECT_EQ(w.grad().dtype(), DType::bfloat16);
  scaler.update();
  opt.zero_grad();
  scaler.scale(sum(w.to(DType::float32)));
  fabric::set_grad(w, from_vector<float>({1.0f, kInf, 0.0f, 0.0f}).to(DType::bfloat16));
  EXPECT_FALSE(scaler.step(opt));
}

// ---- state_dict, disabled, sharded hook, several optimizers
// --------------------------------------

TEST(GradScaler, StateDictRoundTrip) {
  GradScalerOptions o{
      .init_scale = 1024.0, .growth_factor = 4.0, .backoff_factor = 0.25, .growth_interval = 2};
  GradScaler a(o);
  Tensor w = leaf({1.0f});
  optim::SGD opt({w}, {.lr = 0.0});
  const int pattern[] = {0, 1, 0, 0, 0};
  auto iterate = [&](GradScaler& s, int bad) {
    opt.zero_grad();
    scaled_backward(s, w, from_vector<float>({bad ? kInf : 1.0f}));
    s.step(opt);
    s.update();
  };
  for (int b : pattern) iterate(a, b);
  const PrecisionState sd = a.state_dict();
  EXPECT_EQ(number(sd, "scale"), a.get_scale());
  EXPECT_EQ(number(sd, "_growth_tracker"), 1);

  GradScaler b;  // defaults, then loaded: before any scale() it reports the loaded values
  b.load_state_dict(sd);
  EXPECT_EQ(b.get_scale(), a.get_scale());
  EXPECT_EQ(b.growth_tracker(), 1);
  EXPECT_EQ(b.growth_factor(), 4.0);
  EXPECT_EQ(b.backoff_factor(), 0.25);
  EXPECT_EQ(b.growth_interval(), 2);
  EXPECT_EQ(b.state_dict(), sd);
  for (int bad : {0, 0, 1, 0}) {
    iterate(a, bad);
    iterate(b, bad);
    EXPECT_EQ(a.state_dict(), b.state_dict());
  }
  // Loading into an initialized scaler replaces its live scale too.
  GradScaler c;
  c.scale(sum(w));
  c.load_state_dict(sd);
  EXPECT_EQ(c.get_scale(), number(sd, "scale"));

  PrecisionState missing = sd;
  missing.erase("_growth_tracker");
  EXPECT_CONTAINS(thrown<ValueError>([&] { c.load_state_dict(missing); }), "_growth_tracker");
  PrecisionState wrong = sd;
  wrong["scale"] = std::string("big");
  EXPECT_CONTAINS(thrown<ValueError>([&] { c.load_state_dict(wrong); }), "scale");
  EXPECT_EQ(c.get_scale(), number(sd, "scale"));  // unchanged by the failed loads
}

// Every state the scaler reaches loads back (torch loads any value): repeated overflows back the
// scale off to exactly 0. NaN and negative scales are refused.
TEST(GradScaler, AScaleBackedOffToZeroLoadsBack) {
  GradScaler a({.init_scale = 65536.0});
  Tensor w = leaf({1.0f, 2.0f, 3.0f});
  optim::SGD opt({w}, {.lr = 0.1});
  int overflows = 0;
  while (a.get_scale() > 0 && overflows < 400) {
    a.scale(ones({}));
    fabric::set_grad(w, full({3}, kInf));
    a.step(opt);
    a.update();
    ++overflows;
  }
  ASSERT_EQ(a.get_scale(), 0.0) << "after " << overflows << " overflows";
  GradScaler b;
  b.load_state_dict(a.state_dict());
  EXPECT_EQ(b.get_scale(), 0.0);
  EXPECT_EQ(b.state_dict(), a.state_dict());
  PrecisionState bad = a.state_dict();
  bad["scale"] = -1.0;
  EXPECT_CONTAINS(thrown<ValueError>([&] { b.load_state_dict(bad); }), "must be >= 0");
  bad["scale"] = std::nan("");
  EXPECT_CONTAINS(thrown<ValueError>([&] { b.load_state_dict(bad); }), "must be >= 0");
}

TEST(GradScaler, LoadingAnEmptyStateIntoAnEnabledScalerFails) {
  GradScaler s;
  EXPECT_CONTAINS(thrown<ValueError>([&] { s.load_state_dict({}); }), "empty");
}

TEST(GradScaler, DisabledScalerIsTransparent) {
  GradScaler s({.enabled = false});
  EXPECT_FALSE(s.is_enabled());
  Tensor w = leaf({1.0f, 2.0f});
  optim::SGD opt({w}, {.lr = 1.0});
  Tensor loss = sum(w);
  EXPECT_TRUE(s.scale(loss).is_same(loss));
  EXPECT_EQ(s.get_scale(), 1.0);
  EXPECT_TRUE(s.state_dict().empty());
  EXPECT_NO_THROW(s.load_state_dict({}));
  fabric::set_grad(w, from_vector<float>({kInf, 1.0f}));
  s.unscale_(opt);  // no-op
  EXPECT_EQ(w.grad().to_vector<float>()[1], 1.0f);
  EXPECT_TRUE(s.step(opt));  // steps plainly, whatever the gradients hold
  EXPECT_EQ(w.to_vector<float>()[1], 1.0f);
  EXPECT_NO_THROW(s.update());
}

TEST(GradScaler, FoundInfReducerMakesEveryRankSkip) {
  // Simulates ShardedGradScaler's all-reduce: another rank saw an inf.
  GradScaler s({.init_scale = 16.0, .allow_fp16_grads = true});
  int calls = 0;
  float seen = -1;
  s.set_found_inf_reducer([&](Tensor& t) {
    ++calls;
    EXPECT_EQ(t.dim(), 0);
    EXPECT_EQ(t.dtype(), DType::float32);
    seen = t.item<float>();
    t = add(t, 1.0);  // SUM with a remote 1
  });
  Tensor w = leaf({1.0f});
  optim::SGD opt({w}, {.lr = 1.0});
  scaled_backward(s, w, from_vector<float>({1.0f}));
  EXPECT_FALSE(s.step(opt));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(seen, 0.0f);  // locally finite
  EXPECT_EQ(w.to_vector<float>()[0], 1.0f);
  s.update();
  EXPECT_EQ(s.get_scale(), 8.0);
}

TEST(GradScaler, SeveralOptimizersShareOneUpdate) {
  GradScaler s({.init_scale = 4.0, .growth_interval = 1});
  Tensor a = leaf({1.0f}), b = leaf({1.0f});
  optim::SGD oa({a}, {.lr = 1.0}), ob({b}, {.lr = 1.0});
  s.scale(add(sum(a), sum(b))).backward();
  b.grad().data<float>()[0] = kNaN;
  EXPECT_TRUE(s.step(oa));
  EXPECT_FALSE(s.step(ob));
  EXPECT_FALSE(s.found_inf(oa));
  EXPECT_TRUE(s.found_inf(ob));
  s.update();
  EXPECT_EQ(s.get_scale(), 2.0);  // any optimizer's inf backs off the shared scale
  EXPECT_EQ(a.to_vector<float>()[0], 0.0f);
  EXPECT_EQ(b.to_vector<float>()[0], 1.0f);
}

TEST(GradScaler, UpdateWithAnExplicitScale) {
  GradScaler s;
  Tensor w = leaf({1.0f});
  EXPECT_THROW(s.update(8.0), ValueError);  // not initialized yet
  s.scale(sum(w));
  s.update(8.0);
  EXPECT_EQ(s.get_scale(), 8.0);
  EXPECT_THROW(s.update(0.0), ValueError);
  EXPECT_EQ(s.scale(from_vector<float>({3.0f})).to_vector<float>()[0], 24.0f);
}

// ---- the fused kernel
// -----------------------------------------------------------------------------

// The plain reference: opmath float (double for float64), one rounding to the dtype.
template <class T>
void reference(std::vector<T>& v, float inv, bool& found) {
  using Op = std::conditional_t<std::is_same_v<T, double>, double, float>;
  for (T& e : v) {
    const Op x = static_cast<Op>(e);
    if (!std::isfinite(x)) found = true;
    if (inv != 1.0f) e = static_cast<T>(x * static_cast<Op>(inv));
  }
}

template <class T>
std::vector<uint64_t> raw(const std::vector<T>& v) {
  std::vector<uint64_t> r;
  for (const T& e : v) {
    uint64_t b = 0;
    std::memcpy(&b, &e, sizeof(T));
    r.push_back(b);
  }
  return r;
}

template <class T>
void check_kernel(DType dt, int64_t n, float inv, int64_t bad_at, float bad, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1000.0f);
  std::vector<T> host(static_cast<size_t>(n));
  for (T& e : host) e = static_cast<T>(nd(rng));
  if (bad_at >= 0) host[static_cast<size_t>(bad_at)] = static_cast<T>(bad);
  Tensor t = empty({n}, {.dtype = dt});
  std::memcpy(t.data_ptr(), host.data(), host.size() * sizeof(T));
  bool want_found = false;
  reference(host, inv, want_found);
  const bool got_found = amp_unscale_and_check_(t, inv, "test");
  std::vector<T> got(host.size());
  std::memcpy(got.data(), t.data_ptr(), got.size() * sizeof(T));
  const std::string what = std::string(dtype_name(dt)) + " n=" + std::to_string(n) +
                           " inv=" + std::to_string(inv) + " bad_at=" + std::to_string(bad_at);
  EXPECT_EQ(got_found, want_found) << what;
  EXPECT_EQ(got_found, bad_at >= 0) << what;
  // NaN stays NaN (its payload may be canonicalised by the rounding): compare bits elsewhere.
  const std::vector<uint64_t> gb = raw(got), hb = raw(host);
  for (size_t i = 0; i < gb.size(); ++i) {
    if (static_cast<int64_t>(i) == bad_at && std::isnan(bad)) {
      EXPECT_TRUE(std::isnan(static_cast<double>(static_cast<float>(got[i])))) << what;
      continue;
    }
    ASSERT_EQ(gb[i], hb[i]) << what << " at " << i;
  }
}

TEST(AmpUnscaleKernel, MatchesScalarReferenceWithTailInfAndNaN) {
  std::mt19937 rng(1234);
  const int64_t sizes[] = {1, 7, 15, 16, 17, 31, 33, 100, 1000, 70001};
  for (int64_t n : sizes) {
    // Non-finite values at the very last element (the masked vector tail), at the first, and none.
    for (int64_t bad_at : {int64_t{-1}, n - 1, int64_t{0}}) {
      for (float bad : {kInf, kNaN}) {
        for (float inv : {1.0f, static_cast<float>(1.0 / 65536.0), static_cast<float>(1.0 / 3.0)}) {
          check_kernel<float>(DType::float32, n, inv, bad_at, bad, rng);
          check_kernel<double>(DType::float64, n, inv, bad_at, bad, rng);
          check_kernel<BFloat16>(DType::bfloat16, n, inv, bad_at, bad, rng);
          check_kernel<Half>(DType::float16, n, inv, bad_at, bad, rng);
        }
        if (bad_at < 0) break;  // the bad value is unused
      }
    }
  }
}

TEST(AmpUnscaleKernel, StridedAndReadOnlyPaths) {
  // A (5, 40) float32 view with row stride 64 and a transposed (40, 5) one; and has_non_finite
  // on an expanded tensor (stride 0, read only), which an in-place unscale must refuse.
  Tensor base = mul(arange(0, 320, 1, DType::float32).view({5, 64}), 4.0);
  Tensor v = base.slice(1, 0, 40);
  EXPECT_FALSE(amp_unscale_and_check_(v, 0.25f));
  std::vector<float> all = base.to_vector<float>();
  for (int r = 0; r < 5; ++r) {
    for (int col = 0; col < 64; ++col) {
      const float want = static_cast<float>(r * 64 + col) * (col < 40 ? 1.0f : 4.0f);
      ASSERT_EQ(all[static_cast<size_t>(r * 64 + col)], want) << r << "," << col;
    }
  }
  base.data<float>()[64 * 4 + 39] = kNaN;
  EXPECT_TRUE(amp_has_non_finite(v.t()));
  base.data<float>()[64 * 4 + 39] = 0.0f;
  base.data<float>()[64 * 4 + 41] = kInf;  // outside the view
  EXPECT_FALSE(amp_has_non_finite(v.t()));

  Tensor one = from_vector<float>({kInf});
  Tensor ex = one.expand({3, 4});
  EXPECT_TRUE(amp_has_non_finite(ex));
  EXPECT_CONTAINS(thrown<ValueError>([&] { amp_unscale_and_check_(ex, 0.5f); }), "stride 0");
  EXPECT_THROW(amp_unscale_and_check_(from_vector<int64_t>({1}), 0.5f), DTypeError);
  EXPECT_FALSE(amp_unscale_and_check_(empty({0}), 0.5f));
}

// Many tensors, one flag per device: an inf in one tensor is reported once for the device and
// every tensor is still unscaled; a bad tensor anywhere in the list leaves all of them untouched.
TEST(AmpUnscaleKernel, ListSharesOneFlagPerDeviceAndChecksBeforeTouching) {
  Tensor a = from_vector<float>({2.f, 4.f}), b = from_vector<float>({8.f, kInf, 6.f});
  Tensor c = empty({0});
  const auto found = amp_unscale_and_check_all_({a, c, b}, 0.5f);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].first, Device::cpu());
  EXPECT_TRUE(found[0].second);
  EXPECT_EQ(a.to_vector<float>(), (std::vector<float>{1.f, 2.f}));
  EXPECT_EQ(b.to_vector<float>()[0], 4.f);
  EXPECT_TRUE(amp_unscale_and_check_all_({}, 0.5f).empty());
  EXPECT_THROW(amp_unscale_and_check_all_({a, from_vector<int64_t>({1})}, 0.5f), DTypeError);
  EXPECT_EQ(a.to_vector<float>(), (std::vector<float>{1.f, 2.f})) << "touched before the check";
}

}  // namespace
}  // namespace fabric::precision
