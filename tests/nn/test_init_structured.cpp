// nn::init's structured initialisers: orthogonal_, eye_, dirac_ and sparse_. fabric's draws come
// from Philox, not torch's generator, so orthogonal_ and sparse_ are checked by their defining
// properties (orthonormality times gain, torch's sign rule, the zero count per column) instead of
// torch's values; eye_ and dirac_ are deterministic and compared exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "nn/init.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/expect_error.h"

namespace fabric::nn {
namespace {

struct OrthogonalCase {
  Shape shape;
  double gain;
};

// (r, c) row-major product a^T b of two (k, r) / (k, c) matrices.
std::vector<double> at_b(const std::vector<double>& a, const std::vector<double>& b, int64_t k,
                         int64_t r, int64_t c) {
  std::vector<double> out(r * c, 0.0);
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j)
      for (int64_t l = 0; l < k; ++l) out[i * c + j] += a[l * r + i] * b[l * c + j];
  return out;
}

TEST(InitOrthogonal, OrthonormalTimesGainWithTorchsSignRule) {
  const std::vector<OrthogonalCase> cases = {
      {{5, 3}, 1.0}, {{3, 5}, 2.0}, {{4, 4}, 0.5}, {{6, 2, 2}, 1.0}, {{2, 3, 3}, std::sqrt(2.0)},
      {{1, 7}, 1.0}, {{7, 1}, 3.0}};
  for (const OrthogonalCase& c : cases) {
    SCOPED_TRACE(shape_str(c.shape));
    Tensor w = empty(c.shape, {.dtype = DType::float64});
    Generator g1(99), g2(99);
    init::orthogonal_(w, c.gain, &g1);
    const int64_t rows = c.shape[0], cols = w.numel() / rows;
    // The draw orthogonal_ decomposed, repeated with the same seed.
    Tensor drawn = empty({rows, cols}, {.dtype = DType::float64});
    fabric::normal_(drawn, 0.0, 1.0, &g2);
    // Tall: q = w / gain (rows, cols), a = drawn. Wide: q = (w / gain)^T, a = drawn^T.
    const bool wide = rows < cols;
    const int64_t m = wide ? cols : rows, n = wide ? rows : cols;
    Tensor q = div(w.reshape({rows, cols}), Scalar(c.gain));
    Tensor a = drawn;
    if (wide) {
      q = q.t().contiguous();
      a = a.t().contiguous();
    }
    const std::vector<double> qv = q.to_vector<double>(), av = a.to_vector<double>();
    const std::vector<double> qtq = at_b(qv, qv, m, n, n);
    const std::vector<double> r = at_b(qv, av, m, n, n);  // q^T a = r
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        EXPECT_NEAR(qtq[i * n + j], i == j ? 1.0 : 0.0, 1e-12) << i << "," << j;
        if (i > j)
          EXPECT_NEAR(r[i * n + j], 0.0, 1e-12) << "r below the diagonal " << i << "," << j;
      }
      EXPECT_GT(r[i * n + i], 0.0) << "the sign rule leaves r's diagonal positive, " << i;
    }
  }
}

TEST(InitOrthogonal, ErrorsAndEmpty) {
  EXPECT_CONTAINS(thrown<ValueError>([] { init::orthogonal_(empty({4})); }),
                  "2 or more dimensions");
  EXPECT_CONTAINS(thrown<DTypeError>([] {
                    init::orthogonal_(empty({2, 2}, {.dtype = DType::int64}));
                  }),
                  "floating");
  Tensor e = empty({0, 3});
  EXPECT_NO_THROW(init::orthogonal_(e));
}

struct ExactCase {
  const char* name;
  std::function<Tensor()> make;
  std::vector<double> expected;
};

TEST(InitEyeDirac, MatchTorch) {
  // torch.nn.init.eye_ / dirac_ outputs, flattened.
  const std::vector<ExactCase> cases = {
      {"eye_2x3",
       [] {
         return init::eye_(full({2, 3}, 5.0));
       },
       {1, 0, 0, 0, 1, 0}},
      {"eye_3x2",
       [] {
         return init::eye_(full({3, 2}, 5.0));
       },
       {1, 0, 0, 1, 0, 0}},
      {"dirac_3d",
       [] {
         return init::dirac_(full({2, 2, 3}, 5.0));
       },
       {0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0}},
      {"dirac_4d_groups2",
       [] {
         return init::dirac_(full({4, 1, 2, 2}, 5.0), 2);
       },
       {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}},
      {"dirac_5d_more_in",
       [] {
         return init::dirac_(full({1, 2, 1, 1, 3}, 5.0));
       },
       {0, 1, 0, 0, 0, 0}},
  };
  for (const ExactCase& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(c.make().to(DType::float64).to_vector<double>(), c.expected);
  }
  EXPECT_CONTAINS(thrown<ValueError>([] { init::eye_(empty({2, 2, 2})); }), "2 dimensions");
  EXPECT_CONTAINS(thrown<ValueError>([] { init::dirac_(empty({2, 2})); }), "3, 4, or 5");
  EXPECT_CONTAINS(thrown<ValueError>([] {
                    init::dirac_(empty({3, 2, 3}), 2);
                  }),
                  "divisible by groups");
}

TEST(InitSparse, ZeroesCeilSparsityRowsPerColumn) {
  struct Case {
    int64_t rows, cols;
    double sparsity;
    int64_t zeros_per_column;
  };
  const std::vector<Case> cases = {{10, 4, 0.3, 3},
                                   {7, 5, 0.1, 1},
                                   {6, 3, 0.0, 0},
                                   {4, 2, 1.0, 4},
                                   {4, 4, 1.5, 4}};  // torch: above 1 zeroes every row
  for (const Case& c : cases) {
    SCOPED_TRACE(c.sparsity);
    Generator gen(5);
    Tensor w = empty({c.rows, c.cols}, {.dtype = DType::float64});
    init::sparse_(w, c.sparsity, 0.5, &gen);
    const std::vector<double> v = w.to_vector<double>();
    for (int64_t col = 0; col < c.cols; ++col) {
      int64_t zeros = 0;
      for (int64_t r = 0; r < c.rows; ++r) zeros += v[r * c.cols + col] == 0.0;
      EXPECT_EQ(zeros, c.zeros_per_column) << "column " << col;
    }
  }
  // The zeroed rows differ between columns (a fresh permutation per column).
  Generator gen(5);
  Tensor w = empty({50, 8}, {.dtype = DType::float64});
  init::sparse_(w, 0.5, 1.0, &gen);
  const std::vector<double> v = w.to_vector<double>();
  int64_t differing = 0;
  for (int64_t r = 0; r < 50; ++r) differing += (v[r * 8] == 0.0) != (v[r * 8 + 1] == 0.0);
  EXPECT_GT(differing, 0);
  EXPECT_CONTAINS(thrown<ValueError>([] { init::sparse_(empty({2, 2, 2}), 0.5); }), "2 dimensions");
  EXPECT_CONTAINS(thrown<ValueError>([] { init::sparse_(empty({2, 2}), -0.5); }), "non-negative");
  EXPECT_CONTAINS(thrown<ValueError>([] { init::sparse_(empty({2, 2}), INFINITY); }), "finite");
  Tensor huge = empty({4, 3});
  init::sparse_(huge, 1e300);
  for (float v : huge.to_vector<float>()) EXPECT_EQ(v, 0.0f);
}

}  // namespace
}  // namespace fabric::nn
