// The Fabric façade on one CPU device: flag resolution and its errors, precision strings and
// custom plugins, setup, clip_gradients, init contexts, logging and checkpoint directories.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>

#include "autograd/autograd.h"
#include "nn/linear.h"
#include "nn/mlp.h"
#include "optim/optim.h"
#include "precision/deepspeed_precision.h"
#include "precision/mixed_precision.h"
#include "precision/registry.h"
#include "precision/true_precision.h"
#include "runtime/fabric.h"
#include "runtime_test_util.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/destroyed_module.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / (name + "_" + std::to_string(::getpid()))).string();
}

using testing_util::error_of;

TEST(FabricConnector, DefaultsResolveToOneCpuDeviceIn32True) {
  Fabric fab;
  EXPECT_EQ(fab.accelerator(), "cpu");  // no CUDA device here
  EXPECT_EQ(fab.strategy(), "single_device");
  EXPECT_EQ(fab.precision_name(), "32-true");
  EXPECT_EQ(fab.precision().name(), "32-true");
  EXPECT_EQ(fab.device(), Device::cpu());
  EXPECT_EQ(fab.world_size(), 1);
  EXPECT_TRUE(fab.is_global_zero());
}

TEST(FabricConnector, PrecisionStringsAndAliases) {
  EXPECT_EQ(Fabric({.precision = "64"}).precision_name(), "64-true");
  EXPECT_EQ(Fabric({.precision = "32"}).precision_name(), "32-true");
  Fabric legacy16({.precision = "16"});
  EXPECT_EQ(legacy16.precision_name(), "16-mixed");
  ASSERT_EQ(legacy16.warnings().size(), 1u);
  EXPECT_NE(legacy16.warnings()[0].find("16-mixed"), std::string::npos);
  EXPECT_EQ(Fabric({.precision = "bf16"}).precision_name(), "bf16-mixed");
  // 16-mixed stays float16 on CPU (unlike the reference) with a real scaler.
  Fabric f16({.accelerator = "cpu", .precision = "16-mixed"});
  auto* mp = dynamic_cast<precision::MixedPrecision*>(&f16.precision());
  ASSERT_NE(mp, nullptr);
  EXPECT_EQ(mp->dtype(), DType::float16);
  EXPECT_NE(mp->scaler(), nullptr);
  auto* bf = dynamic_cast<precision::MixedPrecision*>(&Fabric({.precision = "bf16-mixed"}).precision());
  ASSERT_NE(bf, nullptr);
  EXPECT_EQ(bf->scaler(), nullptr);
  EXPECT_NE(dynamic_cast<precision::DoublePrecision*>(&Fabric({.precision = "64-true"}).precision()), nullptr);
  EXPECT_NE(dynamic_cast<precision::HalfPrecision*>(&Fabric({.precision = "bf16-true"}).precision()), nullptr);
  const std::string msg = error_of<ValueError>([] { Fabric({.precision = "fp16"}); });
  for (const char* v : {"64-true", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "transformer-engine",
                        "transformer-engine-float16", "'64'", "'bf16'"})
    EXPECT_NE(msg.find(v), std::string::npos) << v << " missing from: " << msg;
}

TEST(FabricConnector, BadFlagsNameTheFlag) {
  EXPECT_NE(error_of<ValueError>([] { Fabric({.accelerator = "npu"}); }).find("accelerator"), std::string::npos);
  EXPECT_NE(error_of<ValueError>([] { Fabric({.strategy = "ddpp"}); }).find("strategy"), std::string::npos);
  EXPECT_NE(error_of<ValueError>([] { Fabric({.devices = 0}); }).find("devices"), std::string::npos);
  EXPECT_NE(error_of<ValueError>([] { Fabric({.devices = "0"}); }).find("devices"), std::string::npos);
  EXPECT_NE(error_of<ValueError>([] { Fabric({.devices = std::vector<int>{}}); }).find("devices"), std::string::npos);
  EXPECT_NE(error_of<ValueError>([] { Fabric({.num_nodes = 0}); }).find("num_nodes"), std::string::npos);
  EXPECT_NE(error_of<DeviceError>([] { Fabric({.accelerator = "cuda"}); }).find("cuda"), std::string::npos);
  EXPECT_NE(error_of<DeviceError>([] { Fabric({.accelerator = "gpu"}); }).find("gpu"), std::string::npos);
  // A plugin together with `precision=`, or two plugins.
  auto p = std::make_shared<precision::DoublePrecision>();
  EXPECT_NE(error_of<ValueError>([&] { Fabric({.precision = "32-true", .plugins = {p}}); }).find("precision"),
            std::string::npos);
  EXPECT_THROW(Fabric({.plugins = {p, std::make_shared<precision::DoublePrecision>()}}), ValueError);
  EXPECT_EQ(Fabric({.precision = "transformer-engine"}).precision().name(), "transformer-engine");
  EXPECT_EQ(Fabric({.precision = "transformer-engine-float16"}).precision().name(), "transformer-engine-float16");
  EXPECT_EQ(Fabric({.precision = "nf4-dq"}).precision().name(), "nf4-dq");
}

// Every name fabric-api.md §4 registers is known: the ones this runtime runs resolve to their
// strategy with its options; the XLA/TPU ones are NotImplementedError, never "invalid name".
TEST(FabricConnector, EveryReferenceStrategyNameIsRegistered) {
  struct Case {
    const char* name;
    const char* strategy;
    int zero_stage;
    bool offload;
    bool find_unused;
  };
  const Case runs[] = {
      {"ddp", "ddp", 0, false, false},
      {"ddp_spawn", "ddp", 0, false, false},
      {"ddp_fork", "ddp", 0, false, false},
      {"ddp_notebook", "ddp", 0, false, false},
      {"ddp_find_unused_parameters_true", "ddp", 0, false, true},
      {"dp", "ddp", 0, false, false},  // dp on cpu becomes ddp, as in the reference
      {"fsdp", "fsdp", 0, false, false},
      {"fsdp_cpu_offload", "fsdp", 0, true, false},
      {"deepspeed", "deepspeed", 2, false, false},
      {"deepspeed_stage_1", "deepspeed", 1, false, false},
      {"deepspeed_stage_2", "deepspeed", 2, false, false},
      {"deepspeed_stage_3", "deepspeed", 3, false, false},
      {"deepspeed_stage_1_offload", "deepspeed", 1, true, false},
      {"deepspeed_stage_2_offload", "deepspeed", 2, true, false},
      {"deepspeed_stage_3_offload", "deepspeed", 3, true, false},
  };
  for (const Case& c : runs) {
    const Resolved r = resolve_connector({.accelerator = "cpu", .strategy = c.name, .devices = 2});
    EXPECT_EQ(r.strategy, c.strategy) << c.name;
    EXPECT_EQ(r.zero_stage, c.zero_stage) << c.name;
    EXPECT_EQ(r.offload, c.offload) << c.name;
    EXPECT_EQ(r.find_unused_parameters, c.find_unused) << c.name;
  }
  Fabric zero1_offload({.accelerator = "cpu", .strategy = "deepspeed_stage_1_offload", .devices = 1});
  EXPECT_EQ(zero1_offload.strategy(), "deepspeed");
  for (const char* name : {"deepspeed_stage_3_offload_nvme", "xla", "single_xla", "xla_fsdp", "single_tpu"}) {
    EXPECT_THROW(resolve_connector({.accelerator = "cpu", .strategy = name}), NotImplementedError) << name;
    const auto& known = known_strategies();
    EXPECT_NE(std::find(known.begin(), known.end(), name), known.end()) << name;
  }
}

// fabric-api.md §1.3: devices 'auto' is auto_device_count(): every visible GPU on cuda, 1 on cpu.
TEST(FabricConnector, AutoDevicesAreEveryGpuOnCudaAndOneOnCpu) {
  EXPECT_EQ(parse_devices("auto", 4, "cuda"), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(parse_devices("auto", 1, "cuda"), (std::vector<int>{0}));
  EXPECT_EQ(parse_devices("auto", 4, "cpu"), (std::vector<int>{0}));
  EXPECT_EQ(parse_devices("AUTO", 2, "cuda"), (std::vector<int>{0, 1}));
  EXPECT_EQ(parse_devices("-1", 4, "cuda"), (std::vector<int>{0, 1, 2, 3}));
}

// A count or index far past any machine is refused before a list of ids is built (10^12 ids did
// not fit in memory; 2^32 + 1 took 17 GB) or narrowed to int (2^32 wrapped to device 0), and a
// num_nodes that would wrap when Fabric narrows it is refused too.
// fabric-api.md: "CPU: devices must be an int > 0" (Lightning's CPUAccelerator); indices and -1
// name GPUs.
TEST(FabricConnector, CpuDevicesAreACount) {
  EXPECT_EQ(parse_devices("2", 1, "cpu"), (std::vector<int>{0, 1}));
  for (const char* spec : {"-1", "0,1", "[0]", "0,"})
    EXPECT_CONTAINS(thrown<ValueError>([&] { (void)parse_devices(spec, 1, "cpu"); }),
                    "on the cpu accelerator devices is the number of processes")
        << spec;
  EXPECT_CONTAINS(thrown<ValueError>([] { Fabric({.accelerator = "cpu", .devices = std::vector<int>{0, 1}}); }),
                  "number of processes");
  EXPECT_CONTAINS(thrown<ValueError>([] { Fabric({.accelerator = "cpu", .devices = "-1"}); }), "number of processes");
}

TEST(FabricConnector, HugeDeviceAndNodeCountsAreValueErrors) {
  auto devices_error = [](const std::string& spec) {
    return thrown<ValueError>([&] { (void)parse_devices(spec, 1, "cuda"); });
  };
  for (const char* spec : {"1000000000000", "4294967297", "65537", "99999999999999999999999"})
    EXPECT_CONTAINS(devices_error(spec), "is invalid: too many devices. Expected a positive number of devices (at most 65536)");
  EXPECT_CONTAINS(devices_error("0,4294967296"), "index 4294967296 is too large (indices are below 65536)");
  EXPECT_CONTAINS(devices_error("[65536]"), "index 65536 is too large");
  EXPECT_CONTAINS(devices_error("0,99999999999999999999999"), "is too large");
  EXPECT_EQ(parse_devices(std::to_string(kMaxDevicesPerNode), 1, "cpu").size(), size_t(kMaxDevicesPerNode));
  EXPECT_EQ(parse_devices("0,65535", 1, "cuda"), (std::vector<int>{0, 65535}));
  EXPECT_CONTAINS(thrown<ValueError>([] { (void)resolve_connector({.accelerator = "cpu", .num_nodes = 4294967297}); }),
                  "`num_nodes` must be a positive integer of at most 1048576, got 4294967297");
  EXPECT_THROW(resolve_connector({.accelerator = "cpu", .num_nodes = kMaxNumNodes + 1}), ValueError);
}

TEST(FabricConnector, EnvironmentOverridesAndCliConflicts) {
  ::setenv("LT_PRECISION", "bf16-mixed", 1);
  EXPECT_EQ(Fabric().precision_name(), "bf16-mixed");
  ::setenv("LT_CLI_USED", "1", 1);
  EXPECT_THROW(Fabric({.precision = "64-true"}), ValueError);
  EXPECT_EQ(Fabric({.precision = "bf16-mixed"}).precision_name(), "bf16-mixed");  // agrees: fine
  ::unsetenv("LT_CLI_USED");
  ::unsetenv("LT_PRECISION");
}

// A user plugin: passed as an instance, or registered under a name and selected by string.
class CountingPrecision : public precision::Precision {
 public:
  std::string name() const override { return "counting"; }
  void backward(const Tensor& loss, nn::Module* m, const Tensor& g, std::optional<bool> retain,
                bool create_graph) override {
    ++backward_calls;
    Precision::backward(loss, m, g, retain, create_graph);
  }
  int backward_calls = 0;
};

TEST(FabricPlugins, CustomPluginByInstanceAndByName) {
  auto plugin = std::make_shared<CountingPrecision>();
  Fabric fab({.plugins = {plugin}});
  EXPECT_EQ(fab.precision_name(), "counting");
  auto lin = nn::make<nn::Linear>({.in_features = 3, .out_features = 1});
  auto model = fab.setup(lin);
  fab.backward(sum(model(ones({2, 3}))));
  EXPECT_EQ(plugin->backward_calls, 1);

  precision::register_precision("counting", [](DeviceType) { return std::make_shared<CountingPrecision>(); });
  Fabric by_name({.precision = "counting"});
  EXPECT_EQ(by_name.precision().name(), "counting");
  EXPECT_THROW(precision::register_precision("16-mixed", [](DeviceType) { return nullptr; }), ValueError);
  EXPECT_TRUE(precision::unregister_precision("counting"));
  EXPECT_THROW(Fabric({.precision = "counting"}), ValueError);
}

// create_graph passes through the plugin: .grad keeps a history and differentiates again, as
// autograd's own backward. Under 16-mixed the gradient is of the scaled loss, and (as in the
// reference, whose output hook raises) a second differentiation through the model's output must
// go through Fabric::backward too, so only the first one is checked there.
TEST(FabricBackward, CreateGraphGivesGradientsThatDifferentiateAgain) {
  for (const char* prec : {"64-true", "32-true", "16-mixed"}) {
    SCOPED_TRACE(prec);
    const std::string p = prec;
    manual_seed(3);
    Fabric fab({.precision = prec});
    auto lin = nn::make<nn::Linear>({.in_features = 3, .out_features = 1, .bias = false});
    auto model = fab.setup(lin);
    // Small inputs: the scaled (x 65536) float16 gradients of 16-mixed stay finite.
    const Tensor x = from_vector<double>({0.05, -0.1, 0.2, 0.15, 0.025, -0.075}, {2, 3});
    const Tensor y = model(x.to(DType::float32));
    fab.backward(sum(y * y * y), Tensor(), std::nullopt, /*create_graph=*/true);
    const Tensor g = lin->weight.grad();
    ASSERT_TRUE(g.requires_grad()) << "the gradient has no history";

    // By hand, y = x w^T: d/dw sum(y^3) = sum_i 3 y_i^2 x_i; that summed over w's entries and
    // differentiated again: sum_i 6 y_i x_i (sum_j x_ij).
    const Tensor w = lin->weight.detach().to(DType::float64);
    const Tensor yd = matmul(x, w.transpose(0, 1));                    // (2, 1)
    const Tensor first = sum(yd * yd * x * 3.0, {0}, /*keepdim=*/true);  // (1, 3)
    const Tensor second = sum(yd * sum(x, {1}, /*keepdim=*/true) * x * 6.0, {0}, true);
    const double scale = p == "16-mixed" ? 65536.0 : 1.0;  // GradScaler's initial scale
    // The module's output comes back in the default dtype (float32) under 64-true too, as the
    // reference's convert_output: the loss is float32 in the true modes.
    const double tol = p == "16-mixed" ? 2e-2 : 1e-5;
    const Tensor gd = g.detach().to(DType::float64) / scale;
    Tensor gg;
    if (p != "16-mixed") gg = grad({sum(g)}, {lin->weight})[0].to(DType::float64);
    for (int64_t k = 0; k < 3; ++k) {
      const double f = first[0][k].item<double>(), s2 = second[0][k].item<double>();
      EXPECT_NEAR(gd[0][k].item<double>(), f, tol * std::abs(f));
      if (gg.defined()) EXPECT_NEAR(gg[0][k].item<double>(), s2, tol * std::abs(s2));
    }
  }
}

TEST(FabricSetup, ConvertsModuleInputsAndOutputs) {
  Fabric fab({.precision = "64-true"});
  auto lin = nn::make<nn::Linear>({.in_features = 3, .out_features = 2});
  auto model = fab.setup(lin);
  EXPECT_EQ(lin->weight.dtype(), DType::float64);
  const Tensor y = model(ones({4, 3}));  // float32 in: converted to float64 for the module
  EXPECT_EQ(y.dtype(), DType::float32);  // back to float32 out
  EXPECT_THROW(fab.setup(lin), ValueError);  // set up once
  optim::SGD a(lin->parameters(), {.lr = 0.1}), b(lin->parameters(), {.lr = 0.2});
  auto [wa, wb] = fab.setup_optimizers(a, b);
  EXPECT_EQ(&wb.optimizer(), &b);
  EXPECT_THROW(fab.setup_optimizers(a), ValueError);  // already set up
  // Integer inputs are not touched by convert_input.
  EXPECT_EQ(model.convert_input(arange(3, DType::int64)).dtype(), DType::int64);
}

TEST(FabricSetup, ADestroyedModelAndOptimizerLeaveNothingBehind) {
  Fabric fab;
  // Fabric used to keep the first parameter of every optimizer it set up (and so its gradient).
  for (int cycle = 0; cycle < 3; ++cycle)
    EXPECT_LT(test_util::bytes_left_by_destroyed_module(fab), 64 * 1024) << "cycle " << cycle;
}

TEST(FabricSetup, AnOptimizerAtAReusedAddressIsANewOne) {
  Fabric fab;
  auto lin = nn::make<nn::Linear>({.in_features = 3, .out_features = 2});
  std::optional<optim::SGD> opt;
  opt.emplace(lin->parameters(), optim::SGDOptions{.lr = 0.1});
  fab.setup_optimizers(*opt);
  EXPECT_THROW(fab.setup_optimizers(*opt), ValueError);
  opt.reset();
  opt.emplace(lin->parameters(), optim::SGDOptions{.lr = 0.2});  // same storage, same address
  EXPECT_NO_THROW(fab.setup_optimizers(*opt));
  // Move-assigning another optimizer's contents makes a different optimizer too.
  optim::SGD other(lin->parameters(), {.lr = 0.3});
  *opt = std::move(other);
  EXPECT_NO_THROW(fab.setup_optimizers(*opt));
}

// setup(module, optimizers...) checks every optimizer before it touches the module (the
// reference's _validate_setup): a refused call left the module converted and recorded, and the
// optimizers before the refused one set up, so the corrected call was refused too.
TEST(FabricSetup, ARefusedSetupChangesNothing) {
  Fabric fab({.precision = "16-true"});
  auto first = nn::make<nn::Linear>({.in_features = 3, .out_features = 2});
  optim::SGD used(first->parameters(), {.lr = 0.1});
  fab.setup(first, used);
  auto net = nn::make<nn::Linear>({.in_features = 3, .out_features = 2});
  optim::SGD a(net->parameters(), {.lr = 0.1}), b(net->parameters(), {.lr = 0.1});
  EXPECT_CONTAINS(thrown<ValueError>([&] { fab.setup(net, a, used); }),
                  "this SGD optimizer has already been set up");
  EXPECT_EQ(net->weight.dtype(), DType::float32);  // not converted
  EXPECT_CONTAINS(thrown<ValueError>([&] { fab.setup(net, a, a); }),
                  "this SGD optimizer is given twice");
  EXPECT_CONTAINS(thrown<ValueError>([&] { fab.setup_optimizers(b, used); }),
                  "already been set up");
  auto [m, wa, wb] = fab.setup(net, a, b);  // a and b were not recorded by the refused calls
  EXPECT_EQ(net->weight.dtype(), DType::float16);
  EXPECT_EQ(&wb.optimizer(), &b);
}

// Under FSDP (and ZeRO-3) the module's parameters become flat shards: an optimizer set up before
// its module kept the old parameters and trained nothing, silently. Now a ValueError; the other
// order trains.
TEST(FabricSetup, UnderFsdpAnOptimizerSetUpBeforeItsModuleIsRefused) {
  Fabric fab(FabricOptions{.accelerator = "cpu", .strategy = "fsdp", .devices = 1});
  auto lin = nn::make<nn::Linear>({.in_features = 3, .out_features = 2});
  optim::SGD early(lin->parameters(), {.lr = 0.1});
  fab.setup_optimizers(early);
  EXPECT_CONTAINS(thrown<ValueError>([&] { fab.setup_module(lin); }),
                  "the SGD optimizer set up before this Linear holds its parameters");
  auto other = nn::make<nn::Linear>({.in_features = 3, .out_features = 2});
  FabricModule m = fab.setup_module(other);
  optim::SGD late(other->parameters(), {.lr = 0.1});
  EXPECT_NO_THROW(fab.setup_optimizers(late));
}

TEST(FabricSetup, BF16MixedKeepsWeightsFloat32AndAutocastsForward) {
  Fabric fab({.precision = "bf16-mixed"});
  auto lin = nn::make<nn::Linear>({.in_features = 8, .out_features = 4});
  auto model = fab.setup(lin);
  EXPECT_EQ(lin->weight.dtype(), DType::float32);
  Tensor inside;
  {
    auto guard = fab.autocast();
    inside = matmul(ones({2, 8}), ones({8, 2}));
  }
  EXPECT_EQ(inside.dtype(), DType::bfloat16);
  EXPECT_EQ(matmul(ones({2, 8}), ones({8, 2})).dtype(), DType::float32);  // outside: untouched
  EXPECT_EQ(model(ones({2, 8})).dtype(), DType::float32);
}

TEST(FabricSetup, InitContextsUseThePluginDtype) {
  Fabric fab({.precision = "64-true"});
  std::shared_ptr<nn::Linear> lin;
  {
    auto guard = fab.init_module();
    lin = nn::make<nn::Linear>({.in_features = 2, .out_features = 2});
    EXPECT_EQ(zeros({3}).dtype(), DType::float64);
  }
  EXPECT_EQ(lin->weight.dtype(), DType::float64);
  EXPECT_EQ(zeros({3}).dtype(), DType::float32);
  Fabric mixed({.precision = "bf16-mixed"});
  auto guard = mixed.init_module();  // mixed precision initialises in float32
  EXPECT_EQ(zeros({3}).dtype(), DType::float32);
}

// A 16-mixed plugin whose scaler starts at 1024: 2^16 itself overflows float16 (max 65504) as the
// first incoming gradient, which would make the first step a skipped one.
std::shared_ptr<precision::MixedPrecision> small_scale_plugin() {
  auto scaler = std::make_shared<precision::GradScaler>(precision::GradScalerOptions{.init_scale = 1024.0});
  return std::make_shared<precision::MixedPrecision>("16-mixed", DeviceType::cpu, scaler);
}

TEST(FabricClip, UnscalesFirstAndReturnsTheTotalNorm) {
  Fabric fab({.plugins = {small_scale_plugin()}});
  auto lin = nn::make<nn::Linear>({.in_features = 4, .out_features = 1, .bias = false});
  lin->weight.set_data(from_vector<float>({0.3f, 0, 0, 0.4f}, {1, 4}));
  optim::SGD sgd(lin->parameters(), {.lr = 0.0});
  auto [model, opt] = fab.setup(lin, sgd);
  // d(sum(w . x))/dw = x = (0.3, 0, 0, 0.4) -> norm 0.5 once unscaled. The scaled gradient
  // (x * 1024, computed in float16 under autocast) carries float16 rounding: 1e-3 relative.
  fab.backward(sum(model(from_vector<float>({0.3f, 0, 0, 0.4f}, {1, 4}))));
  EXPECT_NEAR(lin->weight.grad().select(1, 0).item<double>() / (0.3 * 1024.0), 1.0, 1e-3);  // still scaled
  Tensor norm = fab.clip_gradients(model, opt, {.max_norm = 0.1});
  EXPECT_NEAR(norm.item<double>(), 0.5, 5e-4);
  EXPECT_NEAR(lin->weight.grad().select(1, 0).item<double>(), 0.06, 1e-4);
  EXPECT_TRUE(opt.step());  // the scaler sees the optimizer already unscaled
  EXPECT_THROW(fab.clip_gradients(model, opt, {}), ValueError);
  EXPECT_THROW(fab.clip_gradients(model, opt, {.clip_val = 1.0, .max_norm = 1.0}), ValueError);
}

std::vector<std::string> file_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// Lightning's _ExperimentWriter: the header is the sorted keys, `step` among them, rewritten when a
// key appears; a row without a step gets the number of rows logged before it.
TEST(FabricLog, WritesLightningStyleCsv) {
  const std::string path = temp_path("fabric_metrics") + ".csv";
  auto csv = std::make_shared<CSVLogger>(path);
  Fabric fab({.loggers = {csv}});
  fab.log("train_loss", 2.5, 0);
  fab.log_dict({{"train_loss", 2.0}, {"lr", 0.1}}, 1);
  fab.log("train_loss", scalar_tensor(1.5), 2);
  EXPECT_THROW(fab.log("bad", ones({2}), 3), ValueError);
  fab.log("val_loss", 3.0);  // no step: the 4th row, step 3
  fab.log_dict({{"a_first", 1.0}, {"step", 99.0}});  // the logger's step wins, as Lightning's
  csv->flush();
  EXPECT_EQ(file_lines(path),
            (std::vector<std::string>{"a_first,lr,step,train_loss,val_loss", ",,0,2.5,",
                                      ",0.1,1,2.0,", ",,2,1.5,", ",,3,,3.0", "1.0,,4,,"}));
  fs::remove(path);
}

// fabric-api.md: CSVLogger.log_hyperparams raises NotImplementedError (Lightning Fabric's has no
// hyperparameter file); the TensorBoard logger is the one that takes them.
TEST(FabricLog, CsvLoggerRefusesHyperparameters) {
  const std::string path = temp_path("fabric_hparams") + ".csv";
  CSVLogger csv(path);
  EXPECT_CONTAINS(thrown<NotImplementedError>([&] { csv.log_hyperparams({{"lr", "0.1"}}); }),
                  "does not yet support logging hyperparameters");
  fs::remove(path);
}

// fabric-api.md: seed_everything seeds the generators and sets PL_GLOBAL_SEED and PL_SEED_WORKERS
// (workers=True is Fabric's default).
TEST(FabricSeed, SeedEverythingSetsTheGlobalSeedAndWorkerFlag) {
  ::unsetenv("PL_SEED_WORKERS");
  EXPECT_EQ(Fabric::seed_everything(42), 42u);
  EXPECT_STREQ(std::getenv("PL_GLOBAL_SEED"), "42");
  EXPECT_STREQ(std::getenv("PL_SEED_WORKERS"), "1");
  const std::vector<float> a = randn({8}).to_vector<float>();
  Fabric::seed_everything(42);
  EXPECT_EQ(randn({8}).to_vector<float>(), a);
}

// Lightning's layout: root_dir/name/version_N/metrics.csv, N the next free version.
TEST(FabricLog, CsvLoggerInLightningsVersionDirectories) {
  const std::string root = temp_path("fabric_csv_root");
  fs::remove_all(root);
  {
    CSVLogger first({.root_dir = root});
    EXPECT_EQ(first.version(), "version_0");
    EXPECT_EQ(first.log_dir(), root + "/lightning_logs/version_0");
    first.log_metrics({{"loss", 1.0}}, std::nullopt);
  }
  EXPECT_EQ(file_lines(root + "/lightning_logs/version_0/metrics.csv"),
            (std::vector<std::string>{"loss,step", "1.0,0"}));
  fs::create_directories(root + "/lightning_logs/version_4");
  {
    CSVLogger next({.root_dir = root, .prefix = "train"});
    EXPECT_EQ(next.version(), "version_5");
    next.log_metrics({{"loss", 2.0}}, 7);
  }
  EXPECT_EQ(file_lines(root + "/lightning_logs/version_5/metrics.csv"),
            (std::vector<std::string>{"step,train-loss", "7,2.0"}));
  // An explicit version (a number: version_<n>; a name: itself) replaces an earlier file there.
  {
    CSVLogger again({.root_dir = root, .version = "5"});
    again.log_metrics({{"x", 3.0}}, 0);
  }
  EXPECT_EQ(file_lines(root + "/lightning_logs/version_5/metrics.csv"),
            (std::vector<std::string>{"step,x", "0,3.0"}));
  CSVLogger named({.root_dir = root, .name = "exp", .version = "run-a"});
  EXPECT_EQ(named.log_dir(), root + "/exp/run-a");
  CSVLogger flat({.root_dir = root, .name = ""});
  EXPECT_EQ(flat.log_dir(), root + "/version_0");
  fs::remove_all(root);
}

// Resuming a metrics.csv written before the header was sorted (step first): its rows stay under
// their columns and the file comes back in Lightning's order.
TEST(FabricLog, CsvAppendRewritesAnOldHeaderOrder) {
  const std::string path = temp_path("fabric_metrics_old") + ".csv";
  std::ofstream(path) << "step,train_loss,lr\n1,2.5,0.1\n2,2,0.1\n";
  {
    CSVLogger csv(path, /*append=*/true);
    csv.truncate_after(1);
    csv.log_metrics({{"train_loss", 1.5}, {"lr", 0.05}}, 2);
  }
  EXPECT_EQ(file_lines(path), (std::vector<std::string>{"lr,step,train_loss", "0.1,1,2.5", "0.05,2,1.5"}));
  {
    CSVLogger csv(path, /*append=*/true);
    csv.log_metrics({{"val_loss", 4.0}}, 2);
  }
  EXPECT_EQ(file_lines(path), (std::vector<std::string>{"lr,step,train_loss,val_loss", "0.1,1,2.5,",
                                                        "0.05,2,1.5,", ",2,,4.0"}));
  std::ofstream(path) << "train_loss,lr\n1,2\n";
  EXPECT_CONTAINS(thrown<IOError>([&] { CSVLogger bad(path, /*append=*/true); }), "'step'");
  fs::remove(path);
}

TEST(FabricCheckpoint, SaveLoadRoundTripWithPlainValuesAndRemainder) {
  const std::string dir = temp_path("fabric_ckpt");
  Fabric fab({.plugins = {small_scale_plugin()}});
  manual_seed(0);
  auto mlp = nn::make<nn::MLP>({.sizes = {4, 8, 2}});
  optim::AdamW adamw(mlp->parameters(), {.lr = 1e-2});
  auto [model, opt] = fab.setup(mlp, adamw);
  fab.backward(sum(model(ones({3, 4}))));
  ASSERT_TRUE(opt.step());
  dynamic_cast<precision::MixedPrecision&>(fab.precision()).scaler()->update(1024.0);
  fab.save(dir, {{"model", model}, {"optimizer", opt}, {"step", 7}, {"name", "run-a"}, {"extra", ones({2})}});
  EXPECT_TRUE(fs::exists(dir + "/model.safetensors"));
  EXPECT_TRUE(fs::exists(dir + "/optimizer.safetensors"));
  EXPECT_TRUE(fs::exists(dir + "/state.json"));

  Fabric fab2({.precision = "16-mixed"});
  manual_seed(1);  // different init
  auto mlp2 = nn::make<nn::MLP>({.sizes = {4, 8, 2}});
  optim::AdamW adamw2(mlp2->parameters(), {.lr = 1e-2});
  auto [model2, opt2] = fab2.setup(mlp2, adamw2);
  auto* scaler2 = dynamic_cast<precision::MixedPrecision&>(fab2.precision()).scaler();
  State state{{"model", model2}, {"optimizer", opt2}, {"step", 0}};
  State rest = fab2.load(dir, state);
  EXPECT_EQ(std::get<int64_t>(state.at("step").value()), 7);
  EXPECT_EQ(scaler2->get_scale(), 1024.0);  // the plugin's state comes back by default
  for (size_t i = 0; i < mlp->parameters().size(); ++i)
    EXPECT_EQ(mlp->parameters()[i].to_vector<float>(), mlp2->parameters()[i].to_vector<float>());
  ASSERT_NE(adamw2.state(mlp2->parameters()[0]), nullptr);
  ASSERT_TRUE(rest.count("name"));
  EXPECT_EQ(std::get<std::string>(rest.at("name").value()), "run-a");
  ASSERT_TRUE(rest.count("extra"));
  EXPECT_EQ(std::get<Tensor>(rest.at("extra").value()).to_vector<float>(), std::vector<float>({1, 1}));

  State missing{{"model", model2}, {"nothere", 1}};
  EXPECT_THROW(fab2.load(dir, missing), KeyError);
  EXPECT_NO_THROW(fab2.load(dir, missing, /*strict=*/false));
  EXPECT_THROW(fab2.load(dir + "-absent", state), IOError);
  EXPECT_THROW(fab.save(dir, {{"a/b", 1}}), ValueError);
  // Saving again replaces the directory atomically.
  fab.save(dir, {{"model", model}, {"step", 8}});
  State again{{"step", 0}};
  fab2.load(dir, again);
  EXPECT_EQ(std::get<int64_t>(again.at("step").value()), 8);
  EXPECT_FALSE(fs::exists(dir + "/optimizer.safetensors"));
  fs::remove_all(dir);
}

std::shared_ptr<precision::MixedPrecision> scaled_plugin(double init_scale) {
  auto scaler = std::make_shared<precision::GradScaler>(precision::GradScalerOptions{.init_scale = init_scale});
  return std::make_shared<precision::MixedPrecision>("16-mixed", DeviceType::cpu, scaler);
}

// A checkpoint of `fab`'s run: an MLP and its AdamW after one step.
void save_small_run(Fabric& fab, const std::string& dir) {
  manual_seed(0);
  auto mlp = nn::make<nn::MLP>({.sizes = {4, 8, 2}});
  optim::AdamW adamw(mlp->parameters(), {.lr = 1e-3});
  auto [model, opt] = fab.setup(mlp, adamw);
  fab.backward(sum(model(ones({3, 4}))) * 1e-3);
  opt.step();
  fab.save(dir, {{"model", model}, {"optimizer", opt}, {"step", 1}});
}

// Loads `dir` into a fresh MLP and AdamW set up by `fab`.
void load_small_run(Fabric& fab, const std::string& dir) {
  auto mlp = nn::make<nn::MLP>({.sizes = {4, 8, 2}});
  optim::AdamW adamw(mlp->parameters(), {.lr = 1e-3});
  auto [model, opt] = fab.setup(mlp, adamw);
  State state{{"model", model}, {"optimizer", opt}, {"step", 0}};
  fab.load(dir, state);
  EXPECT_EQ(std::get<int64_t>(state.at("step").value()), 1);
}

bool has_warning(const Fabric& fab, const std::string& part) {
  for (const auto& w : fab.warnings())
    if (w.find(part) != std::string::npos) return true;
  return false;
}

// The reference never saves the scaler by default, so a precision state that does not fit the
// current plugin must not fail a load: same kind restored, a loss scale carried between GradScaler
// and DeepSpeed's scaler, anything else skipped, with a warning.
TEST(FabricCheckpoint, PrecisionStateOfAnotherPluginLoadsWithAWarning) {
  const std::string dir = temp_path("fabric_ckpt_precision");
  {  // 32-true (no scaler state) into 16-mixed: the scaler keeps its initial scale.
    Fabric f32({.precision = "32-true"});
    save_small_run(f32, dir + "/f32");
    Fabric f16({.plugins = {small_scale_plugin()}});
    load_small_run(f16, dir + "/f32");
    EXPECT_EQ(dynamic_cast<precision::MixedPrecision&>(f16.precision()).scaler()->get_scale(), 1024.0);
    EXPECT_TRUE(has_warning(f16, "not restored")) << (f16.warnings().empty() ? "" : f16.warnings().back());
    // Also when the plugin is an explicit entry of the state.
    State explicit_plugin{{"precision", f16.precision()}};
    EXPECT_NO_THROW(f16.load(dir + "/f32", explicit_plugin));
    EXPECT_TRUE(f32.warnings().empty());
  }
  {  // 16-mixed (GradScaler scale 512) into DeepSpeed 16-mixed: cur_scale takes it.
    Fabric f16({.plugins = {scaled_plugin(512.0)}});
    save_small_run(f16, dir + "/f16");
    Fabric ds({.accelerator = "cpu", .strategy = "deepspeed", .devices = 1, .precision = "16-mixed"});
    load_small_run(ds, dir + "/f16");
    EXPECT_EQ(dynamic_cast<precision::DeepSpeedPrecision&>(ds.precision()).loss_scaler().cur_scale(), 512.0);
    EXPECT_TRUE(has_warning(ds, "cur_scale"));
    // The same kind loads as saved, without a warning.
    Fabric same({.precision = "16-mixed"});
    load_small_run(same, dir + "/f16");
    EXPECT_EQ(dynamic_cast<precision::MixedPrecision&>(same.precision()).scaler()->get_scale(), 512.0);
    EXPECT_TRUE(same.warnings().empty()) << same.warnings().front();
  }
  {  // Back: DeepSpeed's cur_scale into a GradScaler's scale; into 32-true it is skipped.
    Fabric ds({.accelerator = "cpu", .strategy = "deepspeed", .devices = 1, .precision = "16-mixed"});
    save_small_run(ds, dir + "/ds");
    const double ds_scale = dynamic_cast<precision::DeepSpeedPrecision&>(ds.precision()).loss_scaler().cur_scale();
    ASSERT_NE(ds_scale, 1024.0);
    Fabric f16({.plugins = {small_scale_plugin()}});
    load_small_run(f16, dir + "/ds");
    EXPECT_EQ(dynamic_cast<precision::MixedPrecision&>(f16.precision()).scaler()->get_scale(), ds_scale);
    EXPECT_TRUE(has_warning(f16, "as 'scale'"));
    Fabric f32({.precision = "32-true"});
    load_small_run(f32, dir + "/ds");
    EXPECT_TRUE(has_warning(f32, "not restored"));
  }
  fs::remove_all(dir);
}

// "dir/" names the directory dir (its temporary sibling must not land inside it); file system
// errors surface as IOErrors naming the path.
TEST(FabricCheckpoint, TrailingSeparatorNamesTheSameDirectory) {
  const std::string dir = temp_path("fabric_ckpt_slash");
  fs::remove_all(dir);
  Fabric fab;
  fab.save(dir + "/", {{"step", 1}});
  fab.save(dir + "//", {{"step", 2}});
  EXPECT_TRUE(fs::exists(dir + "/state.json"));
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  EXPECT_FALSE(fs::exists(dir + ".old"));
  State state{{"step", 0}};
  fab.load(dir + "/", state);
  EXPECT_EQ(std::get<int64_t>(state.at("step").value()), 2);
  const std::string too_long = dir + "/" + std::string(300, 'x');  // ENAMETOOLONG
  EXPECT_CONTAINS(thrown<IOError>([&] { fab.load(too_long, state); }), dir);
  EXPECT_CONTAINS(thrown<IOError>([&] { fab.save(too_long, {{"step", 1}}); }), dir);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace fabric

namespace fabric {
namespace {

// One-process FSDP moves the gradients into the flat shards the optimizer steps in fab.backward:
// a plain loss.backward() left the step without effect; it raises, as Lightning's FSDPPrecision.
TEST(FabricBackward, OneProcessFsdpRefusesAPlainBackward) {
  for (const char* precision : {"32-true", "bf16-true"}) {
    SCOPED_TRACE(precision);
    Fabric fab({.accelerator = "cpu", .strategy = "fsdp", .devices = 1, .precision = precision});
    auto lin = nn::make<nn::Linear>({.in_features = 3, .out_features = 2});
    optim::SGD sgd(lin->parameters(), {.lr = 0.5});
    auto [m, o] = fab.setup(lin, sgd);
    const Tensor loss = sum(m(from_vector<float>({1, 2, 3}, {1, 3})));
    EXPECT_CONTAINS(thrown<Error>([&] { loss.backward(); }), "fabric.backward(loss)");
  }
}

// print separates its arguments with spaces, as Python's print (they ran together).
TEST(FabricPrint, SeparatesArgumentsWithSpaces) {
  Fabric fab;
  std::ostringstream captured;
  std::streambuf* old = std::cout.rdbuf(captured.rdbuf());
  fab.print("epoch", 3, "loss", 0.5, true);
  std::cout.rdbuf(old);
  EXPECT_EQ(captured.str(), "epoch 3 loss 0.5 true\n");
}

// Any integer type is a state value; an undefined tensor moves to the device as it is.
TEST(FabricState, AnyIntegerTypeIsAValueAndUndefinedTensorsPassToDevice) {
  EXPECT_EQ(StateEntry(size_t{3}).get<int64_t>(), 3);
  EXPECT_EQ(StateEntry(3u).get<int64_t>(), 3);
  EXPECT_EQ(StateEntry(3LL).get<int64_t>(), 3);
  EXPECT_THROW(StateEntry(std::numeric_limits<uint64_t>::max()), ValueError);
  Fabric fab;
  EXPECT_FALSE(fab.to_device(Tensor()).defined());
}

}  // namespace
}  // namespace fabric
