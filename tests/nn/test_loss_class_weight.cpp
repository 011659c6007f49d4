// CrossEntropyLoss / NLLLoss with a per-class weight and with class-probability targets: the
// weight is a buffer named "weight" (torch's state_dict of nn.CrossEntropyLoss(weight=w) is
// {'weight': w}), it follows to() and load_state_dict, and forward is the op with the options.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "nn/loss.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::nn {
namespace {

void expect_same(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  EXPECT_EQ(a.to_vector<double>(), b.to_vector<double>());
}

TEST(ClassWeightLosses, ForwardIsTheOpWithTheModulesWeight) {
  const Tensor x = randn({6, 4}), p = softmax(randn({6, 4}), 1);
  const Tensor t = from_vector<int64_t>({0, 3, -100, 2, 1, 1});
  const Tensor t1 = from_vector<int64_t>({0, 3, 1, 2, 1, 1});  // ignore_index=1 ignores two
  const Tensor w = from_vector<float>({0.5f, 2.0f, 1.0f, 1.5f});
  const Tensor lp = log_softmax(x, 1);
  struct Row {
    const char* what;
    std::shared_ptr<LossModule> module;
    Tensor input, target, want;
  };
  const std::vector<Row> rows = {
      {"weight", std::make_shared<CrossEntropyLoss>(CrossEntropyLossOptions{.weight = w}), x, t,
       cross_entropy(x, t, -100, "mean", 0.0, w)},
      {"weight, smoothing, sum",
       std::make_shared<CrossEntropyLoss>(
           CrossEntropyLossOptions{.weight = w, .reduction = "sum", .label_smoothing = 0.1}),
       x, t, cross_entropy(x, t, -100, "sum", 0.1, w)},
      {"probabilities", std::make_shared<CrossEntropyLoss>(), x, p, cross_entropy(x, p)},
      {"probabilities, weight",
       std::make_shared<CrossEntropyLoss>(
           CrossEntropyLossOptions{.weight = w, .reduction = "none", .label_smoothing = 0.2}),
       x, p, cross_entropy(x, p, -100, "none", 0.2, w)},
      {"nll weight", std::make_shared<NLLLoss>(NLLLossOptions{.weight = w, .ignore_index = 1}), lp,
       t1, nll_loss(lp, t1, 1, "mean", w)},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.what);
    expect_same((*r.module)(r.input, r.target), r.want);
  }
  // The weight changes the loss (it is not dropped on the way).
  EXPECT_NE(CrossEntropyLoss({.weight = w})(x, t).item<float>(),
            CrossEntropyLoss()(x, t).item<float>());
}

TEST(ClassWeightLosses, WeightIsABufferNamedWeightAsTorch) {
  const Tensor w = from_vector<float>({0.5f, 2.0f, 1.5f});
  CrossEntropyLoss ce({.weight = w, .label_smoothing = 0.1});
  NLLLoss nll({.weight = w});
  for (Module* m : std::vector<Module*>{&ce, &nll}) {
    SCOPED_TRACE(m->type_name());
    const StateDict sd = m->state_dict();
    EXPECT_EQ(sd.keys(), std::vector<std::string>{"weight"});
    expect_same(sd.at("weight"), w);
    EXPECT_EQ(m->named_buffers().size(), 1u);
  }
  EXPECT_TRUE(CrossEntropyLoss().state_dict().empty());
  EXPECT_TRUE(NLLLoss().state_dict().empty());
  // torch's printout: no options (its _Loss has no extra_repr) and no buffers.
  EXPECT_EQ(ce.str(), "CrossEntropyLoss()");
  EXPECT_EQ(nll.str(), "NLLLoss()");
  // A floating weight only, as the other loss weights.
  EXPECT_THROW(CrossEntropyLoss({.weight = ones({3}, {.dtype = DType::int64})}), DTypeError);
  EXPECT_THROW(NLLLoss({.weight = ones({3}, {.dtype = DType::int64})}), DTypeError);
}

TEST(ClassWeightLosses, WeightFollowsToAndLoadStateDict) {
  const Tensor x = randn({5, 3}, {.dtype = DType::float64});
  const Tensor t = from_vector<int64_t>({0, 2, 1, 1, 2});
  CrossEntropyLoss ce({.weight = from_vector<float>({0.5f, 2.0f, 1.5f})});
  // Class indices need the weight in the input's dtype: to(float64) converts the buffer.
  ce.to(DType::float64);
  const Tensor w64 = from_vector<double>({0.5, 2.0, 1.5});
  expect_same(ce(x, t), cross_entropy(x, t, -100, "mean", 0.0, w64));
  StateDict sd;
  const Tensor w2 = from_vector<double>({1.0, 0.25, 3.0});
  sd.insert("weight", w2);
  ce.load_state_dict(sd);
  expect_same(ce(x, t), cross_entropy(x, t, -100, "mean", 0.0, w2));
}

}  // namespace
}  // namespace fabric::nn
