// MixedPrecision with an optimizer that re-evaluates the loss inside its step (LBFGS): the
// GradScaler cannot skip such a step, so 16-mixed refuses it as the reference does ("AMP and the
// LBFGS optimizer are not compatible", a TypeError there); without a scaler (bf16-mixed) the
// closure goes to the optimizer, which calls it as often as it needs.
#include <gtest/gtest.h>

#include "autograd/autograd.h"
#include "optim/lbfgs.h"
#include "precision/mixed_precision.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"

namespace fabric::precision {
namespace {

struct Problem {
  Tensor w = from_vector<float>({1.0f, -2.0f, 0.5f});
  int calls = 0;
  Problem() { w.set_requires_grad(true); }
  // A convex quadratic: sum((w - 3)^2).
  std::function<Tensor()> closure(MixedPrecision& plugin, optim::Optimizer& opt) {
    return [this, &plugin, &opt] {
      ++calls;
      opt.zero_grad();
      Tensor d = sub(w, 3.0);
      Tensor loss = sum(mul(d, d));
      plugin.backward(loss, nullptr);
      return loss;
    };
  }
};

TEST(MixedPrecisionLBFGS, SixteenMixedRefusesLBFGSLikeTheReference) {
  MixedPrecision plugin("16-mixed", DeviceType::cpu);
  Problem p;
  optim::LBFGS lbfgs({p.w}, {.max_iter = 3});
  const std::vector<float> before = p.w.to_vector<float>();
  const std::string msg =
      thrown<DTypeError>([&] { plugin.optimizer_step(lbfgs, nullptr, p.closure(plugin, lbfgs)); });
  EXPECT_CONTAINS(msg, "AMP and the LBFGS optimizer are not compatible");
  EXPECT_EQ(p.calls, 0);  // refused before any forward/backward
  EXPECT_EQ(p.w.to_vector<float>(), before);
}

TEST(MixedPrecisionLBFGS, Bf16MixedHandsTheClosureToLBFGS) {
  MixedPrecision plugin("bf16-mixed", DeviceType::cpu);
  Problem p;
  optim::LBFGS lbfgs({p.w}, {.max_iter = 3});
  EXPECT_TRUE(plugin.optimizer_step(lbfgs, nullptr, p.closure(plugin, lbfgs)));
  EXPECT_GT(p.calls, 1);  // LBFGS evaluated the loss several times within its one step
  for (float v : p.w.to_vector<float>()) EXPECT_NEAR(v, 3.0f, 1e-3f);
}

}  // namespace
}  // namespace fabric::precision
