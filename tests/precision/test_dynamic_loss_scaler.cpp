// DeepSpeed's loss scalers (spec §5): examples A, B and C, the minimum-scale error, the growth
// window, the "fp16" config-block pitfall, state_dict, unscale+clip and has_overflow.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "precision/dynamic_loss_scaler.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::precision {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

DynamicLossScalerOptions example_options(bool consecutive) {
  return {.init_scale = 65536.0,
          .scale_window = 2,
          .delayed_shift = 2,
          .consecutive_hysteresis = consecutive};
}

TEST(DynamicLossScaler, ExampleA_Hysteresis) {
  DynamicLossScaler s(example_options(false));
  const bool overflow[] = {1, 1, 0, 0, 0, 0, 1, 0};
  const double scale[] = {65536, 32768, 32768, 65536, 65536, 131072, 131072, 131072};
  const int64_t hyst[] = {1, 1, 1, 2, 2, 2, 1, 1};
  for (int i = 0; i < 8; ++i) {
    s.update_scale(overflow[i]);
    EXPECT_EQ(s.cur_scale(), scale[i]) << "iteration " << i;
    EXPECT_EQ(s.cur_hysteresis(), hyst[i]) << "iteration " << i;
    EXPECT_EQ(s.cur_iter(), i + 1);
  }
  EXPECT_EQ(s.last_overflow_iter(), 6);
}

TEST(DynamicLossScaler, ExampleB_ConsecutiveHysteresis) {
  DynamicLossScaler s(example_options(true));
  const bool overflow[] = {1, 0, 1, 1, 0, 0};
  const double scale[] = {65536, 65536, 65536, 32768, 32768, 65536};
  for (int i = 0; i < 6; ++i) {
    s.update_scale(overflow[i]);
    EXPECT_EQ(s.cur_scale(), scale[i]) << "iteration " << i;
  }
  EXPECT_EQ(s.cur_hysteresis(), 2);  // refilled by every clean iteration
}

TEST(FusedLossScaler, ExampleC_GrowsOnTheWindowPlusFirstCleanIteration) {
  FusedLossScaler s({.init_scale = 65536.0, .scale_window = 2});
  const bool overflow[] = {1, 0, 0, 0, 0};
  const double scale[] = {32768, 32768, 32768, 65536, 65536};
  for (int i = 0; i < 5; ++i) {
    s.update_scale(overflow[i]);
    EXPECT_EQ(s.cur_scale(), scale[i]) << "iteration " << i;
  }
  // The ZeRO rule grows one iteration earlier on the same sequence.
  DynamicLossScaler z({.init_scale = 65536.0, .scale_window = 2});
  const double zero_scale[] = {32768, 32768, 65536, 65536, 131072};
  for (int i = 0; i < 5; ++i) {
    z.update_scale(overflow[i]);
    EXPECT_EQ(z.cur_scale(), zero_scale[i]) << "iteration " << i;
  }
}

TEST(FusedLossScaler, NoErrorAtTheMinimumAndStaticCountsIterations) {
  FusedLossScaler s({.init_scale = 4.0, .scale_window = 2, .min_scale = 2.0});
  s.update_scale(true);
  s.update_scale(true);
  s.update_scale(true);
  EXPECT_EQ(s.cur_scale(), 2.0);
  FusedLossScaler st({.dynamic = false, .static_scale = 128.0});
  st.update_scale(true);
  st.update_scale(false);
  EXPECT_EQ(st.cur_scale(), 128.0);
  EXPECT_EQ(st.cur_iter(), 2);
  const PrecisionState sd = st.state_dict();
  EXPECT_EQ(sd.size(), 3u);  // dynamic_loss_scale, cur_scale, cur_iter
  EXPECT_EQ(std::get<bool>(sd.at("dynamic_loss_scale")), false);
  const PrecisionState dd = s.state_dict();
  EXPECT_EQ(dd.size(), 6u);
  FusedLossScaler r;
  r.load_state_dict(dd);
  EXPECT_EQ(r.state_dict(), dd);
}

TEST(DynamicLossScaler, RaisesAtTheMinimumScale) {
  DynamicLossScaler s({.init_scale = 4.0, .min_scale = 2.0});
  s.update_scale(true);
  EXPECT_EQ(s.cur_scale(), 2.0);
  try {
    s.update_scale(true);
    ADD_FAILURE() << "expected an error at the minimum scale";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("already at minimum"), std::string::npos) << e.what();
  }
  // Not at the minimum yet but close: clamped to it, no error.
  DynamicLossScaler c({.init_scale = 3.0, .min_scale = 2.0});
  c.update_scale(true);
  EXPECT_EQ(c.cur_scale(), 2.0);
  // With raising off, the scale just stays.
  DynamicLossScaler q({.init_scale = 2.0, .min_scale = 2.0, .raise_error_at_min_scale = false});
  q.update_scale(true);
  q.update_scale(true);
  EXPECT_EQ(q.cur_scale(), 2.0);
  EXPECT_EQ(q.last_overflow_iter(), 1);
}

TEST(DynamicLossScaler, FirstGrowthAtIteration999) {
  DynamicLossScaler s({.init_scale = 1024.0});  // window 1000, from last_overflow_iter = -1
  for (int i = 0; i < 999; ++i) s.update_scale(false);
  EXPECT_EQ(s.cur_scale(), 1024.0);
  s.update_scale(false);  // cur_iter 999: (999 - -1) % 1000 == 0
  EXPECT_EQ(s.cur_scale(), 2048.0);
  for (int i = 0; i < 999; ++i) s.update_scale(false);
  EXPECT_EQ(s.cur_scale(), 2048.0);
  s.update_scale(false);
  EXPECT_EQ(s.cur_scale(), 4096.0);
}

TEST(DynamicLossScaler, OptionErrors) {
  EXPECT_THROW(DynamicLossScaler({.scale_factor = 1.0}), ValueError);
  EXPECT_THROW(DynamicLossScaler({.scale_window = 0}), ValueError);
  EXPECT_THROW(DynamicLossScaler({.min_scale = -1.0}), ValueError);
  // min_scale 0: DeepSpeed's "no floor" (min_loss_scale: 0 in real configs): the scale halves
  // past 1.
  DynamicLossScaler no_floor({.init_scale = 2.0, .min_scale = 0.0, .delayed_shift = 1});
  for (int i = 0; i < 3; ++i) no_floor.update_scale(/*overflow=*/true);
  EXPECT_EQ(no_floor.cur_scale(), 0.25);
  EXPECT_THROW(DynamicLossScaler({.delayed_shift = 0}), ValueError);
  EXPECT_THROW(DynamicLossScaler({.init_scale = std::numeric_limits<double>::infinity()}),
               ValueError);
  EXPECT_THROW(DynamicLossScaler::static_scale(-1.0), ValueError);
}

// ---- the config block
// ------------------------------------------------------------------------------

TEST(DeepSpeedConfig, DefaultsApplyOnlyWhenADynamicKeyIsPresent) {
  // {"enabled": true}: the constructor defaults, 2^32 and hysteresis 1.
  DynamicLossScaler bare = make_zero_loss_scaler({.enabled = true});
  EXPECT_TRUE(bare.is_dynamic());
  EXPECT_EQ(bare.cur_scale(), 4294967296.0);
  EXPECT_EQ(bare.scale_window(), 1000);
  EXPECT_EQ(bare.delayed_shift(), 1);
  EXPECT_EQ(bare.min_scale(), 1.0);
  // loss_scale is not one of the keys that switch the config defaults on.
  DynamicLossScaler ls0 = make_zero_loss_scaler({.enabled = true, .loss_scale = 0.0});
  EXPECT_EQ(ls0.cur_scale(), 4294967296.0);
  EXPECT_EQ(ls0.delayed_shift(), 1);
  // Any one dynamic key brings every config default: 2^16, window 1000, hysteresis 2, min 1.
  DynamicLossScaler one = make_zero_loss_scaler({.enabled = true, .min_loss_scale = 1.0});
  EXPECT_EQ(one.cur_scale(), 65536.0);
  EXPECT_EQ(one.scale_window(), 1000);
  EXPECT_EQ(one.delayed_shift(), 2);
  EXPECT_FALSE(one.consecutive_hysteresis());
  // What Fabric/Lightning writes (every key).
  DynamicLossScaler full = make_zero_loss_scaler({.enabled = true,
                                                  .loss_scale = 0.0,
                                                  .initial_scale_power = 16,
                                                  .loss_scale_window = 1000,
                                                  .hysteresis = 2,
                                                  .min_loss_scale = 1.0});
  EXPECT_EQ(full.cur_scale(), 65536.0);
  EXPECT_EQ(full.delayed_shift(), 2);
  EXPECT_EQ(full.cur_hysteresis(), 2);
  DynamicLossScaler custom = make_zero_loss_scaler({.enabled = true,
                                                    .initial_scale_power = 8,
                                                    .loss_scale_window = 50,
                                                    .consecutive_hysteresis = true});
  EXPECT_EQ(custom.cur_scale(), 256.0);
  EXPECT_EQ(custom.scale_window(), 50);
  EXPECT_EQ(custom.delayed_shift(), 2);
  EXPECT_TRUE(custom.consecutive_hysteresis());
}

TEST(DeepSpeedConfig, StaticScales) {
  DynamicLossScaler st = make_zero_loss_scaler({.enabled = true, .loss_scale = 128.0});
  EXPECT_FALSE(st.is_dynamic());
  st.update_scale(true);
  st.update_scale(false);
  EXPECT_EQ(st.cur_scale(), 128.0);
  DynamicLossScaler bf16 = make_zero_loss_scaler({.enabled = false, .loss_scale = 128.0});
  EXPECT_FALSE(bf16.is_dynamic());
  EXPECT_EQ(bf16.cur_scale(), 1.0);
  EXPECT_THROW(make_zero_loss_scaler({.enabled = true, .loss_scale = -1.0}), ValueError);
  EXPECT_THROW(make_zero_loss_scaler({.enabled = true, .initial_scale_power = 5000}), ValueError);
}

TEST(DeepSpeedConfig, FusedOptimizerFactory) {
  FusedLossScaler bare = make_fused_loss_scaler({.enabled = true});
  EXPECT_TRUE(bare.is_dynamic());
  EXPECT_EQ(bare.cur_scale(), 65536.0);  // the engine's initial_dynamic_scale, 2^16 by default
  EXPECT_EQ(bare.scale_window(), 1000);
  FusedLossScaler keyed =
      make_fused_loss_scaler({.enabled = true, .initial_scale_power = 10, .loss_scale_window = 4});
  EXPECT_EQ(keyed.cur_scale(), 1024.0);
  EXPECT_EQ(keyed.scale_window(), 4);
  FusedLossScaler st = make_fused_loss_scaler({.enabled = true, .loss_scale = 64.0});
  EXPECT_FALSE(st.is_dynamic());
  EXPECT_EQ(st.cur_scale(), 64.0);
}

// ---- state, scaling and the overflow check
// ---------------------------------------------------------

TEST(DynamicLossScaler, StateDictRoundTripContinuesIdentically) {
  DynamicLossScaler a(example_options(false));
  const bool first[] = {1, 0, 0, 1, 1};
  for (bool o : first) a.update_scale(o);
  const PrecisionState sd = a.state_dict();
  for (const char* k :
       {"cur_scale", "cur_iter", "last_overflow_iter", "scale_factor", "scale_window", "min_scale",
        "delayed_shift", "cur_hysteresis", "consecutive_hysteresis"})
    EXPECT_EQ(sd.count(k), 1u) << k;
  EXPECT_EQ(std::get<double>(sd.at("cur_scale")), a.cur_scale());
  EXPECT_EQ(std::get<int64_t>(sd.at("cur_iter")), 5);
  EXPECT_EQ(std::get<int64_t>(sd.at("last_overflow_iter")), 4);

  DynamicLossScaler b;  // different settings, replaced by the load
  b.load_state_dict(sd);
  EXPECT_EQ(b.state_dict(), sd);
  const bool second[] = {0, 0, 0, 1, 0, 0, 0, 0};
  for (bool o : second) {
    a.update_scale(o);
    b.update_scale(o);
    EXPECT_EQ(a.state_dict(), b.state_dict());
  }

  PrecisionState bad = sd;
  bad.erase("cur_hysteresis");
  EXPECT_THROW(b.load_state_dict(bad), ValueError);
  bad = sd;
  bad["scale_window"] = std::string("1000");
  EXPECT_THROW(b.load_state_dict(bad), ValueError);
  EXPECT_EQ(b.state_dict(), a.state_dict());  // untouched by the failed loads
}

// DeepSpeed's scale has no upper cap: a scale grown to inf is a state the scaler reaches, and it
// loads back. NaN and non-positive scales are refused.
TEST(DynamicLossScaler, AScaleGrownToInfinityLoadsBack) {
  DynamicLossScaler a;
  PrecisionState sd = a.state_dict();
  sd["cur_scale"] = std::numeric_limits<double>::infinity();
  DynamicLossScaler b;
  b.load_state_dict(sd);
  EXPECT_EQ(b.cur_scale(), std::numeric_limits<double>::infinity());
  EXPECT_EQ(b.state_dict(), sd);
  for (double bad : {0.0, -2.0, std::nan("")}) {
    sd["cur_scale"] = bad;
    EXPECT_THROW(b.load_state_dict(sd), ValueError) << bad;
  }
}

TEST(DynamicLossScaler, ScaleLossAndCombinedUnscaleClip) {
  DynamicLossScaler s({.init_scale = 1024.0});
  Tensor loss = scalar_tensor(1.5, {.dtype = DType::bfloat16});
  Tensor scaled = s.scale_loss(loss);
  EXPECT_EQ(scaled.dtype(), DType::float32);
  EXPECT_EQ(scaled.item<float>(), 1536.0f);

  EXPECT_EQ(s.combined_scale(4096.0, 0.0), 1024.0);  // no clipping
  EXPECT_EQ(s.combined_scale(512.0, 1.0), 1024.0);   // true norm 0.5 < clip: factor clamped to 1
  const double c = ((4096.0 / 1024.0) + 1e-6) / 2.0;
  EXPECT_EQ(s.combined_scale(4096.0, 2.0), c * 1024.0);  // true norm 4, clip 2

  Tensor g = from_vector<float>({4096.0f, -1024.0f, 3.0f});
  s.unscale_and_clip_({g, Tensor()}, 4096.0, 2.0);
  const float inv = static_cast<float>(1.0 / (c * 1024.0));
  const std::vector<float> got = g.to_vector<float>();
  EXPECT_EQ(got[0], 4096.0f * inv);
  EXPECT_EQ(got[1], -1024.0f * inv);
  EXPECT_EQ(got[2], 3.0f * inv);
}

TEST(DynamicLossScaler, HasOverflow) {
  Tensor ok = from_vector<float>(std::vector<float>(100, 1.0f));
  Tensor big = from_vector<float>({3e38f, 3e38f});  // finite elements whose sum would overflow
  EXPECT_FALSE(has_overflow({ok, big, Tensor()}));
  std::vector<float> v(37, 0.5f);
  v.back() = kInf;
  EXPECT_TRUE(has_overflow({ok, from_vector<float>(v)}));
  v.back() = std::nanf("");
  EXPECT_TRUE(has_overflow({from_vector<float>(v).to(DType::float16)}));
  EXPECT_TRUE(
      has_overflow({from_vector<float>({70000.0f}).to(DType::float16)}));  // overflowed fp16 grad
  EXPECT_FALSE(has_overflow({}));
}

}  // namespace
}  // namespace fabric::precision
