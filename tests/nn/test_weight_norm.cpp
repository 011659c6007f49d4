// weight_norm / spectral_norm (and their remove_*) against torch 1.13
// (tests/nn/weight_norm_torch_rows.h, from tools/fixtures/make_weight_norm_rows.py): state_dict
// keys, a training forward's output and gradients, spectral_norm's updated u and v, the eval
// output and the weight left by remove_*; plus the errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "nn/nn.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"
#include "tests/nn/mha_test_helpers.h"
#include "tests/nn/weight_norm_torch_rows.h"

namespace fabric::nn {
namespace {

using mha_testing::expect_close;
using mha_testing::f64;
using testing::WeightNormRow;

std::shared_ptr<Module> make_layer(const std::string& layer) {
  if (layer == "Linear") return make<Linear>({.in_features = 4, .out_features = 3});
  if (layer == "Conv2d")
    return make<Conv2d>({.in_channels = 2, .out_channels = 3, .kernel_size = 2});
  return make<ConvTranspose2d>({.in_channels = 3, .out_channels = 2, .kernel_size = 2});
}

void wrap(Module& m, const WeightNormRow& r) {
  if (std::string(r.wrapper) == "weight_norm") {
    weight_norm(m, "weight", r.dim);
    return;
  }
  SpectralNormOptions o{.n_power_iterations = r.n_power_iterations};
  if (r.dim != -100) o.dim = r.dim;
  spectral_norm(m, "weight", o);
}

void expect_state(const Module& m, const std::vector<std::string>& keys,
                  const std::vector<std::vector<double>>& values, const std::string& what) {
  const StateDict sd = m.state_dict();
  ASSERT_EQ(sd.keys(), keys) << what;
  for (size_t i = 0; i < keys.size(); ++i)
    expect_close(sd.at(keys[i]), values[i], what + " " + keys[i]);
}

TEST(WeightNorm, MatchesTorch) {
  for (const WeightNormRow& r : testing::weight_norm_rows()) {
    SCOPED_TRACE(r.name);
    std::shared_ptr<Module> m = make_layer(r.layer);
    m->to(DType::float64);
    wrap(*m, r);
    ASSERT_EQ(m->state_dict().keys(), r.keys);
    StateDict torch_state;
    for (size_t i = 0; i < r.keys.size(); ++i)
      torch_state.insert(r.keys[i], f64(r.values[i], r.shapes[i]));
    m->load_state_dict(torch_state);

    const Tensor x = f64(r.input, r.input_shape).set_requires_grad(true);
    const Tensor y = (*m)(x);
    expect_close(y, r.out, "output");
    sum(mul(y, f64(r.g_out, y.sizes()))).backward();
    expect_close(x.grad(), r.input_grad, "input grad");
    const Module::NamedTensors params = m->named_parameters();
    ASSERT_EQ(params.size(), r.param_names.size());
    for (size_t i = 0; i < params.size(); ++i) {
      EXPECT_EQ(params[i].first, r.param_names[i]);
      expect_close(params[i].second.grad(), r.param_grads[i], params[i].first + " grad");
    }
    expect_state(*m, r.keys_after, r.values_after, "after the forward");

    m->eval();
    {
      NoGradGuard no_grad;
      expect_close((*m)(x), r.eval_out, "eval output");
    }
    if (std::string(r.wrapper) == "weight_norm") {
      remove_weight_norm(*m);
    } else {
      remove_spectral_norm(*m);
    }
    // torch appends the restored weight after the bias; here it comes back in its old place.
    std::vector<std::string> keys = m->state_dict().keys(), want = r.keys_removed;
    std::sort(keys.begin(), keys.end());
    std::sort(want.begin(), want.end());
    ASSERT_EQ(keys, want);
    for (size_t i = 0; i < r.keys_removed.size(); ++i)
      expect_close(m->state_dict().at(r.keys_removed[i]), r.values_removed[i],
                   "removed " + r.keys_removed[i]);
    // The layer trains its weight again: a leaf parameter that gets a gradient.
    const Tensor w = m->get_parameter("weight");
    EXPECT_TRUE(is_leaf(w));
    m->train();
    sum((*m)(x)).backward();
    EXPECT_TRUE(w.grad().defined());
  }
}

// The weight is recomputed on every call through operator(): an optimizer-style update of g
// changes the next output, and gradients reach g and v, not the old weight.
TEST(WeightNorm, RecomputesEachForwardAndTrainsGAndV) {
  auto lin = make<Linear>({.in_features = 3, .out_features = 2});
  lin->to(DType::float64);
  weight_norm(*lin);
  EXPECT_EQ(lin->state_dict().keys(), (std::vector<std::string>{"bias", "weight_g", "weight_v"}));
  EXPECT_EQ(lin->get_parameter("weight_g").sizes(), (Shape{2, 1}));
  const Tensor x = ones({1, 3}, {.dtype = DType::float64});
  const Tensor before = (*lin)(x);
  {
    NoGradGuard no_grad;
    lin->get_parameter("weight_g").mul_(2.0);
  }
  const Tensor after = (*lin)(x);
  const Tensor bias = lin->bias;
  // Doubling g doubles w x: after - b = 2 (before - b).
  expect_close(sub(after, bias), mul(sub(before, bias), 2.0).to_vector<double>(), "2 g");
  sum(after).backward();
  EXPECT_TRUE(lin->get_parameter("weight_g").grad().defined());
  EXPECT_TRUE(lin->get_parameter("weight_v").grad().defined());
  EXPECT_EQ(lin->parameters().size(), 3u);
}

TEST(WeightNorm, SpectralNormIteratesOnlyInTraining) {
  auto lin = make<Linear>({.in_features = 4, .out_features = 3});
  spectral_norm(*lin);
  const Tensor u0 = lin->state_dict().at("weight_u").clone();
  lin->eval();
  (*lin)(ones({1, 4}));
  EXPECT_EQ(lin->state_dict().at("weight_u").to_vector<float>(), u0.to_vector<float>());
  lin->train();
  (*lin)(ones({1, 4}));
  EXPECT_NE(lin->state_dict().at("weight_u").to_vector<float>(), u0.to_vector<float>());
  // Many iterations converge to the largest singular value: the weight's spectral norm is 1
  // (measured by a power iteration of its own on W^T W).
  auto wide = make<Linear>({.in_features = 6, .out_features = 5});
  wide->to(DType::float64);
  spectral_norm(*wide, "weight", {.n_power_iterations = 500});
  (*wide)(ones({1, 6}, {.dtype = DType::float64}));
  const Tensor w = wide->weight.detach();  // the computed weight the layer used
  Tensor x = ones({6}, {.dtype = DType::float64});
  for (int i = 0; i < 500; ++i) {
    x = matmul(w.transpose(0, 1), matmul(w, x));
    x = div(x, norm(x));
  }
  EXPECT_NEAR(norm(matmul(w, x)).item<double>(), 1.0, 1e-6);
}

TEST(WeightNorm, Errors) {
  auto lin = make<Linear>({.in_features = 4, .out_features = 3});
  weight_norm(*lin);
  EXPECT_CONTAINS(
      thrown<ValueError>([&] { weight_norm(*lin); }),
      "weight_norm: Cannot register two weight_norm hooks on the same parameter weight");
  EXPECT_CONTAINS(thrown<ValueError>([&] { spectral_norm(*lin); }),
                  "spectral_norm: Cannot register two spectral_norm hooks on the same parameter "
                  "weight (Linear already has a weight_norm of 'weight')");
  EXPECT_CONTAINS(thrown<ValueError>([&] { remove_spectral_norm(*lin); }),
                  "remove_spectral_norm: spectral_norm of 'weight' not found in Linear");
  auto other = make<Linear>({.in_features = 4, .out_features = 3});
  EXPECT_CONTAINS(thrown<ValueError>([&] { remove_weight_norm(*other); }),
                  "remove_weight_norm: weight_norm of 'weight' not found in Linear");
  EXPECT_CONTAINS(thrown<ValueError>([&] { weight_norm(*other, "scale"); }),
                  "weight_norm: Linear has no parameter 'scale'");
  EXPECT_CONTAINS(
      thrown<ValueError>([&] { spectral_norm(*other, "weight", {.n_power_iterations = 0}); }),
      "Expected n_power_iterations to be positive, but got n_power_iterations=0");
}

}  // namespace
}  // namespace fabric::nn
