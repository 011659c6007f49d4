// median, nanmedian, kthvalue, mode, quantile and nanquantile against torch 1.13
// (tests/ops/order_statistics_torch_rows.h, from tools/fixtures/make_order_statistics_rows.py):
// values, int64 indices (torch's among ties too) and x's gradient bit for bit, in float32,
// float64 and int64, with NaN, +-inf, ties and -0; then torch's argument errors.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/order_statistics.h"
#include "tests/common/expect_error.h"
#include "tests/ops/order_statistics_torch_rows.h"

namespace fabric {
namespace {

using order_statistics_torch::Row;

std::vector<double> doubles(const std::vector<uint64_t>& b) {
  std::vector<double> v;
  for (uint64_t x : b) v.push_back(std::bit_cast<double>(x));
  return v;
}

Tensor tensor_of(const std::vector<uint64_t>& b, const Shape& shape, DType dtype) {
  return from_vector(doubles(b), {static_cast<int64_t>(b.size())}, {.dtype = DType::float64})
      .reshape(shape)
      .to(dtype);
}

// Every element's bits equal torch's (both as doubles); the first few differences are named.
void expect_bits(const Tensor& got, const std::vector<uint64_t>& want, const std::string& what) {
  const std::vector<double> g = got.to_vector<double>();
  ASSERT_EQ(g.size(), want.size()) << what;
  int shown = 0;
  for (size_t i = 0; i < g.size() && shown < 5; ++i) {
    if (std::bit_cast<uint64_t>(g[i]) == want[i]) continue;
    ADD_FAILURE() << what << "[" << i << "]: " << g[i] << " vs torch "
                  << std::bit_cast<double>(want[i]);
    ++shown;
  }
}

// The row's op: (values, indices), indices undefined where the op has none.
std::pair<Tensor, Tensor> run(const Row& r, const Tensor& x) {
  const std::string op = r.op;
  if (op == "median" || op == "nanmedian") {
    const bool nan = op == "nanmedian";
    if (!r.has_dim) return {nan ? nanmedian(x) : median(x), Tensor()};
    auto [v, i] = nan ? nanmedian(x, r.dim, r.keepdim) : median(x, r.dim, r.keepdim);
    return {v, i};
  }
  if (op == "kthvalue") {
    auto [v, i] = kthvalue(x, r.k, r.dim, r.keepdim);
    return {v, i};
  }
  if (op == "mode") {
    auto [v, i] = mode(x, r.dim, r.keepdim);
    return {v, i};
  }
  const std::optional<int64_t> dim = r.has_dim ? std::optional<int64_t>(r.dim) : std::nullopt;
  const bool nan = op == "nanquantile";
  if (r.q_scalar) {
    const double q = std::bit_cast<double>(r.q[0]);
    return {nan ? nanquantile(x, q, dim, r.keepdim, r.interpolation)
                : quantile(x, q, dim, r.keepdim, r.interpolation),
            Tensor()};
  }
  const Tensor q = tensor_of(r.q, {static_cast<int64_t>(r.q.size())}, r.dtype);
  return {nan ? nanquantile(x, q, dim, r.keepdim, r.interpolation)
              : quantile(x, q, dim, r.keepdim, r.interpolation),
          Tensor()};
}

TEST(OrderStatisticsTorch, ValuesIndicesAndGradientsMatchTorch) {
  for (const Row& r : order_statistics_torch::rows()) {
    SCOPED_TRACE(r.name);
    Tensor x = tensor_of(r.x, r.shape, r.dtype);
    const bool floating = is_floating(r.dtype);
    if (floating) x.set_requires_grad(true);
    auto [values, indices] = run(r, x);
    EXPECT_EQ(values.sizes(), r.out_shape);
    EXPECT_EQ(values.dtype(), r.dtype);
    expect_bits(values, r.values, "values");
    if (!r.indices.empty()) {
      ASSERT_TRUE(indices.defined());
      EXPECT_EQ(indices.dtype(), DType::int64);
      EXPECT_EQ(indices.sizes(), r.out_shape);
      EXPECT_EQ(indices.to_vector<int64_t>(), r.indices);
    }
    if (!floating) continue;
    values.backward(tensor_of(r.g, r.out_shape, r.dtype));
    ASSERT_TRUE(x.grad().defined());
    expect_bits(x.grad(), r.grad, "grad");
  }
}

// Without autograd the same values come back (the host results, not the recorded composition).
TEST(OrderStatisticsTorch, NoGradValuesMatchTorch) {
  for (const Row& r : order_statistics_torch::rows()) {
    SCOPED_TRACE(r.name);
    const Tensor x = tensor_of(r.x, r.shape, r.dtype);
    expect_bits(run(r, x).first, r.values, "values");
  }
}

TEST(OrderStatisticsTorch, EmptyMedianIsNanAsTorch) {
  EXPECT_TRUE(std::isnan(median(zeros({0})).item<double>()));
  EXPECT_TRUE(std::isnan(nanmedian(zeros({2, 0})).item<double>()));
  EXPECT_EQ(median(zeros({0}, {.dtype = DType::int64})).item<int64_t>(),
            std::numeric_limits<int64_t>::min());
  EXPECT_EQ(median(zeros({0}, {.dtype = DType::int32})).item<int64_t>(),
            std::numeric_limits<int32_t>::min());
  // A reduced dim of zero size is an error; empty other dims give empty results.
  EXPECT_CONTAINS(thrown<IndexError>([] { median(zeros({2, 0}), 1); }), "non-zero size");
  auto [v, i] = median(zeros({0, 3}), 1);
  EXPECT_EQ(v.sizes(), (Shape{0}));
  EXPECT_EQ(i.sizes(), (Shape{0}));
}

TEST(OrderStatisticsTorch, ModeTakesBoolAndMedianRefusesIt) {
  const Tensor b = from_vector<double>({1, 0, 1}, {3}).to(DType::bool_);
  auto [v, i] = mode(b);
  EXPECT_TRUE(v.item<bool>());
  EXPECT_EQ(i.item<int64_t>(), 2);  // torch 1.13
  EXPECT_CONTAINS(thrown<DTypeError>([&] { median(b); }), "bool");
  EXPECT_CONTAINS(thrown<DTypeError>([&] { kthvalue(b, 1); }), "bool");
}

TEST(OrderStatisticsTorch, ArgumentErrorsAsTorch) {
  const Tensor x = from_vector<float>({3, 1, 2}, {3});
  EXPECT_CONTAINS(thrown<IndexError>([&] { kthvalue(x, 0); }), "out of range");
  EXPECT_CONTAINS(thrown<IndexError>([&] { kthvalue(x, 4); }), "out of range");
  EXPECT_CONTAINS(thrown<IndexError>([&] { kthvalue(zeros({0}), 1); }), "non-zero size");
  EXPECT_CONTAINS(thrown<IndexError>([&] { mode(zeros({2, 0}), 1); }), "non-zero size");
  EXPECT_CONTAINS(thrown<IndexError>([&] { median(x, 1); }), "out of range");
  EXPECT_CONTAINS(thrown<ValueError>([&] { quantile(x, 1.5); }), "range [0, 1] but got 1.5");
  EXPECT_CONTAINS(thrown<ValueError>([&] { quantile(x, std::nan("")); }), "range [0, 1]");
  EXPECT_CONTAINS(thrown<ValueError>([&] { nanquantile(x, -0.1); }), "range [0, 1]");
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    quantile(x, from_vector<float>({0.2f, 1.5f}, {2}));
                  }),
                  "q values must be in the range [0, 1]");
  EXPECT_CONTAINS(thrown<ValueError>([&] { quantile(x, 0.5, std::nullopt, false, "foo"); }),
                  "interpolation must be one of linear, lower, higher, midpoint or nearest");
  // The interpolation is checked before the input's size, as torch.
  EXPECT_CONTAINS(thrown<ValueError>([&] { quantile(zeros({0}), 0.5, std::nullopt, false, "x"); }),
                  "interpolation");
  EXPECT_CONTAINS(thrown<ShapeError>([&] { quantile(zeros({0}), 0.5); }), "non-empty");
  EXPECT_CONTAINS(thrown<DTypeError>([&] { quantile(x.to(DType::int64), 0.5); }),
                  "float or double");
  EXPECT_CONTAINS(thrown<DTypeError>([&] { quantile(x, from_vector<double>({0.5}, {1})); }),
                  "same dtype");
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    quantile(x, from_vector<float>({0.5f}, {1, 1}));
                  }),
                  "scalar or 1D");
  EXPECT_CONTAINS(thrown<IndexError>([&] { quantile(x, 0.5, 3); }), "out of range");
}

}  // namespace
}  // namespace fabric
