// ctc_loss against torch 1.13's CPU kernel itself: values, log_probs gradients and grad_fn names
// bit for bit in float32 and float64 (tools/fixtures/make_ctc_loss_rows.py), a finite-difference
// check of the gradient through log_softmax in float64, the argument checks, the lengths and
// targets torch accepts, autocast, and nn::CTCLoss.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "nn/ctc_loss.h"
#include "tensor/ctc_loss.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/cpu_autocast.h"
#include "tests/common/expect_error.h"
#include "tests/ops/ctc_loss_torch_rows.h"

namespace fabric {
namespace {

using ctc_fixture::CtcRow;

// Equal bits (so -0 differs from 0), or both NaN.
bool same_bits(double got, double want) {
  if (std::isnan(want)) return std::isnan(got);
  return std::bit_cast<uint64_t>(got) == std::bit_cast<uint64_t>(want);
}

// How many elements differ in their bits; the first few are reported.
int64_t count_mismatches(const char* what, const std::vector<double>& got,
                         const std::vector<double>& want) {
  EXPECT_EQ(got.size(), want.size()) << what;
  int64_t bad = 0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    if (same_bits(got[i], want[i])) continue;
    if (++bad <= 3) ADD_FAILURE() << what << "[" << i << "]: " << got[i] << " vs torch " << want[i];
  }
  return bad;
}

Tensor log_probs_of(const CtcRow& r) {
  const DType dt = r.f64 ? DType::float64 : DType::float32;
  return from_vector(r.lp, {static_cast<int64_t>(r.lp.size())}, {.dtype = DType::float64})
      .to(dt)
      .reshape(r.lp_shape);
}

Tensor targets_of(const CtcRow& r) { return from_vector(r.tg).reshape(r.tg_shape); }

// The weights c_k = 1 + k / 4 of the fixture's sum(out * c), in out's dtype and shape.
Tensor weights_like(const Tensor& out) {
  std::vector<double> c(static_cast<size_t>(out.numel()));
  for (size_t k = 0; k < c.size(); ++k) c[k] = 1.0 + static_cast<double>(k) / 4.0;
  return from_vector(c, {out.numel()}, {.dtype = DType::float64})
      .to(out.dtype())
      .reshape(out.sizes());
}

TEST(CtcLossTorch, ValuesGradientsAndNodesMatchTorch113Bitwise) {
  int64_t values = 0, grads = 0;
  for (const CtcRow& r : ctc_fixture::torch_rows()) {
    SCOPED_TRACE(r.name);
    Tensor lp = log_probs_of(r);
    lp.set_requires_grad(true);
    const Tensor out =
        ctc_loss(lp, targets_of(r), r.il, r.tl, r.blank, r.reduction, r.zero_infinity);
    ASSERT_EQ(out.sizes(), r.out_shape);
    EXPECT_EQ(out.dtype(), lp.dtype());
    EXPECT_EQ(grad_fn_name(out), r.grad_fn);
    values += count_mismatches("out", out.to_vector<double>(), r.out);
    out.backward(weights_like(out));
    ASSERT_TRUE(lp.grad().defined());
    grads += count_mismatches("grad", lp.grad().to_vector<double>(), r.grad);
  }
  EXPECT_EQ(values, 0);
  EXPECT_EQ(grads, 0);
}

// A float64 batch of logits x; the loss is taken of log_softmax(x) (torch's ctc gradient w.r.t.
// log_probs is the one for normalised log-probabilities: exact through log_softmax).
struct FdCase {
  Tensor x;
  Tensor targets;
  std::vector<int64_t> il, tl;
};

FdCase fd_case() {
  manual_seed(7);
  return {randn({6, 3, 4}, {.dtype = DType::float64}),
          from_vector<int64_t>({1, 2, 2, 3, 1, 3, 0, 0, 2, 1, 0, 0}, {3, 4}),
          {6, 5, 4},
          {4, 1, 2}};
}

TEST(CtcLossTorch, GradientMatchesFiniteDifferencesInFloat64) {
  for (const char* red : {"none", "mean", "sum"}) {
    SCOPED_TRACE(red);
    FdCase c = fd_case();
    auto f = [&](const Tensor& x) {
      const Tensor out = ctc_loss(log_softmax(x, 2), c.targets, c.il, c.tl, 0, red);
      return sum(mul(out, weights_like(out)));
    };
    Tensor x = c.x.detach();
    x.set_requires_grad(true);
    f(x).backward();
    const std::vector<double> g = x.grad().to_vector<double>();
    std::vector<double> xs = c.x.to_vector<double>();
    const double h = 1e-6;
    double worst = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      NoGradGuard no_grad;
      std::vector<double> plus = xs, minus = xs;
      plus[i] += h;
      minus[i] -= h;
      const double fp = f(from_vector(plus, c.x.sizes())).item<double>();
      const double fm = f(from_vector(minus, c.x.sizes())).item<double>();
      worst = std::max(worst, std::abs((fp - fm) / (2 * h) - g[i]));
    }
    EXPECT_LT(worst, 1e-7);
  }
}

TEST(CtcLossTorch, LengthsAsTensorsAndTargetDtypesGiveTheSameBits) {
  manual_seed(3);
  const Tensor lp = log_softmax(randn({5, 2, 4}), 2);
  const Tensor tg = from_vector<int64_t>({1, 2, 3, 3}, {2, 2});
  const std::vector<double> want = ctc_loss(lp, tg, {5, 4}, {2, 2}, 0, "none").to_vector<double>();
  auto bits = [&](const Tensor& out) { return out.to_vector<double>(); };
  // Integral tensors of any integer dtype and shape (torch flattens them).
  EXPECT_EQ(
      bits(ctc_loss(lp, tg, from_vector<int32_t>({5, 4}), from_vector<int32_t>({2, 2}), 0, "none")),
      want);
  EXPECT_EQ(bits(ctc_loss(lp, tg, from_vector<int64_t>({5, 4}, {1, 2}),
                          from_vector<int64_t>({2, 2}, {2, 1}), 0, "none")),
            want);
  // Targets of any dtype are read as int64, as torch's .to(kLong).
  EXPECT_EQ(bits(ctc_loss(lp, tg.to(DType::int32), {5, 4}, {2, 2}, 0, "none")), want);
  EXPECT_EQ(bits(ctc_loss(lp, tg.to(DType::float32), {5, 4}, {2, 2}, 0, "none")), want);
  // One sample's lengths as 0-d tensors.
  EXPECT_EQ(
      bits(ctc_loss(lp.select(1, 0), tg.select(0, 0), scalar_tensor(5, {.dtype = DType::int64}),
                    scalar_tensor(2, {.dtype = DType::int64}), 0, "none")
               .reshape({1})),
      std::vector<double>{want[0]});
}

TEST(CtcLossTorch, StridedLogProbsGiveTheContiguousBits) {
  manual_seed(4);
  const Tensor ntc = log_softmax(randn({3, 6, 5}, {.dtype = DType::float64}), 2);  // (N, T, C)
  const Tensor tg = from_vector<int64_t>({1, 2, 4, 4, 3, 0}, {3, 2});
  Tensor a = ntc.transpose(0, 1);  // (T, N, C), not contiguous
  Tensor b = a.contiguous().detach();
  a = a.detach();
  a.set_requires_grad(true);
  b.set_requires_grad(true);
  const Tensor la = ctc_loss(a, tg, {6, 6, 3}, {2, 2, 1}, 0, "sum");
  const Tensor lb = ctc_loss(b, tg, {6, 6, 3}, {2, 2, 1}, 0, "sum");
  EXPECT_EQ(la.to_vector<double>(), lb.to_vector<double>());
  la.backward();
  lb.backward();
  EXPECT_EQ(a.grad().to_vector<double>(), b.grad().to_vector<double>());
}

TEST(CtcLossTorch, EmptyBatchesAndEmptyInputs) {
  const Tensor lp = log_softmax(randn({4, 2, 3}), 2);
  const Tensor none0 = ctc_loss(lp.slice(1, 0, 0), zeros({0, 2}, {.dtype = DType::int64}),
                                std::vector<int64_t>{}, std::vector<int64_t>{}, 0, "none");
  EXPECT_EQ(none0.sizes(), (Shape{0}));
  // torch: the mean of no losses is NaN, their sum 0.
  EXPECT_TRUE(std::isnan(ctc_loss(lp.slice(1, 0, 0), zeros({0, 2}, {.dtype = DType::int64}),
                                  std::vector<int64_t>{}, std::vector<int64_t>{}, 0, "mean")
                             .item<float>()));
  EXPECT_EQ(ctc_loss(lp.slice(1, 0, 0), zeros({0, 2}, {.dtype = DType::int64}),
                     std::vector<int64_t>{}, std::vector<int64_t>{}, 0, "sum")
                .item<float>(),
            0.0f);
  // An input length of 0: torch 1.13 reads outside the sample; here an empty target costs 0
  // and any other +inf (later torch's definition), with a zero gradient either way.
  Tensor x = lp.detach();
  x.set_requires_grad(true);
  const Tensor out = ctc_loss(x, from_vector<int64_t>({1, 2}, {2, 1}), {0, 0}, {0, 1}, 0, "none");
  const std::vector<float> v = out.to_vector<float>();
  EXPECT_EQ(v[0], 0.0f);
  EXPECT_EQ(v[1], INFINITY);
  sum(where(isinf(out), zeros({}), out)).backward();
  for (float g : x.grad().to_vector<float>()) EXPECT_EQ(g, 0.0f);
}

TEST(CtcLossTorch, ArgumentErrorsNameWhatIsWrong) {
  const Tensor lp = log_softmax(randn({5, 2, 4}), 2);
  const Tensor tg = from_vector<int64_t>({1, 2, 1, 1}, {2, 2});
  const std::vector<int64_t> il{5, 5}, tl{2, 2};
  EXPECT_CONTAINS(thrown<ValueError>([&] { ctc_loss(lp, tg, il, tl, 0, "avg"); }), "reduction");
  EXPECT_CONTAINS(thrown<DTypeError>([&] { ctc_loss(lp.to(DType::float16), tg, il, tl); }),
                  "float32 or float64");
  EXPECT_CONTAINS(thrown<DTypeError>([&] { ctc_loss(lp.to(DType::int64), tg, il, tl); }),
                  "float32 or float64");
  EXPECT_CONTAINS(thrown<ShapeError>([&] { ctc_loss(lp.unsqueeze(0), tg, il, tl); }), "(T, N, C)");
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    ctc_loss(lp.reshape({2, 2, 2, 5}), tg, il, tl);
                  }),
                  "(T, N, C)");
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    ctc_loss(lp, tg.reshape({2, 2, 1}), il, tl);
                  }),
                  "padded (N, S) or concatenated");
  for (int64_t blank : {-1, 4})
    EXPECT_CONTAINS(thrown<ValueError>([&] { ctc_loss(lp, tg, il, tl, blank); }),
                    "blank must be in label range");
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    ctc_loss(lp, tg, {5, 5, 5}, tl);
                  }),
                  "input_lengths must be of size batch_size");
  EXPECT_CONTAINS(thrown<ShapeError>([&] { ctc_loss(lp, tg, il, {2}); }),
                  "target_lengths must be of size batch_size");
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    ctc_loss(lp, tg, {6, 5}, tl);
                  }),
                  "input_lengths to have value at most 5, but got value 6");
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    ctc_loss(lp, tg, {-1, 5}, tl);
                  }),
                  "input_lengths to have value at least 0, but got value -1");
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    ctc_loss(lp, tg, il, {-1, 2});
                  }),
                  "target_lengths to have value at least 0, but got value -1");
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    ctc_loss(lp, tg, il, {3, 2});
                  }),
                  "at least max(target_lengths) = 3 columns");
  EXPECT_CONTAINS(thrown<ShapeError>([&] { ctc_loss(lp, tg.slice(0, 0, 1), il, tl); }),
                  "must have 2 rows");
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    ctc_loss(lp, tg.reshape({4}), il, {2, 1});
                  }),
                  "sum(target_lengths) = 3");
  EXPECT_CONTAINS(thrown<IndexError>([&] {
                    ctc_loss(lp, from_vector<int64_t>({1, 4, 1, 1}, {2, 2}), il, tl);
                  }),
                  "target label 4 (sample 0, position 1) is out of range");
  // Padding past a target's length is never read: any value there is fine (-1 here).
  EXPECT_NO_THROW(ctc_loss(lp, from_vector<int64_t>({1, -1, 1, 1}, {2, 2}), il, {1, 2}));
  EXPECT_CONTAINS(thrown<DTypeError>([&] {
                    ctc_loss(lp, tg, from_vector<float>({5, 5}), from_vector<int64_t>({2, 2}));
                  }),
                  "input_lengths must be integral");
  EXPECT_CONTAINS(thrown<DTypeError>([&] {
                    ctc_loss(lp, tg, from_vector<int64_t>({5, 5}),
                             from_vector<int64_t>({2, 2}).to(DType::bool_));
                  }),
                  "target_lengths must be integral");
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    ctc_loss(lp.slice(0, 0, 0), tg, {0, 0}, {0, 0});
                  }),
                  "no time steps");
}

TEST(CtcLossTorch, CpuAutocastComputesInFloat32) {
  manual_seed(5);
  Tensor x = log_softmax(randn({5, 2, 4}), 2).to(DType::bfloat16).detach();
  x.set_requires_grad(true);
  const Tensor tg = from_vector<int64_t>({1, 2, 3, 1}, {2, 2});
  Tensor out;
  {
    CpuAutocast ac(DType::bfloat16);
    out = ctc_loss(x, tg, {5, 5}, {2, 2});
  }
  EXPECT_EQ(out.dtype(), DType::float32);
  EXPECT_EQ(out.item<float>(),
            ctc_loss(x.detach().to(DType::float32), tg, {5, 5}, {2, 2}).item<float>());
  out.backward();
  EXPECT_EQ(x.grad().dtype(), DType::bfloat16);
}

TEST(CtcLossTorch, ModulePrintsAndCallsAsTorch) {
  manual_seed(6);
  const Tensor lp = log_softmax(randn({6, 2, 5}), 2);
  const Tensor tg = from_vector<int64_t>({1, 2, 3, 3, 3, 0}, {2, 3});
  nn::CTCLoss loss({.blank = 4, .reduction = "sum", .zero_infinity = true});
  EXPECT_EQ(loss.str(), "CTCLoss()");
  EXPECT_EQ(nn::CTCLoss().str(), "CTCLoss()");
  EXPECT_EQ(loss(lp, tg, {6, 2}, {3, 2}).item<float>(),
            ctc_loss(lp, tg, {6, 2}, {3, 2}, 4, "sum", true).item<float>());
  EXPECT_EQ(loss(lp, tg, from_vector<int64_t>({6, 2}), from_vector<int64_t>({3, 2})).item<float>(),
            ctc_loss(lp, tg, {6, 2}, {3, 2}, 4, "sum", true).item<float>());
  EXPECT_THROW(nn::CTCLoss({.reduction = "avg"}), ValueError);
}

}  // namespace
}  // namespace fabric
