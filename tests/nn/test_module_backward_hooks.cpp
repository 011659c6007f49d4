// Module full backward hooks against torch 1.13's register_full_backward_hook (and torch 2.x's
// register_full_backward_pre_hook, whose replaced grad_output is checked against torch 1.13's
// backward from that gradient): the values the hooks see, replacements, removal, no-grad, calls
// under activation checkpointing and with forward hooks. The values come from torch 1.13 on the
// same weights and inputs (all exact in float32, so any summation order gives these bits).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "nn/nn.h"
#include "tensor/factory.h"
#include "tests/common/expect_error.h"

namespace fabric::nn {
namespace {

using Floats = std::vector<float>;

Floats vals(const Tensor& t) { return t.contiguous().to(DType::float32).to_vector<float>(); }

const Floats kW = {0.5f, -1.f, 0.25f, 1.5f, 0.75f, -0.5f};
const Floats kB = {0.125f, -0.25f};
const Floats kX = {1.f, 2.f, -1.f, 0.5f, -0.5f, 2.f};
const Floats kC = {1.f, -2.f, 0.5f, 3.f};  // the loss is sum(y * C)

Tensor x_input(bool requires_grad = true) {
  return from_vector<float>(kX, {2, 3}).set_requires_grad(requires_grad);
}
Tensor c_weights() { return from_vector<float>(kC, {2, 2}); }

std::shared_ptr<Linear> make_linear(const Floats& w, const Floats& b, int64_t in, int64_t out) {
  auto l = make<Linear>({.in_features = in, .out_features = out, .bias = !b.empty()});
  NoGradGuard no_grad;
  l->weight.copy_(from_vector<float>(w, {out, in}));
  if (!b.empty()) l->bias.copy_(from_vector<float>(b, {out}));
  return l;
}
std::shared_ptr<Linear> linear_3_2() { return make_linear(kW, kB, 3, 2); }

// What one hook call saw: the module's tag, grad_input and grad_output (undefined entries as
// "None", which the values of a defined entry never equal).
struct Seen {
  std::string tag;
  std::vector<Floats> grad_input, grad_output;
  std::vector<bool> input_defined, output_defined;
};

struct Recorder {
  std::vector<Seen> calls;
  Module::BackwardHook hook(std::string tag) {
    return [this, tag](Module&, const std::vector<Tensor>& gi, const std::vector<Tensor>& go) {
      Seen s{tag, {}, {}, {}, {}};
      for (const Tensor& g : gi) {
        s.input_defined.push_back(g.defined());
        s.grad_input.push_back(g.defined() ? vals(g) : Floats{});
      }
      for (const Tensor& g : go) {
        s.output_defined.push_back(g.defined());
        s.grad_output.push_back(g.defined() ? vals(g) : Floats{});
      }
      calls.push_back(std::move(s));
      return std::vector<Tensor>{};
    };
  }
};

// torch: hook(lin, grad_input, grad_output) sees d(loss)/d(x) and d(loss)/d(y), once.
TEST(ModuleBackwardHooks, LinearHookSeesTorchGradients) {
  auto lin = linear_3_2();
  Recorder rec;
  lin->register_full_backward_hook(rec.hook("lin"));
  Tensor x = x_input();
  sum((*lin)(x)*c_weights()).backward();
  ASSERT_EQ(rec.calls.size(), 1u);
  const Floats want_gi = {-2.5f, -2.5f, 1.25f, 4.75f, 1.75f, -1.375f};
  EXPECT_EQ(rec.calls[0].grad_input, (std::vector<Floats>{want_gi}));
  EXPECT_EQ(rec.calls[0].grad_output, (std::vector<Floats>{kC}));
  EXPECT_EQ(vals(x.grad()), want_gi);
  EXPECT_EQ(vals(lin->weight.grad()), (Floats{1.25f, 1.75f, 0.f, -0.5f, -5.5f, 8.f}));
  EXPECT_EQ(vals(lin->bias.grad()), (Floats{1.5f, 1.f}));
}

// A replacement grad_input is what flows on upstream (x0 * 3 -> lin); the parameters keep the
// gradients of the unchanged grad_output.
TEST(ModuleBackwardHooks, ReplacedGradInputFlowsUpstreamParamsUnchanged) {
  auto lin = linear_3_2();
  lin->register_full_backward_hook(
      [](Module&, const std::vector<Tensor>& gi, const std::vector<Tensor>&) {
        return std::vector<Tensor>{gi[0] * 2.0};
      });
  Tensor x0 = x_input();
  sum((*lin)(x0 * 3.0) * c_weights()).backward();
  EXPECT_EQ(vals(x0.grad()), (Floats{-15.f, -15.f, 7.5f, 28.5f, 10.5f, -8.25f}));
  EXPECT_EQ(vals(lin->weight.grad()), (Floats{3.75f, 5.25f, 0.f, -1.5f, -16.5f, 24.f}));
  EXPECT_EQ(vals(lin->bias.grad()), (Floats{1.5f, 1.f}));
}

// torch's (None,): the input gets no gradient at all, the parameters theirs. (A leaf input here:
// an undefined gradient reaching a recorded op's node is not handled by the engine yet.)
TEST(ModuleBackwardHooks, UndefinedReplacementSendsNothing) {
  auto lin = linear_3_2();
  lin->register_full_backward_hook(
      [](Module&, const std::vector<Tensor>&, const std::vector<Tensor>&) {
        return std::vector<Tensor>{Tensor()};
      });
  Tensor x = x_input();
  sum((*lin)(x)*c_weights()).backward();
  EXPECT_FALSE(x.grad().defined());
  EXPECT_EQ(vals(lin->weight.grad()), (Floats{1.25f, 1.75f, 0.f, -0.5f, -5.5f, 8.f}));
}

TEST(ModuleBackwardHooks, WrongGradInputCountRaisesTorchMessage) {
  auto lin = linear_3_2();
  lin->register_full_backward_hook(
      [](Module&, const std::vector<Tensor>& gi, const std::vector<Tensor>&) {
        return std::vector<Tensor>{gi[0], Tensor()};
      });
  Tensor y = (*lin)(x_input());
  EXPECT_CONTAINS(thrown<Error>([&] { sum(y).backward(); }),
                  "Backward hook returned an invalid number of grad_input, got 2, but expected 1");
}

// torch 2.x's pre-hook: its grad_output (C * 0.5 + 1) is what the module's backward gets, so x,
// weight and bias get the gradients of torch 1.13's y.backward(C * 0.5 + 1); the hook after it
// sees the replacement too.
TEST(ModuleBackwardHooks, PreHookReplacementChangesParamGrads) {
  auto lin = linear_3_2();
  int pre_calls = 0;
  lin->register_full_backward_pre_hook([&](Module& m, const std::vector<Tensor>& go) {
    ++pre_calls;
    EXPECT_EQ(&m, lin.get());
    EXPECT_EQ(go.size(), 1u);
    EXPECT_EQ(vals(go[0]), kC);
    return std::vector<Tensor>{go[0] * 0.5 + 1.0};
  });
  // An empty result leaves the replacement in place.
  lin->register_full_backward_pre_hook(
      [](Module&, const std::vector<Tensor>&) { return std::vector<Tensor>{}; });
  Recorder rec;
  lin->register_full_backward_hook(rec.hook("lin"));
  Tensor x = x_input();
  sum((*lin)(x)*c_weights()).backward();
  EXPECT_EQ(pre_calls, 1);
  const Floats replaced = {1.5f, 0.f, 1.25f, 2.5f};
  const Floats want_gi = {0.75f, -1.5f, 0.375f, 4.375f, 0.625f, -0.9375f};
  ASSERT_EQ(rec.calls.size(), 1u);
  EXPECT_EQ(rec.calls[0].grad_output, (std::vector<Floats>{replaced}));
  EXPECT_EQ(rec.calls[0].grad_input, (std::vector<Floats>{want_gi}));
  EXPECT_EQ(vals(x.grad()), want_gi);
  EXPECT_EQ(vals(lin->weight.grad()), (Floats{2.125f, 2.375f, 1.f, 1.25f, -1.25f, 5.f}));
  EXPECT_EQ(vals(lin->bias.grad()), (Floats{2.75f, 2.5f}));
}

TEST(ModuleBackwardHooks, WrongGradOutputCountRaises) {
  auto lin = linear_3_2();
  lin->register_full_backward_pre_hook([](Module&, const std::vector<Tensor>& go) {
    return std::vector<Tensor>{go[0], go[0]};
  });
  Tensor y = (*lin)(x_input());
  EXPECT_CONTAINS(thrown<Error>([&] { sum(y).backward(); }),
                  "Backward pre hook returned an invalid number of grad_output, got 2, but "
                  "expected 1");
}

std::shared_ptr<Sequential> small_sequential() {
  auto l1 = make_linear({0.5f, -1.f, 0.25f, 1.5f, 0.75f, -0.5f, -0.25f, 0.5f, 1.f, 1.f, 1.f, -1.f},
                        {0.125f, -0.25f, 0.5f, -4.f}, 3, 4);
  auto l2 = make_linear({1.f, -0.5f, 0.25f, 2.f, -1.f, 0.5f, 1.5f, -0.75f}, {0.5f, -0.5f}, 4, 2);
  return make<Sequential>(Sequential::Options{l1, std::make_shared<ReLU>(), l2});
}

void hook_sequential(Sequential& s, Recorder& rec) {
  int i = 0;
  for (const auto& child : s.children())
    child->register_full_backward_hook(rec.hook(std::to_string(i++)));
  s.register_full_backward_hook(rec.hook("seq"));
}

// torch 1.13's calls for Sequential(Linear(3, 4), ReLU(), Linear(4, 2)) with a hook on each child
// and on the Sequential: backward order, each once, with these values.
void expect_torch_sequential_calls(const Recorder& rec, const Sequential& s, const Tensor& x) {
  const Floats g2 = {3.f, -1.5f, -2.75f, 3.5f, -2.5f, 1.25f, 4.625f, -1.25f};
  const Floats g1 = {0.f, -1.5f, -2.75f, 0.f, -2.5f, 0.f, 4.625f, 0.f};
  const Floats gx = {-1.5625f, -2.5f, -2.f, -2.40625f, 4.8125f, 4.f};
  ASSERT_EQ(rec.calls.size(), 4u);
  const std::vector<std::string> tags = {"2", "1", "0", "seq"};
  const std::vector<Floats> gi = {g2, g1, gx, gx}, go = {kC, g2, g1, kC};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(rec.calls[i].tag, tags[i]);
    EXPECT_EQ(rec.calls[i].grad_input, (std::vector<Floats>{gi[i]})) << tags[i];
    EXPECT_EQ(rec.calls[i].grad_output, (std::vector<Floats>{go[i]})) << tags[i];
  }
  EXPECT_EQ(vals(x.grad()), gx);
  const auto kids = s.children();
  EXPECT_EQ(
      vals(kids[0]->get_parameter("weight").grad()),
      (Floats{-1.25f, 1.25f, -5.f, -1.5f, -3.f, 1.5f, -0.4375f, -7.8125f, 12.f, 0.f, 0.f, 0.f}));
  EXPECT_EQ(vals(kids[2]->get_parameter("weight").grad()),
            (Floats{0.6875f, 3.25f, 1.3125f, 0.f, 4.125f, -6.5f, 5.875f, 0.f}));
}

TEST(ModuleBackwardHooks, SequentialAndChildrenFireInBackwardOrder) {
  auto s = small_sequential();
  Recorder rec;
  hook_sequential(*s, rec);
  Tensor x = x_input();
  sum((*s)(x)*c_weights()).backward();
  expect_torch_sequential_calls(rec, *s, x);
}

// The checkpointed Sequential recomputes its children in backward: their hooks fire there, once,
// and the Sequential's once, with the values of the plain run.
TEST(ModuleBackwardHooks, CheckpointedSequentialFiresOnceWithTheSameValues) {
  auto s = small_sequential();
  s->set_activation_checkpointing(true);
  Recorder rec;
  hook_sequential(*s, rec);
  Tensor x = x_input();
  sum((*s)(x)*c_weights()).backward();
  expect_torch_sequential_calls(rec, *s, x);
}

// Checkpointed children (each its own segment) inside a plain Sequential: the same.
TEST(ModuleBackwardHooks, CheckpointedChildrenFireOnceWithTheSameValues) {
  auto s = small_sequential();
  for (const auto& child : s->children()) child->set_activation_checkpointing(true);
  Recorder rec;
  hook_sequential(*s, rec);
  Tensor x = x_input();
  sum((*s)(x)*c_weights()).backward();
  expect_torch_sequential_calls(rec, *s, x);
}

// A forward hook's replacement output (y * 2) is the output the backward hook's grad_output is
// taken at (torch wraps the output after the forward hooks); with checkpointing too.
TEST(ModuleBackwardHooks, ForwardHookOutputIsWhatGradOutputIsFor) {
  for (bool checkpointed : {false, true}) {
    auto lin = linear_3_2();
    lin->set_activation_checkpointing(checkpointed);
    lin->register_forward_hook([](Module&, const Tensor&, const Tensor& y) { return y * 2.0; });
    Recorder rec;
    lin->register_full_backward_hook(rec.hook("lin"));
    Tensor x = x_input();
    sum((*lin)(x)*c_weights()).backward();
    const Floats want_gi = {-5.f, -5.f, 2.5f, 9.5f, 3.5f, -2.75f};
    ASSERT_EQ(rec.calls.size(), 1u) << checkpointed;
    EXPECT_EQ(rec.calls[0].grad_output, (std::vector<Floats>{kC})) << checkpointed;
    EXPECT_EQ(rec.calls[0].grad_input, (std::vector<Floats>{want_gi})) << checkpointed;
    EXPECT_EQ(vals(x.grad()), want_gi) << checkpointed;
    EXPECT_EQ(vals(lin->weight.grad()), (Floats{2.5f, 3.5f, 0.f, -1.f, -11.f, 16.f}))
        << checkpointed;
  }
}

// A module of several inputs (call_forward): forward(a, b, None, idx) = a * b + idx. torch gives
// the float input that needs no grad and the integer input zeros of their dtype, None stays None.
class MulAdd : public Module {
 public:
  Tensor operator()(const Tensor& a, const Tensor& b, const Tensor& none, const Tensor& idx) {
    return call_forward({a, b, none, idx},
                        [](const std::vector<Tensor>& in) { return in[0] * in[1] + in[3]; });
  }
  std::string type_name() const override { return "MulAdd"; }
};

TEST(ModuleBackwardHooks, MultiInputModuleGradInputPerInput) {
  MulAdd m;
  Recorder rec;
  m.register_full_backward_hook(rec.hook("m"));
  Tensor a = from_vector<float>({1.5f, -2.f, 0.25f}, {3}).set_requires_grad(true);
  Tensor b = from_vector<float>({2.f, 0.5f, -4.f}, {3});
  Tensor idx = from_vector<int64_t>({1, 2, 3}, {3});
  sum(m(a, b, Tensor(), idx) * from_vector<float>({1.f, -1.f, 2.f}, {3})).backward();
  ASSERT_EQ(rec.calls.size(), 1u);
  const Seen& s = rec.calls[0];
  EXPECT_EQ(s.input_defined, (std::vector<bool>{true, true, false, true}));
  EXPECT_EQ(s.grad_input,
            (std::vector<Floats>{{2.f, -0.5f, -8.f}, {0.f, 0.f, 0.f}, {}, {0.f, 0.f, 0.f}}));
  EXPECT_EQ(s.grad_output, (std::vector<Floats>{{1.f, -1.f, 2.f}}));
  EXPECT_EQ(vals(a.grad()), (Floats{2.f, -0.5f, -8.f}));
}

TEST(ModuleBackwardHooks, MultiInputZerosKeepTheInputDtype) {
  MulAdd m;
  DType idx_grad_dtype = DType::float32;
  m.register_full_backward_hook(
      [&](Module&, const std::vector<Tensor>& gi, const std::vector<Tensor>&) {
        idx_grad_dtype = gi[3].dtype();
        return std::vector<Tensor>{};
      });
  Tensor a = from_vector<float>({1.5f, -2.f, 0.25f}, {3}).set_requires_grad(true);
  sum(m(a, ones({3}), Tensor(), from_vector<int64_t>({1, 2, 3}, {3}))).backward();
  EXPECT_EQ(idx_grad_dtype, DType::int64);
}

// An input that requires grad but that forward does not use gets zeros, which reach its .grad
// (torch: b2.grad is zeros, not None).
class UsesFirst : public Module {
 public:
  Tensor operator()(const Tensor& a, const Tensor& b) {
    return call_forward({a, b}, [](const std::vector<Tensor>& in) { return in[0] * 3.0; });
  }
};

TEST(ModuleBackwardHooks, UnusedInputThatRequiresGradGetsZeros) {
  UsesFirst m;
  Recorder rec;
  m.register_full_backward_hook(rec.hook("m2"));
  Tensor a = from_vector<float>({1.5f, -2.f, 0.25f}, {3}).set_requires_grad(true);
  Tensor b = from_vector<float>({2.f, 0.5f, -4.f}, {3}).set_requires_grad(true);
  sum(m(a, b)).backward();
  ASSERT_EQ(rec.calls.size(), 1u);
  EXPECT_EQ(rec.calls[0].grad_input, (std::vector<Floats>{{3.f, 3.f, 3.f}, {0.f, 0.f, 0.f}}));
  ASSERT_TRUE(b.grad().defined());
  EXPECT_EQ(vals(b.grad()), (Floats{0.f, 0.f, 0.f}));
}

// No input requires grad (only the parameters do): torch calls the hook from the output's node
// with grad_input all None, and a hook that returns a gradient there raises.
TEST(ModuleBackwardHooks, NoInputRequiringGradGivesNoneGradInput) {
  auto lin = linear_3_2();
  Recorder rec;
  lin->register_full_backward_hook(rec.hook("lin"));
  sum((*lin)(x_input(false)) * c_weights()).backward();
  ASSERT_EQ(rec.calls.size(), 1u);
  EXPECT_EQ(rec.calls[0].input_defined, (std::vector<bool>{false}));
  EXPECT_EQ(rec.calls[0].grad_output, (std::vector<Floats>{kC}));
  EXPECT_EQ(vals(lin->weight.grad()), (Floats{1.25f, 1.75f, 0.f, -0.5f, -5.5f, 8.f}));

  auto bad = linear_3_2();
  bad->register_full_backward_hook(
      [](Module&, const std::vector<Tensor>&, const std::vector<Tensor>&) {
        return std::vector<Tensor>{ones({2, 3})};
      });
  Tensor y = (*bad)(x_input(false));
  EXPECT_CONTAINS(thrown<Error>([&] { sum(y).backward(); }),
                  "Backward hook for Modules where no input requires gradient should always "
                  "return None or None for all gradients.");
}

// create_graph: the first backward fires the hook; the second (through the gradient's graph,
// which passes through the output and the inputs again) fires it once more, with torch's values.
TEST(ModuleBackwardHooks, DoubleBackwardFiresAgainWithTorchValues) {
  auto lin = linear_3_2();
  Recorder rec;
  lin->register_full_backward_hook(rec.hook("lin"));
  Tensor x = x_input();
  Tensor y = (*lin)(x);
  Tensor gx = fabric::grad({sum(y * y)}, {x}, {}, std::nullopt, /*create_graph=*/true)[0];
  ASSERT_EQ(rec.calls.size(), 1u);
  EXPECT_EQ(rec.calls[0].grad_input,
            (std::vector<Floats>{{8.125f, 8.125f, -4.0625f, -1.25f, -4.0625f, 1.5625f}}));
  EXPECT_EQ(rec.calls[0].grad_output, (std::vector<Floats>{{-3.25f, 6.5f, 2.75f, -1.75f}}));
  sum(gx * gx).backward();
  ASSERT_EQ(rec.calls.size(), 2u);
  const Floats want_x = {111.71875f, 81.25f, -45.703125f, -26.5625f, -32.421875f, 15.234375f};
  EXPECT_EQ(rec.calls[1].grad_input, (std::vector<Floats>{want_x}));
  EXPECT_EQ(rec.calls[1].grad_output,
            (std::vector<Floats>{{-20.3125f, 81.25f, 15.3125f, -22.8125f}}));
  EXPECT_EQ(vals(x.grad()), want_x);
  EXPECT_EQ(vals(lin->weight.grad()),
            (Floats{-72.34375f, -123.4375f, 85.9375f, 179.84375f, 293.75f, -185.15625f}));
  EXPECT_EQ(vals(lin->bias.grad()), (Floats{-5.f, 58.4375f}));
}

// torch's "called twice" case: each call of the module fires its own hook with its own values.
TEST(ModuleBackwardHooks, EachCallFiresItsOwnHook) {
  auto lin = make_linear({1.f, 2.f, 3.f, 4.f}, {}, 2, 2);
  Recorder rec;
  lin->register_full_backward_hook(rec.hook("twice"));
  Tensor x = from_vector<float>({1.f, -1.f}, {1, 2}).set_requires_grad(true);
  sum((*lin)((*lin)(x)) * from_vector<float>({1.f, 0.5f}, {1, 2})).backward();
  ASSERT_EQ(rec.calls.size(), 2u);
  EXPECT_EQ(rec.calls[0].grad_input, (std::vector<Floats>{{2.5f, 4.f}}));
  EXPECT_EQ(rec.calls[0].grad_output, (std::vector<Floats>{{1.f, 0.5f}}));
  EXPECT_EQ(rec.calls[1].grad_input, (std::vector<Floats>{{14.5f, 21.f}}));
  EXPECT_EQ(rec.calls[1].grad_output, (std::vector<Floats>{{2.5f, 4.f}}));
  EXPECT_EQ(vals(lin->weight.grad()), (Floats{1.5f, -3.5f, 3.5f, -4.5f}));
  EXPECT_EQ(vals(x.grad()), (Floats{14.5f, 21.f}));
}

TEST(ModuleBackwardHooks, RemovedHooksDoNotFire) {
  auto lin = linear_3_2();
  int kept = 0, removed = 0, removed_pre = 0;
  const int64_t h1 = lin->register_full_backward_hook(
      [&](Module&, const std::vector<Tensor>&, const std::vector<Tensor>&) {
        ++removed;
        return std::vector<Tensor>{};
      });
  lin->register_full_backward_hook(
      [&](Module&, const std::vector<Tensor>&, const std::vector<Tensor>&) {
        ++kept;
        return std::vector<Tensor>{};
      });
  const int64_t h3 = lin->register_full_backward_pre_hook([&](Module&, const std::vector<Tensor>&) {
    ++removed_pre;
    return std::vector<Tensor>{};
  });
  EXPECT_FALSE(lin->remove_forward_hook(h1));  // a backward hook's handle is not a forward one's
  EXPECT_TRUE(lin->remove_backward_hook(h1));
  EXPECT_TRUE(lin->remove_backward_hook(h3));
  EXPECT_FALSE(lin->remove_backward_hook(h1));
  sum((*lin)(x_input())).backward();
  EXPECT_EQ(kept, 1);
  EXPECT_EQ(removed, 0);
  EXPECT_EQ(removed_pre, 0);
  EXPECT_TRUE(lin->has_backward_hooks());
}

// torch keeps the hooks a call was made with: removing one after forward still fires it for that
// call's backward, not for later calls.
TEST(ModuleBackwardHooks, RemovalAfterForwardKeepsThatCallsHooks) {
  auto lin = linear_3_2();
  int calls = 0;
  const int64_t h = lin->register_full_backward_hook(
      [&](Module&, const std::vector<Tensor>&, const std::vector<Tensor>&) {
        ++calls;
        return std::vector<Tensor>{};
      });
  Tensor y = (*lin)(x_input());
  EXPECT_TRUE(lin->remove_backward_hook(h));
  EXPECT_FALSE(lin->has_backward_hooks());
  sum(y).backward();
  EXPECT_EQ(calls, 1);
  sum((*lin)(x_input())).backward();
  EXPECT_EQ(calls, 1);
}

TEST(ModuleBackwardHooks, NoGradOrNothingRequiringGradRunsNoHook) {
  auto lin = linear_3_2();
  int calls = 0;
  lin->register_full_backward_pre_hook([&](Module&, const std::vector<Tensor>&) {
    ++calls;
    return std::vector<Tensor>{};
  });
  lin->register_full_backward_hook(
      [&](Module&, const std::vector<Tensor>&, const std::vector<Tensor>&) {
        ++calls;
        return std::vector<Tensor>{};
      });
  {
    NoGradGuard no_grad;
    Tensor y = (*lin)(x_input());
    EXPECT_FALSE(y.requires_grad());
  }
  lin->requires_grad_(false);
  Tensor y = (*lin)(x_input(false));
  EXPECT_FALSE(y.requires_grad());
  EXPECT_EQ(calls, 0);
}

// A gradient that never reaches the output (forward ignores its input) runs no hook (torch: the
// inputs' node is not reached); autograd::grad w.r.t. the weight only runs none either.
class IgnoresInput : public Module {
 public:
  IgnoresInput() { w = register_parameter("w", ones({2})); }
  Tensor forward(const Tensor&) override { return w * 2.0; }
  Tensor w;
};

TEST(ModuleBackwardHooks, HookNeedsTheInputsGradient) {
  IgnoresInput m;
  int calls = 0;
  m.register_full_backward_hook(
      [&](Module&, const std::vector<Tensor>&, const std::vector<Tensor>&) {
        ++calls;
        return std::vector<Tensor>{};
      });
  sum(m(ones({2}).set_requires_grad(true))).backward();
  EXPECT_EQ(calls, 0);

  auto lin = linear_3_2();
  lin->register_full_backward_hook(
      [&](Module&, const std::vector<Tensor>&, const std::vector<Tensor>&) {
        ++calls;
        return std::vector<Tensor>{};
      });
  Tensor x = x_input();
  fabric::grad({sum((*lin)(x))}, {x});
  EXPECT_EQ(calls, 1);
  fabric::grad({sum((*lin)(x))}, {lin->weight});
  EXPECT_EQ(calls, 1);
}

// torch refuses forward writing in place into an input that requires grad (its gradient would
// bypass the hook), with the custom-Function view message; an input that needs no grad may be
// written.
class ScalesInputInPlace : public Module {
 public:
  Tensor forward(const Tensor& x) override {
    Tensor y = x;
    y.mul_(2.0);
    return y * 3.0;
  }
};

TEST(ModuleBackwardHooks, InPlaceWriteIntoInputRaises) {
  ScalesInputInPlace m;
  m.register_full_backward_hook([](Module&, const std::vector<Tensor>&,
                                   const std::vector<Tensor>&) { return std::vector<Tensor>{}; });
  Tensor x = x_input() * 1.0;
  EXPECT_CONTAINS(thrown<Error>([&] { m(x); }),
                  "Output 0 of BackwardHookFunctionBackward is a view and is being modified "
                  "inplace. This view was created inside a custom Function");
  Tensor plain = x_input(false);
  EXPECT_NO_THROW(m(plain));
}

TEST(ModuleBackwardHooks, InPlaceWriteIntoOutputRaisesInBackward) {
  auto lin = linear_3_2();
  lin->register_full_backward_hook(
      [](Module&, const std::vector<Tensor>&, const std::vector<Tensor>&) {
        return std::vector<Tensor>{};
      });
  Tensor y = (*lin)(x_input());
  y.mul_(2.0);
  EXPECT_CONTAINS(thrown<Error>([&] { sum(y).backward(); }),
                  "Output 0 of BackwardHookFunctionBackward is a view and is being modified "
                  "inplace");
}

}  // namespace
}  // namespace fabric::nn
