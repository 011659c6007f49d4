// Parity with PyTorch: the same model, initial weights and batches give the same per-step losses
// and final weights. The fixtures (tests/nn/data/parity_*.safetensors) were written by
// tools/fixtures/make_parity_fixtures.py with Debian's python3-torch; each file's "config"
// metadata states what was trained, and these tests build exactly that.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "nn/gpt.h"
#include "nn/loss.h"
#include "nn/mlp.h"
#include "optim/optim.h"
#include "tensor/ops.h"
#include "tensor/safetensors.h"

namespace fabric::nn {
namespace {

struct Fixture {
  SafetensorsFile file;
  nlohmann::json config;
  double tol = 0;  // relative, per tensor
  DType dtype = DType::float32;

  const Tensor& at(const std::string& name) const {
    auto it = file.tensors.find(name);
    if (it == file.tensors.end()) throw ValueError("fixture has no tensor " + name);
    return it->second;
  }
  // The state_dict saved under `prefix` ("init." or "final."), prefix stripped.
  StateDict state(const std::string& prefix) const {
    StateDict sd;
    for (const auto& [name, t] : file.tensors) {
      if (name.rfind(prefix, 0) == 0) sd.insert(name.substr(prefix.size()), t);
    }
    return sd;
  }
};

// The bar: float64 within 1e-10 relative, float32 within 1e-5.
Fixture load_fixture(const std::string& name, const std::string& tag) {
  Fixture f;
  f.file = load_safetensors(std::string(FABRIC_TEST_DATA_DIR) + "/parity_" + name + "_" + tag +
                            ".safetensors");
  f.config = nlohmann::json::parse(f.file.metadata.at("config"));
  EXPECT_EQ(f.config["dtype"], tag);
  f.dtype = tag == "f64" ? DType::float64 : DType::float32;
  f.tol = tag == "f64" ? 1e-10 : 1e-5;
  return f;
}

// max |actual - expected| / max |expected|: relative to the tensor's scale, so that elements
// near zero do not demand more than the arithmetic can give.
double relative_error(const Tensor& actual, const Tensor& expected) {
  const auto a = actual.to(DType::float64).contiguous().to_vector<double>();
  const auto e = expected.to(DType::float64).contiguous().to_vector<double>();
  EXPECT_EQ(a.size(), e.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < std::min(a.size(), e.size()); ++i) {
    diff = std::max(diff, std::abs(a[i] - e[i]));
    scale = std::max(scale, std::abs(e[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

// Runs the fixture's steps: zero_grad, loss, backward, step; checks each loss as it goes and the
// final weights at the end.
template <class LossFn>
void train_and_compare(Module& model, optim::Optimizer& opt, const Fixture& f, LossFn loss_fn) {
  const Tensor& inputs = f.at("inputs");
  const Tensor& targets = f.at("targets");
  const auto losses = f.at("losses").to_vector<double>();
  const int64_t steps = f.config["steps"];
  ASSERT_EQ(static_cast<int64_t>(losses.size()), steps);
  for (int64_t s = 0; s < steps; ++s) {
    opt.zero_grad();
    Tensor loss = loss_fn(inputs.select(0, s), targets.select(0, s));
    ASSERT_EQ(loss.dtype(), f.dtype);
    loss.backward();
    opt.step();
    const double got = loss.item<double>();
    EXPECT_LE(std::abs(got - losses[s]), f.tol * std::abs(losses[s]))
        << "step " << s << ": loss " << got << ", PyTorch " << losses[s];
  }
  const StateDict final_state = f.state("final.");
  const StateDict ours = model.state_dict();
  ASSERT_EQ(ours.size(), final_state.size());
  double worst = 0;
  for (const auto& [name, expected] : final_state) {
    ASSERT_TRUE(ours.contains(name)) << name;
    const double err = relative_error(ours.at(name), expected);
    EXPECT_LE(err, f.tol) << name << ": relative error " << err;
    worst = std::max(worst, err);
  }
  std::printf("final weights: worst relative error %.3g (bar %.0e)\n", worst, f.tol);
}

class MlpSgdParity : public testing::TestWithParam<std::string> {};

TEST_P(MlpSgdParity, MatchesPyTorch) {
  const Fixture f = load_fixture("mlp_sgd", GetParam());
  const auto& c = f.config;
  ASSERT_EQ(c["model"], "mlp");
  auto model = make<MLP>({.sizes = c["sizes"].get<std::vector<int64_t>>(),
                          .activation = c["activation"].get<std::string>()});
  model->to(f.dtype);
  model->load_state_dict(f.state("init."));
  optim::SGD opt(model->parameters(), {.lr = c["lr"],
                                       .momentum = c["momentum"],
                                       .dampening = c["dampening"],
                                       .weight_decay = c["weight_decay"],
                                       .nesterov = c["nesterov"]});
  train_and_compare(*model, opt, f, [&](const Tensor& x, const Tensor& y) {
    return cross_entropy((*model)(x), y);
  });
}

INSTANTIATE_TEST_SUITE_P(Dtypes, MlpSgdParity, testing::Values("f64", "f32"));

class GptAdamWParity : public testing::TestWithParam<std::string> {};

TEST_P(GptAdamWParity, MatchesPyTorch) {
  const Fixture f = load_fixture("gpt_adamw", GetParam());
  const auto& c = f.config;
  ASSERT_EQ(c["model"], "gpt");
  auto model = make<GPT>({.vocab_size = c["vocab_size"],
                          .block_size = c["block_size"],
                          .n_layer = c["n_layer"],
                          .n_head = c["n_head"],
                          .n_embd = c["n_embd"],
                          .dropout = 0.0,
                          .bias = true,
                          .gelu = "tanh"});
  model->to(f.dtype);
  model->load_state_dict(f.state("init."));
  // nanoGPT's configure_optimizers: weight decay on tensors of dim >= 2 only.
  optim::AdamWOptions o{.lr = c["lr"],
                        .betas = {c["betas"][0].get<double>(), c["betas"][1].get<double>()},
                        .eps = c["eps"],
                        .weight_decay = c["weight_decay"]};
  optim::AdamW::Group decay{.options = o}, no_decay{.options = o};
  no_decay.options.weight_decay = 0.0;
  for (const Tensor& p : model->parameters()) (p.dim() >= 2 ? decay : no_decay).params.push_back(p);
  optim::AdamW opt({decay, no_decay}, o);
  train_and_compare(*model, opt, f, [&](const Tensor& x, const Tensor& y) {
    return model->loss(x, y);
  });
}

INSTANTIATE_TEST_SUITE_P(Dtypes, GptAdamWParity, testing::Values("f64", "f32"));

}  // namespace
}  // namespace fabric::nn
