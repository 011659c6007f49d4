// The CPU attention output's layout (tensor/ops_attention.cpp, kernels/cpu/attention.cpp): the
// output lies in memory as q does, so that a transformer's heads cut from a packed qkv give an
// output lying as (B, T, H, D) (torch's flash attention's layout) and its
// y.transpose(1, 2).contiguous().view(B, T, C) copies nothing. Values and gradients (the backward
// reads that output through its strides) match a float64 composition of matmul and softmax.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/ops/attention_layouts.h"

namespace fabric {
namespace {

using namespace attention_test;

// softmax(q k^T / sqrt(E) [causal]) v in the inputs' dtype (float64 here), with no fused kernel.
Tensor composed_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  Tensor scores = mul(matmul(q, k.transpose(-2, -1)), Scalar(scale));
  if (causal)
    scores = where(causal_mask(q.size(-2), k.size(-2)), scores,
                   Scalar(-std::numeric_limits<double>::infinity()));
  return matmul(softmax(scores, -1), v);
}

// Element-wise |got - want| <= atol + rtol * |want| for the dtype the fused op ran in.
void expect_close(const Tensor& got, const Tensor& want, DType dt, const std::string& what) {
  const double tol = dt == DType::float64 ? 1e-12 : dt == DType::float32 ? 1e-5 : 2e-2;
  const std::vector<double> g = got.to(DType::float64).to_vector<double>();
  const std::vector<double> w = want.to_vector<double>();
  ASSERT_EQ(g.size(), w.size()) << what;
  for (size_t i = 0; i < g.size(); ++i)
    ASSERT_NEAR(g[i], w[i], tol * (1.0 + std::abs(w[i]))) << what << " element " << i;
}

// Heads cut from one qkv by split, the output's heads re-assembled without a copy, its gradient
// arriving permuted (the backward reads it and the output through their strides).
TEST(AttentionOutputLayout, PackedHeadsGiveAnOutputWhoseHeadsReassembleWithoutACopy) {
  for (const Layout& l : layouts()) {
    for (const DType dt : {DType::float32, DType::bfloat16, DType::float64}) {
      for (const bool causal : {true, false}) {
        const std::string what =
            l.name + " " + std::string(dtype_name(dt)) + (causal ? " causal" : "");
        const Tensor values = randn(l.qkv_shape).to(dt);
        Shape g_shape = l.qkv_shape;
        g_shape.back() = C;
        const Tensor G = randn(g_shape).to(dt);

        Tensor qkv = values.clone().set_requires_grad(true);
        std::vector<Tensor> parts = split(qkv, C, -1);
        const Tensor y = scaled_dot_product_attention(l.heads(parts[0]), l.heads(parts[1]),
                                                      l.heads(parts[2]), Tensor(), 0.0, causal);
        ASSERT_EQ(grad_fn_name(y), "ScaledDotProductAttentionBackward0") << what;
        EXPECT_EQ(y.sizes(), (Shape{B, H, T, D})) << what;
        EXPECT_EQ(y.strides(), l.out_strides) << what;
        const Tensor flat = l.heads_back(y);
        EXPECT_EQ(flat.data_ptr(), y.data_ptr()) << what << ": the heads were copied";
        flat.backward(G);

        Tensor qkv64 = values.to(DType::float64).set_requires_grad(true);
        parts = split(qkv64, C, -1);
        const Tensor want = l.heads_back(
            composed_attention(l.heads(parts[0]), l.heads(parts[1]), l.heads(parts[2]), causal));
        want.backward(G.to(DType::float64));
        expect_close(flat, want, dt, what + " output");
        expect_close(qkv.grad(), qkv64.grad(), dt, what + " qkv gradient");
      }
    }
  }
}

// Called directly: q's memory order decides the output's, also with more leading dims (which fold
// into the batch) and with contiguous k and v (the kernel then stages each block of rows); a
// contiguous q, or one without a heads dim, gives a contiguous output. The values, used as they
// are (a contiguous gradient, a reduction), and q, k, v's gradients are the composition's.
TEST(AttentionOutputLayout, DirectCallsGetTheirValuesAndGradients) {
  const int64_t N = 2, L = 67, S = 70, E = 8, Ev = 5;
  struct Case {
    std::string name;
    std::vector<Shape> leaves;  // q, k, v as they lie in memory
    bool transposed_q;          // q is its leaf's transpose(-3, -2)
    Strides out_strides;
  };
  const std::vector<Case> cases{
      {"5-D, q lying as (N, 2, L, H, E)",
       {{N, 2, L, H, E}, {N, 2, H, S, E}, {N, 2, H, S, Ev}},
       true,
       {2 * L * H * Ev, L * H * Ev, Ev, H * Ev, 1}},
      {"contiguous",
       {{N, H, L, E}, {N, H, S, E}, {N, H, S, Ev}},
       false,
       {H * L * Ev, L * Ev, Ev, 1}},
      {"3-D", {{N, L, E}, {N, S, E}, {N, S, Ev}}, false, {L * Ev, Ev, 1}},
  };
  for (const Case& c : cases) {
    for (const DType dt : {DType::float32, DType::bfloat16}) {
      for (const bool causal : {true, false}) {
        const std::string what =
            c.name + " " + std::string(dtype_name(dt)) + (causal ? " causal" : "");
        std::vector<Tensor> leaves, leaves64;
        for (const Shape& shape : c.leaves) {
          leaves.push_back(randn(shape).to(dt).set_requires_grad(true));
          leaves64.push_back(leaves.back().detach().to(DType::float64).set_requires_grad(true));
        }
        auto q_of = [&](const Tensor& leaf) {
          return c.transposed_q ? leaf.transpose(-3, -2) : leaf;
        };
        const Tensor y = scaled_dot_product_attention(q_of(leaves[0]), leaves[1], leaves[2],
                                                      Tensor(), 0.0, causal);
        ASSERT_EQ(grad_fn_name(y), "ScaledDotProductAttentionBackward0") << what;
        EXPECT_EQ(y.strides(), c.out_strides) << what;
        const Tensor g = randn(y.sizes()).to(dt);
        backward({y, sum(y)}, {g, ones({}, {.dtype = dt})});
        const Tensor want = composed_attention(q_of(leaves64[0]), leaves64[1], leaves64[2], causal);
        backward({want, sum(want)}, {g.to(DType::float64), ones({}, {.dtype = DType::float64})});
        expect_close(y, want, dt, what + " output");
        for (size_t i = 0; i < 3; ++i)
          expect_close(leaves[i].grad(), leaves64[i].grad(), dt,
                       what + " gradient " + std::to_string(i));
      }
    }
  }
}

}  // namespace
}  // namespace fabric
