// Tests of the linear-algebra, indexing/joining and convolution/pooling ops beyond the harness:
// error messages, PyTorch semantics (promotion, views, chunk counts, NaN/-inf in pooling,
// count_include_pad, autocast), and the gradient helpers of ops_backward_linalg.h against
// central finite differences of the forward ops in float64.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>

#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_linalg.h"

namespace fabric {
namespace {

template <typename E, typename F>
void expect_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "expected an exception mentioning " << ::testing::PrintToString(parts);
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const auto& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

Tensor rand64(const Shape& s, uint64_t seed, double lo = -1, double hi = 1) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(numel_of(s));
  for (double& x : v) x = u(rng);
  return from_vector(v, s);
}

Tensor idx64(const std::vector<int64_t>& v, Shape s) { return from_vector(v, std::move(s)); }

double dot_f64(const Tensor& a, const Tensor& b) {
  auto x = a.to_vector<double>(), y = b.to_vector<double>();
  EXPECT_EQ(x.size(), y.size());
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += x[i] * y[i];
  return s;
}

// d/dx of L = <g, f()> by central differences; x is a contiguous float64 tensor f() reads.
std::vector<double> numeric_grad(Tensor x, const std::function<Tensor()>& f, const Tensor& g,
                                 double h = 1e-6) {
  double* p = x.data<double>();
  std::vector<double> out(x.numel());
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double keep = p[i];
    p[i] = keep + h;
    const double lp = dot_f64(g, f());
    p[i] = keep - h;
    const double lm = dot_f64(g, f());
    p[i] = keep;
    out[i] = (lp - lm) / (2 * h);
  }
  return out;
}

void expect_close(const Tensor& got, const std::vector<double>& want, double tol,
                  const std::string& what) {
  ASSERT_TRUE(got.defined()) << what;
  auto g = got.to_vector<double>();
  ASSERT_EQ(g.size(), want.size()) << what;
  for (size_t i = 0; i < g.size(); ++i)
    ASSERT_NEAR(g[i], want[i], tol * std::max(1.0, std::abs(want[i]))) << what << " element " << i;
}

// ---- errors -----------------------------------------------------------------------------------

TEST(LinalgOps, Errors) {
  Tensor a = zeros({2, 3}), b = zeros({4, 5});
  expect_error<ShapeError>([&] { matmul(a, b); }, {"matmul", "(2, 3)", "(4, 5)"});
  expect_error<DTypeError>(
      [&] {
        matmul(a, zeros({3, 2}, {.dtype = DType::float64}));
      },
      {"matmul", "float32", "float64", "same dtype"});
  expect_error<DTypeError>(  // integers multiply (test_integer_products.cpp); bool does not
      [&] {
        matmul(zeros({2, 2}, {.dtype = DType::bool_}), zeros({2, 2}, {.dtype = DType::bool_}));
      },
      {"matmul", "bool"});
  expect_error<ShapeError>([&] { matmul(scalar_tensor(1.f), a); }, {"matmul", "1-D", "0-D"});
  expect_error<ShapeError>(
      [&] {
        matmul(zeros({2, 2, 3}), zeros({3, 3, 4}));
      },
      {"matmul", "batch", "(2,)", "(3,)"});
  expect_error<ShapeError>([&] { mm(zeros({2, 3, 1}), a); }, {"mm", "2-D", "(2, 3, 1)"});
  expect_error<ShapeError>(
      [&] {
        bmm(zeros({2, 3, 4}), zeros({3, 4, 5}));
      },
      {"bmm", "(2, 3, 4)", "(3, 4, 5)"});
  expect_error<ShapeError>(
      [&] {
        linear(zeros({2, 3}), zeros({4, 5}));
      },
      {"linear", "(2, 3)", "(4, 5)"});
  expect_error<ShapeError>(
      [&] {
        linear(zeros({2, 5}), zeros({4, 5}), zeros({3}));
      },
      {"linear", "bias", "(3,)", "4"});
  expect_error<DTypeError>(
      [&] {
        linear(zeros({2, 5}), zeros({4, 5}), zeros({4}, {.dtype = DType::float64}));
      },
      {"linear", "bias", "float64"});
}

TEST(IndexOps, Errors) {
  Tensor w = zeros({10, 4});
  expect_error<IndexError>(
      [&] {
        embedding(w, idx64({1, 10}, {2}));
      },
      {"embedding", "index 10", "10 rows"});
  expect_error<IndexError>([&] { embedding(w, idx64({-1}, {1})); }, {"embedding", "index -1"});
  expect_error<DTypeError>([&] { embedding(w, zeros({2})); }, {"embedding", "int64", "float32"});
  expect_error<IndexError>(
      [&] {
        index_select(zeros({3, 4}), 1, idx64({0, 4}, {2}));
      },
      {"index_select", "index 4", "dim 1 of size 4"});
  expect_error<ShapeError>(
      [&] {
        index_select(zeros({3, 4}), 1, idx64({0, 1}, {1, 2}));
      },
      {"index_select", "1-D"});
  expect_error<DTypeError>(
      [&] {
        gather(zeros({3, 4}), 1, zeros({3, 4}, {.dtype = DType::int32}));
      },
      {"gather", "int64", "int32"});
  expect_error<ShapeError>(
      [&] {
        gather(zeros({3, 4}), 1, idx64({0, 0, 0, 0}, {4, 1}));
      },
      {"gather", "(4, 1)", "(3, 4)", "dim 0"});
  expect_error<IndexError>(
      [&] {
        gather(zeros({3, 4}), 0, idx64({3}, {1, 1}));
      },
      {"gather", "index 3", "size 3"});
  expect_error<DTypeError>(
      [&] { scatter_add(zeros({3}), 0, idx64({0}, {1}), zeros({1}, {.dtype = DType::float64})); },
      {"scatter_add", "float32", "float64"});
  expect_error<ShapeError>(
      [&] {
        cat({zeros({2, 3}), zeros({2, 4})}, 0);
      },
      {"cat", "dimension 0", "size 3", "size 4"});
  expect_error<ShapeError>(
      [&] {
        cat({zeros({2, 3}), zeros({2, 3, 1})}, 0);
      },
      {"cat", "(2, 3)", "(2, 3, 1)"});
  expect_error<ShapeError>([&] { cat({scalar_tensor(1.f)}, 0); }, {"cat", "zero-dimensional"});
  expect_error<ValueError>([&] { cat({}, 0); }, {"cat", "non-empty"});
  expect_error<IndexError>([&] { cat({zeros({2})}, 1); }, {"cat"});
  expect_error<ShapeError>(
      [&] {
        stack({zeros({2, 3}), zeros({3, 2})}, 0);
      },
      {"stack", "(2, 3)", "(3, 2)", "entry 1"});
  expect_error<ShapeError>(
      [&] {
        split(zeros({5}), std::vector<int64_t>{2, 2}, 0);
      },
      {"split", "sum to 4", "size 5"});
  expect_error<ValueError>([&] { split(zeros({5}), 0, 0); }, {"split", "split_size"});
  expect_error<ValueError>([&] { chunk(zeros({5}), 0); }, {"chunk", "positive"});
  expect_error<ShapeError>([&] { tril(zeros({5})); }, {"tril", "2 dims", "(5,)"});
  expect_error<IndexError>(
      [&] {
        one_hot(idx64({1, -2}, {2}));
      },
      {"one_hot", "non-negative", "-2"});
  expect_error<IndexError>(
      [&] {
        one_hot(idx64({1, 5}, {2}), 5);
      },
      {"one_hot", "5", "num_classes=5"});
  expect_error<ValueError>([&] { one_hot(empty({0}, {.dtype = DType::int64})); },
                           {"one_hot", "empty"});
  // torch refuses 0 classes for an empty tensor too; a positive count gives its empty result.
  expect_error<ValueError>(
      [&] {
        one_hot(empty({2, 0}, {.dtype = DType::int64}), 0);
      },
      {"one_hot", "num_classes > 0"});
  EXPECT_EQ(one_hot(empty({2, 0}, {.dtype = DType::int64}), 3).sizes(), (Shape{2, 0, 3}));
}

TEST(ConvOps, Errors) {
  Tensor x = zeros({1, 4, 5, 5});
  expect_error<ShapeError>(
      [&] {
        conv2d(x, zeros({2, 3, 3, 3}));
      },
      {"conv2d", "(1, 4, 5, 5)", "4 channels", "expects 3"});
  expect_error<ShapeError>(
      [&] {
        conv2d(x, zeros({3, 2, 3, 3}), Tensor(), {1, 1}, {0, 0}, {1, 1}, 2);
      },
      {"conv2d", "divisible by groups=2"});
  expect_error<ShapeError>(
      [&] {
        conv2d(x, zeros({2, 4, 7, 7}));
      },
      {"conv2d", "smaller than the dilated kernel"});
  expect_error<DTypeError>(
      [&] {
        conv2d(x, zeros({2, 4, 3, 3}, {.dtype = DType::float64}));
      },
      {"conv2d", "float32", "float64"});
  expect_error<ShapeError>(
      [&] {
        conv2d(zeros({4, 5}), zeros({2, 4, 3, 3}));
      },
      {"conv2d", "3-D", "4-D", "(4, 5)"});
  expect_error<ValueError>(
      [&] {
        conv2d(x, zeros({2, 4, 3, 3}), Tensor(), {0, 1});
      },
      {"conv2d", "stride"});
  expect_error<ShapeError>(
      [&] {
        conv2d(x, zeros({2, 4, 3, 3}), zeros({3}));
      },
      {"conv2d", "bias", "(3,)"});
  expect_error<ValueError>([&] { max_pool2d(x, {3}, {1}, {2}); },
                           {"max_pool2d", "half of the kernel size"});
  expect_error<ShapeError>(
      [&] {
        avg_pool2d(zeros({1, 1, 2, 2}), {3});
      },
      {"avg_pool2d", "too small"});
  expect_error<DTypeError>(
      [&] {
        max_pool2d(zeros({1, 1, 4, 4}, {.dtype = DType::int64}), {2});
      },
      {"max_pool2d", "int64"});
  // As PyTorch: an empty batch is fine, an empty image is an error even where padding would make
  // an output of it.
  EXPECT_EQ(conv2d(zeros({0, 1, 3, 4}), zeros({2, 1, 1, 1}), Tensor(), {1}, {1}).sizes(),
            (Shape{0, 2, 5, 6}));
  EXPECT_EQ(max_pool2d(zeros({0, 1, 3, 4}), {2}, {}, {1}).sizes(), (Shape{0, 1, 2, 3}));
  expect_error<ShapeError>([&] { conv2d(zeros({1, 1, 0, 4}), zeros({2, 1, 1, 1}), Tensor(), {1}, {1}); },
                           {"conv2d", "zero batch", "(1, 1, 0, 4)"});
  expect_error<ShapeError>([&] { conv2d(zeros({1, 3, 0}), zeros({2, 1, 1, 1}), Tensor(), {1}, {1}); },
                           {"conv2d", "(1, 3, 0)"});
  for (const Shape& shape : {Shape{1, 1, 0, 4}, Shape{1, 0, 3, 4}, Shape{0, 3, 4}, Shape{2, 0, 4}}) {
    expect_error<ShapeError>([&] { max_pool2d(zeros(shape), {2}, {}, {1}); }, {"max_pool2d", shape_str(shape)});
    expect_error<ShapeError>([&] { avg_pool2d(zeros(shape), {2}, {}, {1}); }, {"avg_pool2d", shape_str(shape)});
  }
}

// ---- semantics --------------------------------------------------------------------------------

TEST(LinalgOps, ShapesAndDtypes) {
  EXPECT_EQ(matmul(zeros({5}), zeros({5})).dim(), 0);
  EXPECT_EQ(matmul(zeros({2, 1, 3, 4}), zeros({5, 4, 2})).sizes(), (Shape{2, 5, 3, 2}));
  EXPECT_EQ(matmul(zeros({4}), zeros({2, 4, 3})).sizes(), (Shape{2, 3}));
  EXPECT_EQ(matmul(zeros({2, 3, 4}), zeros({4})).sizes(), (Shape{2, 3}));
  for (DType t : {DType::bfloat16, DType::float16, DType::float64}) {
    EXPECT_EQ(matmul(ones({2, 3}, {.dtype = t}), ones({3, 2}, {.dtype = t})).dtype(), t);
    EXPECT_EQ(
        linear(ones({2, 3}, {.dtype = t}), ones({4, 3}, {.dtype = t}), ones({4}, {.dtype = t}))
            .dtype(),
        t);
  }
  // K = 0: an empty sum is zero, plus the bias in linear.
  EXPECT_EQ(matmul(zeros({2, 0}), zeros({0, 3})).to_vector<float>(), std::vector<float>(6, 0.f));
  EXPECT_EQ(linear(zeros({2, 0}), zeros({3, 0}), full({3}, 1.5f)).to_vector<float>(),
            std::vector<float>(6, 1.5f));
  // NaN and inf propagate through the GEMM.
  Tensor a = from_vector<float>({1, std::numeric_limits<float>::quiet_NaN(), 1, 1}, {2, 2});
  auto r = matmul(a, ones({2, 2})).to_vector<float>();
  EXPECT_TRUE(std::isnan(r[0]) && std::isnan(r[1]));
  EXPECT_EQ(r[2], 2.f);
}

TEST(LinalgOps, TransposedWeightMatchesCopy) {
  // A (in, out) buffer viewed as (out, in): linear reads it in place.
  Tensor wt = rand64({6, 4}, 1).to(DType::float32), x = rand64({3, 6}, 2).to(DType::float32);
  Tensor w_view = wt.t(), w_copy = wt.t().contiguous();
  auto y1 = linear(x, w_view).to_vector<float>(), y2 = linear(x, w_copy).to_vector<float>();
  for (size_t i = 0; i < y1.size(); ++i) EXPECT_NEAR(y1[i], y2[i], 1e-5);
}

TEST(LinalgOps, Autocast) {
  autocast_enter(DeviceType::cpu, true, DType::bfloat16, true);
  Tensor y = matmul(ones({2, 3}), ones({3, 2}));
  Tensor z = linear(ones({2, 3}), ones({4, 3}), ones({4}));
  Tensor c = conv2d(ones({1, 2, 4, 4}), ones({3, 2, 3, 3}));
  Tensor d =
      matmul(ones({2, 3}, {.dtype = DType::float64}), ones({3, 2}, {.dtype = DType::float64}));
  autocast_exit(DeviceType::cpu);
  EXPECT_EQ(y.dtype(), DType::bfloat16);
  EXPECT_EQ(z.dtype(), DType::bfloat16);
  EXPECT_EQ(c.dtype(), DType::bfloat16);
  EXPECT_EQ(d.dtype(), DType::float64);  // float64 is left alone by autocast
  EXPECT_EQ(z.to_vector<float>()[0], 4.f);
  EXPECT_EQ(c.to_vector<float>()[0], 18.f);
}

TEST(IndexOps, CatPromotionAndLegacyEmpty) {
  EXPECT_EQ(cat({ones({2}, {.dtype = DType::int64}), ones({2})}).dtype(), DType::float32);
  EXPECT_EQ(
      cat({ones({2}, {.dtype = DType::bfloat16}), ones({2}, {.dtype = DType::float16})}).dtype(),
      DType::float32);
  EXPECT_EQ(cat({ones({2}, {.dtype = DType::int32}), ones({2}, {.dtype = DType::int64})}).dtype(),
            DType::int64);
  EXPECT_EQ(cat({ones({2}, {.dtype = DType::bool_}), ones({2}, {.dtype = DType::int32})}).dtype(),
            DType::int32);
  Tensor r = cat({ones({2, 3}), zeros({0}), full({1, 3}, 2.f)}, 0);
  EXPECT_EQ(r.sizes(), (Shape{3, 3}));
  EXPECT_EQ(r.to_vector<float>()[8], 2.f);
  EXPECT_EQ(cat({zeros({0}), zeros({0})}).sizes(), (Shape{0}));
  Tensor s =
      stack({ones({2}, {.dtype = DType::int64}), full({2}, 0.5, {.dtype = DType::float64})}, 1);
  EXPECT_EQ(s.dtype(), DType::float64);
  EXPECT_EQ(s.sizes(), (Shape{2, 2}));
}

TEST(IndexOps, SplitAndChunkAreViews) {
  Tensor a = arange(12, DType::float32).view({6, 2});
  auto parts = split(a, 4, 0);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].sizes(), (Shape{4, 2}));
  EXPECT_EQ(parts[1].sizes(), (Shape{2, 2}));
  parts[1].fill_(-1);  // writes through to a
  EXPECT_EQ(a.to_vector<float>()[8], -1.f);
  EXPECT_EQ(a.to_vector<float>()[7], 7.f);
  EXPECT_EQ(chunk(zeros({6}), 4).size(), 3u);  // torch: ceil(6/4) = 2 per chunk -> 3 chunks
  EXPECT_EQ(chunk(zeros({5}), 5).size(), 5u);
  auto empties = chunk(zeros({0, 2}), 3);
  ASSERT_EQ(empties.size(), 3u);
  EXPECT_EQ(empties[2].sizes(), (Shape{0, 2}));
  EXPECT_EQ(split(zeros({0}), 2).size(), 1u);
  auto cols = split(a, std::vector<int64_t>{1, 1}, 1);
  EXPECT_EQ(cols[1].to_vector<float>(), (std::vector<float>{1, 3, 5, 7, -1, -1}));
}

// torch: a 0-dim input gives a 0-dim result whether the index is 0-D or 1-D, and (torch >= 2.0;
// 1.13 silently used the first) an index of other than one value is an error.
TEST(IndexOps, IndexSelectOfZeroDimInputIsZeroDim) {
  const Tensor z = scalar_tensor(5.0, {.dtype = DType::float32});
  const Tensor indices[] = {idx64({0}, {1}), scalar_tensor(int64_t{0}, {.dtype = DType::int64})};
  for (const Tensor& idx : indices) {
    const Tensor r = index_select(z, 0, idx);
    EXPECT_EQ(r.dim(), 0) << idx.str();
    EXPECT_EQ(r.item<float>(), 5.f) << idx.str();
    EXPECT_EQ(index_select(z, -1, idx).dim(), 0) << idx.str();
  }
  expect_error<IndexError>(
      [&] {
        index_select(z, 0, idx64({0, 0}, {2}));
      },
      {"index_select", "0-dim input", "exactly one value", "(2,)"});
  expect_error<IndexError>([&] { index_select(z, 0, idx64({1}, {1})); }, {"index_select", "1"});
  expect_error<IndexError>([&] { index_select(z, 0, idx64({-1}, {1})); }, {"index_select", "-1"});
  expect_error<IndexError>([&] { index_select(z, 1, idx64({0}, {1})); }, {"index_select"});
  const Tensor g = index_select_backward(scalar_tensor(2.0), {}, 0, idx64({0}, {1}));
  EXPECT_EQ(g.dim(), 0);
  EXPECT_EQ(g.item<double>(), 2.0);
}

TEST(IndexOps, MasksAndOneHot) {
  Tensor m = tril(ones({2, 3, 3}), -1);
  EXPECT_EQ(m.to_vector<float>(),
            (std::vector<float>{0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 1, 1, 0}));
  EXPECT_EQ(triu(ones({2, 4}), 1).to_vector<float>(), (std::vector<float>{0, 1, 1, 1, 0, 0, 1, 1}));
  EXPECT_EQ(triu(ones({2, 4}), 9).to_vector<float>(), std::vector<float>(8, 0.f));
  EXPECT_EQ(tril(ones({2, 4}), -9).to_vector<float>(), std::vector<float>(8, 0.f));
  Tensor oh = one_hot(idx64({2, 0}, {2}));
  EXPECT_EQ(oh.dtype(), DType::int64);
  EXPECT_EQ(oh.to_vector<int64_t>(), (std::vector<int64_t>{0, 0, 1, 1, 0, 0}));
  EXPECT_EQ(one_hot(empty({0}, {.dtype = DType::int64}), 3).sizes(), (Shape{0, 3}));
  // embedding with a 0-dim index gives one row; int32 indices work.
  Tensor w = arange(6, DType::float32).view({3, 2});
  EXPECT_EQ(embedding(w, scalar_tensor(int64_t{2}, {.dtype = DType::int64})).to_vector<float>(),
            (std::vector<float>{4, 5}));
  EXPECT_EQ(embedding(w, from_vector<int32_t>({1, 1})).to_vector<float>(),
            (std::vector<float>{2, 3, 2, 3}));
}

TEST(ConvOps, PoolingSpecialValues) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor x =
      from_vector<float>({1, 2, 3, 4, nan, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, {1, 1, 4, 4});
  auto y = max_pool2d(x, {2}).to_vector<float>();
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(y[1], 8.f);
  EXPECT_EQ(y[3], 16.f);
  // -inf padding: an all-negative input never yields a padded 0.
  auto n = max_pool2d(full({1, 1, 3, 3}, -5.f), {3}, {1}, {1}).to_vector<float>();
  EXPECT_EQ(n, std::vector<float>(9, -5.f));
  // count_include_pad: the corner window holds 4 of 9 cells.
  auto a = avg_pool2d(ones({1, 1, 3, 3}), {3}, {1}, {1}).to_vector<float>();
  EXPECT_FLOAT_EQ(a[0], 4.f / 9);
  EXPECT_FLOAT_EQ(a[1], 6.f / 9);
  EXPECT_FLOAT_EQ(a[4], 1.f);
  EXPECT_EQ(max_pool2d(zeros({2, 3, 7, 7}), {3}, {2}, {1}).sizes(), (Shape{2, 3, 4, 4}));
}

// 2x2/stride-2 max and avg pooling in float32/bfloat16/float16 have an AVX-512 path of their own
// (16 windows a step, a masked shorter step); float64 takes the generic loops. On values exact in
// every dtype, with many ties, NaNs (one to four in a window), odd sizes (uncovered rows and
// columns) and rows of 16+ and fewer windows, outputs and gradients must agree exactly.
TEST(ConvOps, Pool2x2VectorPathMatchesTheGenericPathExactly) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Pool2dAttrs attrs{{2, 2}, {2, 2}, {0, 0}};
  for (const Shape& shape :
       std::vector<Shape>{{2, 3, 8, 64}, {1, 2, 9, 71}, {2, 1, 4, 38}, {1, 1, 3, 5}, {2, 2, 6, 16}}) {
    SCOPED_TRACE(shape_str(shape));
    const int64_t n = numel_of(shape);
    std::vector<float> v(static_cast<size_t>(n));
    uint32_t state = 12345;
    for (int64_t i = 0; i < n; ++i) {
      state = state * 1664525u + 1013904223u;
      const uint32_t r = state >> 24;
      v[i] = r < 8 ? nan : static_cast<float>(static_cast<int>(r % 5) - 2);  // ties and NaNs
    }
    for (int64_t i = 0; i < std::min<int64_t>(n, 8); ++i) v[i] = nan;  // windows with 2+ NaNs
    const Tensor x64 = from_vector<float>(v, shape).to(DType::float64);
    for (const bool max : {true, false}) {
      SCOPED_TRACE(max ? "max" : "avg");
      auto pool = [&](const Tensor& x) { return max ? max_pool2d(x, {2}) : avg_pool2d(x, {2}); };
      auto pool_backward = [&](const Tensor& g, const Tensor& x) {
        return max ? max_pool2d_backward(g, x, attrs) : avg_pool2d_backward(g, x.sizes(), attrs);
      };
      const Tensor y64 = pool(x64);
      std::vector<float> gv(static_cast<size_t>(y64.numel()));
      for (size_t i = 0; i < gv.size(); ++i) gv[i] = static_cast<float>(i % 97) + 1.f;
      const Tensor g64 = from_vector<float>(gv, y64.sizes()).to(DType::float64);
      const auto want_y = y64.to_vector<double>();
      const auto want_dx = pool_backward(g64, x64).to_vector<double>();
      // Every value here (small integers, their quarters, NaN) is exact in each dtype.
      for (DType dt : {DType::float32, DType::bfloat16, DType::float16}) {
        SCOPED_TRACE(dtype_name(dt));
        const Tensor x = x64.to(dt);
        const Tensor y = pool(x);
        ASSERT_EQ(y.sizes(), y64.sizes());
        const auto got_y = y.to(DType::float64).to_vector<double>();
        for (size_t i = 0; i < got_y.size(); ++i) {
          ASSERT_EQ(std::isnan(got_y[i]), std::isnan(want_y[i])) << i;
          if (!std::isnan(got_y[i])) ASSERT_EQ(got_y[i], want_y[i]) << i;
        }
        const auto got_dx = pool_backward(g64.to(dt), x).to(DType::float64).to_vector<double>();
        ASSERT_EQ(got_dx.size(), want_dx.size());
        for (size_t i = 0; i < got_dx.size(); ++i) ASSERT_EQ(got_dx[i], want_dx[i]) << i;
      }
    }
  }
}

// float32 max pooling with any other window has a gather-based AVX-512 path (16 windows a step,
// padding and row ends masked); float64 takes the generic loops. Overlapping windows (shared
// inputs whose gradients add up), padding, asymmetric windows and strides, NaNs and ties: outputs
// and gradients must agree exactly.
TEST(ConvOps, MaxPoolAnyWindowFloat32MatchesTheGenericPathExactly) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Shape shape{2, 3, 11, 45};
  std::vector<float> v(static_cast<size_t>(numel_of(shape)));
  uint32_t state = 777;
  for (float& e : v) {
    state = state * 1664525u + 1013904223u;
    const uint32_t r = state >> 24;
    e = r < 6 ? nan : static_cast<float>(static_cast<int>(r % 7) - 3);
  }
  const Tensor x64 = from_vector<float>(v, shape).to(DType::float64), x32 = x64.to(DType::float32);
  for (const auto& [k, s, p] :
       std::vector<std::tuple<std::vector<int64_t>, std::vector<int64_t>, std::vector<int64_t>>>{
           {{3}, {2}, {1}}, {{3}, {1}, {1}}, {{3, 2}, {1, 2}, {1, 0}}, {{2}, {1}, {0}},
           {{5}, {3}, {2}}, {{1}, {1}, {0}}}) {
    SCOPED_TRACE(shape_str(k) + " " + shape_str(s) + " " + shape_str(p));
    const Tensor y64 = max_pool2d(x64, k, s, p);
    const auto want_y = y64.to_vector<double>();
    const auto got_y = max_pool2d(x32, k, s, p).to(DType::float64).to_vector<double>();
    ASSERT_EQ(got_y.size(), want_y.size());
    for (size_t i = 0; i < got_y.size(); ++i) {
      ASSERT_EQ(std::isnan(got_y[i]), std::isnan(want_y[i])) << i;
      if (!std::isnan(got_y[i])) ASSERT_EQ(got_y[i], want_y[i]) << i;
    }
    std::vector<float> gv(static_cast<size_t>(y64.numel()));
    for (size_t i = 0; i < gv.size(); ++i) gv[i] = static_cast<float>(i % 89) + 1.f;
    const Tensor g64 = from_vector<float>(gv, y64.sizes()).to(DType::float64);
    const Pool2dAttrs attrs{k, s, p};
    const auto want_dx = max_pool2d_backward(g64, x64, attrs).to_vector<double>();
    const auto got_dx =
        max_pool2d_backward(g64.to(DType::float32), x32, attrs).to(DType::float64).to_vector<double>();
    for (size_t i = 0; i < got_dx.size(); ++i) ASSERT_EQ(got_dx[i], want_dx[i]) << i;
  }
}

// ---- gradients against central finite differences (float64) ---------------------------------

struct ConvConfig {
  Shape x, w;
  Conv2dAttrs attrs;
};

TEST(Gradients, Conv2dFiniteDifferences) {
  const std::vector<ConvConfig> configs = {
      {{2, 3, 6, 6}, {4, 3, 3, 3}, {{2, 2}, {1, 1}, {1, 1}, 1}},
      {{1, 2, 7, 7}, {3, 2, 3, 3}, {{1, 1}, {2, 2}, {2, 2}, 1}},
      {{2, 4, 5, 6}, {6, 2, 3, 2}, {{2, 1}, {1, 0}, {1, 1}, 2}},
      {{2, 4, 4, 4}, {4, 2, 1, 1}, {{1, 1}, {0, 0}, {1, 1}, 2}},
      {{3, 5, 5}, {2, 3, 3, 3}, {{1, 1}, {1, 1}, {1, 1}, 1}},  // unbatched (C, H, W) with C = 3
  };
  uint64_t seed = 10;
  for (const auto& c : configs) {
    SCOPED_TRACE(shape_str(c.x) + " * " + shape_str(c.w));
    Tensor x = rand64(c.x, seed++), w = rand64(c.w, seed++), b = rand64({c.w[0]}, seed++);
    auto f = [&] {
      return conv2d(x, w, b, c.attrs.stride, c.attrs.padding, c.attrs.dilation, c.attrs.groups);
    };
    Tensor g = rand64(f().sizes(), seed++);
    Conv2dGrads grads = conv2d_backward(g, x, w, c.attrs, true, true, true);
    expect_close(grads.grad_input, numeric_grad(x, f, g), 1e-6, "grad_input");
    expect_close(grads.grad_weight, numeric_grad(w, f, g), 1e-6, "grad_weight");
    expect_close(grads.grad_bias, numeric_grad(b, f, g), 1e-6, "grad_bias");
    Conv2dGrads only_bias = conv2d_backward(g, x, w, c.attrs, false, false, true);
    EXPECT_FALSE(only_bias.grad_input.defined());
    EXPECT_FALSE(only_bias.grad_weight.defined());
    expect_close(only_bias.grad_bias, grads.grad_bias.to_vector<double>(), 1e-12, "bias only");
  }
}

// The float32/bfloat16 (oneDNN) and float16 gradients agree with the float64 ones.
TEST(Gradients, Conv2dLowPrecisionMatchesFloat64) {
  const Conv2dAttrs attrs{{2, 1}, {1, 1}, {1, 2}, 2};
  Tensor x = rand64({2, 4, 9, 8}, 1), w = rand64({6, 2, 3, 3}, 2);
  Tensor y = conv2d(x, w, Tensor(), attrs.stride, attrs.padding, attrs.dilation, attrs.groups);
  Tensor g = rand64(y.sizes(), 3);
  for (DType t : {DType::float32, DType::bfloat16, DType::float16}) {
    SCOPED_TRACE(std::string(dtype_name(t)));
    // Inputs rounded to t first, so both runs see the same values.
    Tensor xt = x.to(t), wt = w.to(t), gt = g.to(t);
    Conv2dGrads ref = conv2d_backward(gt.to(DType::float64), xt.to(DType::float64),
                                      wt.to(DType::float64), attrs, true, true, true);
    Conv2dGrads got = conv2d_backward(gt, xt, wt, attrs, true, true, true);
    EXPECT_EQ(got.grad_input.dtype(), t);
    const double tol = t == DType::float32 ? 1e-5 : t == DType::float16 ? 5e-3 : 3e-2;
    // Sums over up to N*OH*OW = 72 terms: scale the tolerance by the magnitude of the sums.
    expect_close(got.grad_input, ref.grad_input.to_vector<double>(), tol, "grad_input");
    expect_close(got.grad_weight, ref.grad_weight.to_vector<double>(), tol * 4, "grad_weight");
    expect_close(got.grad_bias, ref.grad_bias.to_vector<double>(), tol * 4, "grad_bias");
  }
}

TEST(Gradients, PoolingFiniteDifferences) {
  for (const auto& [k, s, p] :
       std::vector<std::tuple<std::vector<int64_t>, std::vector<int64_t>, std::vector<int64_t>>>{
           {{3}, {2}, {1}}, {{2}, {}, {0}}, {{3, 2}, {1, 2}, {1, 0}}, {{3}, {1}, {1}}}) {
    SCOPED_TRACE(shape_str(k) + " " + shape_str(s) + " " + shape_str(p));
    Tensor x = rand64({2, 2, 7, 6}, 21);
    Pool2dAttrs attrs{k, s.empty() ? k : s, p};
    auto fmax = [&] { return max_pool2d(x, k, s, p); };
    Tensor g = rand64(fmax().sizes(), 22);
    expect_close(max_pool2d_backward(g, x, attrs), numeric_grad(x, fmax, g), 1e-6, "max_pool2d");
    auto favg = [&] { return avg_pool2d(x, k, s, p); };
    expect_close(avg_pool2d_backward(g, x.sizes(), attrs), numeric_grad(x, favg, g), 1e-6,
                 "avg_pool2d");
    // bfloat16 routes gradients the same way, rounding after each addition as torch 1.13 (up to
    // 9 windows pick one element here; exact bits: tests/ops/test_pool_rounding_torch.cpp).
    Tensor xb = x.to(DType::bfloat16);
    expect_close(
        max_pool2d_backward(g.to(DType::bfloat16), xb, attrs),
        max_pool2d_backward(g.to(DType::bfloat16).to(DType::float64), xb.to(DType::float64), attrs)
            .to_vector<double>(),
        3e-2, "max_pool2d bf16");
  }
}

TEST(Gradients, IndexingFiniteDifferences) {
  {
    Tensor w = rand64({6, 3}, 31);
    Tensor idx = idx64({1, 4, 1, 0, 1, 5}, {2, 3});  // repeated rows accumulate
    auto f = [&] { return embedding(w, idx); };
    Tensor g = rand64({2, 3, 3}, 32);
    expect_close(embedding_backward(g, idx, 6), numeric_grad(w, f, g), 1e-6, "embedding");
    Tensor g32 = g.to(DType::bfloat16);
    expect_close(embedding_backward(g32, idx.to(DType::int32), 6),
                 embedding_backward(g32.to(DType::float64), idx, 6).to_vector<double>(), 1e-2,
                 "embedding bf16");
  }
  {
    Tensor a = rand64({4, 5, 3}, 33);
    Tensor idx = idx64({0, 4, 4, 2, 0, 1}, {6});
    auto f = [&] { return index_select(a, 1, idx); };
    Tensor g = rand64({4, 6, 3}, 34);
    expect_close(index_select_backward(g, a.sizes(), 1, idx), numeric_grad(a, f, g), 1e-6,
                 "index_select");
    auto f0 = [&] { return index_select(a, -3, idx64({3, 3}, {2})); };
    Tensor g0 = rand64({2, 5, 3}, 35);
    expect_close(index_select_backward(g0, a.sizes(), -3, idx64({3, 3}, {2})),
                 numeric_grad(a, f0, g0), 1e-6, "index_select dim 0");
  }
  {
    Tensor a = rand64({4, 5}, 36);
    Tensor idx =
        idx64({0, 4, 4, 1, 2, 2, 3, 3, 0, 1, 1, 1, 4, 4, 4, 0, 1, 2, 3, 4, 0, 0, 0, 0}, {4, 6});
    auto f = [&] { return gather(a, 1, idx); };
    Tensor g = rand64({4, 6}, 37);
    expect_close(gather_backward(g, a.sizes(), 1, idx), numeric_grad(a, f, g), 1e-6, "gather");
    // scatter_add's src gradient is a gather: check the forward against that identity too.
    Tensor src = rand64({4, 6}, 38);
    auto fs = [&] { return scatter_add(a, 1, idx, src); };
    Tensor gs = rand64({4, 5}, 39);
    expect_close(gather(gs, 1, idx), numeric_grad(src, fs, gs), 1e-6, "scatter_add src");
  }
}

TEST(Gradients, Errors) {
  expect_error<ShapeError>(
      [&] {
        embedding_backward(zeros({2, 3}), idx64({0, 1, 2}, {3}), 4);
      },
      {"embedding_backward", "(2, 3)"});
  expect_error<IndexError>(
      [&] {
        embedding_backward(zeros({2, 3}), idx64({0, 7}, {2}), 4);
      },
      {"embedding_backward", "index 7"});
  expect_error<ShapeError>(
      [&] {
        gather_backward(zeros({2, 3}), {4, 4}, 1, idx64({0, 1}, {1, 2}));
      },
      {"gather_backward", "(2, 3)", "(1, 2)"});
  Conv2dAttrs attrs{{1, 1}, {0, 0}, {1, 1}, 1};
  expect_error<ShapeError>(
      [&] {
        conv2d_backward(zeros({1, 2, 5, 5}), zeros({1, 3, 5, 5}), zeros({2, 3, 3, 3}), attrs, true,
                        true, true);
      },
      {"conv2d_backward", "(1, 2, 5, 5)", "(1, 2, 3, 3)"});
}

// torch takes tensors of up to 25 dims through gather, scatter and the index writes built on
// them: index_put(x13, [1] -> 9) on a (3, 1, ..., 1) tensor gives [0, 9, 2], as torch.
TEST(Index, ThirteenDimsAsTorch) {
  Shape s(13, 1);
  s[0] = 3;
  const Tensor x = arange(0, 3, 1, DType::float64).reshape(s);
  const Tensor one = from_vector<int64_t>({1}, {1});
  const Tensor nine = from_vector<double>({9}, {1});
  EXPECT_EQ(index_put(x, {one}, nine, false).to_vector<double>(), (std::vector<double>{0, 9, 2}));
  EXPECT_EQ(index_fill(x, 0, one, 9.0).to_vector<double>(), (std::vector<double>{0, 9, 2}));
  Shape is(13, 1);
  is[0] = 2;
  const Tensor idx = from_vector<int64_t>({2, 0}, {2}).reshape(is);
  EXPECT_EQ(gather(x, 0, idx).to_vector<double>(), (std::vector<double>{2, 0}));
  EXPECT_EQ(scatter(x, 0, idx, 7.0).to_vector<double>(), (std::vector<double>{7, 1, 7}));
}

// torch.take_along_dim(tensor(4.), tensor(0), 0): IndexError "Dimension specified as 0 but tensor
// has no dimensions"; without a dim, the flattened form gives [4.].
TEST(Index, TakeAlongDimOfAZeroDimInputTakesNoDim) {
  const Tensor a = full({}, 4.0), i = zeros({}, {.dtype = DType::int64});
  EXPECT_THROW(take_along_dim(a, i, 0), IndexError);
  EXPECT_THROW(take_along_dim(a, i, -1), IndexError);
  const Tensor flat = take_along_dim(a, i);
  EXPECT_EQ(flat.sizes(), (Shape{1}));
  EXPECT_EQ(flat.item<float>(), 4.0f);
}

}  // namespace
}  // namespace fabric
