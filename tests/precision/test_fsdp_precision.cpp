// FSDPPrecision on one process: the mode -> param/reduce/buffer dtype mapping (fabric-api.md §3),
// what each mode casts (module, inputs, outputs, init and forward contexts), equality with the
// plugins it delegates to, the sharded scaler of 16-mixed (a user's scaler accepted, unlike the
// reference's #19803), and the errors.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "nn/linear.h"
#include "optim/sgd.h"
#include "precision/fsdp_precision.h"
#include "precision/mixed_precision.h"
#include "precision/true_precision.h"
#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/expect_error.h"

namespace fabric::precision {
namespace {

struct ModeCase {
  const char* mode;
  DType dtype;
  bool mixed;
};
const ModeCase kModes[] = {{"32-true", DType::float32, false},
                           {"16-true", DType::float16, false},
                           {"bf16-true", DType::bfloat16, false},
                           {"16-mixed", DType::float16, true},
                           {"bf16-mixed", DType::bfloat16, true}};

std::shared_ptr<nn::Linear> linear(uint64_t seed) {
  manual_seed(seed);
  return std::make_shared<nn::Linear>(nn::LinearOptions{.in_features = 4, .out_features = 3});
}

TEST(FSDPPrecision, ModesMapToParamReduceAndBufferDtypes) {
  ASSERT_EQ(FSDPPrecision::modes().size(), 5u);
  for (const ModeCase& c : kModes) {
    FSDPPrecision p(c.mode, DeviceType::cpu);
    EXPECT_EQ(p.name(), c.mode);
    EXPECT_EQ(p.dtype(), c.dtype) << c.mode;
    EXPECT_EQ(p.is_mixed(), c.mixed) << c.mode;
    const FSDPMixedPrecisionConfig mp = p.mixed_precision_config();
    EXPECT_EQ(mp.param_dtype, c.dtype) << c.mode;
    EXPECT_EQ(mp.reduce_dtype, c.dtype) << c.mode;
    EXPECT_EQ(mp.buffer_dtype, c.dtype) << c.mode;
    // Only 16-mixed scales the loss, with the sharded scaler (fp16 gradients unscaled in place).
    EXPECT_EQ(p.scaler() != nullptr, std::string(c.mode) == "16-mixed") << c.mode;
    if (p.scaler()) {
      EXPECT_TRUE(p.scaler()->allow_fp16_grads());
      EXPECT_EQ(p.scaler()->get_scale(), 65536.0);
      EXPECT_TRUE(p.requires_fabric_backward());
    }
  }
}

TEST(FSDPPrecision, TrueModesCastTheModuleMixedModesKeepFloat32) {
  for (const ModeCase& c : kModes) {
    FSDPPrecision p(c.mode, DeviceType::cpu);
    auto m = linear(1);
    p.convert_module(*m);
    const DType want = c.mixed ? DType::float32 : c.dtype;
    for (const Tensor& q : m->parameters()) EXPECT_EQ(q.dtype(), want) << c.mode;
  }
}

TEST(FSDPPrecision, InputsGoToTheModeDtypeOutputsToFloat32) {
  const Tensor x64 = full({2, 4}, 0.1, {.dtype = DType::float64});
  const Tensor ids = from_vector<int64_t>({1, 2, 3}, {3});
  for (const ModeCase& c : kModes) {
    FSDPPrecision p(c.mode, DeviceType::cpu);
    // 32-true casts too (float64 -> float32), as the reference's _desired_input_dtype.
    EXPECT_EQ(p.convert_input(x64).dtype(), c.dtype) << c.mode;
    EXPECT_TRUE(p.convert_input(ids).is_same(ids)) << c.mode << ": integer tensors pass untouched";
    EXPECT_EQ(p.convert_output(x64.to(c.dtype)).dtype(), DType::float32) << c.mode;
  }
}

TEST(FSDPPrecision, ForwardAndInitContexts) {
  for (const ModeCase& c : kModes) {
    FSDPPrecision p(c.mode, DeviceType::cpu);
    {
      ContextGuard g = p.forward_context();
      EXPECT_EQ(autocast_enabled(DeviceType::cpu), c.mixed) << c.mode;
      if (c.mixed) EXPECT_EQ(autocast_state(DeviceType::cpu).dtype, c.dtype) << c.mode;
      // True modes: a dtype context instead (factories create the half dtype).
      EXPECT_EQ(zeros({2}).dtype(), c.mixed ? DType::float32 : c.dtype) << c.mode;
    }
    EXPECT_FALSE(autocast_enabled(DeviceType::cpu));
    EXPECT_EQ(zeros({2}).dtype(), DType::float32);
    // Init: float32 for mixed modes (the shards are the float32 master weights), half for true.
    {
      ContextGuard g = p.module_init_context();
      EXPECT_EQ(zeros({2}).dtype(), c.mixed ? DType::float32 : c.dtype) << c.mode;
    }
    {
      ContextGuard g = p.tensor_init_context();
      EXPECT_EQ(zeros({2}).dtype(), c.mixed ? DType::float32 : c.dtype) << c.mode;
    }
    EXPECT_EQ(zeros({2}).dtype(), DType::float32);
  }
}

// The mixed modes give exactly what MixedPrecision gives (forward under autocast, scaled backward,
// scaler step), the true modes what HalfPrecision gives.
TEST(FSDPPrecision, MatchesThePluginsItDelegatesTo) {
  Generator g(3);
  const Tensor x = randn({5, 4}, {}, &g);
  for (const ModeCase& c : kModes) {
    std::shared_ptr<Precision> ref;
    if (c.mixed)
      ref = std::make_shared<MixedPrecision>(c.mode, DeviceType::cpu);
    else if (c.dtype != DType::float32)
      ref = std::make_shared<HalfPrecision>(c.mode);
    else
      ref = std::make_shared<Precision>();
    FSDPPrecision p(c.mode, DeviceType::cpu);
    std::vector<std::vector<float>> got[2];
    Precision* plugins[2] = {&p, ref.get()};
    for (int k = 0; k < 2; ++k) {
      auto m = linear(9);
      Precision& pl = *plugins[k];
      pl.convert_module(*m);
      optim::SGD opt(m->parameters(), {.lr = 0.1});
      for (int step = 0; step < 3; ++step) {
        opt.zero_grad();
        Tensor out;
        {
          ContextGuard guard = pl.forward_context();
          out = m->forward(pl.convert_input(x));
        }
        out = pl.convert_output(out);
        pl.backward(mean(mul(out, out)), m.get());
        pl.optimizer_step(opt, m.get());
      }
      for (const Tensor& q : m->parameters())
        got[k].push_back(q.to(DType::float32).flatten().to_vector<float>());
    }
    EXPECT_EQ(got[0], got[1]) << c.mode;
  }
}

TEST(FSDPPrecision, UserScalerIsAcceptedAndUsed) {
  auto scaler =
      std::make_shared<GradScaler>(GradScalerOptions{.init_scale = 8.0, .growth_interval = 1});
  FSDPPrecision p("16-mixed", DeviceType::cpu, scaler);
  ASSERT_EQ(p.scaler(), scaler.get());
  Tensor w = from_vector<float>({1.f, 2.f}, {2});
  w.set_requires_grad(true);
  optim::SGD opt({w}, {.lr = 0.5});
  // loss = sum(w * x): backward runs on loss * 8.
  p.backward(sum(mul(w, from_vector<float>({0.25f, -1.f}, {2}))), nullptr);
  EXPECT_EQ(w.grad().to_vector<float>(), (std::vector<float>{2.f, -8.f}));
  EXPECT_TRUE(p.optimizer_step(opt, nullptr));
  EXPECT_EQ(w.detach().to_vector<float>(), (std::vector<float>{0.875f, 2.5f}));
  EXPECT_EQ(scaler->get_scale(), 16.0) << "growth_interval 1: the user's options apply";
  // An overflow skips the step and backs off; the state round-trips through the plugin.
  opt.zero_grad();
  p.backward(sum(mul(w, from_vector<float>({std::numeric_limits<float>::infinity(), 1.f}, {2}))),
             nullptr);
  EXPECT_FALSE(p.optimizer_step(opt, nullptr));
  EXPECT_EQ(w.detach().to_vector<float>(), (std::vector<float>{0.875f, 2.5f}));
  EXPECT_EQ(scaler->get_scale(), 8.0);
  const PrecisionState s = p.state_dict();
  FSDPPrecision q("16-mixed", DeviceType::cpu);
  EXPECT_EQ(q.scaler()->get_scale(), 65536.0);
  q.load_state_dict(s);
  EXPECT_EQ(q.scaler()->get_scale(), 8.0);
  EXPECT_EQ(q.scaler()->growth_interval(), 1);
}

TEST(FSDPPrecision, UnscaleGradientsBringsGradientsToTrueScale) {
  FSDPPrecision p("16-mixed", DeviceType::cpu,
                  std::make_shared<GradScaler>(GradScalerOptions{.init_scale = 4.0}));
  Tensor w = from_vector<float>({1.f, 2.f}, {2});
  w.set_requires_grad(true);
  optim::SGD opt({w}, {.lr = 1.0});
  p.backward(sum(mul(w, from_vector<float>({3.f, 5.f}, {2}))), nullptr);
  EXPECT_EQ(w.grad().to_vector<float>(), (std::vector<float>{12.f, 20.f}));
  p.unscale_gradients(opt);
  EXPECT_EQ(w.grad().to_vector<float>(), (std::vector<float>{3.f, 5.f}));
  EXPECT_TRUE(p.optimizer_step(opt, nullptr));
  EXPECT_EQ(w.detach().to_vector<float>(), (std::vector<float>{-2.f, -3.f}));
}

TEST(FSDPPrecision, Errors) {
  for (const char* bad : {"64-true", "transformer-engine", "nf4", "16", "", "32"}) {
    const std::string msg = thrown<ValueError>([&] { FSDPPrecision p(bad, DeviceType::cpu); });
    EXPECT_CONTAINS(msg, std::string("'") + bad + "'");
    for (const ModeCase& c : kModes) EXPECT_CONTAINS(msg, std::string("'") + c.mode + "'");
  }
  for (const char* mode : {"bf16-mixed", "32-true", "16-true", "bf16-true"}) {
    const std::string msg = thrown<ValueError>(
        [&] { FSDPPrecision p(mode, DeviceType::cpu, std::make_shared<GradScaler>()); });
    EXPECT_CONTAINS(msg, "does not use a scaler");
    EXPECT_CONTAINS(msg, mode);
  }
}

}  // namespace
}  // namespace fabric::precision
