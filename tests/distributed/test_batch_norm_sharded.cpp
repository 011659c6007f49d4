// BatchNorm's running statistics and int64 num_batches_tracked under FSDP and ZeRO 1/2/3 (2 Gloo
// ranks). As torch FSDP and DeepSpeed: buffers are broadcast from rank 0 at setup only, each rank
// then keeps its own (no per-forward broadcast, unlike DDP), eval forwards leave them alone, a
// checkpoint holds rank 0's, a load gives every rank those, and a single-device run reads it.
// Converted to SyncBatchNorm, every rank holds the global batch's statistics.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "distributed/sync_batch_norm.h"
#include "nn/nn.h"
#include "optim/optim.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/distributed/dist_test_util.h"

namespace fabric {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// (N, 2, 5, 5) -> conv -> BatchNorm2d -> relu -> spatial mean -> linear -> (N, 1)
class ConvBnNet : public nn::Module {
 public:
  ConvBnNet() {
    register_module<nn::Conv2d>("conv", {.in_channels = 2, .out_channels = 3, .kernel_size = 3});
    register_module<nn::BatchNorm2d>("bn", {.num_features = 3});
    register_module<nn::Linear>("fc", {.in_features = 3, .out_features = 1});
  }
  Tensor forward(const Tensor& x) override {
    return child("fc")(mean(relu(child("bn")(child("conv")(x))), {2, 3}));
  }
  nn::BatchNorm& bn() { return dynamic_cast<nn::BatchNorm&>(child("bn")); }
};

struct BufferCase {
  std::string strategy;
  std::string state_dict_type;  // fsdp only: "full" or "sharded"
  std::string precision = "32-true";
  bool sync_batchnorm = false;  // converted to SyncBatchNorm before setup
};

// running_mean, running_var and num_batches_tracked, as float64 values.
std::vector<double> buffers_of(nn::BatchNorm& bn) {
  std::vector<double> v;
  for (const Tensor& b : {bn.running_mean, bn.running_var, bn.num_batches_tracked})
    for (double x : b.to(DType::float64).to_vector<double>()) v.push_back(x);
  return v;
}

void check_buffers(const BufferCase& c) {
  FabricOptions o{.accelerator = "cpu",
                  .strategy = c.strategy,
                  .devices = 2,
                  .precision = c.precision,
                  .timeout = 120s,
                  .launch_argv = dist_test::self_argv()};
  if (!c.state_dict_type.empty()) o.fsdp.state_dict_type = c.state_dict_type;
  Fabric fab(o);
  std::vector<std::shared_ptr<nn::Module>> keep;  // strategies know their modules by address
  fab.launch([&](Fabric& f) {
    const int rank = f.global_rank();
    const std::string dir = ::testing::TempDir() + "/bn_buffers_" + c.strategy + c.state_dict_type +
                            "_" + f.broadcast(std::to_string(::getpid()));
    manual_seed(3);
    auto net = std::make_shared<ConvBnNet>();
    if (c.sync_batchnorm) distributed::convert_sync_batchnorm(net);
    keep.push_back(net);
    optim::SGD sgd(net->parameters(), {.lr = 0.05});
    auto [model, opt] = f.setup(net, sgd);
    nn::BatchNorm& bn = net->bn();
    Generator g(100 + static_cast<uint64_t>(rank));  // each rank its own data and mean
    constexpr int kSteps = 3;
    for (int s = 0; s < kSteps; ++s) {
      const Tensor x = add(randn({4, 2, 5, 5}, {}, &g), 2.0 * rank);
      opt.zero_grad();
      f.backward(sum(model(x)));
      opt.step();
    }
    EXPECT_EQ(bn.num_batches_tracked.dtype(), DType::int64);
    EXPECT_EQ(bn.num_batches_tracked.item<int64_t>(), kSteps);
    EXPECT_NE(bn.running_var.to_vector<float>(), std::vector<float>(3, 1.0f));
    const Tensor means = f.all_gather(bn.running_mean.clone());  // (2, 3)
    if (c.sync_batchnorm) {
      EXPECT_EQ(means[0].to_vector<float>(), means[1].to_vector<float>())
          << "SyncBatchNorm: every rank has the global batch's statistics";
    } else {
      EXPECT_NE(means[0].to_vector<float>(), means[1].to_vector<float>())
          << "each rank keeps the statistics of its own batches";
    }

    // Eval: normalised with the running statistics, which stay as they are.
    net->eval();
    const std::vector<double> trained = buffers_of(bn);
    const Tensor probe = randn({2, 2, 5, 5}, {}, &g);
    const std::vector<float> eval_out = model(probe).to_vector<float>();
    EXPECT_EQ(buffers_of(bn), trained) << "an eval forward changed the buffers";

    f.save(dir, {{"model", model}});
    const std::vector<double> rank0 =
        f.broadcast(from_vector(trained, {int64_t(trained.size())}), 0).to_vector<double>();
    // A load gives every rank rank 0's buffers, whatever it held.
    bn.running_mean.fill_(7.0);
    bn.num_batches_tracked.fill_(0);
    f.load(dir, {{"model", model}});
    EXPECT_EQ(buffers_of(bn), rank0);
    EXPECT_EQ(bn.num_batches_tracked.dtype(), DType::int64);
    const std::vector<float> loaded_out = model(probe).to_vector<float>();  // collective (FSDP)
    if (rank == 0) {
      EXPECT_EQ(loaded_out, eval_out);
      // One process, single_device, reads the checkpoint (full or sharded).
      Fabric single({.accelerator = "cpu"});
      manual_seed(9);
      auto fresh = std::make_shared<ConvBnNet>();
      auto one = single.setup_module(fresh);
      single.load(dir, {{"model", one}});
      EXPECT_EQ(buffers_of(fresh->bn()), rank0);
      fresh->eval();
      if (c.precision == "32-true") EXPECT_EQ(one(probe).to_vector<float>(), eval_out);
    }
    f.barrier();
    if (rank == 0) fs::remove_all(dir);
    return 0;
  });
}

// One launch per test: the launcher re-runs the test for rank 1.
TEST(ShardedBatchNorm, FsdpFullCheckpoint) { check_buffers({"fsdp", "full"}); }
TEST(ShardedBatchNorm, FsdpShardedCheckpoint) { check_buffers({"fsdp", "sharded"}); }
TEST(ShardedBatchNorm, DeepSpeedStage1) { check_buffers({"deepspeed_stage_1", ""}); }
TEST(ShardedBatchNorm, DeepSpeedStage2) { check_buffers({"deepspeed_stage_2", ""}); }
TEST(ShardedBatchNorm, DeepSpeedStage3) { check_buffers({"deepspeed_stage_3", ""}); }
TEST(ShardedBatchNorm, FsdpBf16Mixed) { check_buffers({"fsdp", "full", "bf16-mixed"}); }
TEST(ShardedBatchNorm, DeepSpeedStage2Bf16Mixed) {
  check_buffers({"deepspeed_stage_2", "", "bf16-mixed"});
}
TEST(ShardedBatchNorm, DeepSpeedStage3Bf16Mixed) {
  check_buffers({"deepspeed_stage_3", "", "bf16-mixed"});
}
TEST(ShardedBatchNorm, DeepSpeedStage2Fp16Mixed) {
  check_buffers({"deepspeed_stage_2", "", "16-mixed"});
}
TEST(ShardedBatchNorm, FsdpSyncBatchNorm) { check_buffers({"fsdp", "full", "32-true", true}); }
TEST(ShardedBatchNorm, DeepSpeedStage2SyncBatchNorm) {
  check_buffers({"deepspeed_stage_2", "", "32-true", true});
}
TEST(ShardedBatchNorm, DeepSpeedStage3SyncBatchNorm) {
  check_buffers({"deepspeed_stage_3", "", "bf16-mixed", true});
}

}  // namespace
}  // namespace fabric
