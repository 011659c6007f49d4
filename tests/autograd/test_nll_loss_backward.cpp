// nll_loss's fused backward kernel (taken when the backward records nothing) against its
// derivative of recorded ops (taken with create_graph), bit for bit: reductions, ignore_index,
// every target ignored, unbatched and (N, C, d...) inputs, float64/float32/bfloat16/float16
// inputs, int64/int32 targets, a mean whose count the half dtypes round. Also the op's own checks,
// torch's zero gradient at ignored positions whatever the incoming gradient, and the inputs large
// enough for the kernels' threads.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <iomanip>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_loss.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

struct Layout {
  std::string name;
  Shape input;           // (C), (N, C) or (N, C, d...)
  int ignore_every = 0;  // every k-th target is ignore_index (0: none; 1: all)
};

Shape target_shape(const Shape& input) {
  if (input.size() == 1) return {};
  Shape t{input[0]};
  for (size_t d = 2; d < input.size(); ++d) t.push_back(input[d]);
  return t;
}

// Uniform values in [lo, hi) away from 0 (a gradient of 0 would hide a sign flip).
std::vector<double> values(int64_t n, std::mt19937_64& rng, double lo = 0.1, double hi = 2.0) {
  std::uniform_real_distribution<double> u(lo, hi);
  std::bernoulli_distribution sign(0.5);
  std::vector<double> v(static_cast<size_t>(n));
  for (double& x : v) x = sign(rng) ? u(rng) : -u(rng);
  return v;
}

Tensor targets(const Layout& l, int64_t ignore_index, DType dt, std::mt19937_64& rng) {
  const Shape shape = target_shape(l.input);
  const int64_t classes = l.input.size() == 1 ? l.input[0] : l.input[1];
  std::uniform_int_distribution<int64_t> cls(0, classes - 1);
  std::vector<int64_t> t(static_cast<size_t>(numel_of(shape)));
  for (size_t i = 0; i < t.size(); ++i)
    t[i] = l.ignore_every > 0 && i % static_cast<size_t>(l.ignore_every) == 0 ? ignore_index
                                                                              : cls(rng);
  return from_vector(t, {numel_of(shape)}).reshape(shape).to(dt);
}

std::string exact(double v) {
  std::ostringstream os;
  os << std::setprecision(17) << v;
  return os.str();
}

// The first element where a and b differ in bits, or "" when they are identical.
std::string first_bit_difference(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.sizes() != b.sizes())
    return "dtype/shape differ: " + std::string(dtype_name(a.dtype())) + " " +
           shape_str(a.sizes()) + " vs " + std::string(dtype_name(b.dtype())) + " " +
           shape_str(b.sizes());
  const Tensor ac = a.contiguous(), bc = b.contiguous();
  const char* pa = static_cast<const char*>(ac.data_ptr());
  const char* pb = static_cast<const char*>(bc.data_ptr());
  const int64_t isz = a.element_size();
  const std::vector<double> va = ac.to(DType::float64).to_vector<double>(),
                            vb = bc.to(DType::float64).to_vector<double>();
  for (int64_t i = 0; i < a.numel(); ++i)
    if (std::memcmp(pa + i * isz, pb + i * isz, static_cast<size_t>(isz)) != 0)
      return "element " + std::to_string(i) + ": " + exact(va[i]) + " vs " + exact(vb[i]);
  return "";
}

// {fused, composed} gradients of nll_loss(x, t, ignore_index, reduction) for grad_out.
std::pair<Tensor, Tensor> both_gradients(const Tensor& x, const Tensor& t, int64_t ignore_index,
                                         const std::string& reduction, const Tensor& grad_out) {
  const Tensor loss = nll_loss(x, t, ignore_index, reduction);
  const Tensor composed = grad({loss}, {x}, {grad_out}, true, true)[0].detach();
  const Tensor fused = grad({loss}, {x}, {grad_out}, false, false)[0];
  return {fused, composed};
}

TEST(NllLossBackward, FusedMatchesComposedBitForBit) {
  const std::vector<Layout> layouts = {
      {"2d", {6, 5}, 0},
      {"2d_some_ignored", {7, 4}, 3},
      {"2d_all_ignored", {4, 3}, 1},
      {"unbatched", {5}, 0},
      {"unbatched_ignored", {5}, 1},
      {"3d", {3, 4, 5}, 4},
      {"4d", {2, 3, 4, 2}, 5},
      // 301 valid targets: bfloat16 rounds the mean's count to 300, as torch's total weight.
      {"2d_301_rows", {301, 3}, 0},
      // 2049 valid targets: float16 rounds it to 2048.
      {"2d_2049_rows", {2049, 2}, 0},
  };
  std::mt19937_64 rng(21);
  int checked = 0;
  for (const Layout& l : layouts)
    for (DType dt : {DType::float64, DType::float32, DType::bfloat16, DType::float16})
      for (DType tdt : {DType::int64, DType::int32})
        for (int64_t ignore_index : {int64_t{-100}, int64_t{1}})
          for (const std::string reduction : {"none", "sum", "mean"}) {
            const std::string what = l.name + " " + std::string(dtype_name(dt)) + " target " +
                                     std::string(dtype_name(tdt)) + " ignore " +
                                     std::to_string(ignore_index) + " " + reduction;
            const Tensor x =
                from_vector(values(numel_of(l.input), rng), l.input, {.dtype = DType::float64})
                    .to(dt)
                    .set_requires_grad(true);
            const Tensor t = targets(l, ignore_index, tdt, rng);
            const Shape g_shape = reduction == "none" ? t.sizes() : Shape{};
            const Tensor g = from_vector(values(numel_of(g_shape), rng), {numel_of(g_shape)},
                                         {.dtype = DType::float64})
                                 .reshape(g_shape)
                                 .to(dt);
            const auto [fused, composed] = both_gradients(x, t, ignore_index, reduction, g);
            EXPECT_EQ(first_bit_difference(fused, composed), "") << what;
            ++checked;
          }
  EXPECT_EQ(checked, 9 * 4 * 2 * 2 * 3);
}

// torch skips ignored positions: their gradient is 0 even where the incoming one is not finite
// (the composition would multiply it by 0 and get NaN).
TEST(NllLossBackward, IgnoredPositionsGetZeroWhateverTheIncomingGradient) {
  const Tensor x = from_vector<float>({-1, -2, -3, -4, -5, -6}, {2, 3}).set_requires_grad(true);
  const Tensor t = from_vector<int64_t>({2, -100}, {2});
  const float inf = std::numeric_limits<float>::infinity();
  const Tensor dx =
      grad({nll_loss(x, t, -100, "none")}, {x}, {from_vector<float>({0.5f, inf}, {2})})[0];
  EXPECT_EQ(dx.to_vector<float>(), (std::vector<float>{0, 0, -0.5f, 0, 0, 0}));
}

// Enough positions and elements for the kernels' threads (when there are several): the gradient
// still matches the composition, and the error names the lowest bad position's target.
TEST(NllLossBackward, LargeInputsMatchAndNameTheFirstBadTarget) {
  std::mt19937_64 rng(5);
  const Layout l{"large", {20000, 4}, 7};
  const Tensor x =
      from_vector(values(80000, rng), l.input, {.dtype = DType::float32}).set_requires_grad(true);
  const Tensor t = targets(l, -100, DType::int64, rng);
  for (const std::string reduction : {"none", "mean"}) {
    const Tensor g = reduction == "none"
                         ? from_vector(values(20000, rng), {20000}).to(DType::float32)
                         : scalar_tensor(0.75);
    const auto [fused, composed] = both_gradients(x, t, -100, reduction, g);
    EXPECT_EQ(first_bit_difference(fused, composed), "") << reduction;
  }
  std::vector<int64_t> bad = t.to_vector<int64_t>();
  bad[15000] = 9;
  bad[3000] = 7;
  const Tensor tb = from_vector(bad, {20000});
  EXPECT_CONTAINS(thrown<IndexError>([&] { nll_loss(x.detach(), tb); }),
                  "nll_loss: target 7 is out of bounds for 4 classes");
  EXPECT_CONTAINS(thrown<IndexError>([&] { nll_loss_backward(scalar_tensor(1.0f), x, tb); }),
                  "nll_loss_backward: target 7 is out of bounds for 4 classes");
}

TEST(NllLossBackward, ChecksItsArguments) {
  const Tensor x = zeros({3, 4});
  const Tensor t = from_vector<int64_t>({0, 1, 2}, {3});
  EXPECT_CONTAINS(thrown<ShapeError>([&] { nll_loss_backward(zeros({2}), x, t, -100, "none"); }),
                  "nll_loss_backward: with reduction \"none\" grad_loss must have the target's "
                  "shape (3,), got (2,)");
  EXPECT_CONTAINS(thrown<ShapeError>([&] { nll_loss_backward(zeros({3}), x, t, -100, "sum"); }),
                  "nll_loss_backward: with reduction \"sum\" grad_loss must have one element");
  EXPECT_CONTAINS(
      thrown<ShapeError>([&] {
        nll_loss_backward(scalar_tensor(1.0f), x, zeros({3, 1}, {.dtype = DType::int64}));
      }),
      "nll_loss_backward: expected target of shape");
  EXPECT_CONTAINS(
      thrown<DTypeError>([&] { nll_loss_backward(scalar_tensor(1.0f), x, t.to(DType::uint8)); }),
      "nll_loss_backward: expected a target of class indices");
}

}  // namespace
}  // namespace fabric
