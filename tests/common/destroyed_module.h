// A model and its optimizer set up, trained one step and destroyed, then another model set up: what
// Fabric and its strategy kept for the first (Fabric's record of the optimizer, DDP's parameters and
// buckets, FSDP's flat shards and their gradients) must go with it, not live as long as Fabric.
#pragma once
#include <memory>

#include "nn/linear.h"
#include "nn/mlp.h"
#include "optim/sgd.h"
#include "runtime/fabric.h"
#include "tensor/allocator.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace fabric::test_util {

// Bytes allocated after the first module (an MLP of 1 MB of parameters, with gradients and momentum
// as much again) and its optimizer were destroyed and a 20-parameter module set up in their place.
inline int64_t bytes_left_by_destroyed_module(Fabric& f) {
  Allocator& alloc = cpu_allocator();
  const int64_t before = alloc.stats().allocated_bytes;
  {
    manual_seed(3);
    auto module = std::make_shared<nn::MLP>(nn::MLPConfig{.sizes = {256, 512, 256}});
    optim::SGD opt(module->parameters(), {.lr = 0.1, .momentum = 0.9});
    auto [model, fopt] = f.setup(std::static_pointer_cast<nn::Module>(module), opt);
    f.backward(mse_loss(model(ones({2, 256})), zeros({2, 256})));
    fopt.step();
  }
  auto next = std::make_shared<nn::Linear>(nn::LinearOptions{.in_features = 4, .out_features = 4});
  f.setup_module(std::static_pointer_cast<nn::Module>(next));
  return alloc.stats().allocated_bytes - before;
}

}  // namespace fabric::test_util
