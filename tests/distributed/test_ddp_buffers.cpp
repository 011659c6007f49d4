// DDP keeps module buffers as torch DDP (broadcast_buffers=True) does: rank 0's buffers are
// broadcast before every forward. Two Gloo ranks train a conv + BatchNorm2d model on different
// data; after a following forward every rank holds rank 0's running statistics and batch count.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>

#include "nn/nn.h"
#include "optim/optim.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/distributed/dist_test_util.h"

namespace fabric {
namespace {

using namespace std::chrono_literals;

// DDP over two processes on the CPU (the launcher re-runs the test for rank 1).
FabricOptions two_rank_ddp() {
  return {.accelerator = "cpu",
          .strategy = "ddp",
          .devices = 2,
          .timeout = 60s,
          .launch_argv = dist_test::self_argv()};
}

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
};

// A ConvBnNet with SGD set up under f, and batches whose mean is the rank's own (so each rank's
// BatchNorm statistics differ from the others').
struct BnOnRanks {
  explicit BnOnRanks(Fabric& fab, uint64_t seed)
      : f(fab), g(seed + static_cast<uint64_t>(fab.global_rank())) {
    manual_seed(3);
    net = std::make_shared<ConvBnNet>();
    sgd = std::make_unique<optim::SGD>(net->parameters(), optim::SGDOptions{.lr = 0.05});
    auto [m, o] = f.setup(net, *sgd);
    model.emplace(m);
    opt.emplace(o);
  }
  nn::BatchNorm2d& bn() { return dynamic_cast<nn::BatchNorm2d&>(net->child("bn")); }
  Tensor batch() {
    return add(randn({4, 2, 5, 5}, {}, &g), 2.0 * static_cast<double>(f.global_rank()));
  }
  Fabric& f;
  Generator g;
  std::shared_ptr<ConvBnNet> net;
  std::unique_ptr<optim::SGD> sgd;
  std::optional<FabricModule> model;
  std::optional<FabricOptimizer> opt;
};

TEST(DDPBuffers, RankZerosBuffersAreBroadcastBeforeEveryForward) {
  Fabric fab(two_rank_ddp());
  fab.launch([](Fabric& f) {
    BnOnRanks run(f, 100);
    const std::shared_ptr<ConvBnNet>& net = run.net;
    FabricModule& model = *run.model;
    FabricOptimizer& opt = *run.opt;
    auto& bn = run.bn();
    Generator& g = run.g;
    for (int s = 0; s < 3; ++s) {
      opt.zero_grad();
      f.backward(sum(model(run.batch())));
      opt.step();
    }
    // The last training forward updated each rank's copy with its own batch.
    const Tensor trained = f.all_gather(bn.running_mean.clone());  // (2, 3)
    EXPECT_NE(trained[0].to_vector<float>(), trained[1].to_vector<float>());
    net->eval();
    model(randn({2, 2, 5, 5}, {}, &g));  // broadcasts rank 0's buffers first
    for (const Tensor& b : {bn.running_mean, bn.running_var}) {
      const Tensor all = f.all_gather(b.clone());
      EXPECT_EQ(all[1].to_vector<float>(), all[0].to_vector<float>()) << "rank " << f.global_rank();
    }
    EXPECT_EQ(bn.running_mean.to_vector<float>(), trained[0].to_vector<float>());
    EXPECT_EQ(bn.num_batches_tracked.item<int64_t>(), 3);
    return 0;
  });
}

// As torch 1.13's require_forward_param_sync: a forward under no_backward_sync (or without grad
// mode) does not make the next forward broadcast, so each rank keeps the statistics it gathered
// there until a forward with gradient sync has run.
TEST(DDPBuffers, NoBroadcastAfterANoSyncForward) {
  Fabric fab(two_rank_ddp());
  fab.launch([](Fabric& f) {
    BnOnRanks run(f, 200);
    const std::shared_ptr<ConvBnNet>& net = run.net;
    FabricModule& model = *run.model;
    FabricOptimizer& opt = *run.opt;
    auto& bn = run.bn();
    const auto batch = [&] { return run.batch(); };
    {
      auto no_sync = f.no_backward_sync(model, true);
      f.backward(sum(model(batch())));  // broadcast before it (the first forward), own stats after
    }
    net->eval();
    model(batch());  // no broadcast first: each rank still has its own statistics
    const Tensor own = f.all_gather(bn.running_mean.clone());
    EXPECT_NE(own[0].to_vector<float>(), own[1].to_vector<float>()) << "rank " << f.global_rank();
    net->train();
    opt.zero_grad();
    f.backward(sum(model(batch())));  // a synced forward: the next one broadcasts
    net->eval();
    model(batch());
    const Tensor synced = f.all_gather(bn.running_mean.clone());
    EXPECT_EQ(synced[0].to_vector<float>(), synced[1].to_vector<float>())
        << "rank " << f.global_rank();
    return 0;
  });
}

// A buffer each rank keeps as its own (as FP8 metadata): the module opts out of the broadcast.
class RankLocalState : public nn::Module {
 public:
  RankLocalState() { state = register_buffer("state", zeros({2})); }
  bool ddp_broadcasts_buffers() const override { return false; }
  Tensor forward(const Tensor& x) override { return x; }
  Tensor state;
};

class NetWithLocalState : public ConvBnNet {
 public:
  NetWithLocalState() { register_module("local", std::make_shared<RankLocalState>()); }
};

// BatchNorm's statistics follow rank 0 only with broadcast_buffers on, and an opted-out module's
// buffer never does. One launch per test: the launcher re-runs the test for the other rank.
void check_buffer_broadcast(bool broadcast) {
  {
    FabricOptions options = two_rank_ddp();
    options.ddp.broadcast_buffers = broadcast;
    Fabric fab(options);
    fab.launch([broadcast](Fabric& f) {
      manual_seed(3);
      auto net = std::make_shared<NetWithLocalState>();
      optim::SGD sgd(net->parameters(), {.lr = 0.1});
      auto [model, opt] = f.setup(net, sgd);
      auto& bn = dynamic_cast<nn::BatchNorm2d&>(net->child("bn"));
      auto& local = dynamic_cast<RankLocalState&>(net->child("local"));
      local.state.fill_(static_cast<double>(f.global_rank()));
      Generator g(7 + static_cast<uint64_t>(f.global_rank()));
      model(add(randn({4, 2, 5, 5}, {}, &g), 2.0 * static_cast<double>(f.global_rank())));
      net->eval();
      model(randn({2, 2, 5, 5}, {}, &g));
      const Tensor stats = f.all_gather(bn.running_mean.clone());
      if (broadcast) {
        EXPECT_EQ(stats[1].to_vector<float>(), stats[0].to_vector<float>());
      } else {
        EXPECT_NE(stats[1].to_vector<float>(), stats[0].to_vector<float>());
      }
      EXPECT_EQ(local.state.to_vector<float>(),
                std::vector<float>(2, static_cast<float>(f.global_rank())));
      return 0;
    });
  }
}

TEST(DDPBuffers, BroadcastBuffersOnFollowsRankZeroButNotAModuleThatOptsOut) {
  check_buffer_broadcast(true);
}

TEST(DDPBuffers, BroadcastBuffersOffKeepsEveryRanksOwn) { check_buffer_broadcast(false); }

}  // namespace
}  // namespace fabric
