// histc, bincount, isclose, allclose and equal (tensor/counting.h) against torch 1.13: the rows of
// shape_extra_torch_rows.h (histc's bins at the edges and bfloat16's saturating counts,
// bincount's weight dtypes, isclose at its boundary in every dtype, errors), then bincount's
// refusal of weights that require grad and histc on larger inputs against a float64 recount.
#include <gtest/gtest.h>

#include "autograd/grad_mode.h"
#include "tensor/counting.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/tensor/shape_extra_check.h"

namespace fabric {
namespace {

using shape_extra_check::Call;
using shape_extra_check::CallTable;
using V = std::vector<Tensor>;

Tensor as_tensor(bool b) { return scalar_tensor(b, {.dtype = DType::bool_}); }

CallTable calls() {
  CallTable t;
  t["histc"] = [](const Call& c) -> V {
    return {histc(c.in[0], c.ints[0], c.reals[0], c.reals[1])};
  };
  t["bincount"] = [](const Call& c) -> V {
    return {bincount(c.in[0], c.in.size() > 1 ? c.in[1] : Tensor(), c.ints[0])};
  };
  t["isclose"] = [](const Call& c) -> V {
    return {isclose(c.in[0], c.in[1], c.reals[0], c.reals[1], c.ints[0] != 0)};
  };
  t["allclose"] = [](const Call& c) -> V {
    return {as_tensor(allclose(c.in[0], c.in[1], c.reals[0], c.reals[1], c.ints[0] != 0))};
  };
  t["equal"] = [](const Call& c) -> V { return {as_tensor(equal(c.in[0], c.in[1]))}; };
  return t;
}

TEST(CountingTorch, RowsMatchTorch) { shape_extra_check::check_rows("counting", calls()); }

TEST(CountingTorch, ErrorsCarryTorchMessages) {
  shape_extra_check::check_error_rows("counting", calls());
}

// torch records bincount's weights but has no derivative for them (its backward raises); fabric
// refuses them at the call while autograd records, and takes them under no-grad.
TEST(Counting, BincountRefusesWeightsThatRequireGrad) {
  const Tensor x = from_vector(std::vector<int64_t>{0, 2, 2});
  const Tensor w = ones({3}).set_requires_grad(true);
  EXPECT_THROW(bincount(x, w), NotImplementedError);
  NoGradGuard no_grad;
  EXPECT_EQ(bincount(x, w).to_vector<double>(), (std::vector<double>{1, 0, 2}));
}

// Every element lands in exactly one bin (or none, outside the range), on a large input whose
// float64 bins are recounted here from the same edges.
TEST(Counting, HistcCountsEveryElementOnce) {
  Generator gen(7);
  const Tensor x = randn({5000}, {.dtype = DType::float64}, &gen);
  const Tensor h = histc(x, 37, -2.0, 2.5);
  const std::vector<double> v = x.to_vector<double>(), got = h.to_vector<double>();
  std::vector<double> want(37, 0.0);
  for (double e : v) {
    if (e < -2.0 || e > 2.5) continue;
    int64_t b = static_cast<int64_t>((e + 2.0) * 37 / 4.5);
    want[b == 37 ? 36 : b] += 1;
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(sum(h).item<double>(), sum(logical_and(ge(x, -2.0), le(x, 2.5))).item<double>());
}

// allclose is isclose everywhere; equal needs equal sizes, not broadcasting.
TEST(Counting, AllcloseAndEqualAgreeWithIsclose) {
  const Tensor a = from_vector(std::vector<float>{1.0f, 2.0f, 3.0f});
  const Tensor b = from_vector(std::vector<float>{1.0f, 2.00001f, 3.1f});
  EXPECT_EQ(isclose(a, b).to_vector<bool>(), (std::vector<bool>{true, true, false}));
  EXPECT_FALSE(allclose(a, b));
  EXPECT_TRUE(allclose(a, b, 0.05));
  EXPECT_FALSE(equal(a, a.unsqueeze(0)));
  EXPECT_TRUE(equal(a, a.clone()));
}

}  // namespace
}  // namespace fabric
