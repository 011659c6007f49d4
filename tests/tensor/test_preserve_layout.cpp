// clone(), to() and the *_like factories lay out their results as torch 1.13's default
// memory_format=preserve_format does; contiguous() and reshape's copy stay row-major. The expected
// strides were printed by torch 1.13 for the same shapes and views.
#include <gtest/gtest.h>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace fabric {
namespace {

Tensor seq(const Shape& shape) {
  return arange(0, numel_of(shape), 1, DType::float32).reshape(shape);
}

void expect_same_values(const Tensor& got, const Tensor& want) {
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_EQ(got.to(DType::float64).to_vector<double>(),
            want.to(DType::float64).to_vector<double>());
}

TEST(PreserveLayout, DenseViewsKeepTheirStrides) {
  const Tensor t = seq({3, 4}).t();  // (4, 3) strides (1, 4)
  for (const Tensor& r : {t.clone(), t.to(DType::float64), t.to(DType::bfloat16), empty_like(t),
                          zeros_like(t), ones_like(t), full_like(t, 2)})
    EXPECT_EQ(r.strides(), (Strides{1, 4}));
  expect_same_values(t.clone(), t);
  expect_same_values(t.to(DType::float64), t);
  EXPECT_EQ(zeros_like(t).to_vector<float>(), std::vector<float>(12, 0.f));
  EXPECT_EQ(full_like(t, 2).to_vector<float>(), std::vector<float>(12, 2.f));

  const Tensor p = seq({2, 3, 4}).permute({2, 0, 1});  // strides (1, 12, 4)
  EXPECT_EQ(p.clone().strides(), (Strides{1, 12, 4}));
  EXPECT_EQ(p.to(DType::float64).strides(), (Strides{1, 12, 4}));
  expect_same_values(p.to(DType::float64), p);

  // channels-last activations stay channels-last
  const Tensor cl = seq({2, 3, 4, 5}).permute({0, 2, 3, 1});
  EXPECT_EQ(cl.clone().strides(), (Strides{60, 5, 1, 20}));
  // a dense tensor keeps even its size-1 dims' strides, as empty_strided does
  EXPECT_EQ(seq({5, 1}).t().clone().strides(), (Strides{1, 1}));
  EXPECT_EQ(seq({4, 1, 3}).permute({2, 1, 0}).clone().strides(), (Strides{1, 3, 3}));
  EXPECT_EQ(empty({0, 3}).t().clone().strides(), (Strides{1, 3}));
}

TEST(PreserveLayout, NonDenseViewsGetTheirDimOrderMadeDense) {
  const Tensor s = seq({4, 6}).slice(1, 0, 6, 2);  // (4, 3) strides (6, 2)
  EXPECT_EQ(s.clone().strides(), (Strides{3, 1}));
  EXPECT_EQ(s.t().clone().strides(), (Strides{1, 3}));
  EXPECT_EQ(s.t().to(DType::float64).strides(), (Strides{1, 3}));
  EXPECT_EQ(empty_like(s.t()).strides(), (Strides{1, 3}));
  expect_same_values(s.t().clone(), s.t());

  const Tensor e = seq({3, 1, 4}).expand({3, 5, 4});  // strides (4, 0, 1)
  EXPECT_EQ(e.clone().strides(), (Strides{20, 4, 1}));
  expect_same_values(e.to(DType::float64), e);

  const Tensor g = seq({2, 3, 4, 5}).permute({0, 2, 3, 1}).slice(1, 0, 4, 2);  // (2, 2, 5, 3)
  EXPECT_EQ(g.strides(), (Strides{60, 10, 1, 20}));
  EXPECT_EQ(g.clone().strides(), (Strides{30, 5, 1, 10}));
  EXPECT_EQ(g.to(DType::float64).strides(), (Strides{30, 5, 1, 10}));
  EXPECT_EQ(seq({2, 3}).slice(1, 0, 1).clone().strides(), (Strides{1, 1}));
}

TEST(PreserveLayout, ContiguousAndReshapeStayRowMajor) {
  const Tensor t = seq({3, 4}).t();
  EXPECT_EQ(t.contiguous().strides(), (Strides{3, 1}));
  const Tensor r = t.reshape({12});  // no view of a transpose: a row-major copy
  EXPECT_EQ(r.strides(), (Strides{1}));
  EXPECT_EQ(r.to_vector<float>(), t.contiguous().to_vector<float>());
  const Tensor f = t.flatten();
  EXPECT_EQ(f.to_vector<float>(), t.contiguous().to_vector<float>());
}

TEST(PreserveLayout, GradientsOfTransposedCopiesReachTheLeafRowMajor) {
  // torch gives a contiguous leaf a contiguous .grad whatever layout the gradient arrives in.
  Tensor x = seq({4, 3}).set_requires_grad(true);
  Tensor y = x.t().clone();
  EXPECT_EQ(y.strides(), (Strides{1, 3}));
  sum(mul(y, seq({3, 4}))).backward();
  EXPECT_TRUE(x.grad().is_contiguous());
  expect_same_values(x.grad(), seq({3, 4}).t());

  Tensor w = seq({4, 3}).set_requires_grad(true);
  sum(mul(w.t().to(DType::float64), 2.0)).backward();
  EXPECT_TRUE(w.grad().is_contiguous());
  EXPECT_EQ(w.grad().dtype(), DType::float32);
  EXPECT_EQ(w.grad().to_vector<float>(), std::vector<float>(12, 2.f));
}

TEST(PreserveLayout, RandomLikeFactoriesFollow) {
  const Tensor t = seq({3, 4}).t();
  Generator gen(7);
  Tensor u = empty_like(t);
  u.uniform_(0, 1, &gen);
  EXPECT_EQ(u.strides(), (Strides{1, 4}));
}

}  // namespace
}  // namespace fabric
