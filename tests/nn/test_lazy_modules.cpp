// torch 1.13's lazy modules (nn/lazy.h): the first call against the eager layer's bits (the
// values it draws after the same manual_seed, outputs, gradients, steps of optimizers built
// before the call) and against torch (reprs, and outputs, statistics, gradients and steps with
// torch's drawn values loaded), the handles keeping their identity, the errors before the call,
// bad input, dtype moves, load_state_dict into a layer not yet called, state_dict round trips.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "nn/lazy.h"
#include "nn/nn.h"
#include "optim/optim.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/expect_error.h"
#include "tests/common/same_bits.h"
#include "tests/nn/lazy_module_torch_rows.h"

namespace fabric::nn {
namespace {

using testing::LazyModuleRow;
using testing::LazyTensorBits;

Tensor from_bits(const LazyTensorBits& t) {
  std::vector<float> v;
  v.reserve(t.bits.size());
  for (uint32_t b : t.bits) v.push_back(std::bit_cast<float>(b));
  return from_vector(v, t.shape);
}

// The C++ twins of the fixture script's constructors, and the eager layer each becomes for the
// row's input.
struct Layers {
  std::function<std::shared_ptr<LazyModule>()> lazy;
  std::function<std::shared_ptr<Module>()> eager;
};

const Layers& layers(const std::string& name) {
  static const std::map<std::string, Layers> table = {
      {"linear",
       {[] { return make<LazyLinear>({.out_features = 3}); },
        [] { return make<Linear>({.in_features = 4, .out_features = 3}); }}},
      {"linear_no_bias_3d_input",
       {[] { return make<LazyLinear>({.out_features = 5, .bias = false}); },
        [] { return make<Linear>({.in_features = 4, .out_features = 5, .bias = false}); }}},
      {"conv1d_stride2_groups2",
       {[] {
          return make<LazyConv1d>({.out_channels = 4, .kernel_size = 3, .stride = 2, .groups = 2});
        },
        [] {
          return make<Conv1d>(
              {.in_channels = 2, .out_channels = 4, .kernel_size = 3, .stride = 2, .groups = 2});
        }}},
      {"conv2d_padding1",
       {[] { return make<LazyConv2d>({.out_channels = 4, .kernel_size = 3, .padding = 1}); },
        [] {
          return make<Conv2d>(
              {.in_channels = 3, .out_channels = 4, .kernel_size = 3, .padding = 1});
        }}},
      {"conv2d_unbatched_no_bias",
       {[] {
          return make<LazyConv2d>({.out_channels = 2, .kernel_size = {2, 3}, .bias = false});
        },
        [] {
          return make<Conv2d>(
              {.in_channels = 3, .out_channels = 2, .kernel_size = {2, 3}, .bias = false});
        }}},
      {"conv3d_stride121",
       {[] {
          return make<LazyConv3d>({.out_channels = 2, .kernel_size = 2, .stride = {1, 2, 1}});
        },
        [] {
          return make<Conv3d>(
              {.in_channels = 2, .out_channels = 2, .kernel_size = 2, .stride = {1, 2, 1}});
        }}},
      {"conv_transpose1d_stride2_out_pad1",
       {[] {
          return make<LazyConvTranspose1d>(
              {.out_channels = 4, .kernel_size = 3, .stride = 2, .output_padding = 1});
        },
        [] {
          return make<ConvTranspose1d>({.in_channels = 3,
                                        .out_channels = 4,
                                        .kernel_size = 3,
                                        .stride = 2,
                                        .output_padding = 1});
        }}},
      {"conv_transpose2d_groups2",
       {[] {
          return make<LazyConvTranspose2d>({.out_channels = 2, .kernel_size = 3, .groups = 2});
        },
        [] {
          return make<ConvTranspose2d>(
              {.in_channels = 4, .out_channels = 2, .kernel_size = 3, .groups = 2});
        }}},
      {"conv_transpose3d_unbatched",
       {[] { return make<LazyConvTranspose3d>({.out_channels = 2, .kernel_size = 2}); },
        [] {
          return make<ConvTranspose3d>({.in_channels = 2, .out_channels = 2, .kernel_size = 2});
        }}},
      {"batch_norm1d",
       {[] { return make<LazyBatchNorm1d>(); },
        [] { return make<BatchNorm1d>({.num_features = 3}); }}},
      {"batch_norm2d_cumulative",
       {[] { return make<LazyBatchNorm2d>({.momentum = std::nullopt}); },
        [] { return make<BatchNorm2d>({.num_features = 3, .momentum = std::nullopt}); }}},
      {"batch_norm3d_no_affine",
       {[] { return make<LazyBatchNorm3d>({.affine = false}); },
        [] { return make<BatchNorm3d>({.num_features = 2, .affine = false}); }}},
      {"instance_norm1d",
       {[] { return make<LazyInstanceNorm1d>(); },
        [] {
          return make<InstanceNorm1d>(
              {.num_features = 3, .affine = true, .track_running_stats = true});
        }}},
      {"instance_norm2d_no_affine",
       {[] { return make<LazyInstanceNorm2d>({.affine = false}); },
        [] { return make<InstanceNorm2d>({.num_features = 3, .track_running_stats = true}); }}},
      {"instance_norm3d_untracked",
       {[] { return make<LazyInstanceNorm3d>({.track_running_stats = false}); },
        [] { return make<InstanceNorm3d>({.num_features = 2, .affine = true}); }}},
  };
  return table.at(name);
}

// Loads torch's drawn values into parameters (a lazy module's: through the handles held before
// its first call).
void load_values(const std::vector<Tensor>& params, const std::vector<LazyTensorBits>& values) {
  ASSERT_EQ(params.size(), values.size());
  NoGradGuard no_grad;
  for (size_t i = 0; i < params.size(); ++i) {
    Tensor p = params[i];
    p.copy_(from_bits(values[i]));
  }
}

// torch's value within 2e-6 relative to max(1, |value|): fabric's GEMMs (oneDNN) sum in another
// order than torch's CPU BLAS, and some reductions round their last bit differently at one thread
// (README, Reproducibility), so the eager layers themselves agree with torch to the last few bits
// only; the lazy layer is held to the eager one's bits below.
void expect_near_torch(const Tensor& got, const LazyTensorBits& want, const std::string& what) {
  const Tensor w = from_bits(want);
  ASSERT_EQ(got.sizes(), w.sizes()) << what;
  const auto g = got.to(DType::float64).contiguous().to_vector<double>();
  const auto v = w.to(DType::float64).contiguous().to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i)
    ASSERT_LE(std::abs(g[i] - v[i]), 2e-6 * std::max(1.0, std::abs(v[i])))
        << what << " [" << i << "]";
}

void expect_near_torch(const Module::NamedTensors& got, const std::vector<LazyTensorBits>& want,
                       const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].first, want[i].name) << what;
    expect_near_torch(got[i].second, want[i], what + " " + want[i].name);
  }
}

void expect_same_entries(const Module::NamedTensors& got, const Module::NamedTensors& want,
                         const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].first, want[i].first) << what;
    expect_same_bits(got[i].second, want[i].second, what + " " + want[i].first);
  }
}

// One run of a fixture row's steps: the first call, torch's drawn values loaded (fabric draws
// from Philox, not torch's mt19937: README) and the layer called again (a norm, whose values no
// generator draws, keeps its first output: a second call would update its statistics twice),
// backward of sum(y * g_out), one SGD and one Adam step (on a second layer).
struct RowRun {
  Tensor y;
  Module::NamedTensors state, grads, after_sgd, after_adam;
  int64_t num_batches_tracked = -1;
};

template <class Make>
RowRun run_row(const LazyModuleRow& row, Make make_layer,
               const std::function<void(Module&)>& after_made = {}) {
  RowRun r;
  const Tensor x = from_bits(row.x);
  manual_seed(row.seed);
  std::shared_ptr<Module> m = make_layer();
  if (after_made) after_made(*m);
  std::shared_ptr<Module> adam_m = make_layer();
  const std::vector<Tensor> params = m->parameters();
  const std::vector<Tensor> adam_params = adam_m->parameters();
  std::unique_ptr<optim::SGD> sgd;
  std::unique_ptr<optim::Adam> adam;
  if (!params.empty()) {  // a lazy layer's: built over the placeholders, as torch allows
    sgd = std::make_unique<optim::SGD>(params, optim::SGDOptions{.lr = 0.1});
    adam = std::make_unique<optim::Adam>(adam_params, optim::AdamOptions{.lr = 0.01});
  }
  r.y = (*m)(x);
  Tensor adam_y = (*adam_m)(x);
  if (m->buffers().empty()) {
    load_values(params, row.init);
    load_values(adam_params, row.init);
    r.y = (*m)(x);
    adam_y = (*adam_m)(x);
  } else {
    // A norm's values (ones and zeros) are torch's already; the first call saved them for
    // backward, so they are not written again.
    for (size_t i = 0; i < params.size(); ++i)
      expect_same_bits(params[i], from_bits(row.init[i]), "initial value");
  }
  for (const auto& [k, v] : m->state_dict())
    if (v.is_floating_point()) r.state.emplace_back(k, v.clone());
  if (!params.empty()) {
    const Tensor g_out = from_bits(row.g_out);
    sum(mul(r.y, g_out)).backward();
    sum(mul(adam_y, g_out)).backward();
    for (const auto& [k, p] : m->named_parameters()) r.grads.emplace_back(k, p.grad());
    sgd->step();
    adam->step();
    for (const auto& [k, p] : m->named_parameters()) r.after_sgd.emplace_back(k, p.clone());
    for (const auto& [k, p] : adam_m->named_parameters()) r.after_adam.emplace_back(k, p.clone());
    // The optimizers hold the very handles the lazy layer materialized.
    for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(params[i].is_same(m->parameters()[i]));
  }
  if (const Tensor* counter = m->state_dict().find("num_batches_tracked"))
    r.num_batches_tracked = counter->item<int64_t>();
  return r;
}

TEST(LazyModules, FirstCallAsTorchAndAsTheEagerLayer) {
  for (const LazyModuleRow& row : testing::lazy_module_rows()) {
    SCOPED_TRACE(row.name);
    const Layers& l = layers(row.name);
    std::string before, after;
    const RowRun lazy = run_row(row, l.lazy, [&](Module& m) { before = m.str(); });
    const RowRun eager = run_row(row, l.eager);
    // The lazy layer is the eager one, bit for bit.
    expect_same_bits(lazy.y, eager.y, "output vs eager");
    expect_same_entries(lazy.state, eager.state, "state_dict vs eager");
    expect_same_entries(lazy.grads, eager.grads, "grad vs eager");
    expect_same_entries(lazy.after_sgd, eager.after_sgd, "after SGD vs eager");
    expect_same_entries(lazy.after_adam, eager.after_adam, "after Adam vs eager");
    // And torch's lazy layer, to the eager layers' agreement with torch.
    expect_near_torch(lazy.y, row.y, "output");
    expect_near_torch(lazy.state, row.state, "state_dict");
    expect_near_torch(lazy.grads, row.grads, "grad");
    expect_near_torch(lazy.after_sgd, row.after_sgd, "after SGD");
    expect_near_torch(lazy.after_adam, row.after_adam, "after Adam");
    EXPECT_EQ(lazy.num_batches_tracked, row.num_batches_tracked);
    EXPECT_EQ(before, row.repr_before);
    manual_seed(row.seed);
    auto m = l.lazy();
    (*m)(from_bits(row.x));
    EXPECT_EQ(m->str(), row.repr_after);
  }
}

// The first call draws what the eager layer's constructor draws after the same seed (torch's
// initialize_parameters runs the eager reset_parameters), in the order it draws them.
TEST(LazyModules, DrawsAsTheEagerLayer) {
  struct Case {
    std::function<std::shared_ptr<LazyModule>()> lazy;
    std::function<std::shared_ptr<Module>()> eager;
    Shape x;
  };
  const std::vector<Case> cases = {
      {[] { return make<LazyLinear>({.out_features = 3}); },
       [] { return make<Linear>({.in_features = 5, .out_features = 3}); },
       {2, 5}},
      {[] { return make<LazyConv1d>({.out_channels = 4, .kernel_size = 3, .groups = 2}); },
       [] {
         return make<Conv1d>({.in_channels = 6, .out_channels = 4, .kernel_size = 3, .groups = 2});
       },
       {6, 7}},
      {[] {
         return make<LazyConv2d>({.out_channels = 2, .kernel_size = {2, 3}});
       },
       [] {
         return make<Conv2d>({.in_channels = 3, .out_channels = 2, .kernel_size = {2, 3}});
       },
       {1, 3, 4, 4}},
      {[] { return make<LazyConv3d>({.out_channels = 2, .kernel_size = 2, .bias = false}); },
       [] {
         return make<Conv3d>(
             {.in_channels = 3, .out_channels = 2, .kernel_size = 2, .bias = false});
       },
       {1, 3, 3, 3, 3}},
      {[] { return make<LazyConvTranspose1d>({.out_channels = 4, .kernel_size = 3}); },
       [] {
         return make<ConvTranspose1d>({.in_channels = 2, .out_channels = 4, .kernel_size = 3});
       },
       {1, 2, 5}},
      {[] { return make<LazyConvTranspose2d>({.out_channels = 4, .kernel_size = 2, .groups = 2}); },
       [] {
         return make<ConvTranspose2d>(
             {.in_channels = 6, .out_channels = 4, .kernel_size = 2, .groups = 2});
       },
       {6, 3, 3}},
      {[] {
         return make<LazyConvTranspose3d>({.out_channels = 2, .kernel_size = {1, 2, 2}});
       },
       [] {
         return make<ConvTranspose3d>(
             {.in_channels = 3, .out_channels = 2, .kernel_size = {1, 2, 2}});
       },
       {1, 3, 2, 2, 2}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    const Tensor x = ones(cases[i].x);
    manual_seed(100 + i);
    auto eager = cases[i].eager();
    const GeneratorState after_eager = default_generator().state();
    manual_seed(100 + i);
    auto lazy = cases[i].lazy();
    (*lazy)(x);
    EXPECT_EQ(default_generator().state(), after_eager);
    const auto want = eager->named_parameters();
    const auto got = lazy->named_parameters();
    ASSERT_EQ(got.size(), want.size());
    for (size_t j = 0; j < got.size(); ++j) {
      EXPECT_EQ(got[j].first, want[j].first);
      expect_same_bits(got[j].second, want[j].second, want[j].first);
    }
    EXPECT_EQ(lazy->str(), eager->str());
    expect_same_bits((*lazy)(x), (*eager)(x), "output");
  }
}

// The placeholders follow Module::to, and the values are drawn in that dtype (as torch's
// LazyLinear(2).double() draws in float64): the eager layer built in float64 after the same seed.
TEST(LazyModules, MaterializesInTheDtypeItWasMovedTo) {
  manual_seed(7);
  auto m = make<LazyLinear>({.out_features = 2});
  m->to(DType::float64);
  EXPECT_TRUE(m->has_uninitialized_params());
  EXPECT_EQ(m->weight.dtype(), DType::float64);
  const Tensor x = div(sub(arange(6, DType::float64).reshape({2, 3}), 2), 3);
  const Tensor y = (*m)(x);
  const DType before = default_float_dtype();
  set_default_float_dtype(DType::float64);
  manual_seed(7);
  auto eager = make<Linear>({.in_features = 3, .out_features = 2});
  set_default_float_dtype(before);
  expect_same_bits(m->weight, eager->weight, "weight");
  expect_same_bits(m->bias, eager->bias, "bias");
  expect_same_bits(y, (*eager)(x), "output");
}

TEST(LazyModules, HandlesKeepTheirIdentity) {
  auto m = make<LazyLinear>({.out_features = 3});
  const Tensor w = m->weight;
  const Tensor from_params = m->parameters()[0];
  const Tensor from_get = m->get_parameter("weight");
  (*m)(ones({2, 4}));
  EXPECT_TRUE(w.is_same(m->weight));
  EXPECT_TRUE(from_params.is_same(w));
  EXPECT_TRUE(from_get.is_same(w));
  EXPECT_EQ(w.sizes(), (Shape{3, 4}));
  EXPECT_TRUE(w.requires_grad());
  EXPECT_TRUE(is_leaf(w));
  EXPECT_FALSE(is_lazy(w));
  // state_dict shares the materialized storage.
  EXPECT_EQ(m->state_dict().at("weight").data_ptr(), w.data_ptr());
  // A frozen placeholder stays frozen.
  auto frozen = make<LazyLinear>({.out_features = 3});
  frozen->requires_grad_(false);
  (*frozen)(ones({1, 2}));
  EXPECT_FALSE(frozen->weight.requires_grad());
}

TEST(LazyModules, BeforeTheFirstCall) {
  manual_seed(1);
  const GeneratorState before = default_generator().state();
  auto m = make<LazyLinear>({.out_features = 3});
  EXPECT_EQ(default_generator().state(), before);  // building draws nothing, as torch's
  EXPECT_TRUE(m->has_uninitialized_params());
  EXPECT_FALSE(m->materialized());
  EXPECT_EQ(m->eager_layer(), nullptr);
  EXPECT_EQ(m->type_name(), "LazyLinear");
  EXPECT_TRUE(is_lazy(m->weight));
  EXPECT_TRUE(is_lazy(m->bias));
  // Registered under Linear's names; state_dict holds the placeholders (torch's too).
  const StateDict sd = m->state_dict();
  EXPECT_EQ(sd.keys(), (std::vector<std::string>{"weight", "bias"}));
  EXPECT_TRUE(is_lazy(sd.at("weight")));
  EXPECT_EQ(m->named_parameters().size(), 2u);
  // forward(x) skips the initialising pre-hook: the lazy module's error, not a crash.
  const std::string msg = thrown<ValueError>([&] { m->forward(ones({2, 4})); });
  EXPECT_CONTAINS(msg, "LazyLinear: Can't use the uninitialized parameters of a lazy module");
  EXPECT_CONTAINS(msg, "dry-run");
  EXPECT_TRUE(m->has_uninitialized_params());
  // A placeholder state does not load into an eager layer.
  auto eager = make<Linear>({.in_features = 4, .out_features = 3});
  EXPECT_CONTAINS(thrown<ValueError>([&] { eager->load_state_dict(sd); }),
                  "size mismatch for weight");
}

TEST(LazyModules, UserPreHooksSeeTheMaterializedParameters) {
  auto m = make<LazyLinear>({.out_features = 3});
  Shape seen;
  m->register_forward_pre_hook([&](Module&, const Tensor&) {
    seen = m->weight.sizes();
    return Tensor();
  });
  (*m)(ones({2, 5}));
  EXPECT_EQ(seen, (Shape{3, 5}));
}

TEST(LazyModules, BadInputGivesTheEagerError) {
  auto lin = make<LazyLinear>({.out_features = 3});
  EXPECT_THROW((*lin)(scalar_tensor(1.0)), Error);
  EXPECT_TRUE(lin->has_uninitialized_params());  // nothing materialized by a refused call
  (*lin)(ones({2}));                             // 1-D is fine: in_features 2
  EXPECT_EQ(lin->weight.sizes(), (Shape{3, 2}));

  auto bn2 = make<LazyBatchNorm2d>({});
  auto eager_bn2 = make<BatchNorm2d>({.num_features = 3});
  const std::string want = thrown<ValueError>([&] { (*eager_bn2)(ones({2, 3})); });
  EXPECT_EQ(thrown<ValueError>([&] { (*bn2)(ones({2, 3})); }), want);
  EXPECT_TRUE(bn2->has_uninitialized_params());

  auto bn1 = make<LazyBatchNorm1d>({});
  EXPECT_CONTAINS(thrown<ValueError>([&] { (*bn1)(ones({3})); }),
                  "BatchNorm1d: expected 2D or 3D input (got 1D input");

  auto conv = make<LazyConv2d>({.out_channels = 4, .kernel_size = 3});
  auto eager_conv = make<Conv2d>({.in_channels = 1, .out_channels = 4, .kernel_size = 3});
  const std::string want_conv = thrown<ShapeError>([&] { (*eager_conv)(ones({5, 5})); });
  EXPECT_EQ(thrown<ShapeError>([&] { (*conv)(ones({5, 5})); }), want_conv);
  EXPECT_TRUE(conv->has_uninitialized_params());

  auto in3 = make<LazyInstanceNorm3d>({});
  EXPECT_CONTAINS(thrown<ValueError>([&] { (*in3)(ones({2, 3, 4})); }), "InstanceNorm3d");

  // Channels the options cannot take: the eager layer's check, when the size is known.
  auto grouped = make<LazyConv1d>({.out_channels = 4, .kernel_size = 1, .groups = 2});
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    (*grouped)(ones({1, 3, 5}));
                  }),
                  "must both be divisible by groups (2)");
}

TEST(LazyModules, OptionsAreCheckedWhenMade) {
  EXPECT_CONTAINS(thrown<ValueError>([] { make<LazyConv2d>({.out_channels = 4}); }),
                  "kernel_size must be positive");
  EXPECT_CONTAINS(thrown<ValueError>([] { make<LazyLinear>({.out_features = -1}); }),
                  "out_features must be >= 0");
  EXPECT_CONTAINS(thrown<ValueError>([] { make<LazyBatchNorm1d>({.eps = -1}); }),
                  "eps must be >= 0");
}

// torch's _lazy_load_hook: the checkpoint's shapes, then its values; the first call then draws
// nothing and keeps them.
TEST(LazyModules, LoadStateDictMaterializesFromTheCheckpoint) {
  manual_seed(3);
  auto eager = make<Linear>({.in_features = 4, .out_features = 3});
  auto m = make<LazyLinear>({.out_features = 3});
  const Tensor held = m->weight;
  const LoadResult r = m->load_state_dict(eager->state_dict());
  EXPECT_TRUE(r.missing_keys.empty() && r.unexpected_keys.empty());
  EXPECT_FALSE(m->has_uninitialized_params());
  EXPECT_TRUE(held.is_same(m->weight));
  expect_same_bits(m->weight, eager->weight, "weight");
  expect_same_bits(m->bias, eager->bias, "bias");
  EXPECT_EQ(m->type_name(), "LazyLinear");  // the class changes at the first call, as torch's

  const GeneratorState before = default_generator().state();
  const Tensor x = randn({2, 4});
  const GeneratorState after_x = default_generator().state();
  expect_same_bits((*m)(x), (*eager)(x), "output");
  EXPECT_EQ(default_generator().state(), after_x);
  EXPECT_NE(before, after_x);
  expect_same_bits(m->weight, eager->weight, "weight after the call");
  EXPECT_EQ(m->str(), "Linear(in_features=4, out_features=3, bias=True)");
}

TEST(LazyModules, LoadStateDictIntoLazyNorms) {
  auto eager = make<BatchNorm1d>({.num_features = 2});
  (*eager)(from_vector<float>({1, 2, 3, 5, 8, 13}, {3, 2}));
  StateDict sd = eager->state_dict();
  sd.erase("num_batches_tracked");  // an old checkpoint: loads as 0, as the eager layer's
  auto m = make<LazyBatchNorm1d>({});
  m->load_state_dict(sd);
  EXPECT_FALSE(m->has_uninitialized_params());
  expect_same_bits(m->running_mean, eager->running_mean, "running_mean");
  expect_same_bits(m->running_var, eager->running_var, "running_var");
  EXPECT_EQ(m->num_batches_tracked.item<int64_t>(), 0);
  m->eval();
  eager->eval();
  const Tensor x = from_vector<float>({-1, 4, 2, 0.5}, {2, 2});
  expect_same_bits((*m)(x), (*eager)(x), "eval output");
}

TEST(LazyModules, PartialAndLazyStates) {
  // Strict: the placeholders missing from the state are missing keys.
  auto m = make<LazyLinear>({.out_features = 3});
  StateDict only_weight;
  only_weight.insert("weight", ones({3, 4}));
  EXPECT_CONTAINS(thrown<ValueError>([&] { m->load_state_dict(only_weight); }),
                  "Missing key(s) in state_dict (1): \"bias\"");
  // Another lazy module's state gives no shapes: both stay lazy.
  auto other = make<LazyLinear>({.out_features = 3});
  auto fresh = make<LazyLinear>({.out_features = 3});
  fresh->load_state_dict(other->state_dict());
  EXPECT_TRUE(fresh->has_uninitialized_params());
  (*fresh)(ones({1, 6}));
  EXPECT_EQ(fresh->weight.sizes(), (Shape{3, 6}));
}

TEST(LazyModules, StateDictRoundTrip) {
  manual_seed(11);
  auto conv = make<LazyConv2d>({.out_channels = 3, .kernel_size = 2});
  const Tensor x = randn({2, 2, 4, 4});
  const Tensor y = (*conv)(x);
  const StateDict sd = conv->state_dict();
  EXPECT_EQ(sd.keys(), (std::vector<std::string>{"weight", "bias"}));
  // Into the eager layer it became.
  auto eager = make<Conv2d>({.in_channels = 2, .out_channels = 3, .kernel_size = 2});
  eager->load_state_dict(sd);
  expect_same_bits((*eager)(x), y, "eager output");
  // Back into another lazy one, not yet called.
  auto again = make<LazyConv2d>({.out_channels = 3, .kernel_size = 2});
  again->load_state_dict(eager->state_dict());
  expect_same_bits((*again)(x), y, "reloaded output");
  EXPECT_EQ(again->str(), eager->str());
}

TEST(LazyModules, AfterTheFirstCallItIsTheEagerLayer) {
  manual_seed(5);
  auto m = make<LazyLinear>({.out_features = 2});
  const Tensor x = randn({3, 4});
  (*m)(x);
  EXPECT_EQ(m->type_name(), "Linear");
  EXPECT_TRUE(m->materialized());
  auto* eager = dynamic_cast<Linear*>(m->eager_layer());
  ASSERT_NE(eager, nullptr);
  EXPECT_TRUE(eager->weight.is_same(m->weight));
  EXPECT_EQ(eager->options().in_features, 4);
  EXPECT_FALSE(m->has_forward_hooks());  // the initialising pre-hook is gone, as torch's
  // Shape errors are the eager layer's.
  EXPECT_THROW((*m)(ones({3, 5})), Error);
  // forward(x) works now; to(dtype) keeps the handles and the eager layer follows.
  const Tensor w = m->weight;
  m->to(DType::float64);
  EXPECT_TRUE(w.is_same(m->weight));
  EXPECT_EQ(m->forward(x.to(DType::float64)).dtype(), DType::float64);
  // Inside a container: materialized by the container's call, the reprs the eager ones.
  auto seq = make<Sequential>(
      {make<LazyLinear>({.out_features = 8}), make<ReLU>(), make<LazyLinear>({.out_features = 2})});
  EXPECT_EQ((*seq)(ones({5, 3})).sizes(), (Shape{5, 2}));
  EXPECT_EQ(seq->num_parameters(), 3 * 8 + 8 + 8 * 2 + 2);
  EXPECT_EQ(seq->str(),
            "Sequential(\n"
            "  (0): Linear(in_features=3, out_features=8, bias=True)\n"
            "  (1): ReLU()\n"
            "  (2): Linear(in_features=8, out_features=2, bias=True)\n"
            ")");
}

TEST(LazyModules, NormsFollowTrainAndEval) {
  auto m = make<LazyBatchNorm1d>({});
  const Tensor x = from_vector<float>({1, 2, 3, 5, 8, 13, 21, 34}, {4, 2});
  (*m)(x);
  const Tensor mean_after_train = m->running_mean.clone();
  m->eval();
  auto eager = make<BatchNorm1d>({.num_features = 2});
  eager->load_state_dict(m->state_dict());
  eager->eval();
  expect_same_bits((*m)(x), (*eager)(x), "eval output");
  expect_same_bits(m->running_mean, mean_after_train, "running_mean untouched in eval");
}

// torch 1.13 takes num_features from dim 1 even for unbatched input and then refuses its own
// statistics' size; the channel dim (0) is taken here, which gives the eager layer's result.
TEST(LazyModules, UnbatchedInstanceNormTakesTheChannelDim) {
  auto m = make<LazyInstanceNorm1d>({});
  const Tensor x = from_vector<float>({1, 2, 4, 8, -1, 3, 0, 2, 5, 5, 1, 9}, {3, 4});
  const Tensor y = (*m)(x);
  EXPECT_EQ(m->weight.sizes(), (Shape{3}));
  auto eager =
      make<InstanceNorm1d>({.num_features = 3, .affine = true, .track_running_stats = true});
  expect_same_bits(y, (*eager)(x), "output");
  expect_same_bits(m->running_mean, eager->running_mean, "running_mean");
}

}  // namespace
}  // namespace fabric::nn
