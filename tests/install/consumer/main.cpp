// Trains a tiny linear model for a few steps through the installed headers and library, and
// prints its loss before and after: the check script wants it to fall.
#include <fabric/fabric.h>

#include <cstdio>

int main() {
  using namespace fabric;
  manual_seed(0);
  auto net = nn::make<nn::Linear>(nn::LinearOptions{.in_features = 4, .out_features = 1});
  optim::SGD sgd(net->parameters(), {.lr = 0.1});
  Fabric fab(FabricOptions{.accelerator = "cpu"});
  auto [model, opt] = fab.setup(net, sgd);
  const Tensor x = randn({16, 4});
  const Tensor y = sum(x, {1}, /*keepdim=*/true);
  double first = 0, last = 0;
  for (int step = 0; step < 20; ++step) {
    opt.zero_grad();
    const Tensor loss = mse_loss(model(x), y);
    fab.backward(loss);
    opt.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  std::printf("loss %.6f -> %.6f\n", first, last);
  return last < first ? 0 : 1;
}
