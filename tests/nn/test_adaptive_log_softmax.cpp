// AdaptiveLogSoftmaxWithLoss against torch 1.13 (tests/nn/adaptive_log_softmax_torch_rows.h, from
// tools/fixtures/make_adaptive_log_softmax_rows.py) in float32 and float64 with torch's weights
// loaded: forward's output and loss, the gradients of the input and of every weight (none, as in
// torch, for a cluster no target hits), log_prob and its gradients, predict in each of its three
// branches; the state_dict keys, the printout, the clusters' hidden sizes and torch's errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "nn/adaptive_log_softmax.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"
#include "tests/nn/adaptive_log_softmax_torch_rows.h"

namespace fabric {
namespace {

using adaptive_log_softmax_torch::Row;
using nn::AdaptiveLogSoftmaxWithLoss;

// Bit for bit where tol is 0, else within tol * max(1, |want|).
void expect_bits(const Tensor& got, const std::vector<double>& want, const std::string& what,
                 double tol = 0.0) {
  ASSERT_TRUE(got.defined()) << what;
  const std::vector<double> g = got.to_vector<double>();
  ASSERT_EQ(g.size(), want.size()) << what;
  int shown = 0;
  for (size_t i = 0; i < g.size() && shown < 5; ++i) {
    if (std::bit_cast<uint64_t>(g[i]) == std::bit_cast<uint64_t>(want[i])) continue;
    if (tol > 0 && std::abs(g[i] - want[i]) <= tol * std::max(1.0, std::abs(want[i]))) continue;
    ADD_FAILURE() << what << "[" << i << "]: " << g[i] << " vs torch " << want[i];
    ++shown;
  }
}

// Not bit for bit, for two reasons outside this module (both kernels the module calls):
// - torch 1.13 here multiplies on the netlib reference BLAS, fabric on oneDNN (float32) and Eigen
//   (float64), which round the same products in another order. The "exact" rows are built so that
//   no matmul rounds in either (tools/fixtures/make_adaptive_log_softmax_rows.py);
// - log_softmax forward and backward are torch's bits (kernels/cpu/softmax_torch_row.h).
// So the exact rows' values (output, loss, log_prob) are torch's bits, and so are their gradients
// but for the sign of some zeros (held within relative 1e-6 / 2e-15); the dense rows, whose
// matmuls round, within 1e-5 / 1e-13.
// ForwardIsLogProbAtTheTarget checks the composition itself bit for bit.
double value_tol_of(const Row& r) {
  if (r.exact) return 0.0;
  return std::string(r.dtype) == "float32" ? 1e-5 : 1e-13;
}

double tol_of(const Row& r) {
  const bool f32 = std::string(r.dtype) == "float32";
  if (r.exact) return f32 ? 1e-6 : 2e-15;
  return f32 ? 1e-5 : 1e-13;
}

std::shared_ptr<AdaptiveLogSoftmaxWithLoss> module_of(const Row& r) {
  auto m = nn::make<AdaptiveLogSoftmaxWithLoss>({.in_features = r.in_features,
                                                 .n_classes = r.n_classes,
                                                 .cutoffs = r.cutoffs,
                                                 .div_value = r.div_value,
                                                 .head_bias = r.head_bias});
  const DType dt = dtype_from_name(r.dtype);
  m->to(dt);
  nn::StateDict state;
  const nn::StateDict own = m->state_dict();
  for (size_t k = 0; k < r.keys.size(); ++k) {
    state.insert(r.keys[k], from_vector(r.weights[k], own.at(r.keys[k]).sizes(), {.dtype = dt}));
  }
  m->load_state_dict(state);
  return m;
}

// The parameters in torch's state_dict order, checking the keys are torch's.
std::vector<Tensor> params_of(const AdaptiveLogSoftmaxWithLoss& m, const Row& r) {
  const nn::StateDict sd = m.state_dict();
  std::vector<std::string> want(r.keys.begin(), r.keys.end());
  EXPECT_EQ(sd.keys(), want) << r.name;
  std::vector<Tensor> out;
  for (const auto& [name, p] : m.named_parameters()) out.push_back(p);
  EXPECT_EQ(out.size(), r.keys.size()) << r.name;
  return out;
}

Tensor input_of(const Row& r) {
  return from_vector(r.input, r.input_shape, {.dtype = dtype_from_name(r.dtype)});
}

std::string label(const Row& r, const std::string& what) {
  return std::string(r.name) + " " + r.dtype + " " + what;
}

TEST(AdaptiveLogSoftmaxWithLoss, ForwardAndGradientsAsTorch) {
  for (const Row& r : adaptive_log_softmax_torch::rows()) {
    SCOPED_TRACE(label(r, ""));
    auto m = module_of(r);
    const std::vector<Tensor> params = params_of(*m, r);
    const DType dt = dtype_from_name(r.dtype);
    Tensor x = input_of(r).set_requires_grad(true);
    Tensor t = from_vector(r.target, {static_cast<int64_t>(r.target.size())});
    if (!r.batched) t = t.reshape({});
    const nn::AdaptiveLogSoftmaxOutput res = m->forward(x, t);
    EXPECT_EQ(res.output.sizes(), r.batched ? Shape{t.size(0)} : Shape{});
    EXPECT_EQ(res.loss.dim(), 0);
    EXPECT_EQ(res.output.dtype(), dt);
    expect_bits(res.output, r.output, label(r, "output"), value_tol_of(r));
    expect_bits(res.loss, r.loss, label(r, "loss"), value_tol_of(r));
    const Tensor g_out =
        from_vector(r.g_output, {res.output.numel()}, {.dtype = dt}).reshape(res.output.sizes());
    const Tensor g_loss = from_vector(r.g_loss, {1}, {.dtype = dt}).reshape({});
    backward({res.output, res.loss}, {g_out, g_loss});
    expect_bits(x.grad(), r.grad_input, label(r, "input grad"), tol_of(r));
    for (size_t k = 0; k < params.size(); ++k) {
      const std::string what = label(r, std::string(r.keys[k]) + " grad");
      EXPECT_EQ(params[k].grad().defined(), r.has_grad[k]) << what;
      if (r.has_grad[k]) expect_bits(params[k].grad(), r.grad_weights[k], what, tol_of(r));
    }
  }
}

TEST(AdaptiveLogSoftmaxWithLoss, LogProbAndGradientsAsTorch) {
  for (const Row& r : adaptive_log_softmax_torch::rows()) {
    SCOPED_TRACE(label(r, ""));
    auto m = module_of(r);
    const std::vector<Tensor> params = params_of(*m, r);
    Tensor x = input_of(r);
    if (!r.batched) x = x.unsqueeze(0);
    x = x.contiguous().detach().set_requires_grad(true);
    const Tensor lp = m->log_prob(x);
    EXPECT_EQ(lp.sizes(), (Shape{x.size(0), r.n_classes}));
    expect_bits(lp, r.log_prob, label(r, "log_prob"), value_tol_of(r));
    lp.backward(from_vector(r.g_log_prob, lp.sizes(), {.dtype = lp.dtype()}));
    expect_bits(x.grad(), r.log_prob_grad_input, label(r, "log_prob input grad"), tol_of(r));
    for (size_t k = 0; k < params.size(); ++k) {
      expect_bits(params[k].grad(), r.log_prob_grad_weights[k],
                  label(r, std::string("log_prob ") + r.keys[k] + " grad"), tol_of(r));
    }
  }
}

TEST(AdaptiveLogSoftmaxWithLoss, PredictAsTorchInEachBranch) {
  std::vector<std::string> branches;
  for (const Row& r : adaptive_log_softmax_torch::rows()) {
    auto m = module_of(r);
    Tensor x = input_of(r);
    if (!r.batched) x = x.unsqueeze(0);
    const Tensor p = m->predict(x);
    EXPECT_EQ(p.dtype(), DType::int64);
    EXPECT_EQ(p.to_vector<int64_t>(), r.predict) << label(r, "predict");
    if (r.exact) branches.push_back(r.predict_branch);
  }
  for (const char* b : {"all_shortlist", "mixed", "all_clusters"})
    EXPECT_NE(std::find(branches.begin(), branches.end(), b), branches.end()) << b;
}

// Where no matmul rounds (the exact rows), torch's forward output is log_prob(input) at the
// target, bit for bit: the head's log-probability for a shortlist target, else the cluster's
// log_softmax at the target plus the head's log-probability of the cluster, one rounding, however
// the rows are gathered and scattered. The same here, and the loss is mean(-output).
TEST(AdaptiveLogSoftmaxWithLoss, ForwardIsLogProbAtTheTarget) {
  for (const Row& r : adaptive_log_softmax_torch::rows()) {
    if (!r.exact) continue;
    SCOPED_TRACE(label(r, ""));
    auto m = module_of(r);
    Tensor x = input_of(r);
    Tensor t = from_vector(r.target, {static_cast<int64_t>(r.target.size())});
    const nn::AdaptiveLogSoftmaxOutput res = m->forward(x, r.batched ? t : t.reshape({}));
    const Tensor lp = m->log_prob(r.batched ? x : x.unsqueeze(0));
    const Tensor at = gather(lp, 1, t.unsqueeze(1)).reshape({-1});
    expect_bits(res.output.reshape({-1}), at.to_vector<double>(), label(r, "output vs log_prob"));
    expect_bits(res.loss, mean(neg(res.output)).to_vector<double>(), label(r, "loss"));
  }
}

TEST(AdaptiveLogSoftmaxWithLoss, StateDictKeysAndAttributesAsTorch) {
  auto m = nn::make<AdaptiveLogSoftmaxWithLoss>(
      {.in_features = 16, .n_classes = 20, .cutoffs = {4, 8, 12}, .div_value = 2.0});
  EXPECT_EQ(m->state_dict().keys(),
            (std::vector<std::string>{"head.weight", "tail.0.0.weight", "tail.0.1.weight",
                                      "tail.1.0.weight", "tail.1.1.weight", "tail.2.0.weight",
                                      "tail.2.1.weight"}));
  EXPECT_EQ(m->cutoffs(), (std::vector<int64_t>{4, 8, 12, 20}));
  EXPECT_EQ(m->shortlist_size(), 4);
  EXPECT_EQ(m->n_clusters(), 3);
  EXPECT_EQ(m->head_size(), 7);
  auto with_bias = nn::make<AdaptiveLogSoftmaxWithLoss>(
      {.in_features = 8, .n_classes = 10, .cutoffs = {4}, .head_bias = true});
  EXPECT_EQ(
      with_bias->state_dict().keys(),
      (std::vector<std::string>{"head.weight", "head.bias", "tail.0.0.weight", "tail.0.1.weight"}));
  EXPECT_EQ(with_bias->get_parameter("tail.0.0.weight").sizes(), (Shape{2, 8}));
  EXPECT_EQ(with_bias->get_parameter("tail.0.1.weight").sizes(), (Shape{6, 2}));
}

// int(in_features // div_value ** (i + 1)) in Python's float arithmetic: torch's
// AdaptiveLogSoftmaxWithLoss(10, 30, [3, 9, 20, 25], div_value=1.7) has hidden sizes 5, 3, 2, 1,
// and 7 // 0.1 is 69.0 in Python (0.1 is a little above 1/10), not floor(7 / 0.1) = 70.
TEST(AdaptiveLogSoftmaxWithLoss, HiddenSizesFollowPythonFloorDivision) {
  auto m = nn::make<AdaptiveLogSoftmaxWithLoss>(
      {.in_features = 10, .n_classes = 30, .cutoffs = {3, 9, 20, 25}, .div_value = 1.7});
  const std::vector<int64_t> hidden{5, 3, 2, 1}, out{6, 11, 5, 5};
  for (int64_t i = 0; i < 4; ++i) {
    const std::string p = "tail." + std::to_string(i);
    EXPECT_EQ(m->get_parameter(p + ".0.weight").sizes(), (Shape{hidden[i], 10})) << p;
    EXPECT_EQ(m->get_parameter(p + ".1.weight").sizes(), (Shape{out[i], hidden[i]})) << p;
  }
  auto fine = nn::make<AdaptiveLogSoftmaxWithLoss>(
      {.in_features = 7, .n_classes = 10, .cutoffs = {5}, .div_value = 0.1});
  EXPECT_EQ(fine->get_parameter("tail.0.0.weight").sizes(), (Shape{69, 7}));
  // 16 // 4 ** 3 is 0: a cluster of hidden size 0 (its log-probabilities uniform), as in torch.
  auto zero = nn::make<AdaptiveLogSoftmaxWithLoss>(
      {.in_features = 16, .n_classes = 20, .cutoffs = {4, 8, 12}});
  EXPECT_EQ(zero->get_parameter("tail.2.0.weight").sizes(), (Shape{0, 16}));
}

// torch's repr(AdaptiveLogSoftmaxWithLoss(16, 20, [4, 8, 12], div_value=2.0)) and
// repr(AdaptiveLogSoftmaxWithLoss(16, 20, [4], head_bias=True)).
TEST(AdaptiveLogSoftmaxWithLoss, ReprAsTorch) {
  auto m = nn::make<AdaptiveLogSoftmaxWithLoss>(
      {.in_features = 16, .n_classes = 20, .cutoffs = {4, 8, 12}, .div_value = 2.0});
  EXPECT_EQ(m->str(),
            "AdaptiveLogSoftmaxWithLoss(\n"
            "  (head): Linear(in_features=16, out_features=7, bias=False)\n"
            "  (tail): ModuleList(\n"
            "    (0): Sequential(\n"
            "      (0): Linear(in_features=16, out_features=8, bias=False)\n"
            "      (1): Linear(in_features=8, out_features=4, bias=False)\n"
            "    )\n"
            "    (1): Sequential(\n"
            "      (0): Linear(in_features=16, out_features=4, bias=False)\n"
            "      (1): Linear(in_features=4, out_features=4, bias=False)\n"
            "    )\n"
            "    (2): Sequential(\n"
            "      (0): Linear(in_features=16, out_features=2, bias=False)\n"
            "      (1): Linear(in_features=2, out_features=8, bias=False)\n"
            "    )\n"
            "  )\n"
            ")");
  auto b = nn::make<AdaptiveLogSoftmaxWithLoss>(
      {.in_features = 16, .n_classes = 20, .cutoffs = {4}, .head_bias = true});
  EXPECT_EQ(b->str(),
            "AdaptiveLogSoftmaxWithLoss(\n"
            "  (head): Linear(in_features=16, out_features=5, bias=True)\n"
            "  (tail): ModuleList(\n"
            "    (0): Sequential(\n"
            "      (0): Linear(in_features=16, out_features=4, bias=False)\n"
            "      (1): Linear(in_features=4, out_features=16, bias=False)\n"
            "    )\n"
            "  )\n"
            ")");
}

TEST(AdaptiveLogSoftmaxWithLoss, ResetParametersRedrawsEveryLinear) {
  auto m = nn::make<AdaptiveLogSoftmaxWithLoss>(
      {.in_features = 16, .n_classes = 20, .cutoffs = {4, 8}, .head_bias = true});
  for (const Tensor& p : m->parameters()) p.detach().fill_(100.0);
  m->reset_parameters();
  for (const auto& [name, p] : m->named_parameters()) {
    // kaiming_uniform_(a = sqrt(5)) and the bias: |w| <= 1 / sqrt(fan_in).
    const int64_t fan_in = p.dim() == 2 ? p.size(1) : 16;
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    EXPECT_LE(max(abs(p)).item<double>(), bound) << name;
  }
}

TEST(AdaptiveLogSoftmaxWithLoss, CutoffErrorsAsTorch) {
  for (const std::vector<int64_t>& cutoffs :
       std::vector<std::vector<int64_t>>{{}, {5, 4}, {4, 4}, {0, 4}, {-1}, {4, 20}, {4, 25}}) {
    const std::string msg = thrown<ValueError>([&] {
      nn::make<AdaptiveLogSoftmaxWithLoss>(
          {.in_features = 16, .n_classes = 20, .cutoffs = cutoffs});
    });
    EXPECT_CONTAINS(msg, "unique, positive integers sorted in an increasing order");
    EXPECT_CONTAINS(msg, "between 1 and n_classes-1");
  }
  EXPECT_NO_THROW(nn::make<AdaptiveLogSoftmaxWithLoss>(
      {.in_features = 16, .n_classes = 20, .cutoffs = {1, 19}}));
}

TEST(AdaptiveLogSoftmaxWithLoss, ForwardShapeErrorsAsTorch) {
  auto m = nn::make<AdaptiveLogSoftmaxWithLoss>(
      {.in_features = 16, .n_classes = 20, .cutoffs = {4, 8, 12}});
  const Tensor t3 = from_vector<int64_t>({1, 2, 3}, {3});
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    m->forward(randn({3, 16}), t3.reshape({1, 3}));
                  }),
                  "0D or 1D target tensor expected, multi-target not supported");
  EXPECT_CONTAINS(thrown<ShapeError>([&] { m->forward(randn({16}), t3); }),
                  "Input and target should have the same size in the batch dimension");
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    m->forward(randn({3, 3, 16}), t3);
                  }),
                  "1D target tensor expects 2D input tensors, but found inputs with size "
                  "(3, 3, 16)");
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    m->forward(randn({3, 16}), t3.select(0, 0));
                  }),
                  "0D target tensor expects 1D input tensors, but found inputs with size (3, 16)");
  EXPECT_CONTAINS(thrown<ShapeError>([&] { m->log_prob(randn({16})); }), "must be 2-D");
  EXPECT_CONTAINS(thrown<ShapeError>([&] { m->predict(randn({2, 2, 16})); }), "must be 2-D");
}

TEST(AdaptiveLogSoftmaxWithLoss, TargetRangeAndDtypeErrorsAsTorch) {
  auto m = nn::make<AdaptiveLogSoftmaxWithLoss>(
      {.in_features = 16, .n_classes = 20, .cutoffs = {4, 8, 12}});
  const Tensor x = randn({3, 16});
  EXPECT_CONTAINS(thrown<IndexError>([&] {
                    m->forward(x, from_vector<int64_t>({1, 2, 30}, {3}));
                  }),
                  "Target values should be in [0, 19], but values in range [1, 30] were found");
  EXPECT_CONTAINS(thrown<IndexError>([&] {
                    m->forward(x, from_vector<int64_t>({1, -2, 3}, {3}));
                  }),
                  "Target values should be in [0, 19], but values in range [-2, 3] were found");
  EXPECT_CONTAINS(thrown<IndexError>([&] {
                    m->forward(randn({16}), from_vector<int64_t>({20}, {1}).reshape({}));
                  }),
                  "values in range [20, 20]");
  // torch: "gather(): Expected dtype int64 for index".
  EXPECT_CONTAINS(thrown<DTypeError>([&] {
                    m->forward(x, from_vector<int32_t>({1, 2, 3}, {3}));
                  }),
                  "int64");
  EXPECT_CONTAINS(thrown<DTypeError>([&] {
                    m->forward(x, from_vector<int32_t>({1, 9, 3}, {3}));
                  }),
                  "int64");
}

// torch's forward on an empty batch: an empty output and a NaN loss (the mean of nothing).
TEST(AdaptiveLogSoftmaxWithLoss, EmptyBatchAsTorch) {
  auto m =
      nn::make<AdaptiveLogSoftmaxWithLoss>({.in_features = 16, .n_classes = 20, .cutoffs = {4, 8}});
  const nn::AdaptiveLogSoftmaxOutput res =
      m->forward(zeros({0, 16}), zeros({0}, {.dtype = DType::int64}));
  EXPECT_EQ(res.output.sizes(), (Shape{0}));
  EXPECT_TRUE(std::isnan(res.loss.item<double>()));
  EXPECT_EQ(m->predict(zeros({0, 16})).sizes(), (Shape{0}));
}

}  // namespace
}  // namespace fabric
