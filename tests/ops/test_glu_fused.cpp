// glu's fused CPU passes (tensor/glu_kernels.h): the forward against a float64 reference along
// dims 0, 1 and -1 with odd sizes (harness, every layout, finite-difference gradients through
// the fused float64 backward), the fused backward in float32/bf16 against torch's formula in
// float64 (contiguous, strided halves, a broadcast grad, outputs large enough to stream), double
// backward through the recorded composition, and the same results at 1 and 2 threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/glu_kernels.h"
#include "tensor/random.h"
#include "tests/common/omp_threads.h"
#include "tests/ops/op_harness.h"

namespace fabric {
namespace {

using harness::F;
using harness::OpCase;
using harness::RefTensor;

double sigmoid_f64(double b) { return 1.0 / (1.0 + std::exp(-b)); }

// x viewed as (outer, n, inner) around `dim`; the halves are k < n/2 and k + n/2.
struct Split {
  int64_t outer = 1, n = 1, inner = 1;
};
Split split_at(const Shape& s, int64_t dim) {
  Split r;
  for (int64_t i = 0; i < static_cast<int64_t>(s.size()); ++i)
    (i < dim ? r.outer : i == dim ? r.n : r.inner) *= s[i];
  return r;
}

int64_t wrap(int64_t dim, size_t rank) { return dim < 0 ? dim + static_cast<int64_t>(rank) : dim; }

// Calls f(index of a, index of b, index of the output) for each output element.
template <typename F>
void for_each_pair(const Shape& shape, int64_t dim, F&& f) {
  const Split d = split_at(shape, dim);
  const int64_t h = d.n / 2;
  for (int64_t o = 0; o < d.outer; ++o)
    for (int64_t k = 0; k < h; ++k)
      for (int64_t i = 0; i < d.inner; ++i)
        f((o * d.n + k) * d.inner + i, (o * d.n + k + h) * d.inner + i, (o * h + k) * d.inner + i);
}

RefTensor ref_glu(const RefTensor& x, int64_t dim) {
  Shape os = x.shape;
  os[dim] /= 2;
  RefTensor out{os, std::vector<double>(static_cast<size_t>(numel_of(os)))};
  for_each_pair(x.shape, dim, [&](int64_t ia, int64_t ib, int64_t io) {
    out.v[io] = x.v[ia] * sigmoid_f64(x.v[ib]);
  });
  return out;
}

// torch's glu_backward in float64: s g for a, (1 - s) s a g for b.
std::vector<double> ref_glu_grad(const std::vector<double>& x, const std::vector<double>& g,
                                 const Shape& shape, int64_t dim) {
  std::vector<double> gx(x.size());
  for_each_pair(shape, dim, [&](int64_t ia, int64_t ib, int64_t io) {
    const double s = sigmoid_f64(x[ib]);
    gx[ia] = s * g[io];
    gx[ib] = (1 - s) * s * x[ia] * g[io];
  });
  return gx;
}

struct GluShape {
  Shape shape;
  int64_t dim;
};
// Odd halves and odd other dims along 0, 1 and -1; the (64, 1202) row runs the vector body, a
// tail and OpenMP (38K outputs); (2, 70, 300) along dim 1 splits into strided blocks.
const std::vector<GluShape> kShapes = {{{6, 5}, 0},        {{3, 10, 7}, 1},  {{5, 3, 14}, -1},
                                       {{7, 9, 3, 2}, -1}, {{64, 1202}, -1}, {{2, 70, 300}, 1},
                                       {{70, 3, 33}, 0}};

std::vector<OpCase> glu_cases() {
  std::vector<OpCase> c;
  for (const GluShape& s : kShapes) {
    const int64_t dim = wrap(s.dim, s.shape.size());
    c.push_back({"glu_fused/" + shape_str(s.shape) + "_dim" + std::to_string(s.dim),
                 {F(s.shape, -4, 4)},
                 [s](const std::vector<Tensor>& t) { return glu(t[0], s.dim); },
                 [dim](const std::vector<RefTensor>& t) { return ref_glu(t[0], dim); }});
  }
  return c;
}

TEST(OpHarness, GluFused) { harness::run_cases(glu_cases()); }
// CUDA has no fused kernel: glu_halves and glu_backward fall back on the composition there.
TEST(OpHarnessCuda, GluFused) { harness::run_cases_on_cuda(glu_cases()); }

TEST(GluFused, HarnessAtTwoThreads) {
  OmpThreads two(2);
  harness::run_cases(glu_cases());
}

// float32's fused forward is a * sigmoid(b) with sigmoid's own vector code: the composition's bits.
TEST(GluFused, Float32ForwardHasTheCompositionsBits) {
  manual_seed(5);
  for (const GluShape& s : kShapes) {
    SCOPED_TRACE(shape_str(s.shape));
    const Tensor x = randn(s.shape);
    const int64_t dim = wrap(s.dim, s.shape.size()), h = x.size(dim) / 2;
    EXPECT_TRUE(bits_equal(glu(x, s.dim), mul(x.narrow(dim, 0, h), sigmoid(x.narrow(dim, h, h)))));
  }
}

Tensor input_in_layout(const Tensor& dense, bool transposed) {
  if (!transposed) return dense.clone();
  const int64_t a = dense.dim() - 2, b = a + 1;
  return dense.transpose(a, b).contiguous().transpose(a, b);
}

// The fused backward (grad mode off in the rule) in every floating dtype against the float64
// formula, for a contiguous and a transposed input and a broadcast grad.
TEST(GluFused, BackwardMatchesTorchsFormula) {
  for (DType dt : {DType::float64, DType::float32, DType::bfloat16, DType::float16}) {
    // The harness's tolerances (op_harness.cpp), relative to max(1, |want|).
    const double tol = dt == DType::float64   ? 1e-12
                       : dt == DType::float32 ? 2e-5
                       : dt == DType::float16 ? 4e-3
                                              : 2e-2;
    for (const GluShape& s : kShapes)
      for (bool transposed : {false, true})
        for (bool broadcast_grad : {false, true}) {
          SCOPED_TRACE(::testing::Message()
                       << dtype_name(dt) << " " << shape_str(s.shape) << " dim " << s.dim
                       << (transposed ? " transposed" : "") << (broadcast_grad ? " bcast" : ""));
          manual_seed(11);
          const Tensor dense = mul(randn(s.shape, {.dtype = DType::float64}), 2.0);
          const Tensor x = input_in_layout(dense.to(dt), transposed).set_requires_grad(true);
          const int64_t dim = wrap(s.dim, s.shape.size());
          Shape os = s.shape;
          os[dim] /= 2;
          Tensor g = randn(os, {.dtype = DType::float64}).to(dt);
          if (broadcast_grad) g = g.narrow(0, 0, 1).expand(os);
          glu(x, s.dim).backward(g);
          const std::vector<double> want =
              ref_glu_grad(x.detach().to_vector<double>(), g.to_vector<double>(), s.shape, dim);
          const std::vector<double> got = x.grad().to_vector<double>();
          ASSERT_EQ(x.grad().dtype(), dt);
          ASSERT_EQ(got.size(), want.size());
          for (size_t i = 0; i < got.size(); ++i)
            ASSERT_NEAR(got[i], want[i], tol * std::max(1.0, std::abs(want[i]))) << "at " << i;
        }
  }
}

// Under create_graph the rule records the composition: the first gradient equals the fused one
// and differentiates again, as the composition written out here does.
TEST(GluFused, DoubleBackwardThroughTheRecordedComposition) {
  for (const GluShape& s : kShapes) {
    SCOPED_TRACE(shape_str(s.shape));
    manual_seed(7);
    const Tensor dense = randn(s.shape, {.dtype = DType::float64});
    const int64_t dim = wrap(s.dim, s.shape.size()), h = dense.size(dim) / 2;
    const Tensor x = dense.clone().set_requires_grad(true);
    const Tensor r = dense.clone().set_requires_grad(true);
    const Tensor w = randn(glu(dense, s.dim).sizes(), {.dtype = DType::float64});
    const Tensor out = glu(x, s.dim);
    const Tensor ref = mul(r.narrow(dim, 0, h), sigmoid(r.narrow(dim, h, h)));
    const Tensor gx = grad({sum(mul(out, w))}, {x}, {}, std::nullopt, true)[0];
    const Tensor gr = grad({sum(mul(ref, w))}, {r}, {}, std::nullopt, true)[0];
    ASSERT_TRUE(gx.requires_grad());
    const Tensor fused = grad({sum(mul(glu(x, s.dim), w))}, {x})[0];
    const std::vector<double> a = gx.to_vector<double>(), b = gr.to_vector<double>(),
                              f = fused.to_vector<double>();
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_NEAR(a[i], b[i], 1e-12) << "at " << i;
      ASSERT_NEAR(f[i], b[i], 1e-12) << "at " << i;
    }
    sum(mul(gx, gx)).backward();
    sum(mul(gr, gr)).backward();
    const std::vector<double> xa = x.grad().to_vector<double>(), ra = r.grad().to_vector<double>();
    for (size_t i = 0; i < xa.size(); ++i) ASSERT_NEAR(xa[i], ra[i], 1e-11) << "at " << i;
  }
}

// Gradient halves of 16 MiB each take the non-temporal stores (elementwise_common.h's
// stream_min_bytes): the same values as the recorded composition's.
TEST(GluFused, LargeBackwardStreamsTheSameValues) {
  manual_seed(13);
  const Tensor x = randn({1024, 8192}).set_requires_grad(true);
  const Tensor g = randn({1024, 4096});
  glu(x, -1).backward(g);
  const Tensor want = glu_backward_composed(g, x.detach(), 1);
  const std::vector<float> got = x.grad().to_vector<float>(), ref = want.to_vector<float>();
  ASSERT_EQ(got.size(), ref.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], ref[i], 1e-5f * std::max(1.0f, std::abs(ref[i]))) << "at " << i;
}

TEST(GluFused, SameBitsAtOneAndTwoThreads) {
  manual_seed(9);
  for (DType dt : {DType::float32, DType::bfloat16}) {
    for (const GluShape& s : kShapes) {
      SCOPED_TRACE(::testing::Message() << dtype_name(dt) << " " << shape_str(s.shape));
      const Tensor x = randn(s.shape).to(dt);
      Tensor g = randn(glu(x, s.dim).sizes()).to(dt);
      auto run = [&](int threads) {
        OmpThreads t(threads);
        const Tensor xl = x.clone().set_requires_grad(true);
        const Tensor out = glu(xl, s.dim);
        out.backward(g);
        return std::pair{out.detach(), xl.grad()};
      };
      const auto [o1, g1] = run(1);
      const auto [o2, g2] = run(2);
      EXPECT_TRUE(bits_equal(o1, o2));
      EXPECT_TRUE(bits_equal(g1, g2));
    }
  }
}

}  // namespace
}  // namespace fabric
