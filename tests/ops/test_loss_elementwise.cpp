// The elementwise losses against torch 1.13 itself (values and gradients of fixed inputs), their
// argument errors, and their autocast classes. The naive-reference and finite-difference checks
// are the harness rows of op_cases_loss_elementwise.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/capture_warnings.h"
#include "tests/common/cpu_autocast.h"
#include "tests/common/expect_error.h"
#include "tests/cuda/cuda_test_util.h"

namespace fabric {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

using LossFn =
    std::function<Tensor(const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw)>;

// One torch 1.13 CPU call: F.<loss>(x, t, ...) on these values in `dtype`, then .backward();
// the value and x.grad / t.grad pasted with 17 significant digits (torch tensors
// built from the same doubles, reshaped to `shape`). Empty w / pw: not passed.
struct TorchRow {
  const char* name;
  DType dtype;
  Shape shape;
  std::vector<double> x, t;
  Shape w_shape;
  std::vector<double> w;
  Shape pw_shape;
  std::vector<double> pw;
  LossFn loss;
  double value;
  std::vector<double> grad_x, grad_t;
};

// clang-format off
const std::vector<TorchRow>& torch_rows() {
  static const std::vector<TorchRow> rows = {
      {"l1_loss/mean", DType::float64, {2, 3}, {0.5, -1.25, 2.0, 0.0, 3.5, -0.75}, {0.25, -1.25, -1.0, 0.10000000000000001, 2.0, 0.5}, {}, {}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return l1_loss(x, t); },
       1.0166666666666666, {0.16666666666666666, 0.0, 0.16666666666666666, -0.16666666666666666, 0.16666666666666666, -0.16666666666666666}, {-0.16666666666666666, -0.0, -0.16666666666666666, 0.16666666666666666, -0.16666666666666666, 0.16666666666666666}},
      {"l1_loss/mean", DType::float32, {2, 3}, {0.5, -1.25, 2.0, 0.0, 3.5, -0.75}, {0.25, -1.25, -1.0, 0.10000000000000001, 2.0, 0.5}, {}, {}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return l1_loss(x, t); },
       1.0166666507720947, {0.1666666716337204, 0.0, 0.1666666716337204, -0.1666666716337204, 0.1666666716337204, -0.1666666716337204}, {-0.1666666716337204, -0.0, -0.1666666716337204, 0.1666666716337204, -0.1666666716337204, 0.1666666716337204}},
      {"l1_loss/sum_broadcast", DType::float64, {2, 3}, {0.5, -1.25, 2.0, 0.0, 3.5, -0.75}, {0.25, -1.25, -1.0, 0.10000000000000001, 2.0, 0.5}, {}, {}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return l1_loss(x, t[0], "sum"); },
       8.5, {1.0, 0.0, 1.0, -1.0, 1.0, 1.0}, {0.0, -1.0, -2.0, 0.0, 0.0, 0.0}},
      {"smooth_l1_loss/beta1_sum", DType::float64, {2, 3}, {1.0, -0.5, 2.0, 0.25, 3.0, -2.0}, {0.0, 0.5, 1.5, 0.0, 0.5, -2.0}, {}, {}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return smooth_l1_loss(x, t, "sum"); },
       3.15625, {1.0, -1.0, 0.5, 0.25, 1.0, 0.0}, {-1.0, 1.0, -0.5, -0.25, -1.0, 0.0}},
      {"smooth_l1_loss/beta1_sum", DType::float32, {2, 3}, {1.0, -0.5, 2.0, 0.25, 3.0, -2.0}, {0.0, 0.5, 1.5, 0.0, 0.5, -2.0}, {}, {}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return smooth_l1_loss(x, t, "sum"); },
       3.15625, {1.0, -1.0, 0.5, 0.25, 1.0, 0.0}, {-1.0, 1.0, -0.5, -0.25, -1.0, 0.0}},
      {"smooth_l1_loss/beta0.5_mean", DType::float64, {2, 3}, {1.0, -0.5, 2.0, 0.25, 3.0, -2.0}, {0.0, 0.5, 1.5, 0.0, 0.5, -2.0}, {}, {}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return smooth_l1_loss(x, t, "mean", 0.5); },
       0.67708333333333337, {0.16666666666666666, -0.16666666666666666, 0.16666666666666666, 0.083333333333333329, 0.16666666666666666, 0.0}, {-0.16666666666666666, 0.16666666666666666, -0.16666666666666666, -0.083333333333333329, -0.16666666666666666, 0.0}},
      {"smooth_l1_loss/beta0_sum", DType::float64, {2, 3}, {0.5, -1.25, 2.0, 0.0, 3.5, -0.75}, {0.25, -1.0, -1.0, 0.5, 2.5, -0.5}, {}, {}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return smooth_l1_loss(x, t, "sum", 0.0); },
       5.25, {1.0, -1.0, 1.0, -1.0, 1.0, -1.0}, {-1.0, 1.0, -1.0, 1.0, -1.0, 1.0}},
      {"huber_loss/delta1_mean", DType::float64, {2, 3}, {1.0, -0.5, 2.0, 0.25, 3.0, -2.0}, {0.0, 0.5, 1.5, 0.0, 0.5, -2.0}, {}, {}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return huber_loss(x, t); },
       0.52604166666666663, {0.16666666666666666, -0.16666666666666666, 0.083333333333333329, 0.041666666666666664, 0.16666666666666666, 0.0}, {-0.16666666666666666, 0.16666666666666666, -0.083333333333333329, -0.041666666666666664, -0.16666666666666666, 0.0}},
      {"huber_loss/delta1_mean", DType::float32, {2, 3}, {1.0, -0.5, 2.0, 0.25, 3.0, -2.0}, {0.0, 0.5, 1.5, 0.0, 0.5, -2.0}, {}, {}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return huber_loss(x, t); },
       0.52604168653488159, {0.1666666716337204, -0.1666666716337204, 0.083333335816860199, 0.041666667908430099, 0.1666666716337204, 0.0}, {-0.1666666716337204, 0.1666666716337204, -0.083333335816860199, -0.041666667908430099, -0.1666666716337204, 0.0}},
      {"huber_loss/delta2.5_sum", DType::float64, {2, 3}, {4.0, -0.5, 2.0, 0.25, 3.0, -2.0}, {1.5, 0.5, 1.5, 0.0, 0.5, -2.0}, {}, {}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return huber_loss(x, t, "sum", 2.5); },
       6.90625, {2.5, -1.0, 0.5, 0.25, 2.5, 0.0}, {-2.5, 1.0, -0.5, -0.25, -2.5, 0.0}},
      {"binary_cross_entropy/mean", DType::float64, {2, 3}, {0.0, 1.0, 0.29999999999999999, 0.999, 1e-08, 0.5}, {0.0, 1.0, 0.20000000000000001, 1.0, 0.0, 0.69999999999999996}, {}, {}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return binary_cross_entropy(x, t); },
       0.2033803678182837, {0.0, 0.0, 0.079365079365079347, -0.16683350016683349, 0.16666666833333335, -0.1333333333333333}, {kInf, -kInf, 0.14121631006453395, -1.1511257964414254, 3.0701134556587277, 0.0}},
      {"binary_cross_entropy/mean", DType::float32, {2, 3}, {0.0, 1.0, 0.29999999999999999, 0.999, 1e-08, 0.5}, {0.0, 1.0, 0.20000000000000001, 1.0, 0.0, 0.69999999999999996}, {}, {}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return binary_cross_entropy(x, t); },
       0.20338036119937897, {0.0, 0.0, 0.079365082085132599, -0.16683350503444672, 0.1666666716337204, -0.13333332538604736}, {kInf, -kInf, 0.14121630787849426, -1.1511279344558716, 3.0701134204864502, 0.0}},
      {"binary_cross_entropy/edges_sum", DType::float64, {4}, {0.0, 1.0, 0.0, 1.0}, {0.0, 1.0, 1.0, 0.0}, {}, {}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return binary_cross_entropy(x, t, Tensor(), "sum"); },
       200.0, {0.0, 0.0, -1000000003995.8029, 1000000003995.8029}, {kInf, -kInf, kInf, -kInf}},
      {"binary_cross_entropy/weight_row_sum", DType::float64, {2, 3}, {0.10000000000000001, 0.90000000000000002, 0.29999999999999999, 0.59999999999999998, 0.02, 0.5}, {0.0, 1.0, 0.5, 1.0, 0.29999999999999999, 0.69999999999999996}, {3}, {0.5, 2.0, 1.5}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return binary_cross_entropy(x, t, w, "sum"); },
       5.1045182765673944, {0.55555555555555547, -2.2222222222222223, -1.4285714285714286, -0.83333333333333337, -28.571428571428569, -1.1999999999999997}, {1.0986122886681096, -4.3944491546724391, 1.2709467905808056, -0.20273255405408214, 7.7836405962212529, 0.0}},
      {"binary_cross_entropy_with_logits/extreme_mean", DType::float64, {2, 3}, {50.0, -50.0, 100.0, -100.0, 0.0, 3.7000000000000002}, {1.0, 0.0, 0.29999999999999999, 0.69999999999999996, 0.5, 0.20000000000000001}, {}, {}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return binary_cross_entropy_with_logits(x, t); },
       23.946261671082286, {0.0, 3.2145830799398632e-23, 0.11666666666666665, -0.11666666666666665, 0.0, 0.12931216309705515}, {-8.3333333333333339, 8.3333333333333339, -16.666666666666668, 16.666666666666668, -0.0, -0.6166666666666667}},
      {"binary_cross_entropy_with_logits/pos_weight_weight_sum", DType::float64, {2, 3}, {50.0, -50.0, 100.0, -100.0, 0.0, 3.7000000000000002}, {1.0, 0.0, 0.29999999999999999, 0.69999999999999996, 0.5, 0.20000000000000001}, {2, 1}, {0.5, 2.0}, {3}, {3.0, 0.5, 1.0},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return binary_cross_entropy_with_logits(x, t, w, pw, "sum"); },
       462.00856646270745, {0.0, 9.6437492398195903e-23, 0.34999999999999998, -4.1999999999999993, 0.25, 1.5517459571646617}, {-25.0, 12.5, -50.0, 600.0, -0.69314718055994529, -7.4000000000000004}},
      {"binary_cross_entropy_with_logits/extreme_mean", DType::float32, {2, 3}, {50.0, -50.0, 100.0, -100.0, 0.0, 3.7000000000000002}, {1.0, 0.0, 0.29999999999999999, 0.69999999999999996, 0.5, 0.20000000000000001}, {}, {}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return binary_cross_entropy_with_logits(x, t); },
       23.946260452270508, {0.0, 3.2145832607710181e-23, 0.11666666716337204, -0.11666666716337204, 0.0, 0.1293121725320816}, {-8.3333330154418945, 8.3333330154418945, -16.666666030883789, 16.666666030883789, -0.0, -0.61666667461395264}},
      {"binary_cross_entropy_with_logits/pos_weight_weight_sum", DType::float32, {2, 3}, {50.0, -50.0, 100.0, -100.0, 0.0, 3.7000000000000002}, {1.0, 0.0, 0.29999999999999999, 0.69999999999999996, 0.5, 0.20000000000000001}, {2, 1}, {0.5, 2.0}, {3}, {3.0, 0.5, 1.0},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return binary_cross_entropy_with_logits(x, t, w, pw, "sum"); },
       462.00860595703125, {0.0, 9.6437494667686923e-23, 0.34999996423721313, -4.1999998092651367, 0.25, 1.5517460107803345}, {-25.0, 12.5, -50.0, 600.0, -0.69314718246459961, -7.4000000953674316}},
      {"kl_div/batchmean_zero_targets", DType::float64, {2, 3}, {-1.6094379124341003, -1.2039728043259361, -0.69314718055994529, -0.35667494393873245, -2.3025850929940455, -1.6094379124341003}, {0.0, 0.5, 0.5, 0.25, 0.0, 0.75}, {}, {}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return kl_div(x, t, "batchmean"); },
       0.49466241878722261, {-0.0, -0.25, -0.25, -0.125, -0.0, -0.375}, {kNaN, 0.75541281188299547, 0.5, -0.014809708590579063, kNaN, 1.1608779199911596}},
      {"kl_div/batchmean_zero_targets", DType::float32, {2, 3}, {-1.6094379124341003, -1.2039728043259361, -0.69314718055994529, -0.35667494393873245, -2.3025850929940455, -1.6094379124341003}, {0.0, 0.5, 0.5, 0.25, 0.0, 0.75}, {}, {}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return kl_div(x, t, "batchmean"); },
       0.49466243386268616, {-0.0, -0.25, -0.25, -0.125, -0.0, -0.375}, {kNaN, 0.75541281700134277, 0.5, -0.014809712767601013, kNaN, 1.1608779430389404}},
      {"kl_div/mean", DType::float64, {2, 3}, {-1.6094379124341003, -1.2039728043259361, -0.69314718055994529, -0.35667494393873245, -2.3025850929940455, -1.6094379124341003}, {0.0, 0.5, 0.5, 0.25, 0.0, 0.75}, {}, {}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return kl_div(x, t, "mean"); },
       0.16488747292907421, {-0.0, -0.083333333333333329, -0.083333333333333329, -0.041666666666666664, -0.0, -0.125}, {kNaN, 0.25180427062766514, 0.16666666666666666, -0.0049365695301930232, kNaN, 0.38695930666371986}},
      {"kl_div/log_target_sum", DType::float64, {2, 3}, {-1.6094379124341003, -1.2039728043259361, -0.69314718055994529, -0.35667494393873245, -2.3025850929940455, -1.6094379124341003}, {-0.51082562376599072, -3.0, 0.0, -0.25, -10.0, -2.9957322735539909}, {}, {}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return kl_div(x, t, "sum", true); },
       1.2763099747007012, {-0.59999999999999998, -0.049787068367863944, -1.0, -0.77880078307140488, -4.5399929762484854e-05, -0.05000000000000001}, {1.2591673732008657, -0.039631860413703625, 1.6931471805599454, 0.86187931294498799, -0.00030406216636828939, -0.01931471805599453}},
      // Ties (x == y), x < y and x > y: tools/fixtures/make_loss_tie_rows.py.
      {"smooth_l1_loss/beta0_ties_sum", DType::float64, {2, 3}, {0.5, 0.2, 0.7, 0.0, -1.5, 2.0}, {0.5, 0.7, 0.2, 0.0, -1.5, 1.0}, {}, {}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return smooth_l1_loss(x, t, "sum", 0.0); },
       2.0, {-1.0, -1.0, 1.0, -1.0, -1.0, 1.0}, {-1.0, 1.0, -1.0, -1.0, -1.0, -1.0}},
      {"smooth_l1_loss/beta0_ties_sum", DType::float32, {2, 3}, {0.5, 0.2, 0.7, 0.0, -1.5, 2.0}, {0.5, 0.7, 0.2, 0.0, -1.5, 1.0}, {}, {}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return smooth_l1_loss(x, t, "sum", 0.0); },
       2.0, {-1.0, -1.0, 1.0, -1.0, -1.0, 1.0}, {-1.0, 1.0, -1.0, -1.0, -1.0, -1.0}},
      {"smooth_l1_loss/beta1_ties_sum", DType::float64, {2, 3}, {0.5, 0.2, 0.7, 0.0, -1.5, 2.0}, {0.5, 0.7, 0.2, 0.0, -1.5, 1.0}, {}, {}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return smooth_l1_loss(x, t, "sum", 1.0); },
       0.75, {0.0, -0.49999999999999994, 0.49999999999999994, 0.0, 0.0, 1.0}, {0.0, 0.49999999999999994, -0.49999999999999994, 0.0, 0.0, -1.0}},
      {"smooth_l1_loss/beta1_ties_sum", DType::float32, {2, 3}, {0.5, 0.2, 0.7, 0.0, -1.5, 2.0}, {0.5, 0.7, 0.2, 0.0, -1.5, 1.0}, {}, {}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return smooth_l1_loss(x, t, "sum", 1.0); },
       0.75, {0.0, -0.5, 0.5, 0.0, 0.0, 1.0}, {0.0, 0.5, -0.5, 0.0, 0.0, -1.0}},
      {"huber_loss/delta0.5_ties_sum", DType::float64, {2, 3}, {0.5, 0.2, 0.7, 0.0, -1.5, 2.0}, {0.5, 0.7, 0.2, 0.0, -1.5, 1.0}, {}, {}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return huber_loss(x, t, "sum", 0.5); },
       0.625, {0.0, -0.49999999999999994, 0.49999999999999994, 0.0, 0.0, 0.5}, {0.0, 0.49999999999999994, -0.49999999999999994, 0.0, 0.0, -0.5}},
      {"huber_loss/delta0.5_ties_sum", DType::float32, {2, 3}, {0.5, 0.2, 0.7, 0.0, -1.5, 2.0}, {0.5, 0.7, 0.2, 0.0, -1.5, 1.0}, {}, {}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return huber_loss(x, t, "sum", 0.5); },
       0.625, {0.0, -0.5, 0.5, 0.0, 0.0, 0.5}, {0.0, 0.5, -0.5, 0.0, 0.0, -0.5}},
      {"l1_loss/ties_sum", DType::float64, {2, 3}, {0.5, 0.2, 0.7, 0.0, -1.5, 2.0}, {0.5, 0.7, 0.2, 0.0, -1.5, 1.0}, {}, {}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return l1_loss(x, t, "sum"); },
       2.0, {0.0, -1.0, 1.0, 0.0, 0.0, 1.0}, {-0.0, 1.0, -1.0, -0.0, -0.0, -1.0}},
      {"l1_loss/ties_sum", DType::float32, {2, 3}, {0.5, 0.2, 0.7, 0.0, -1.5, 2.0}, {0.5, 0.7, 0.2, 0.0, -1.5, 1.0}, {}, {}, {}, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w, const Tensor& pw) { return l1_loss(x, t, "sum"); },
       2.0, {0.0, -1.0, 1.0, 0.0, 0.0, 1.0}, {-0.0, 1.0, -1.0, -0.0, -0.0, -1.0}},
  };
  return rows;
}
// clang-format on

Tensor make(const std::vector<double>& v, const Shape& shape, DType dt, bool grad) {
  Tensor t = from_vector(v, shape, {.dtype = DType::float64}).to(dt);
  if (grad) t.set_requires_grad(true);
  return t;
}

// |got - want| relative to max(1, |want|); equal infinities and NaN against NaN are exact.
double rel_err(double got, double want) {
  if (std::isnan(want)) return std::isnan(got) ? 0.0 : kInf;
  if (std::isinf(want)) return got == want ? 0.0 : kInf;
  return std::abs(got - want) / std::max(1.0, std::abs(want));
}

TEST(LossElementwise, ValuesAndGradientsMatchTorch113) {
  double worst64 = 0, worst32 = 0;
  for (const TorchRow& r : torch_rows()) {
    SCOPED_TRACE(::testing::Message() << r.name << " " << dtype_name(r.dtype));
    const Tensor x = make(r.x, r.shape, r.dtype, true), t = make(r.t, r.shape, r.dtype, true);
    const Tensor w = r.w.empty() ? Tensor() : make(r.w, r.w_shape, r.dtype, false);
    const Tensor pw = r.pw.empty() ? Tensor() : make(r.pw, r.pw_shape, r.dtype, false);
    const Tensor loss = r.loss(x, t, w, pw);
    EXPECT_EQ(loss.dtype(), r.dtype);
    // float64: a few units in the last place (torch's kernels round in another order here and
    // there); float32: torch's CPU kernels keep some intermediates in double.
    const double tol = r.dtype == DType::float64 ? 1e-15 : 3e-7;
    double worst = rel_err(loss.item<double>(), r.value);
    EXPECT_LE(worst, tol) << "value " << loss.item<double>() << " vs torch " << r.value;
    loss.backward();
    for (const auto& [name, got_t, want] :
         {std::tuple{"x", x.grad(), r.grad_x}, std::tuple{"t", t.grad(), r.grad_t}}) {
      ASSERT_TRUE(got_t.defined()) << "no gradient for " << name;
      const std::vector<double> got = got_t.to_vector<double>();
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i) {
        const double e = rel_err(got[i], want[i]);
        EXPECT_LE(e, tol) << "d/d" << name << "[" << i << "] " << got[i] << " vs torch " << want[i];
        worst = std::max(worst, e);
      }
    }
    (r.dtype == DType::float64 ? worst64 : worst32) =
        std::max(r.dtype == DType::float64 ? worst64 : worst32, worst);
  }
  std::cout << "[ parity  ] worst relative difference vs torch 1.13: float64 " << worst64
            << ", float32 " << worst32 << "\n";
}

// ---- errors
// -------------------------------------------------------------------------------------------

template <class E>
void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  const std::string msg = thrown<E>(fn);
  for (const std::string& p : parts) EXPECT_CONTAINS(msg, p);
}

// A NaN difference has NaN gradients, as torch's kernels (the loss is NaN too), and second
// derivatives of 0, as torch's double backward; infinite ones keep their finite gradients.
TEST(LossElementwise, SmoothL1AndHuberGradientsOfANaNDifferenceAreNaN) {
  const double nan = std::nan(""), inf = INFINITY;
  const std::vector<std::function<Tensor(const Tensor&, const Tensor&)>> losses = {
      [](const Tensor& a, const Tensor& b) { return smooth_l1_loss(a, b, "sum"); },
      [](const Tensor& a, const Tensor& b) { return smooth_l1_loss(a, b, "sum", 0.0); },
      [](const Tensor& a, const Tensor& b) { return huber_loss(a, b, "sum"); },
      [](const Tensor& a, const Tensor& b) { return huber_loss(a, b, "sum", 2.0); },
  };
  for (size_t i = 0; i < losses.size(); ++i) {
    SCOPED_TRACE(i);
    Tensor x = from_vector(std::vector<double>{nan, 1.0, -inf, 0.0}, {4});
    x.set_requires_grad(true);
    const Tensor t = from_vector(std::vector<double>{0.0, inf, 1.0, nan}, {4});
    const Tensor g1 = grad({losses[i](x, t)}, {x}, {}, std::nullopt, /*create_graph=*/true)[0];
    if (g1.requires_grad())  // (beta 0's gradient is constant: nothing to differentiate)
      EXPECT_EQ(grad({sum(g1)}, {x})[0].to_vector<double>(), (std::vector<double>{0, 0, 0, 0}));
    const std::vector<double> g = g1.to_vector<double>();  // torch: nan, -1, -1, nan
    EXPECT_TRUE(std::isnan(g[0]));
    EXPECT_EQ(g[1], i == 3 ? -2.0 : -1.0);
    EXPECT_EQ(g[2], i == 3 ? -2.0 : -1.0);
    EXPECT_TRUE(std::isnan(g[3]));
  }
}

TEST(LossElementwise, BadArgumentsRaiseNamingTheOpAndWhatWasExpected) {
  const Tensor a = full({2, 3}, 0.5), b = full({2, 3}, 0.25), c = full({2, 4}, 0.5);
  const std::vector<std::string> three = {"reduction must be \"mean\", \"sum\" or \"none\"",
                                          "got \"avg\""};
  struct Row {
    const char* op;
    std::function<void()> call;
  };
  const std::vector<Row> bad_reduction = {
      {"l1_loss", [&] { l1_loss(a, b, "avg"); }},
      {"smooth_l1_loss", [&] { smooth_l1_loss(a, b, "avg"); }},
      {"huber_loss", [&] { huber_loss(a, b, "avg"); }},
      {"binary_cross_entropy", [&] { binary_cross_entropy(a, b, Tensor(), "avg"); }},
      {"binary_cross_entropy_with_logits",
       [&] { binary_cross_entropy_with_logits(a, b, Tensor(), Tensor(), "avg"); }},
  };
  for (const Row& r : bad_reduction) {
    SCOPED_TRACE(r.op);
    std::vector<std::string> parts = three;
    parts.push_back(r.op);
    expect_error<ValueError>(r.call, parts);
  }
  expect_error<ValueError>([&] { kl_div(a, b, "avg"); },
                           {"kl_div", "\"mean\", \"sum\", \"none\" or \"batchmean\"", "\"avg\""});
  // batchmean is kl_div's alone.
  expect_error<ValueError>([&] { l1_loss(a, b, "batchmean"); }, {"l1_loss", "\"batchmean\""});

  // Shapes: broadcasting where torch broadcasts, equal shapes for the BCEs, weights that would
  // grow the input refused.
  expect_error<ShapeError>([&] { l1_loss(a, c); }, {"l1_loss", "(2, 3)", "(2, 4)"});
  expect_error<ShapeError>([&] { smooth_l1_loss(a, c); }, {"smooth_l1_loss", "(2, 3)", "(2, 4)"});
  expect_error<ShapeError>([&] { huber_loss(a, c); }, {"huber_loss", "(2, 3)", "(2, 4)"});
  expect_error<ShapeError>([&] { kl_div(a, c); }, {"kl_div", "(2, 3)", "(2, 4)"});
  expect_error<ShapeError>([&] { binary_cross_entropy(a, full({3}, 0.5)); },
                           {"binary_cross_entropy", "(3,)", "(2, 3)", "input's shape"});
  expect_error<ShapeError>(
      [&] { binary_cross_entropy_with_logits(a, full({3}, 0.5)); },
      {"binary_cross_entropy_with_logits", "target size (3,)", "same as input size (2, 3)"});
  expect_error<ShapeError>([&] { binary_cross_entropy(a, b, full({4}, 1.0)); },
                           {"binary_cross_entropy", "weight of shape (4,)", "(2, 3)"});
  expect_error<ShapeError>(
      [&] {
        binary_cross_entropy(a, b, full({1, 2, 3}, 1.0));
      },
      {"weight of shape (1, 2, 3)", "must broadcast to the input's shape"});
  expect_error<ShapeError>(
      [&] { binary_cross_entropy_with_logits(a, b, Tensor(), full({4}, 1.0)); },
      {"binary_cross_entropy_with_logits", "pos_weight of shape (4,)", "(2, 3)"});
  expect_error<ShapeError>(
      [&] {
        binary_cross_entropy_with_logits(a, b, full({1, 2, 3}, 1.0));
      },
      {"weight of shape (1, 2, 3)"});

  // Values: probabilities outside [0, 1] (NaN too), negative beta, delta <= 0.
  for (double bad : {1.5, -0.1, kNaN}) {
    SCOPED_TRACE(bad);
    expect_error<ValueError>(
        [&] {
          binary_cross_entropy(full({2, 3}, bad), b);
        },
        {"binary_cross_entropy", "all elements of input should be between 0 and 1", "6 of 6"});
  }
  expect_error<ValueError>([&] { smooth_l1_loss(a, b, "mean", -1.0); },
                           {"smooth_l1_loss", "beta must be >= 0", "-1"});
  for (double d : {0.0, -2.0}) {
    SCOPED_TRACE(d);
    expect_error<ValueError>([&] { huber_loss(a, b, "mean", d); },
                             {"huber_loss", "delta must be > 0"});
  }

  // Dtypes: floating inputs only; binary_cross_entropy's target must be the input's dtype.
  const Tensor ints = zeros({2, 3}, {.dtype = DType::int64});
  expect_error<DTypeError>([&] { l1_loss(ints, b); }, {"l1_loss", "input", "int64"});
  expect_error<DTypeError>([&] { kl_div(a, ints); }, {"kl_div", "target", "int64"});
  expect_error<DTypeError>([&] { binary_cross_entropy_with_logits(a, ints); },
                           {"binary_cross_entropy_with_logits", "target", "int64"});
  expect_error<DTypeError>([&] { binary_cross_entropy(a, b.to(DType::float64)); },
                           {"binary_cross_entropy", "input's dtype float32", "got float64"});
}

// torch 1.13 has no derivative for binary_cross_entropy's weight nor for the logits form's weight
// and pos_weight, and refuses one that requires grad while autograd records, whatever else
// requires grad; under no-grad it is only read.
TEST(LossElementwise, WeightsWithoutADerivativeAreRefusedWhileRecording) {
  const Tensor x = full({2, 3}, 0.25, {.requires_grad = true}), t = full({2, 3}, 1.0);
  const Tensor w = full({3}, 2.0, {.requires_grad = true});
  struct Row {
    const char* op;
    const char* arg;
    std::function<Tensor(const Tensor& x)> call;
  };
  const std::vector<Row> rows = {
      {"binary_cross_entropy", "weight",
       [&](const Tensor& in) { return binary_cross_entropy(in, t, w); }},
      {"binary_cross_entropy_with_logits", "weight",
       [&](const Tensor& in) { return binary_cross_entropy_with_logits(in, t, w); }},
      {"binary_cross_entropy_with_logits", "pos_weight",
       [&](const Tensor& in) { return binary_cross_entropy_with_logits(in, t, Tensor(), w); }},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(::testing::Message() << r.op << " " << r.arg);
    for (const Tensor& in : {x, x.detach()})
      expect_error<NotImplementedError>(
          [&] { r.call(in); },
          {r.op, std::string("derivative for '") + r.arg + "' is not implemented",
           std::string(r.arg) + ".detach()"});
    NoGradGuard no_grad;
    EXPECT_FALSE(r.call(x).requires_grad());
  }
}

// torch 1.13 warns when mse/l1/smooth_l1/huber broadcast a target of another size, and when
// kl_div averages with "mean"; nowhere else among these losses.
TEST(LossElementwise, TargetSizeAndKlDivMeanWarnAsTorch) {
  const Tensor x = full({3, 2}, 0.5), y = full({2}, 0.25), same = full({3, 2}, 0.25);
  const std::string broadcast =
      "using a target size (2,) that is different to the input size "
      "(3, 2). This will likely lead to incorrect results due to "
      "broadcasting. Please ensure they have the same size.";
  struct Row {
    const char* what;
    std::function<void()> call;
    std::string warning;  // empty: none
  };
  const std::vector<Row> rows = {
      {"mse_loss", [&] { mse_loss(x, y); }, "mse_loss: " + broadcast},
      {"l1_loss", [&] { l1_loss(x, y, "none"); }, "l1_loss: " + broadcast},
      {"smooth_l1_loss", [&] { smooth_l1_loss(x, y, "sum", 0.0); }, "smooth_l1_loss: " + broadcast},
      {"huber_loss", [&] { huber_loss(x, y); }, "huber_loss: " + broadcast},
      {"a 0-dim target", [&] { l1_loss(x, full({}, 0.5)); },
       "l1_loss: using a target size () that is different to the input size (3, 2)"},
      {"a larger target", [&] { mse_loss(y, x); },
       "mse_loss: using a target size (3, 2) that is different to the input size (2,)"},
      {"kl_div mean", [&] { kl_div(x, same); },
       "kl_div: reduction \"mean\" divides the total loss by both the batch size and the support "
       "size; \"batchmean\" divides only by the batch size"},
      {"mse_loss same size", [&] { mse_loss(x, same); }, ""},
      {"l1_loss same size", [&] { l1_loss(x, same); }, ""},
      {"smooth_l1_loss same size", [&] { smooth_l1_loss(x, same); }, ""},
      {"huber_loss same size", [&] { huber_loss(x, same); }, ""},
      {"kl_div batchmean", [&] { kl_div(x, same, "batchmean"); }, ""},
      {"kl_div sum of another size", [&] { kl_div(x, y, "sum"); }, ""},
      {"binary_cross_entropy", [&] { binary_cross_entropy(x, same); }, ""},
      {"binary_cross_entropy_with_logits", [&] { binary_cross_entropy_with_logits(x, same); }, ""},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.what);
    test::CapturedWarnings warnings;
    r.call();
    const std::vector<std::string> got = warnings.messages();
    if (r.warning.empty()) {
      EXPECT_TRUE(got.empty()) << got.front();
    } else {
      ASSERT_EQ(got.size(), 1u);
      EXPECT_CONTAINS(got[0], r.warning);
    }
  }
}

// ---- dtypes and autocast
// ------------------------------------------------------------------------------

TEST(LossElementwise, ResultDtypesFollowTorch) {
  const Tensor f32 = full({3}, 0.5), f64 = full({3}, 0.25, {.dtype = DType::float64});
  EXPECT_EQ(l1_loss(f32, f64).dtype(), DType::float64);                           // promoted
  EXPECT_EQ(smooth_l1_loss(f32, f64).dtype(), DType::float64);                    // promoted
  EXPECT_EQ(huber_loss(f32, f64).dtype(), DType::float32);                        // the input's
  EXPECT_EQ(kl_div(f32, f64).dtype(), DType::float64);                            // promoted
  EXPECT_EQ(binary_cross_entropy_with_logits(f32, f64).dtype(), DType::float64);  // the target's
  EXPECT_EQ(binary_cross_entropy_with_logits(f64, f32).dtype(), DType::float32);
  // binary_cross_entropy takes a weight of another dtype (cast to the input's).
  EXPECT_EQ(binary_cross_entropy(f32, f32, f64).dtype(), DType::float32);
}

// Spec §3's CPU lists, with torch 1.13's smooth_l1_loss (float32 there, beside l1 and huber): all
// compute in float32 under CPU autocast.
TEST(LossElementwise, CpuAutocastClasses) {
  const Tensor x = full({2, 3}, 0.5, {.dtype = DType::bfloat16});
  const Tensor y = full({2, 3}, 0.25, {.dtype = DType::bfloat16});
  CpuAutocast region(DType::bfloat16);
  EXPECT_EQ(l1_loss(x, y).dtype(), DType::float32);
  EXPECT_EQ(huber_loss(x, y).dtype(), DType::float32);
  EXPECT_EQ(kl_div(x, y).dtype(), DType::float32);
  EXPECT_EQ(binary_cross_entropy(x, y).dtype(), DType::float32);
  EXPECT_EQ(binary_cross_entropy_with_logits(x, y).dtype(), DType::float32);
  EXPECT_EQ(smooth_l1_loss(x, y).dtype(), DType::float32);
}

TEST(LossElementwise, BinaryCrossEntropyIsRefusedUnderCudaAutocast) {
  std::string why;
  if (test::cuda_devices(&why) == 0) GTEST_SKIP() << "no usable GPU: " << why;
  const Tensor x = full({4}, 0.5).to(Device::cuda(0)), y = full({4}, 1.0).to(Device::cuda(0));
  autocast_enter(DeviceType::cuda, true, DType::float16, true);
  expect_error<NotImplementedError>(
      [&] { binary_cross_entropy(x, y); },
      {"binary_cross_entropy", "unsafe to autocast", "binary_cross_entropy_with_logits"});
  // The logits form is on CUDA's float32 list.
  EXPECT_EQ(binary_cross_entropy_with_logits(x.to(DType::float16), y.to(DType::float16)).dtype(),
            DType::float32);
  autocast_exit(DeviceType::cuda);
  EXPECT_EQ(binary_cross_entropy(x, y).dtype(), DType::float32);  // fine outside the region
}

}  // namespace
}  // namespace fabric
