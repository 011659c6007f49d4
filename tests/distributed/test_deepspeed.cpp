// DeepSpeedPrecision through Fabric: selection for strategy deepspeed, the DeepSpeed config block
// (stage, precision, clipping, the half dtype it gives ZeRO), and 2 ranks of ZeRO-2 16-mixed
// (float16 parameters, fp32 masters) where only rank 1's gradient partition overflows: the
// MAX-reduced flag makes both ranks skip.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "autograd/grad_mode.h"
#include "distributed/zero.h"
#include "optim/sgd.h"
#include "precision/deepspeed_precision.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"
#include "tests/distributed/dist_test_util.h"

namespace fabric {
namespace {

using dist_test::self_argv;
using namespace std::chrono_literals;
constexpr float kInf = std::numeric_limits<float>::infinity();

// Two parameters of 8 elements each: one flat buffer of 16 split in two partitions, so rank 0
// owns `a` and rank 1 owns `b`. forward(x) = sum(a * x[:8]) + sum(b * x[8:]), so the gradients are
// the two halves of the input.
class TwoSlices : public nn::Module {
 public:
  TwoSlices() {
    register_parameter("a", ones({8}));
    register_parameter("b", ones({8}));
  }
  Tensor forward(const Tensor& x) override {
    return add(sum(mul(get_parameter("a"), x.narrow(0, 0, 8))), sum(mul(get_parameter("b"), x.narrow(0, 8, 8))));
  }
};

Tensor input(float xa, float xb) { return cat({full({8}, xa), full({8}, xb)}, 0); }

std::vector<float> flat_values(const Tensor& t) {
  const Tensor c = t.detach().to(DType::float32).contiguous().flatten();
  std::vector<float> out;
  for (int64_t i = 0; i < c.numel(); ++i) out.push_back(c.select(0, i).item<float>());
  return out;
}

TEST(DeepSpeedFabric, StrategyDeepSpeedSelectsDeepSpeedPrecision) {
  Fabric f({.accelerator = "cpu", .strategy = "deepspeed", .precision = "16-mixed"});
  auto* p = dynamic_cast<precision::DeepSpeedPrecision*>(&f.precision());
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->loss_scaler().cur_scale(), 65536.0);  // Lightning's fp16 block: every key
  EXPECT_EQ(p->loss_scaler().delayed_shift(), 2);
  // Other strategies keep the GradScaler path.
  Fabric g({.accelerator = "cpu", .precision = "16-mixed"});
  EXPECT_EQ(dynamic_cast<precision::DeepSpeedPrecision*>(&g.precision()), nullptr);
}

// As the reference's DeepSpeedPrecision (its 5 modes; a ValueError otherwise), under every
// deepspeed* name: 64-true and the TransformerEngine modes are refused (64-true used to run as a
// DoublePrecision). The bitsandbytes modes stay (frozen quantized weights beside the sharded
// trainable ones: this runtime's QLoRA under ZeRO).
TEST(DeepSpeedFabric, PrecisionsOutsideDeepSpeedPrecisionsModesAreValueErrors) {
  for (const std::string strategy : {"deepspeed", "deepspeed_stage_1", "deepspeed_stage_2", "deepspeed_stage_2_offload",
                                     "deepspeed_stage_3", "deepspeed_stage_3_offload"}) {
    for (const std::string bad : {"64-true", "64", "transformer-engine", "transformer-engine-float16"}) {
      const std::string msg =
          thrown<ValueError>([&] { Fabric f({.accelerator = "cpu", .strategy = strategy, .precision = bad}); });
      EXPECT_CONTAINS(msg, "precision='" + (bad == "64" ? std::string("64-true") : bad) +
                               "' is not supported with strategy='" + strategy + "'");
      EXPECT_CONTAINS(msg, "DeepSpeedPrecision takes '32-true', '16-mixed', 'bf16-mixed', '16-true', 'bf16-true'");
    }
  }
  Fabric qlora({.accelerator = "cpu", .strategy = "deepspeed_stage_2", .precision = "nf4-dq"});
  EXPECT_EQ(qlora.precision_name(), "nf4-dq");
}

TEST(DeepSpeedFabric, ConfigSelectsStagePrecisionAndScaler) {
  Fabric f({.accelerator = "cpu",
            .strategy = "deepspeed_stage_2",
            .deepspeed_config = R"({"zero_optimization": {"stage": 1}, "fp16": {"enabled": true},
                                     "gradient_clipping": 2.0})"});
  EXPECT_EQ(f.precision_name(), "16-mixed");
  auto* p = dynamic_cast<precision::DeepSpeedPrecision*>(&f.precision());
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->loss_scaler().cur_scale(), 4294967296.0);  // the pitfall: no loss-scale key
  EXPECT_EQ(p->gradient_clipping(), 2.0);
  auto* z = dynamic_cast<distributed::ZeroStrategy*>(&f.strategy_object());
  ASSERT_NE(z, nullptr);
  EXPECT_EQ(z->stage(), 1);
  EXPECT_EQ(z->half_dtype(), DType::float16);  // half parameters, fp32 master partitions

  Fabric b({.accelerator = "cpu", .strategy = "deepspeed", .deepspeed_config = R"({"bf16": {"enabled": true}})"});
  EXPECT_EQ(b.precision_name(), "bf16-mixed");
  EXPECT_EQ(dynamic_cast<distributed::ZeroStrategy&>(b.strategy_object()).half_dtype(), DType::bfloat16);
  Fabric t({.accelerator = "cpu", .strategy = "deepspeed", .precision = "bf16-true"});
  EXPECT_EQ(dynamic_cast<distributed::ZeroStrategy&>(t.strategy_object()).half_dtype(), DType::bfloat16);
  Fabric full({.accelerator = "cpu", .strategy = "deepspeed", .precision = "32-true"});
  EXPECT_EQ(dynamic_cast<distributed::ZeroStrategy&>(full.strategy_object()).half_dtype(), DType::float32);
  EXPECT_CONTAINS(thrown<ValueError>([] {
                    Fabric({.accelerator = "cpu", .strategy = "deepspeed", .precision = "bf16-mixed",
                            .deepspeed_config = R"({"fp16": {"enabled": true}})"});
                  }),
                  "disagrees");
  // A block names a half type, which its true mode uses as well (Lightning writes the fp16 block for
  // "16-*"): 16-true with an fp16 block runs on that block's scaler.
  Fabric ft({.accelerator = "cpu", .strategy = "deepspeed", .precision = "16-true",
             .deepspeed_config = R"({"fp16": {"enabled": true, "initial_scale_power": 8, "hysteresis": 2}})"});
  EXPECT_EQ(dynamic_cast<precision::DeepSpeedPrecision&>(ft.precision()).loss_scaler().cur_scale(), 256.0);
  Fabric bt({.accelerator = "cpu", .strategy = "deepspeed", .precision = "bf16-true",
             .deepspeed_config = R"({"bf16": {"enabled": true}})"});
  EXPECT_EQ(bt.precision_name(), "bf16-true");
  EXPECT_CONTAINS(thrown<ValueError>([] {
                    Fabric({.accelerator = "cpu", .strategy = "deepspeed", .precision = "16-true",
                            .deepspeed_config = R"({"bf16": {"enabled": true}})"});
                  }),
                  "disagrees");
  EXPECT_CONTAINS(thrown<ValueError>([] {
                    Fabric({.accelerator = "cpu", .strategy = "ddp", .deepspeed_config = R"({"bf16": {"enabled": true}})"});
                  }),
                  "not a deepspeed strategy");
  EXPECT_CONTAINS(thrown<ValueError>([] {
                    Fabric({.accelerator = "cpu", .strategy = "deepspeed", .deepspeed_config = R"({"zero": 1})"});
                  }),
                  "'zero'");
}

// The values the optimizer steps (the fp32 masters), by parameter name.
std::vector<float> master_values(Fabric& f, nn::Module& m, const std::string& name) {
  return flat_values(f.strategy_object().module_state_to_save(m).at(name));
}

// Rank 1 alone sees an inf (in b, which only its partition holds). Both ranks must skip that
// step and back off alike; the clean step afterwards updates both partitions. The parameters are
// float16, so the scaled gradients must fit it: at 2^16 the gradient reaching the float16 product
// a * x would already be inf (as in DeepSpeed), hence a scale of 2^8 (Lightning's keys otherwise).
TEST(DeepSpeedFabric, OnlyRankOneOverflowsAndBothRanksSkip) {
  Fabric fab({.accelerator = "cpu",
              .strategy = "deepspeed_stage_2",
              .devices = 2,
              .precision = "16-mixed",
              .timeout = 30s,
              .deepspeed_config = R"({"fp16": {"enabled": true, "loss_scale": 0, "initial_scale_power": 8,
                                       "loss_scale_window": 1000, "hysteresis": 2, "min_loss_scale": 1}})",
              .launch_argv = self_argv()});
  fab.launch([&](Fabric& f) {
    auto model = std::make_shared<TwoSlices>();
    optim::SGD sgd(model->parameters(), {.lr = 1.0});
    auto [m, opt] = f.setup(model, sgd);
    auto* z = dynamic_cast<distributed::ZeroStrategy*>(&f.strategy_object());
    ASSERT_NE(z, nullptr);
    const auto layout = z->layout(sgd);
    ASSERT_EQ(layout.size(), 1u);
    ASSERT_EQ(layout[0].partition, 8);  // a is rank 0's, b rank 1's
    EXPECT_EQ(layout[0].dtype, DType::float16);
    EXPECT_EQ(model->get_parameter("a").dtype(), DType::float16);
    EXPECT_EQ(sgd.parameters().front().dtype(), DType::float32);
    auto& p = dynamic_cast<precision::DeepSpeedPrecision&>(f.precision());
    const float r = static_cast<float>(f.global_rank());

    // Step 0: rank 1's b-gradient is inf; rank 0's partition (a) is clean. Until the step the
    // master's gradient is the float16 reduced partition; the step makes it float32 before the
    // overflow check, which then drops it.
    f.backward(m(input(0.25f * (r + 1), f.global_rank() == 1 ? kInf : 0.5f)));
    const Tensor master = sgd.parameters().front();
    ASSERT_TRUE(master.grad().defined());
    EXPECT_EQ(master.grad().dtype(), DType::float16);
    EXPECT_FALSE(opt.step()) << "rank " << f.global_rank() << " stepped on an overflow";
    EXPECT_FALSE(master.grad().defined());
    opt.zero_grad();
    EXPECT_EQ(flat_values(model->get_parameter("a")), std::vector<float>(8, 1.f));
    EXPECT_EQ(flat_values(model->get_parameter("b")), std::vector<float>(8, 1.f));
    EXPECT_EQ(master_values(f, *model, "a"), std::vector<float>(8, 1.f));
    EXPECT_EQ(master_values(f, *model, "b"), std::vector<float>(8, 1.f));
    EXPECT_EQ(p.loss_scaler().cur_scale(), 256.0);  // absorbed by the hysteresis
    EXPECT_EQ(p.loss_scaler().cur_hysteresis(), 1);

    // Step 1: clean. Mean gradients: a 0.375, b 0.5.
    f.backward(m(input(0.25f * (r + 1), 0.5f)));
    EXPECT_TRUE(opt.step());
    opt.zero_grad();
    EXPECT_EQ(flat_values(model->get_parameter("a")), std::vector<float>(8, 0.625f));
    EXPECT_EQ(flat_values(model->get_parameter("b")), std::vector<float>(8, 0.5f));
    EXPECT_EQ(master_values(f, *model, "a"), std::vector<float>(8, 0.625f));
    EXPECT_EQ(master_values(f, *model, "b"), std::vector<float>(8, 0.5f));
    EXPECT_EQ(p.loss_scaler().cur_iter(), 2);
    EXPECT_EQ(p.loss_scaler().last_overflow_iter(), 0);
  });
}

// gradient_clipping from the config clips by the norm over both ranks' partitions.
TEST(DeepSpeedFabric, ConfigGradientClippingUsesTheGlobalNorm) {
  Fabric fab({.accelerator = "cpu",
              .strategy = "deepspeed",
              .devices = 2,
              .timeout = 30s,
              .deepspeed_config = R"({"zero_optimization": {"stage": 1},
                                       "fp16": {"enabled": true, "initial_scale_power": 4},
                                       "gradient_clipping": 0.5})",
              .launch_argv = self_argv()});
  fab.launch([&](Fabric& f) {
    EXPECT_EQ(f.precision_name(), "16-mixed");
    auto model = std::make_shared<TwoSlices>();
    optim::SGD sgd(model->parameters(), {.lr = 1.0});
    auto [m, opt] = f.setup(model, sgd);
    EXPECT_EQ(dynamic_cast<distributed::ZeroStrategy&>(f.strategy_object()).stage(), 1);
    f.backward(m(input(3.f, 4.f)));
    EXPECT_TRUE(opt.step());
    // |g| = sqrt(8 * 9 + 8 * 16) over both partitions (each alone would be sqrt(72) or sqrt(128)).
    // The fp32 masters hold the update; the float16 parameters, the masters rounded.
    const double c = 0.5 / (std::sqrt(200.0) + 1e-6);
    for (float v : master_values(f, *model, "a")) EXPECT_NEAR(v, 1.0 - 3.0 * c, 1e-6);
    for (float v : master_values(f, *model, "b")) EXPECT_NEAR(v, 1.0 - 4.0 * c, 1e-6);
    const float a16 = scalar_tensor(1.0 - 3.0 * c, {.dtype = DType::float32}).to(DType::float16).item<float>();
    const float b16 = scalar_tensor(1.0 - 4.0 * c, {.dtype = DType::float32}).to(DType::float16).item<float>();
    EXPECT_EQ(flat_values(model->get_parameter("a")), std::vector<float>(8, a16));
    EXPECT_EQ(flat_values(model->get_parameter("b")), std::vector<float>(8, b16));
  });
}

// One process keeps DeepSpeed's fp32 master too: ten SGD updates of 1e-3 to a bfloat16 1.0 are each
// below half a bf16 step (2^-9) and would round away in the parameter; the master holds
// 1 - 10 * 1e-3 and the parameter its bf16 rounding. Every stage (3: float32 shards beside the
// bf16 module); a checkpoint holds the master.
TEST(DeepSpeedFabric, OneProcessBf16TrueKeepsTheFp32Master) {
  for (const std::string strategy : {"deepspeed_stage_1", "deepspeed_stage_2", "deepspeed_stage_3"}) {
    SCOPED_TRACE(strategy);
    Fabric f({.accelerator = "cpu", .strategy = strategy, .devices = 1, .precision = "bf16-true"});
    auto model = std::make_shared<TwoSlices>();
    optim::SGD sgd(model->parameters(), {.lr = 1e-3});
    auto [m, opt] = f.setup(model, sgd);
    EXPECT_EQ(model->get_parameter("a").dtype(), DType::bfloat16);
    if (auto* zero = dynamic_cast<distributed::ZeroStrategy*>(&f.strategy_object())) {
      const auto layout = zero->layout(sgd);
      ASSERT_EQ(layout.size(), 1u);
      EXPECT_EQ(layout[0].partition, 16);
    }
    float expected = 1.f;
    for (int step = 0; step < 10; ++step) {
      f.backward(m(input(1.f, 2.f)));
      EXPECT_TRUE(opt.step());
      opt.zero_grad();
      expected -= 1e-3f;
    }
    const std::vector<float> a = master_values(f, *model, "a"), b = master_values(f, *model, "b");
    for (float v : a) EXPECT_NEAR(v, expected, 1e-6);
    for (float v : b) EXPECT_NEAR(v, 1.f - 20e-3f, 1e-6);
    const float a16 = scalar_tensor(a[0], {.dtype = DType::float32}).to(DType::bfloat16).item<float>();
    EXPECT_EQ(a16, 0.98828125f);
    if (strategy != "deepspeed_stage_3") {
      EXPECT_EQ(flat_values(model->get_parameter("a")), std::vector<float>(8, a16));
    } else {  // released outside forward: the forward sees the gathered bf16 values (8 a16 exact)
      NoGradGuard no_grad;
      EXPECT_EQ(m(input(1.f, 0.f)).to(DType::float32).item<float>(), 8 * a16);
    }
  }
}

// As Lightning's: under DeepSpeed, loss.backward() instead of fabric.backward is an error on one
// process too (the master would never see the gradients).
TEST(DeepSpeedFabric, OneProcessPlainBackwardIsAnError) {
  Fabric f({.accelerator = "cpu", .strategy = "deepspeed", .devices = 1, .precision = "bf16-true"});
  auto model = std::make_shared<TwoSlices>();
  optim::SGD sgd(model->parameters(), {.lr = 1e-3});
  auto [m, opt] = f.setup(model, sgd);
  Tensor loss = m(input(1.f, 2.f));
  EXPECT_CONTAINS(thrown<Error>([&] { loss.backward(); }), "fabric.backward(loss)");
}

}  // namespace
}  // namespace fabric
