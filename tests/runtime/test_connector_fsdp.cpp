// The connector's precision section under strategy fsdp (fabric-api.md §1, §4): the 5 modes build
// an FSDPPrecision, other precisions are refused (ValueError) before any plugin is built, and a
// plugin that is not an FSDPPrecision is the reference's TypeError (DTypeError here). Plus the
// dtypes Fabric hands FSDPStrategy (and ZeRO-3) from the plugin, on one process.
#include <gtest/gtest.h>

#include "distributed/fsdp_strategy.h"
#include "nn/linear.h"
#include "optim/sgd.h"
#include "precision/deepspeed_precision.h"
#include "precision/fsdp_precision.h"
#include "precision/mixed_precision.h"
#include "precision/registry.h"
#include "runtime/connector.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

const char* const kModes[] = {"32-true", "16-true", "bf16-true", "16-mixed", "bf16-mixed"};

TEST(FSDPConnector, TheFiveModesBuildAnFSDPPrecision) {
  for (const char* strategy : {"fsdp", "fsdp_cpu_offload"}) {
    for (const char* mode : kModes) {
      const Resolved r =
          resolve_connector({.accelerator = "cpu", .strategy = strategy, .precision = mode});
      EXPECT_EQ(r.strategy, "fsdp");
      EXPECT_EQ(r.precision, mode);
      auto* p = dynamic_cast<precision::FSDPPrecision*>(r.plugin.get());
      ASSERT_NE(p, nullptr) << strategy << " " << mode;
      EXPECT_EQ(p->name(), mode);
    }
  }
  // None is 32-true; the legacy alias 'bf16' is bf16-mixed, with the reference's warning.
  const Resolved none = resolve_connector({.accelerator = "cpu", .strategy = "fsdp"});
  ASSERT_NE(dynamic_cast<precision::FSDPPrecision*>(none.plugin.get()), nullptr);
  EXPECT_EQ(none.precision, "32-true");
  const Resolved alias =
      resolve_connector({.accelerator = "cpu", .strategy = "fsdp", .precision = "bf16"});
  EXPECT_EQ(alias.plugin->name(), "bf16-mixed");
  EXPECT_EQ(alias.warnings.size(), 1u);
  // Other strategies are unchanged: MixedPrecision for ddp, DeepSpeedPrecision for deepspeed.
  const Resolved ddp =
      resolve_connector({.accelerator = "cpu", .strategy = "ddp", .precision = "bf16-mixed"});
  EXPECT_EQ(dynamic_cast<precision::FSDPPrecision*>(ddp.plugin.get()), nullptr);
  EXPECT_NE(dynamic_cast<precision::MixedPrecision*>(ddp.plugin.get()), nullptr);
  const Resolved ds = resolve_connector(
      {.accelerator = "cpu", .strategy = "deepspeed_stage_3", .precision = "bf16-mixed"});
  EXPECT_NE(dynamic_cast<precision::DeepSpeedPrecision*>(ds.plugin.get()), nullptr);
}

TEST(FSDPConnector, OtherPrecisionsAreValueErrors) {
  for (const char* bad : {"64-true", "64", "transformer-engine", "transformer-engine-float16",
                          "nf4", "int8-training"}) {
    const std::string msg = thrown<ValueError>(
        [&] { resolve_connector({.accelerator = "cpu", .strategy = "fsdp", .precision = bad}); });
    EXPECT_CONTAINS(msg, "strategy='fsdp'");
    for (const char* mode : kModes) EXPECT_CONTAINS(msg, std::string("'") + mode + "'");
  }
}

TEST(FSDPConnector, PluginsMustBeFSDPPrecision) {
  auto fsdp = std::make_shared<precision::FSDPPrecision>("bf16-mixed", DeviceType::cpu);
  const Resolved ok =
      resolve_connector({.accelerator = "cpu", .strategy = "fsdp", .precision_plugin = fsdp});
  EXPECT_EQ(ok.plugin, fsdp);
  EXPECT_EQ(ok.precision, "bf16-mixed");

  auto mixed = std::make_shared<precision::MixedPrecision>("bf16-mixed", DeviceType::cpu);
  const std::string msg = thrown<DTypeError>([&] {
    resolve_connector({.accelerator = "cpu", .strategy = "fsdp", .precision_plugin = mixed});
  });
  EXPECT_CONTAINS(msg, "FSDPPrecision");
  EXPECT_CONTAINS(msg, "bf16-mixed");
  // The same plugin is fine with ddp; an FSDPPrecision with ddp too (gradients are all-reduced).
  EXPECT_NO_THROW(
      resolve_connector({.accelerator = "cpu", .strategy = "ddp", .precision_plugin = mixed}));
  EXPECT_NO_THROW(
      resolve_connector({.accelerator = "cpu", .strategy = "ddp", .precision_plugin = fsdp}));
  EXPECT_THROW(Fabric({.accelerator = "cpu", .strategy = "fsdp", .plugins = {mixed}}), DTypeError);

  // A registered name must build an FSDPPrecision (a subclass will do).
  struct Custom : precision::FSDPPrecision {
    Custom() : FSDPPrecision("bf16-true") {}
    std::string name() const override { return "my-fsdp"; }
  };
  precision::register_precision("my-fsdp", [](DeviceType) { return std::make_shared<Custom>(); });
  precision::register_precision(
      "my-plain", [](DeviceType) { return std::make_shared<precision::Precision>(); });
  const Resolved custom =
      resolve_connector({.accelerator = "cpu", .strategy = "fsdp", .precision = "my-fsdp"});
  EXPECT_EQ(custom.plugin->name(), "my-fsdp");
  EXPECT_CONTAINS(
      thrown<DTypeError>([] {
        resolve_connector({.accelerator = "cpu", .strategy = "fsdp", .precision = "my-plain"});
      }),
      "my-plain");
  EXPECT_TRUE(precision::unregister_precision("my-fsdp"));
  EXPECT_TRUE(precision::unregister_precision("my-plain"));
}

// Fabric gives FSDPStrategy the plugin's mixed_precision_config; ZeRO-3's DeepSpeedPrecision keeps
// the half dtype of its mixed modes. One process: the module is one unit that is gathered in
// param_dtype while the shard (the optimizer's parameter) stays float32.
TEST(FSDPConnector, FabricPassesThePluginDtypesToTheStrategy) {
  for (const char* mode : kModes) {
    Fabric fab({.accelerator = "cpu", .strategy = "fsdp", .devices = 1, .precision = mode});
    const auto& o = fab.strategy_object().options().fsdp;
    const DType want = dynamic_cast<precision::FSDPPrecision&>(fab.precision()).dtype();
    ASSERT_TRUE(o.param_dtype && o.reduce_dtype && o.buffer_dtype) << mode;
    EXPECT_EQ(*o.param_dtype, want) << mode;
    EXPECT_EQ(*o.reduce_dtype, want) << mode;
    EXPECT_EQ(*o.buffer_dtype, want) << mode;
  }
  for (const auto& [mode, half] : std::vector<std::pair<std::string, DType>>{
           {"16-mixed", DType::float16}, {"bf16-mixed", DType::bfloat16}}) {
    Fabric fab(
        {.accelerator = "cpu", .strategy = "deepspeed_stage_3", .devices = 1, .precision = mode});
    const auto& o = fab.strategy_object().options().fsdp;
    ASSERT_TRUE(o.param_dtype && o.reduce_dtype) << mode;
    EXPECT_EQ(*o.param_dtype, half) << mode;
    EXPECT_EQ(*o.reduce_dtype, half) << mode;
  }
  Fabric zero3_fp32({.accelerator = "cpu", .strategy = "deepspeed_stage_3", .devices = 1});
  EXPECT_FALSE(zero3_fp32.strategy_object().options().fsdp.param_dtype.has_value());

  Fabric fab({.accelerator = "cpu", .strategy = "fsdp", .devices = 1, .precision = "bf16-mixed"});
  auto lin = nn::make<nn::Linear>({.in_features = 4, .out_features = 2});
  optim::SGD sgd(lin->parameters(), {.lr = 0.1});
  auto [model, opt] = fab.setup(lin, sgd);
  for (const Tensor& q : sgd.parameters())
    EXPECT_EQ(q.dtype(), DType::float32) << "float32 master shards";
  const Tensor out = model(ones({3, 4}));
  EXPECT_EQ(out.dtype(), DType::float32);  // convert_output
  fab.backward(sum(out));
  for (const Tensor& q : sgd.parameters()) {
    ASSERT_TRUE(q.grad().defined());
    EXPECT_EQ(q.grad().dtype(), DType::float32);
  }
  EXPECT_TRUE(opt.step());
}

}  // namespace
}  // namespace fabric
