// DeepSpeedPrecision on one process (spec §5): the step flow with a forced overflow (Example A's
// first steps), clipping fused into unscaling vs unscale-then-clip_grad_norm, state_dict, and the
// DeepSpeed config block (JSON, YAML, unknown keys, the fp16-block defaults pitfall).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "autograd/grad_mode.h"
#include "optim/clip_grad.h"
#include "optim/sgd.h"
#include "precision/deepspeed_precision.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"

namespace fabric::precision {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

Tensor param(const std::vector<float>& v) {
  Tensor p = from_vector<float>(v, {int64_t(v.size())});
  p.set_requires_grad(true);
  return p;
}

// loss = sum(w * x): the gradient of w is x (times the loss scale).
Tensor loss_of(const Tensor& w, const std::vector<float>& x) {
  return sum(mul(w, from_vector<float>(x, {int64_t(x.size())})));
}

std::vector<float> values(const Tensor& t) {
  const Tensor c = t.detach().contiguous();
  std::vector<float> out(size_t(c.numel()));
  for (int64_t i = 0; i < c.numel(); ++i) out[size_t(i)] = c.flatten().select(0, i).item<float>();
  return out;
}

TEST(DeepSpeedPrecision, StepFlowSkipsOverflowsAndBacksOffWithHysteresis) {
  // Example A's settings: 2^16, window 2, hysteresis 2; overflows [1, 1, 0, 0, 0, 0].
  DeepSpeedFp16Config b = lightning_fp16_block(0, 16, 2, 2, 1);
  DeepSpeedPrecision p("16-mixed", DeviceType::cpu, b);
  EXPECT_TRUE(p.requires_fabric_backward());
  Tensor w = param({1.f, 2.f});
  optim::SGD opt({w}, {.lr = 0.5});
  const bool overflow[] = {1, 1, 0, 0, 0, 0};
  const double scale[] = {65536, 32768, 32768, 65536, 65536, 131072};
  const int64_t hyst[] = {1, 1, 1, 2, 2, 2};
  std::vector<float> expect = {1.f, 2.f};
  for (int i = 0; i < 6; ++i) {
    const double used_scale = p.loss_scaler().cur_scale();
    p.backward(loss_of(w, overflow[i] ? std::vector<float>{kInf, 1.f} : std::vector<float>{0.25f, -1.f}), nullptr);
    // backward ran on the scaled loss.
    if (!overflow[i]) EXPECT_FLOAT_EQ(values(w.grad())[0], float(0.25 * used_scale));
    const bool stepped = p.optimizer_step(opt, nullptr);
    EXPECT_EQ(stepped, !overflow[i]) << "step " << i;
    if (overflow[i]) {
      EXPECT_FALSE(w.grad().defined() && values(w.grad())[0] != 0.f) << "grads are zeroed on overflow";
    } else {
      expect[0] -= 0.5f * 0.25f;
      expect[1] -= 0.5f * -1.f;
      opt.zero_grad();
    }
    EXPECT_EQ(values(w), expect) << "step " << i;
    EXPECT_EQ(p.loss_scaler().cur_scale(), scale[i]) << "step " << i;
    EXPECT_EQ(p.loss_scaler().cur_hysteresis(), hyst[i]) << "step " << i;
  }
  // The portable fields (spec §5).
  const PrecisionState s = p.state_dict();
  for (const char* k : {"cur_scale", "cur_iter", "last_overflow_iter", "scale_factor", "scale_window", "min_scale",
                        "delayed_shift", "cur_hysteresis", "consecutive_hysteresis"})
    EXPECT_TRUE(s.count(k)) << k;
  EXPECT_EQ(std::get<int64_t>(s.at("cur_iter")), 6);
  EXPECT_EQ(std::get<int64_t>(s.at("last_overflow_iter")), 1);
  DeepSpeedPrecision q("16-mixed", DeviceType::cpu);
  q.load_state_dict(s);
  EXPECT_EQ(q.loss_scaler().cur_scale(), 131072);
  EXPECT_EQ(q.loss_scaler().scale_window(), 2);
}

// Fused: one factor max(1, (|g_scaled| / S + 1e-6) / clip) * S. Reference: g / S, then
// clip_grad_norm_(clip) — the same update within 1e-6.
void expect_fused_clip_matches(bool unscale_first) {
  const std::vector<float> x = {3.f, -4.f, 12.f};  // norm 13, clipped to 0.5
  Tensor wa = param({0.1f, 0.2f, 0.3f}), wb = param({0.1f, 0.2f, 0.3f});
  DeepSpeedPrecision p("16-mixed", DeviceType::cpu, std::nullopt, /*gradient_clipping=*/0.5);
  optim::SGD oa({wa}, {.lr = 1.0}), ob({wb}, {.lr = 1.0});
  p.backward(loss_of(wa, x), nullptr);
  if (unscale_first) p.unscale_gradients(oa);
  ASSERT_TRUE(p.optimizer_step(oa, nullptr));
  loss_of(wb, x).backward();
  const double n = optim::clip_grad_norm_({wb}, 0.5).item<double>();
  EXPECT_NEAR(n, 13.0, 1e-5);
  ob.step();
  const auto a = values(wa), bv = values(wb);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], bv[i], 1e-6) << i;
  // The clip really acted: the step is 0.5 / 13 of the raw gradient.
  EXPECT_NEAR(0.1f - a[0], 3.0 * 0.5 / 13.0, 1e-6);
}

TEST(DeepSpeedPrecision, ClippingFusedIntoUnscaleEqualsUnscaleThenClipGradNorm) { expect_fused_clip_matches(false); }
TEST(DeepSpeedPrecision, UnscaleGradientsThenStepOnlyClips) { expect_fused_clip_matches(true); }

// 16-true runs on DeepSpeed's loss scaler as 16-mixed does (Lightning adds the fp16 block for
// "16-*"): the loss is scaled, an overflow skips the step and backs the scale off.
TEST(DeepSpeedPrecision, Fp16TrueScalesTheLossAndSkipsOverflows) {
  DeepSpeedPrecision p("16-true", DeviceType::cpu, lightning_fp16_block(0, 4, 2, 1, 1));
  EXPECT_TRUE(p.loss_scaler().is_dynamic());
  EXPECT_EQ(p.loss_scaler().cur_scale(), 16.0);
  Tensor w = param({1.f});
  optim::SGD opt({w}, {.lr = 1.0});
  p.backward(loss_of(w, {kInf}), nullptr);
  EXPECT_FALSE(p.optimizer_step(opt, nullptr)) << "an overflow skips the step";
  EXPECT_EQ(values(w)[0], 1.f);
  EXPECT_EQ(p.loss_scaler().cur_scale(), 8.0);
  p.backward(loss_of(w, {0.5f}), nullptr);
  EXPECT_EQ(values(w.grad())[0], 4.f) << "the gradient of the scaled loss";
  EXPECT_TRUE(p.optimizer_step(opt, nullptr));
  EXPECT_EQ(values(w)[0], 0.5f) << "unscaled before the step";
}

TEST(DeepSpeedPrecision, Bf16AndFp32UseAStaticScaleOfOne) {
  for (const char* mode : {"bf16-mixed", "32-true"}) {
    DeepSpeedPrecision p(mode, DeviceType::cpu);
    EXPECT_FALSE(p.loss_scaler().is_dynamic()) << mode;
    EXPECT_EQ(p.loss_scaler().cur_scale(), 1.0);
    EXPECT_TRUE(p.state_dict().empty());
    Tensor w = param({1.f});
    optim::SGD opt({w}, {.lr = 1.0});
    p.backward(loss_of(w, {2.f}), nullptr);
    EXPECT_EQ(values(w.grad())[0], 2.f);  // not scaled
    EXPECT_TRUE(p.optimizer_step(opt, nullptr));
    EXPECT_EQ(values(w)[0], -1.f);
  }
  EXPECT_EQ(DeepSpeedPrecision("bf16-mixed", DeviceType::cpu).convert_input(ones({2})).dtype(), DType::bfloat16);
  EXPECT_EQ(DeepSpeedPrecision("16-true", DeviceType::cpu).convert_input(ones({2})).dtype(), DType::float16);
  EXPECT_CONTAINS(thrown<ValueError>([] { DeepSpeedPrecision("64-true", DeviceType::cpu); }), "'64-true'");
}

TEST(DeepSpeedConfigBlock, ParsesJsonAndYamlWithDeepSpeedKeyNames) {
  const DeepSpeedConfig j = DeepSpeedConfig::from_json_text(R"({
    "zero_optimization": {"stage": 1},
    "fp16": {"enabled": true, "loss_scale": 0, "initial_scale_power": 8, "loss_scale_window": 50,
             "hysteresis": 3, "min_loss_scale": 0.5},
    "gradient_clipping": 1.5, "train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 2})");
  const DeepSpeedConfig y = DeepSpeedConfig::from_yaml_text(R"(
zero_optimization:
  stage: 1
fp16:
  enabled: true
  loss_scale: 0
  initial_scale_power: 8
  loss_scale_window: 50
  hysteresis: 3
  min_loss_scale: 0.5
gradient_clipping: 1.5
train_micro_batch_size_per_gpu: 4
gradient_accumulation_steps: 2
)");
  for (const DeepSpeedConfig* c : {&j, &y}) {
    EXPECT_EQ(c->stage, 1);
    ASSERT_TRUE(c->fp16);
    EXPECT_TRUE(c->fp16->enabled);
    EXPECT_EQ(c->fp16->initial_scale_power, 8);
    EXPECT_EQ(c->fp16->loss_scale_window, 50);
    EXPECT_EQ(c->fp16->hysteresis, 3);
    EXPECT_EQ(c->fp16->min_loss_scale, 0.5);
    EXPECT_EQ(c->gradient_clipping, 1.5);
    EXPECT_EQ(c->train_micro_batch_size_per_gpu, 4);
    EXPECT_EQ(c->gradient_accumulation_steps, 2);
    EXPECT_EQ(c->precision(), "16-mixed");
    DeepSpeedPrecision p("16-mixed", DeviceType::cpu, c->fp16, c->gradient_clipping);
    EXPECT_EQ(p.loss_scaler().cur_scale(), 256.0);
    EXPECT_EQ(p.loss_scaler().delayed_shift(), 3);
    EXPECT_EQ(p.loss_scaler().min_scale(), 0.5);
  }
  EXPECT_EQ(DeepSpeedConfig::from_json_text(R"({"bf16": {"enabled": true}})").precision(), "bf16-mixed");
  EXPECT_EQ(DeepSpeedConfig::from_json_text(R"({"fp16": {"enabled": false}})").precision(), std::nullopt);
  // A path to a .json file.
  const auto path = std::filesystem::temp_directory_path() / ("ds_config_" + std::to_string(::getpid()) + ".json");
  std::ofstream(path) << R"({"zero_optimization": {"stage": 2}})";
  EXPECT_EQ(DeepSpeedConfig::from_json_or_path(path.string()).stage, 2);
  std::filesystem::remove(path);
  EXPECT_CONTAINS(thrown<IOError>([&] { DeepSpeedConfig::from_json_or_path(path.string()); }), path.string());
}

TEST(DeepSpeedConfigBlock, UnknownKeysAndBadValuesAreValueErrorsNamingThem) {
  // DeepSpeed's documented keys are accepted (test_deepspeed_config_keys.cpp); others are not.
  EXPECT_CONTAINS(
      thrown<ValueError>([] { DeepSpeedConfig::from_json_text(R"({"optimiser": {}})"); }),
      "'optimiser'");
  EXPECT_CONTAINS(
      thrown<ValueError>([] {
        DeepSpeedConfig::from_json_text(R"({"fp16": {"enabled": true, "autocast": true}})");
      }),
      "'fp16.autocast'");
  EXPECT_CONTAINS(thrown<ValueError>([] {
                    DeepSpeedConfig::from_yaml_text(
                        "zero_optimization:\n  stage: 2\n  offload_optimizer: {dev: cpu}\n");
                  }),
                  "'zero_optimization.offload_optimizer.dev'");
  EXPECT_CONTAINS(thrown<ValueError>([] { DeepSpeedConfig::from_json_text(R"({"fp16": {"hysteresis": "two"}})"); }),
                  "fp16.hysteresis");
  EXPECT_CONTAINS(thrown<ValueError>([] { DeepSpeedConfig::from_json_text(R"({"fp16": {"enabled": true}, "bf16": {"enabled": true}})"); }),
                  "both enabled");
  EXPECT_CONTAINS(thrown<ValueError>([] { DeepSpeedConfig::from_json_text("{not json"); }), "JSON");
}

TEST(DeepSpeedConfigBlock, LossScaleDefaultsApplyOnlyWhenALossScaleKeyIsPresent) {
  // Just {"enabled": true}: the scaler's constructor defaults (2^32, hysteresis 1).
  const DeepSpeedConfig bare = DeepSpeedConfig::from_json_text(R"({"fp16": {"enabled": true}})");
  DeepSpeedPrecision p1("16-mixed", DeviceType::cpu, bare.fp16);
  EXPECT_EQ(p1.loss_scaler().cur_scale(), 4294967296.0);
  EXPECT_EQ(p1.loss_scaler().delayed_shift(), 1);
  // One key present: the config defaults for the rest (2^16, window 1000, hysteresis 2, min 1).
  const DeepSpeedConfig one = DeepSpeedConfig::from_json_text(R"({"fp16": {"enabled": true, "loss_scale_window": 500}})");
  DeepSpeedPrecision p2("16-mixed", DeviceType::cpu, one.fp16);
  EXPECT_EQ(p2.loss_scaler().cur_scale(), 65536.0);
  EXPECT_EQ(p2.loss_scaler().delayed_shift(), 2);
  EXPECT_EQ(p2.loss_scaler().scale_window(), 500);
  // No block (Lightning writes every key): 2^16, window 1000, hysteresis 2, min 1.
  DeepSpeedPrecision p3("16-mixed", DeviceType::cpu);
  EXPECT_EQ(p3.loss_scaler().cur_scale(), 65536.0);
  EXPECT_EQ(p3.loss_scaler().scale_window(), 1000);
  EXPECT_EQ(p3.loss_scaler().delayed_shift(), 2);
  EXPECT_EQ(p3.loss_scaler().min_scale(), 1.0);
  // loss_scale > 0: static.
  const DeepSpeedConfig fixed = DeepSpeedConfig::from_json_text(R"({"fp16": {"enabled": true, "loss_scale": 128}})");
  DeepSpeedPrecision p4("16-mixed", DeviceType::cpu, fixed.fp16);
  EXPECT_FALSE(p4.loss_scaler().is_dynamic());
  EXPECT_EQ(p4.loss_scaler().cur_scale(), 128.0);
}

}  // namespace
}  // namespace fabric::precision
