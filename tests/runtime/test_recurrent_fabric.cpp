// A tiny LSTM sequence model trained through fabric::Fabric on the CPU in 32-true and bf16-mixed:
// the recurrent cells run under each precision (bf16-mixed: their GEMMs in bfloat16) and the
// loss of a next-value prediction task falls.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "nn/nn.h"
#include "optim/optim.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace fabric {
namespace {

// (N, L, 1) -> LSTM -> Linear -> (N, L, 1): each step predicts the next value of the sequence.
class NextValueLstm : public nn::Module {
 public:
  NextValueLstm() {
    register_module<nn::LSTM>("lstm", {.input_size = 1, .hidden_size = 16, .batch_first = true});
    register_module<nn::Linear>("head", {.in_features = 16, .out_features = 1});
  }
  Tensor forward(const Tensor& x) override { return child("head")(child("lstm")(x)); }
};

TEST(FabricRecurrent, TinyLstmLowersTheLossInEachPrecision) {
  // Sine waves of different phases and frequencies: x the first L values, y the next L.
  constexpr int64_t N = 8, L = 12;
  std::vector<float> xs, ys;
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t t = 0; t <= L; ++t) {
      const float v =
          std::sin(0.4f * static_cast<float>(t) * (1.0f + 0.1f * static_cast<float>(n)) +
                   0.7f * static_cast<float>(n));
      if (t < L) xs.push_back(v);
      if (t > 0) ys.push_back(v);
    }
  }
  const Tensor x = from_vector(xs, {N, L, 1}), y = from_vector(ys, {N, L, 1});
  for (const std::string precision : {"32-true", "bf16-mixed"}) {
    SCOPED_TRACE(precision);
    Fabric fab({.accelerator = "cpu", .devices = 1, .precision = precision});
    manual_seed(3);
    auto net = std::make_shared<NextValueLstm>();
    optim::Adam adam(net->parameters(), {.lr = 0.02});
    auto [model, opt] = fab.setup(net, adam);
    double first = 0, last = 0;
    constexpr int kSteps = 40;
    for (int s = 0; s < kSteps; ++s) {
      opt.zero_grad();
      Tensor loss = mse_loss(model(x).to(DType::float32), y);
      fab.backward(loss);
      opt.step();
      (s == 0 ? first : last) = loss.item<double>();
    }
    EXPECT_TRUE(std::isfinite(last));
    EXPECT_LT(last, 0.25 * first) << "first " << first << ", last " << last;
  }
}

}  // namespace
}  // namespace fabric
