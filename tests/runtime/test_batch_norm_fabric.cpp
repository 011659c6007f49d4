// A conv + BatchNorm2d model trained through fabric::Fabric on one device: the running statistics
// and the int64 num_batches_tracked move with training and come back exactly through
// Fabric::save/load, and the loaded model's eval output is the trained one's.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "nn/nn.h"
#include "optim/optim.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

// (N, 3, H, W) -> conv -> BatchNorm2d -> relu -> spatial mean -> linear -> (N, 2)
class ConvBnNet : public nn::Module {
 public:
  ConvBnNet() {
    register_module<nn::Conv2d>(
        "conv", {.in_channels = 3, .out_channels = 4, .kernel_size = 3, .padding = 1});
    register_module<nn::BatchNorm2d>("bn", {.num_features = 4});
    register_module<nn::Linear>("fc", {.in_features = 4, .out_features = 2});
  }
  Tensor forward(const Tensor& x) override {
    const Tensor h = relu(child("bn")(child("conv")(x)));
    return child("fc")(mean(h, {2, 3}));
  }
};

TEST(FabricBatchNorm, TrainsAndRoundTripsTheRunningStatisticsThroughSaveLoad) {
  const std::string dir =
      (fs::temp_directory_path() / ("fabric_bn_" + std::to_string(::getpid()))).string();
  Fabric fab({.accelerator = "cpu", .devices = 1});
  manual_seed(0);
  auto net = std::make_shared<ConvBnNet>();
  optim::SGD sgd(net->parameters(), {.lr = 0.1, .momentum = 0.9});
  auto [model, opt] = fab.setup(net, sgd);
  Generator g(5);
  const Tensor x = add(mul(randn({8, 3, 6, 6}, {}, &g), 2.0), 0.5);
  const Tensor y = randint(0, 2, {8}, {.dtype = DType::int64}, &g);
  constexpr int kSteps = 5;
  double first = 0, last = 0;
  for (int s = 0; s < kSteps; ++s) {
    opt.zero_grad();
    Tensor loss = cross_entropy(model(x), y);
    fab.backward(loss);
    opt.step();
    (s == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_LT(last, first);
  auto& bn = dynamic_cast<nn::BatchNorm2d&>(net->child("bn"));
  EXPECT_EQ(bn.num_batches_tracked.item<int64_t>(), kSteps);
  EXPECT_NE(bn.running_var.to_vector<float>(), std::vector<float>(4, 1.0f));
  fab.save(dir, {{"model", model}, {"optimizer", opt}});

  Fabric fab2({.accelerator = "cpu", .devices = 1});
  manual_seed(1);  // a different init
  auto net2 = std::make_shared<ConvBnNet>();
  optim::SGD sgd2(net2->parameters(), {.lr = 0.1, .momentum = 0.9});
  auto [model2, opt2] = fab2.setup(net2, sgd2);
  fab2.load(dir, {{"model", model2}, {"optimizer", opt2}});
  const nn::StateDict want = net->state_dict(), got = net2->state_dict();
  ASSERT_EQ(got.keys(), want.keys());
  for (const auto& [key, t] : want) {
    const Tensor& u = got.at(key);
    EXPECT_EQ(u.dtype(), t.dtype()) << key;
    EXPECT_EQ(u.to(DType::float64).to_vector<double>(), t.to(DType::float64).to_vector<double>())
        << key;
  }
  EXPECT_EQ(got.at("bn.num_batches_tracked").dtype(), DType::int64);
  EXPECT_EQ(got.at("bn.num_batches_tracked").item<int64_t>(), kSteps);
  net->eval();
  net2->eval();
  EXPECT_EQ(model2(x).to_vector<float>(), model(x).to_vector<float>());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace fabric
