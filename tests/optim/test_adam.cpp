// Adam/AdamW: three steps on a 3-element float64 tensor against a double-precision
// re-implementation of PyTorch's single-tensor formulas, plus amsgrad, maximize, weight decay
// (coupled vs decoupled), bf16 parameters and option errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "optim/adam.h"
#include "optim_test_util.h"

namespace fabric::optim {
namespace {
using namespace testing;

// Written from the formulas of torch.optim.Adam/AdamW's documentation and single-tensor code.
struct RefAdam {
  double lr, beta1, beta2, eps, wd;
  bool decoupled, amsgrad = false, maximize = false;
  std::vector<double> m = {}, v = {}, vmax = {};
  int step = 0;

  void update(std::vector<double>& p, const std::vector<double>& grad) {
    if (m.empty()) m.assign(p.size(), 0.0), v.assign(p.size(), 0.0), vmax.assign(p.size(), 0.0);
    ++step;
    const double bias_correction1 = 1.0 - std::pow(beta1, step);
    const double bias_correction2 = 1.0 - std::pow(beta2, step);
    for (size_t i = 0; i < p.size(); ++i) {
      double g = maximize ? -grad[i] : grad[i];
      if (decoupled) {
        p[i] = p[i] * (1.0 - lr * wd);
      } else {
        g = g + wd * p[i];
      }
      m[i] = m[i] + (1.0 - beta1) * (g - m[i]);
      v[i] = beta2 * v[i] + (1.0 - beta2) * g * g;
      double second = v[i];
      if (amsgrad) {
        vmax[i] = std::max(vmax[i], v[i]);
        second = vmax[i];
      }
      const double denom = std::sqrt(second) / std::sqrt(bias_correction2) + eps;
      p[i] = p[i] - (lr / bias_correction1) * m[i] / denom;
    }
  }
};

const std::vector<std::vector<double>> kGrads = {{0.1, -0.2, 0.3}, {0.05, 0.4, -0.6}, {-0.3, 0.25, 0.01}};

TEST(Adam, ThreeStepsMatchReference) {
  std::vector<double> ref = {1.0, -0.5, 2.0};
  Tensor p = param(ref);
  Adam opt({p}, {.lr = 0.01});
  RefAdam r{0.01, 0.9, 0.999, 1e-8, 0, false};
  for (const auto& g : kGrads) {
    set_grad_values(p, g);
    opt.step();
    r.update(ref, g);
    expect_close(values(p), ref, 1e-12, "Adam");
  }
  const ParamState* st = opt.state(p);
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(st->at("step").item<double>(), 3.0);
  EXPECT_EQ(st->at("step").dtype(), DType::float64);
  expect_close(values(st->at("exp_avg")), r.m, 1e-12, "exp_avg");
  expect_close(values(st->at("exp_avg_sq")), r.v, 1e-12, "exp_avg_sq");
  EXPECT_EQ(st->count("max_exp_avg_sq"), 0u);
}

TEST(Adam, FirstStepIsSignedLr) {
  // After one step m/sqrt(v) = g/|g| exactly (bias-corrected), so p moves by lr (minus eps effects).
  Tensor p = param({1.0, 1.0});
  Adam opt({p}, {.lr = 0.1, .eps = 0});
  set_grad_values(p, {0.3, -7.0});
  opt.step();
  expect_close(values(p), {0.9, 1.1}, 1e-14);
}

struct Variant {
  const char* name;
  double lr, beta1, beta2, eps, wd;
  bool decoupled, amsgrad, maximize;
};

TEST(Adam, VariantsMatchReference) {
  const Variant variants[] = {
      {"adam wd", 0.02, 0.9, 0.999, 1e-8, 0.1, false, false, false},
      {"adam amsgrad", 0.02, 0.8, 0.99, 1e-6, 0, false, true, false},
      {"adam maximize", 0.01, 0.9, 0.999, 1e-8, 0.05, false, false, true},
      {"adam beta1 < 0.5", 0.01, 0.3, 0.9, 1e-8, 0, false, false, false},
      {"adamw", 0.01, 0.9, 0.999, 1e-8, 0.01, true, false, false},
      {"adamw amsgrad maximize", 0.03, 0.9, 0.95, 1e-8, 0.1, true, true, true},
  };
  for (const Variant& vt : variants) {
    std::vector<double> ref = {1.0, -0.5, 2.0};
    Tensor p = param(ref);
    RefAdam r{vt.lr, vt.beta1, vt.beta2, vt.eps, vt.wd, vt.decoupled, vt.amsgrad, vt.maximize};
    std::unique_ptr<Optimizer> opt;
    if (vt.decoupled) {
      opt = std::make_unique<AdamW>(std::vector<Tensor>{p}, AdamWOptions{.lr = vt.lr,
                                                                           .betas = {vt.beta1, vt.beta2},
                                                                           .eps = vt.eps,
                                                                           .weight_decay = vt.wd,
                                                                           .amsgrad = vt.amsgrad,
                                                                           .maximize = vt.maximize});
    } else {
      opt = std::make_unique<Adam>(std::vector<Tensor>{p}, AdamOptions{.lr = vt.lr,
                                                                         .betas = {vt.beta1, vt.beta2},
                                                                         .eps = vt.eps,
                                                                         .weight_decay = vt.wd,
                                                                         .amsgrad = vt.amsgrad,
                                                                         .maximize = vt.maximize});
    }
    for (int s = 0; s < 5; ++s) {
      const auto& g = kGrads[s % kGrads.size()];
      set_grad_values(p, g);
      opt->step();
      r.update(ref, g);
      expect_close(values(p), ref, 1e-12, vt.name);
    }
    if (vt.amsgrad) expect_close(values(opt->state(p)->at("max_exp_avg_sq")), r.vmax, 1e-12, vt.name);
  }
}

TEST(AdamW, DefaultsAndDecoupledDecay) {
  Tensor p = param({1.0});
  AdamW opt({p});
  EXPECT_EQ(opt.defaults().weight_decay, 1e-2);
  EXPECT_EQ(opt.defaults().lr, 1e-3);
  // A zero gradient leaves only the decay: p * (1 - lr * wd).
  set_grad_values(p, {0.0});
  opt.step();
  expect_close(values(p), {1.0 - 1e-3 * 1e-2}, 1e-15);
  Tensor q = param({1.0});
  Adam adam({q}, {.weight_decay = 1e-2});
  set_grad_values(q, {0.0});
  adam.step();  // coupled: g = wd * p, so the step is a full lr step
  expect_close(values(q), {1.0 - 1e-3}, 1e-8);
}

TEST(Adam, Float32MatchesFloat64Closely) {
  std::vector<double> ref = {1.0, -0.5, 2.0};
  Tensor p = param(ref, DType::float32);
  AdamW opt({p}, {.lr = 0.01});
  RefAdam r{0.01, 0.9, 0.999, 1e-8, 0.01, true};
  for (const auto& g : kGrads) {
    set_grad_values(p, g);
    opt.step();
    r.update(ref, g);
  }
  EXPECT_EQ(p.dtype(), DType::float32);
  expect_close(values(p), ref, 1e-6, "float32");
}

TEST(Adam, Bfloat16ParametersKeepBfloat16State) {
  std::vector<double> ref = {1.0, -0.5, 2.0};
  Tensor p = param(ref, DType::bfloat16);
  Adam opt({p}, {.lr = 0.01});
  RefAdam r{0.01, 0.9, 0.999, 1e-8, 0, false};
  for (const auto& g : kGrads) {
    set_grad_values(p, g);
    opt.step();
    r.update(ref, g);
  }
  EXPECT_EQ(p.dtype(), DType::bfloat16);
  EXPECT_EQ(opt.state(p)->at("exp_avg").dtype(), DType::bfloat16);
  EXPECT_EQ(opt.state(p)->at("exp_avg_sq").dtype(), DType::bfloat16);
  expect_close(values(p), ref, 1e-2, "bfloat16");  // bf16 keeps 8 significant bits
  // The parameters moved by about 3 * lr: the update was not rounded away.
  EXPECT_NE(values(p)[0], 1.0);
}

// set_grad refuses such a gradient (as torch's .grad =); a strategy may still leave one (ZeRO's
// half gradients on a float32 shard), through set_grad_unchecked.
TEST(Adam, GradientInAnotherDtypeIsConverted) {
  Tensor p = param({1.0, 2.0}, DType::float32);
  Adam opt({p}, {.lr = 0.1});
  set_grad_unchecked(p, from_vector<double>({1.0, -1.0}));  // float64 for a float32 parameter
  opt.step();
  expect_close(values(p), {0.9, 2.1}, 1e-6);
}

TEST(Adam, NonContiguousParameterIsUpdatedInPlace) {
  // A transposed view as a leaf: the update must land in the base storage.
  Tensor base = from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor p = base.t().detach();
  p.set_requires_grad(true);
  ASSERT_FALSE(p.is_contiguous());
  Tensor q = param({1, 4, 2, 5, 3, 6});  // the same values, contiguous
  Adam a({p}, {.lr = 0.1}), b({q}, {.lr = 0.1});
  const std::vector<double> g = {0.5, -1, 2, 0.25, -0.75, 1.5};
  for (int s = 0; s < 2; ++s) {
    set_grad(p, from_vector<double>(g, {3, 2}));
    set_grad_values(q, g);
    a.step();
    b.step();
  }
  expect_close(values(p), values(q), 0);
  expect_close(values(base.t()), values(q), 0);
}

TEST(Adam, OptionErrors) {
  Tensor p = param({1.0});
  EXPECT_CONTAINS(thrown<ValueError>([&] { Adam({p}, {.betas = {1.0, 0.999}}); }), "beta parameter at index 0");
  EXPECT_CONTAINS(thrown<ValueError>([&] { AdamW({p}, {.betas = {0.9, -0.1}}); }), "AdamW: invalid beta parameter at index 1");
  EXPECT_CONTAINS(thrown<ValueError>([&] { Adam({p}, {.lr = -0.1}); }), "Adam: invalid learning rate");
  EXPECT_CONTAINS(thrown<ValueError>([&] { Adam({p}, {.eps = -1}); }), "invalid epsilon");
  EXPECT_CONTAINS(thrown<ValueError>([&] { AdamW({p}, {.weight_decay = -1}); }), "invalid weight_decay");
}

TEST(Adam, StepWithClosureReturnsLoss) {
  Tensor p = param({3.0});
  Adam opt({p}, {.lr = 0.1});
  int calls = 0;
  Tensor loss = opt.step([&] {
    ++calls;
    set_grad_values(p, {1.0});
    return scalar_tensor(42.0, {.dtype = DType::float64});
  });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(loss.item<double>(), 42.0);
  expect_close(values(p), {2.9}, 1e-7);
}

}  // namespace
}  // namespace fabric::optim
