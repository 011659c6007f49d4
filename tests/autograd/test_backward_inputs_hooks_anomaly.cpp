// torch.autograd.backward(inputs=...), removable hook handles and anomaly detection, with the
// values torch 1.13 gives (tools: /usr/bin/python3, the same graphs in float64).
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/checkpoint.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/autograd/float64_values.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

using test::expect_values;
using test::leaf;

// torch: a, b leaves, h = a * b (retained by the first call), y = sum(sin(h) * a);
// y.backward(inputs=[h]) then inputs=[b] then inputs=[a], printing the .grads and which hooks ran.
TEST(BackwardInputs, OnlyTheGivenTensorsAccumulate) {
  Tensor a = leaf({1, 2, 3}), b = leaf({0.5, -1, 2});
  std::vector<std::string> calls;
  register_hook(a, [&](const Tensor&) {
    calls.push_back("a");
    return Tensor();
  });
  register_hook(b, [&](const Tensor&) {
    calls.push_back("b");
    return Tensor();
  });
  Tensor h = mul(a, b);
  register_hook(h, [&](const Tensor&) {
    calls.push_back("h");
    return Tensor();
  });
  const Tensor y = sum(mul(sin(h), a));

  backward(y, Tensor(), /*retain_graph=*/true, false, {h});
  EXPECT_FALSE(a.grad().defined());
  EXPECT_FALSE(b.grad().defined());
  expect_values(h.grad(), {0.8775825618903728, -0.8322936730942848, 2.880510859951098}, "h.grad");
  EXPECT_EQ(calls, std::vector<std::string>({"h"}));

  calls.clear();
  backward(y, Tensor(), true, false, {b});
  EXPECT_FALSE(a.grad().defined());
  expect_values(b.grad(), {0.8775825618903728, -1.6645873461885696, 8.641532579853294}, "b.grad");
  // h keeps its .grad from the first call (retained) and is on b's path: it accumulates, as torch.
  expect_values(h.grad(), {1.7551651237807455, -1.6645873461885696, 5.761021719902196}, "h.grad");
  EXPECT_EQ(calls, std::vector<std::string>({"h", "b"}));

  calls.clear();
  backward(y, Tensor(), false, false, {a});
  expect_values(a.grad(), {0.9182168195493894, -0.0770037537313969, 5.48160622170327}, "a.grad");
  expect_values(b.grad(), {0.8775825618903728, -1.6645873461885696, 8.641532579853294}, "b.grad");
  EXPECT_EQ(calls, std::vector<std::string>({"h", "a"}));
}

TEST(BackwardInputs, UnreachableInputGetsNothingAndNonGradInputIsRefused) {
  Tensor a = leaf({1, 2}), c = leaf({1});
  backward(sum(mul(a, a)), Tensor(), std::nullopt, false, {c});
  EXPECT_FALSE(c.grad().defined());
  EXPECT_FALSE(a.grad().defined());
  const Tensor x = zeros({2}, {.dtype = DType::float64});
  EXPECT_CONTAINS(
      thrown<ValueError>([&] { backward(sum(mul(a, a)), Tensor(), std::nullopt, false, {x}); }),
      "does not require grad");
}

// A checkpointed segment: only the requested parameter accumulates, the other one read by the
// segment is left alone (the recompute hands both back along the checkpoint's edges).
TEST(BackwardInputs, ThroughACheckpoint) {
  Tensor w = leaf({0.5, 1.5}), v = leaf({2, -1}), x = leaf({1, 2});
  const Tensor y = checkpoint([&](const Tensor& t) { return mul(sin(mul(t, w)), v); }, x);
  backward(sum(y), Tensor(), std::nullopt, false, {w});
  ASSERT_TRUE(w.grad().defined());
  EXPECT_FALSE(v.grad().defined());
  EXPECT_FALSE(x.grad().defined());
  // d/dw sum(sin(x w) v) = cos(x w) x v
  expect_values(w.grad(), {std::cos(0.5) * 1 * 2, std::cos(3.0) * 2 * -1}, "w.grad");
}

// torch: a hook that removes itself through its handle runs once (t.grad 6 then 9).
TEST(HookHandles, RemoveFromInsideTheHook) {
  Tensor t = leaf({1, 2});
  RemovableHandle handle;
  handle = register_hook(t, [&](const Tensor& g) {
    handle.remove();
    return mul(g, 2.0);
  });
  backward(sum(mul(t, 3.0)));
  expect_values(t.grad(), {6, 6}, "first");
  backward(sum(mul(t, 3.0)));
  expect_values(t.grad(), {9, 9}, "second");
}

TEST(HookHandles, RemovedHooksStopAndReleaseWhatTheyCaptured) {
  Tensor w = leaf({1, 2});
  auto captured = std::make_shared<int>(0);
  int post = 0;
  RemovableHandle h1 = register_hook(w, [captured](const Tensor&) {
    ++*captured;
    return Tensor();
  });
  RemovableHandle h2 = register_post_accumulate_grad_hook(w, [&](Tensor&) { ++post; });
  Tensor y = mul(w, w);
  Tensor hy;
  RemovableHandle h3 = register_hook(y, [&](const Tensor& g) {
    hy = g;
    return mul(g, 0.0);
  });
  backward(sum(y), Tensor(), true);
  EXPECT_EQ(*captured, 1);
  EXPECT_EQ(post, 1);
  expect_values(w.grad(), {0, 0}, "zeroed by y's hook");
  h1.remove();
  h2.remove();
  h3.remove();
  h3.remove();                         // twice is harmless, as torch's
  EXPECT_EQ(captured.use_count(), 1);  // the hook's closure is gone
  backward(sum(y));
  EXPECT_EQ(*captured, 1);
  EXPECT_EQ(post, 1);
  expect_values(w.grad(), {2, 4}, "no hook left");
}

// torch: with detect_anomaly, sqrt(z) * 0 at z = 0 -> "Function 'SqrtBackward0' returned nan
// values in its 0th output."; without it the NaN reaches .grad silently.
TEST(AnomalyDetection, NamesTheNodeThatMadeTheNaN) {
  Tensor z = leaf({0, 1});
  backward(sum(mul(sqrt(z), 0.0)));
  EXPECT_TRUE(std::isnan(z.grad().to_vector<double>()[0]));
  zero_grad(z);
  {
    DetectAnomalyGuard anomaly;
    EXPECT_TRUE(anomaly_detection_enabled());
    EXPECT_CONTAINS(thrown<Error>([&] { backward(sum(mul(sqrt(z), 0.0))); }),
                    "Function 'SqrtBackward0' returned nan values in its 0th output.");
    EXPECT_FALSE(z.grad().defined());
    // Finite gradients pass untouched.
    backward(sum(mul(z, 2.0)));
    expect_values(z.grad(), {2, 2}, "finite");
  }
  EXPECT_FALSE(anomaly_detection_enabled());
}

}  // namespace
}  // namespace fabric
