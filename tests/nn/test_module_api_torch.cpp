// Module API details against torch 1.13: a Sequential runs the children register_module adds
// (torch's add_module), hooks run around multi-input modules (weight_norm on Bilinear trains),
// named_children/children/apply list a shared child once, a non-strict load reports unexpected keys
// in torch's order, printouts put extra_repr on its own lines beside children, and a state that
// is a view of the parameter itself (its transpose) loads.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "autograd/grad_mode.h"
#include "nn/nn.h"
#include "optim/sgd.h"

namespace fabric::nn {
namespace {

TEST(ModuleApiTorch, SequentialRunsChildrenAddedByName) {
  auto s = make<Sequential>(Sequential::Options{});
  auto scale = s->register_module<Linear>(
      "scale", LinearOptions{.in_features = 2, .out_features = 2, .bias = false});
  {
    fabric::NoGradGuard no_grad;
    scale->weight.copy_(from_vector<float>({-0.5f, -0.13f, 0.24f, 0.61f}, {2, 2}));
  }
  s->register_module("act", std::make_shared<ReLU>());
  EXPECT_EQ(s->size(), 2u);
  const Tensor y = (*s)(from_vector<float>({0.5f, 0.87f}, {1, 2}));
  EXPECT_EQ(y.to_vector<float>(),
            relu(linear(from_vector<float>({0.5f, 0.87f}, {1, 2}), scale->weight, Tensor()))
                .to_vector<float>());
  s->push_back(std::make_shared<Tanh>());  // torch's append: named str(len) = "2"
  std::vector<std::string> names;
  for (const auto& [n, m] : s->named_children()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"scale", "act", "2"}));
}

// weight_norm recomputes the weight in a pre-hook: through operator()(x1, x2) it runs every call,
// so a second step trains (it raised "backward ... a second time" when the hook never ran).
TEST(ModuleApiTorch, HooksRunAroundAMultiInputModule) {
  auto b = make<Bilinear>({.in1_features = 2, .in2_features = 3, .out_features = 2});
  int calls = 0;
  b->register_forward_pre_hook([&](Module&, const Tensor& x) {
    ++calls;
    return x;
  });
  weight_norm(*b);
  optim::SGD opt(b->parameters(), {.lr = 0.5});
  for (int step = 0; step < 2; ++step) {
    opt.zero_grad();
    sum((*b)(ones({1, 2}), ones({1, 3}))).backward();
    opt.step();
  }
  EXPECT_EQ(calls, 2);
  auto loss = make<MSELoss>(MSELossOptions{});
  int loss_calls = 0;
  loss->register_forward_hook([&](Module&, const Tensor&, const Tensor& out) {
    ++loss_calls;
    return out;
  });
  (*loss)(ones({2}), zeros({2}));
  EXPECT_EQ(loss_calls, 1);
}

// A key whose first name after the module's prefix is one of its own parameters or buffers is not
// unexpected (torch's local_state rule), strict or not: bitsandbytes' extras load into a Linear.
TEST(ModuleApiTorch, KeysUnderAParameterNameAreNotUnexpected) {
  auto l = make<Linear>({.in_features = 2, .out_features = 3});
  StateDict sd = l->state_dict();
  sd.insert("weight.absmax", ones({1}));
  sd.insert("bias.", ones({1}));
  sd.insert("other", ones({1}));
  const LoadResult r = l->load_state_dict(sd, /*strict=*/false);
  EXPECT_EQ(r.unexpected_keys, (std::vector<std::string>{"other"}));
  sd.erase("other");
  EXPECT_NO_THROW(l->load_state_dict(sd));
}

// A hook returning an undefined tensor changes nothing, as torch's hook returning None.
TEST(ModuleApiTorch, AHookReturningNothingKeepsTheValue) {
  auto lin = make<Linear>({.in_features = 2, .out_features = 3});
  lin->register_forward_pre_hook([](Module&, const Tensor&) { return Tensor(); });
  lin->register_forward_hook([](Module&, const Tensor&, const Tensor&) { return Tensor(); });
  const Tensor y = (*lin)(ones({1, 2}));
  ASSERT_TRUE(y.defined());
  EXPECT_EQ(y.sizes(), (Shape{1, 3}));
}

TEST(ModuleApiTorch, ASharedChildIsListedAndAppliedOnce) {
  auto l = make<Linear>({.in_features = 2, .out_features = 2});
  auto list = make<ModuleList>(ModuleList::Options{l, l});
  int calls = 0;
  list->apply([&](Module&) { ++calls; });
  EXPECT_EQ(calls, 2);  // l once, the list once
  EXPECT_EQ(list->children().size(), 1u);
  EXPECT_EQ(list->named_children().size(), 1u);
  EXPECT_EQ(list->size(), 2u);  // the list itself holds it twice
  EXPECT_EQ(list->state_dict().size(), 4u);
}

TEST(ModuleApiTorch, UnexpectedKeysComeInTorchsOrder) {
  auto root =
      make<Sequential>(Sequential::Options{make<Linear>({.in_features = 1, .out_features = 1}),
                                           make<Linear>({.in_features = 1, .out_features = 1})});
  StateDict sd = root->state_dict();
  for (const char* k : {"1.extra", "0.extra", "extra"}) sd.insert(k, zeros({1}));
  EXPECT_EQ(root->load_state_dict(sd, /*strict=*/false).unexpected_keys,
            (std::vector<std::string>{"extra", "0.extra", "1.extra"}));
}

class WithExtra : public Module {
 public:
  WithExtra() { register_module<Linear>("fc", LinearOptions{.in_features = 2, .out_features = 2}); }
  std::string type_name() const override { return "WithExtra"; }
  std::string extra_repr() const override { return "width=2"; }
};
class Multi : public Module {
 public:
  std::string type_name() const override { return "Multi"; }
  std::string extra_repr() const override { return "a=1\nb=2"; }
};

TEST(ModuleApiTorch, ExtraReprBesideChildrenPrintsAsTorch) {
  auto s = make<Sequential>(
      Sequential::Options{std::make_shared<WithExtra>(), std::make_shared<Multi>()});
  EXPECT_EQ(s->str(),
            "Sequential(\n  (0): WithExtra(\n    width=2\n    (fc): Linear(in_features=2, "
            "out_features=2, bias=True)\n  )\n  (1): Multi(\n    a=1\n    b=2\n  )\n)");
}

TEST(ModuleApiTorch, LoadingAViewOfTheParameterItselfWorks) {
  auto l = make<Linear>({.in_features = 3, .out_features = 3});
  const Tensor before = l->weight.detach().clone();
  StateDict sd = l->state_dict();
  sd.insert("weight", l->weight.detach().t());  // the parameter's own transpose
  l->load_state_dict(sd);
  EXPECT_EQ(l->weight.to_vector<float>(), before.t().contiguous().to_vector<float>());
}

}  // namespace
}  // namespace fabric::nn
