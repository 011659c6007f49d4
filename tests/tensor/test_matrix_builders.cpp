// meshgrid, cartesian_prod, combinations, kron, block_diag and vander (tensor/matrix_builders.h)
// against torch 1.13: the rows of shape_extra_torch_rows.h (values, dtypes, the grids' strides,
// gradients, errors), then meshgrid's warning, vander's gradient (torch 1.13's raises) and kron
// on layouts torch refuses.
#include <gtest/gtest.h>

#include <string>

#include "tensor/counting.h"
#include "tensor/factory.h"
#include "tensor/matrix_builders.h"
#include "tensor/ops.h"
#include "tests/common/capture_warnings.h"
#include "tests/tensor/shape_extra_check.h"

namespace fabric {
namespace {

using shape_extra_check::Call;
using shape_extra_check::CallTable;
using V = std::vector<Tensor>;

CallTable calls() {
  CallTable t;
  t["meshgrid"] = [](const Call& c) { return meshgrid(c.in, c.text); };
  t["cartesian_prod"] = [](const Call& c) -> V { return {cartesian_prod(c.in)}; };
  t["combinations"] = [](const Call& c) -> V {
    return {combinations(c.in[0], c.ints[0], c.ints[1] != 0)};
  };
  t["kron"] = [](const Call& c) -> V { return {kron(c.in[0], c.in[1])}; };
  t["block_diag"] = [](const Call& c) -> V { return {block_diag(c.in)}; };
  t["vander"] = [](const Call& c) -> V {
    const std::optional<int64_t> n =
        c.text == "default_N" ? std::nullopt : std::optional<int64_t>(c.ints[0]);
    return {vander(c.in[0], n, c.ints[1] != 0)};
  };
  return t;
}

TEST(MatrixBuildersTorch, RowsMatchTorch) {
  shape_extra_check::check_rows("matrix_builders", calls());
}

TEST(MatrixBuildersTorch, ErrorsCarryTorchMessages) {
  shape_extra_check::check_error_rows("matrix_builders", calls());
}

// torch 1.13 warns when indexing is not given, and then indexes "ij".
TEST(MatrixBuilders, MeshgridWithoutIndexingWarnsAndUsesIj) {
  const Tensor a = arange(2.0), b = arange(3.0);
  test::CapturedWarnings captured;
  const std::vector<Tensor> g = meshgrid({a, b});
  ASSERT_EQ(captured.messages().size(), 1u);
  EXPECT_NE(captured.messages()[0].find("it will be required to pass the indexing argument"),
            std::string::npos);
  ASSERT_EQ(g[0].sizes(), (Shape{2, 3}));
  EXPECT_TRUE(equal(g[1], meshgrid({a, b}, "ij")[1]));
  ASSERT_EQ(captured.messages().size(), 1u) << "an explicit indexing warns";
}

// torch 1.13's vander backward raises (cumprod's input is written in place); here it is the
// derivative of x^j: j * x^(j - 1) summed against the output's gradient.
TEST(MatrixBuilders, VanderGradientIsThePowerRule) {
  const std::vector<double> xs = {0.5, -1.25, 2.0};
  const Tensor x = from_vector(xs, {3}, {.dtype = DType::float64}).set_requires_grad(true);
  const Tensor v = vander(x, 4, /*increasing=*/true);  // columns x^0 .. x^3
  const Tensor w = from_vector(std::vector<double>{1, 2, 3, 4}, {4}, {.dtype = DType::float64});
  sum(mul(v, w)).backward();
  const std::vector<double> g = x.grad().to_vector<double>();
  for (size_t i = 0; i < xs.size(); ++i) {
    const double xi = xs[i];
    EXPECT_DOUBLE_EQ(g[i], 2 * 1 + 3 * 2 * xi + 4 * 3 * xi * xi);
  }
}

// torch 1.13's kron views its inputs and refuses layouts a view cannot take; fabric reshapes.
TEST(MatrixBuilders, KronTakesAnyLayout) {
  const Tensor a = arange(4.0).reshape({2, 2}), b = arange(6.0).reshape({2, 3});
  const Tensor at = a.t().contiguous().t(), bt = b.t().contiguous().t();
  ASSERT_FALSE(at.is_contiguous());
  EXPECT_TRUE(equal(kron(at, bt), kron(a, b)));
  EXPECT_EQ(kron(a, b).sizes(), (Shape{4, 6}));
  // (a kron b)[i*2 + k, j*3 + l] = a[i, j] * b[k, l]
  EXPECT_EQ(kron(a, b).select(0, 3).to_vector<double>(),
            (std::vector<double>{6, 8, 10, 9, 12, 15}));
}

// combinations' rows are the index tuples in lexicographic order, as itertools gives them.
TEST(MatrixBuilders, CombinationsCountsAndOrder) {
  const Tensor x = arange(5);
  EXPECT_EQ(combinations(x, 3).sizes(), (Shape{10, 3}));
  EXPECT_EQ(combinations(x, 3, true).sizes(), (Shape{35, 3}));
  EXPECT_EQ(combinations(x, 2).select(0, 4).to_vector<int64_t>(), (std::vector<int64_t>{1, 2}));
}

}  // namespace
}  // namespace fabric
