// split / chunk: views whose pieces share one autograd node (torch's SplitBackward0), whose
// backward concatenates the pieces' gradients (zeros for pieces that got none); the gradients
// equal the per-piece slices' they replace, through double backward and in-place writes.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/autograd_meta.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

Tensor iota(Shape shape) {
  std::vector<double> v(static_cast<size_t>(numel_of(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.25 * static_cast<double>(i) - 1.0;
  return from_vector(v, shape, {.dtype = DType::float64});
}

// The pieces as the old split made them: one narrow (a SliceBackward0 each) per piece.
std::vector<Tensor> narrowed(const Tensor& a, const std::vector<int64_t>& sizes, int64_t dim) {
  std::vector<Tensor> out;
  int64_t start = 0;
  for (int64_t s : sizes) {
    out.push_back(a.narrow(dim, start, s));
    start += s;
  }
  return out;
}

// sum_i (i + 1) * piece_i^2 over the pieces `used` picks (all when empty).
Tensor weighted_squares(const std::vector<Tensor>& pieces, const std::vector<size_t>& used) {
  Tensor total;
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (!used.empty() && std::find(used.begin(), used.end(), i) == used.end()) continue;
    Tensor term = sum(mul(mul(pieces[i], pieces[i]), static_cast<double>(i + 1)));
    total = total.defined() ? add(total, term) : term;
  }
  return total;
}

struct SplitCase {
  std::string name;
  Shape shape;
  int64_t dim;
  std::vector<int64_t> sizes;  // the pieces' lengths the split must give
  std::function<std::vector<Tensor>(const Tensor&)> split;
  std::string node;
  std::vector<size_t> used;  // the pieces the loss reads (all when empty)
};

std::vector<SplitCase> split_cases() {
  return {
      {"chunk_loop",
       {6, 4},
       0,
       {2, 2, 2},
       [](const Tensor& a) { return chunk(a, 3); },
       "SplitBackward0",
       {}},
      {"chunk_dim1_uneven",
       {3, 7},
       1,
       {3, 3, 1},
       [](const Tensor& a) { return chunk(a, 3, -1); },
       "SplitBackward0",
       {}},
      {"split_size_some_used",
       {7, 2},
       0,
       {3, 3, 1},
       [](const Tensor& a) { return split(a, 3); },
       "SplitBackward0",
       {2}},
      {"split_sizes_middle_used",
       {2, 6},
       1,
       {1, 0, 4, 1},
       [](const Tensor& a) {
         return split(a, std::vector<int64_t>{1, 0, 4, 1}, 1);
       },
       "SplitWithSizesBackward0",
       {2}},
      {"split_sizes_ends_used",
       {5, 3},
       0,
       {2, 3},
       [](const Tensor& a) {
         return split(a, std::vector<int64_t>{2, 3});
       },
       "SplitWithSizesBackward0",
       {0, 1}},
      {"one_piece", {4}, 0, {4}, [](const Tensor& a) { return split(a, 8); }, "SplitBackward0", {}},
  };
}

// One node for all pieces (the same grad_fn, output numbers 0, 1, ...), and the same gradient as
// the per-piece slices give, whichever pieces the loss reads.
TEST(SplitNode, OneNodeAndTheSlicesGradient) {
  for (const SplitCase& c : split_cases()) {
    SCOPED_TRACE(c.name);
    Tensor x = iota(c.shape).set_requires_grad(true);
    const std::vector<Tensor> pieces = c.split(x);
    ASSERT_EQ(pieces.size(), c.sizes.size());
    for (size_t i = 0; i < pieces.size(); ++i) {
      EXPECT_EQ(grad_fn_name(pieces[i]), c.node);
      EXPECT_EQ(autograd_meta(pieces[i]).grad_fn.get(), autograd_meta(pieces[0]).grad_fn.get());
      EXPECT_EQ(autograd_meta(pieces[i]).output_nr, static_cast<int>(i));
      EXPECT_EQ(pieces[i].storage().get(), x.storage().get());  // still views
    }
    const Tensor got = grad({weighted_squares(pieces, c.used)}, {x})[0];
    const Tensor want = grad({weighted_squares(narrowed(x, c.sizes, c.dim), c.used)}, {x})[0];
    EXPECT_EQ(got.sizes(), c.shape);
    EXPECT_EQ(got.to_vector<double>(), want.to_vector<double>());
  }
}

// The backward is made of recorded ops (cat, zeros), so it differentiates again: the Hessian-vector
// product of sum_i (i + 1) piece_i^2 is 2 (i + 1) on piece i, 0 on unused pieces.
TEST(SplitNode, DifferentiatesTwice) {
  for (const SplitCase& c : split_cases()) {
    SCOPED_TRACE(c.name);
    Tensor x = iota(c.shape).set_requires_grad(true);
    const Tensor g = grad({weighted_squares(c.split(x), c.used)}, {x}, {}, /*retain_graph=*/true,
                          /*create_graph=*/true)[0];
    const Tensor got = grad({sum(g)}, {x})[0];
    Tensor y = iota(c.shape).set_requires_grad(true);
    const Tensor gy = grad({weighted_squares(narrowed(y, c.sizes, c.dim), c.used)}, {y}, {},
                           /*retain_graph=*/true, /*create_graph=*/true)[0];
    const Tensor want = grad({sum(gy)}, {y})[0];
    EXPECT_EQ(got.to_vector<double>(), want.to_vector<double>());
  }
}

// The pieces stay views: an in-place write into one goes through the base's history (CopySlices),
// and a piece read after another piece was written sees the write.
TEST(SplitNode, InPlaceWritesIntoPiecesReachTheBase) {
  Tensor x = iota({4, 2}).set_requires_grad(true);
  Tensor y = mul(x, 1.0);
  std::vector<Tensor> p = chunk(y, 2);
  p[0].mul_(3.0);                                         // y[:2] *= 3
  const Tensor loss = add(sum(mul(p[1], p[1])), sum(y));  // p[1] read after p[0]'s write
  loss.backward();
  const std::vector<double> xv = iota({4, 2}).to_vector<double>();
  std::vector<double> want(8);
  for (size_t i = 0; i < 8; ++i) want[i] = i < 4 ? 3.0 : 2.0 * xv[i] + 1.0;
  EXPECT_EQ(x.grad().to_vector<double>(), want);
  EXPECT_EQ(y.to_vector<double>()[0], 3.0 * xv[0]);  // the write reached the base

  // A piece whose history was taken before the write keeps the old values' gradient.
  Tensor a = iota({2, 3}).set_requires_grad(true);
  Tensor b = mul(a, 2.0);
  std::vector<Tensor> q = split(b, 1, 1);
  const Tensor before = mul(q[2], 5.0);
  q[0].fill_(0.0);
  sum(add(sum(before), sum(b))).backward();
  EXPECT_EQ(a.grad().to_vector<double>(), (std::vector<double>{0, 2, 12, 0, 2, 12}));
}

}  // namespace
}  // namespace fabric
