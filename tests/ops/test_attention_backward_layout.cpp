// The fused attention backward without copies (tensor/ops_attention.cpp, kernels/cpu/attention.cpp,
// autograd/derivatives_split.cpp): a transposed grad_out is read through its strides, and when q,
// k, v are the three pieces of one packed qkv tensor's last dim (nanoGPT's split,
// MultiheadAttention's packed projection) dq, dk, dv are written into one buffer that the split's
// backward hands on as qkv's gradient. Same bits as the contiguous path, and no user-visible
// gradient aliases another.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/ops/attention_layouts.h"

namespace fabric {
namespace {

using namespace attention_test;

Tensor random_of(const Shape& shape, DType dt) { return randn(shape).to(dt); }

std::vector<float> values(const Tensor& t) { return t.to(DType::float32).to_vector<float>(); }

struct Result {
  std::vector<float> out, grad_qkv;
};

// The packed path: heads cut from one qkv leaf by split, the output's gradient arriving transposed.
Result packed_run(const Layout& l, const Tensor& qkv_values, const Tensor& g, bool causal) {
  Tensor qkv = qkv_values.clone().set_requires_grad(true);
  const std::vector<Tensor> parts = split(qkv, C, -1);
  Tensor y = scaled_dot_product_attention(l.heads(parts[0]), l.heads(parts[1]), l.heads(parts[2]),
                                          Tensor(), 0.0, causal);
  EXPECT_EQ(grad_fn_name(y), "ScaledDotProductAttentionBackward0");
  Tensor flat = l.heads_back(y);
  flat.backward(g);
  return {values(flat), values(qkv.grad())};
}

// The path before the backward took strides, on the same q, k, v layout (so that the forward and
// the GEMMs reading q, k, v see the same strides: oneDNN's rounding depends on them): q, k and v
// cut from three copies of qkv, so that nothing is packed, and a contiguous grad_out.
Result separate_run(const Layout& l, const Tensor& qkv_values, const Tensor& g, bool causal) {
  std::vector<Tensor> copies, heads;
  for (int64_t i = 0; i < 3; ++i) {
    copies.push_back(qkv_values.clone().set_requires_grad(true));
    heads.push_back(l.heads(split(copies.back(), C, -1)[static_cast<size_t>(i)]));
  }
  Tensor y = scaled_dot_product_attention(heads[0], heads[1], heads[2], Tensor(), 0.0, causal);
  y.backward(l.heads(g).contiguous());
  std::vector<Tensor> grads;
  for (int64_t i = 0; i < 3; ++i) grads.push_back(copies[i].grad().narrow(-1, i * C, C));
  return {values(l.heads_back(y)), values(cat(grads, -1))};
}

// q, k, v separate contiguous leaves, with grad_out contiguous or the strided (transposed) view
// the packed path gets.
std::vector<float> contiguous_leaves_grad(const Layout& l, const Tensor& qkv_values,
                                          const Tensor& g, bool causal, bool strided_grad_out) {
  const std::vector<Tensor> parts = split(qkv_values, C, -1);
  std::vector<Tensor> leaves;
  for (const Tensor& p : parts) leaves.push_back(l.heads(p).contiguous().set_requires_grad(true));
  Tensor y = scaled_dot_product_attention(leaves[0], leaves[1], leaves[2], Tensor(), 0.0, causal);
  const Tensor gy = l.heads(g);  // g as y's (B, H, T, D) gradient: a strided view
  EXPECT_FALSE(gy.is_contiguous());
  y.backward(strided_grad_out ? gy : gy.contiguous());
  std::vector<Tensor> grads;
  for (const Tensor& t : leaves) grads.push_back(l.heads_back(t.grad()));
  return values(cat(grads, -1));
}

TEST(AttentionBackwardLayout, PackedAndStridedGiveTheBitsOfTheUnpackedPath) {
  for (const Layout& l : layouts()) {
    for (const DType dt : {DType::float32, DType::bfloat16, DType::float64}) {
      for (const bool causal : {true, false}) {
        const std::string what =
            l.name + " " + std::string(dtype_name(dt)) + (causal ? " causal" : "");
        const Tensor qkv = random_of(l.qkv_shape, dt);
        Shape g_shape = l.qkv_shape;
        g_shape.back() = C;
        const Tensor g = random_of(g_shape, dt);
        const Result packed = packed_run(l, qkv, g, causal);
        const Result separate = separate_run(l, qkv, g, causal);
        EXPECT_EQ(packed.out, separate.out) << what;
        EXPECT_EQ(packed.grad_qkv, separate.grad_qkv) << what;
        EXPECT_EQ(contiguous_leaves_grad(l, qkv, g, causal, true),
                  contiguous_leaves_grad(l, qkv, g, causal, false))
            << what;
      }
    }
  }
}

// Pieces that are not the three adjacent pieces of one last dim, in order, take separate buffers
// and the cat: k and v swapped, a gap (four pieces, the third skipped), the same tensor three
// times. Their gradients are those of the same layouts in three separate tensors.
TEST(AttentionBackwardLayout, OtherLayoutsStillGetTheirOwnGradients) {
  const Layout l = layouts()[0];
  const Tensor qkv4 = randn({B, T, 4 * C});
  const Tensor G = randn({B, H, T, D});
  auto heads_of = [&](const Tensor& t, int64_t i) {
    return l.heads(split(t, C, 2)[static_cast<size_t>(i)]);
  };
  auto grads_of = [&](const std::vector<Tensor>& qkv, const std::vector<Tensor>& inputs) {
    return grad({scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], Tensor(), 0.0, true)}, inputs,
                {G});
  };
  // Pieces `at` of one qkv4, and of three copies of it.
  auto shared_and_separate = [&](const std::vector<int64_t>& at) {
    const Tensor one = qkv4.clone().set_requires_grad(true);
    std::vector<Tensor> shared, separate;
    for (int64_t i : at) {
      shared.push_back(heads_of(one, i));
      separate.push_back(heads_of(qkv4.clone().set_requires_grad(true), i));
    }
    return std::make_pair(shared, separate);
  };
  for (const std::vector<int64_t>& at : {std::vector<int64_t>{0, 2, 1}, {0, 1, 3}}) {
    const auto [shared, separate] = shared_and_separate(at);
    const std::vector<Tensor> got = grads_of(shared, shared), want = grads_of(separate, separate);
    for (size_t i = 0; i < 3; ++i)
      EXPECT_EQ(values(got[i]), values(want[i])) << at[1] << at[2] << " input " << i;
  }
  // sdpa(x, x, x): x's gradient is the sum of all three.
  const auto [shared, separate] = shared_and_separate({0, 0, 0});
  const std::vector<Tensor> got = grads_of({shared[0], shared[0], shared[0]}, {shared[0]});
  const std::vector<Tensor> want = grads_of(separate, separate);
  const std::vector<float> sum = values(add(add(want[0], want[1]), want[2])), g0 = values(got[0]);
  ASSERT_EQ(g0.size(), sum.size());
  for (size_t i = 0; i < sum.size(); ++i) ASSERT_NEAR(g0[i], sum[i], 1e-5) << "x, x, x " << i;
}

// The packed case's gradient reaches qkv without a copy: qkv's gradient is the very buffer the
// attention backward wrote dq into (dk and dv follow it), and nothing else holds it.
TEST(AttentionBackwardLayout, SplitHandsTheAttentionBufferOnWithoutACopy) {
  const Layout l = layouts()[0];
  Tensor qkv = randn({B, T, 3 * C}).set_requires_grad(true);
  const std::vector<Tensor> parts = split(qkv, C, 2);
  const Tensor q = l.heads(parts[0]), k = l.heads(parts[1]);
  // Addresses only: a hook keeping the tensor would (rightly) stop the hand-over.
  const void* dq = nullptr;
  const void* dk = nullptr;
  const void* dqkv = nullptr;
  register_hook(q, [&](const Tensor& g) {
    dq = g.data_ptr();
    return Tensor();
  });
  register_hook(k, [&](const Tensor& g) {
    dk = g.data_ptr();
    return Tensor();
  });
  register_hook(qkv, [&](const Tensor& g) {
    dqkv = g.data_ptr();
    return Tensor();
  });
  l.heads_back(scaled_dot_product_attention(q, k, l.heads(parts[2]), Tensor(), 0.0, true))
      .backward(randn({B, T, C}));
  ASSERT_NE(dq, nullptr);
  EXPECT_EQ(dqkv, dq);
  EXPECT_EQ(static_cast<const float*>(dk), static_cast<const float*>(dq) + C);
  EXPECT_EQ(qkv.grad().data_ptr(), dqkv);  // the leaf kept it: nothing else can see its memory
  EXPECT_EQ(qkv.grad().storage().use_count(), 1);
  EXPECT_TRUE(qkv.grad().is_contiguous());
}

// When something else still holds a piece's gradient, qkv's gradient is a copy: writing into one
// leaves the other alone. Seen through autograd::grad (which returns both) and through hooks on a
// non-leaf qkv (which see the gradient before a leaf would clone it), with the piece's gradient
// kept as the tensor a split output's hook sees, as the attention's dq a head's hook sees, or as a
// detached alias of it. Leaves cut from one packed buffer get gradients of their own.
TEST(AttentionBackwardLayout, UserVisibleGradientsDoNotAlias) {
  const Layout l = layouts()[0];
  const Tensor w = randn({B, T, 3 * C}).set_requires_grad(true);
  const Tensor G = randn({B, T, C});
  struct Graph {
    Tensor qkv, piece, q, y;
  };
  auto attention = [&] {
    Graph g;
    g.qkv = mul(w, Scalar(2.0));
    const std::vector<Tensor> parts = split(g.qkv, C, 2);
    g.piece = parts[0];
    g.q = l.heads(parts[0]);
    g.y = l.heads_back(scaled_dot_product_attention(g.q, l.heads(parts[1]), l.heads(parts[2]),
                                                    Tensor(), 0.0, true));
    return g;
  };
  {
    const Graph g = attention();
    std::vector<Tensor> grads = grad({g.y}, {g.qkv, g.q}, {G});
    const std::vector<float> before = values(grads[0]);
    EXPECT_NE(grads[0].storage(), grads[1].storage());
    grads[1].fill_(Scalar(7.0));
    EXPECT_EQ(values(grads[0]), before);
  }
  for (const std::string kept_as : {"split output", "head", "detached head"}) {
    const Graph g = attention();
    Tensor kept, kept_qkv;
    register_hook(kept_as == "split output" ? g.piece : g.q, [&](const Tensor& t) {
      kept = kept_as == "detached head" ? t.detach() : t;
      return Tensor();
    });
    register_hook(g.qkv, [&](const Tensor& t) {
      kept_qkv = t;
      return Tensor();
    });
    g.y.backward(G);
    ASSERT_TRUE(kept.defined() && kept_qkv.defined()) << kept_as;
    EXPECT_NE(kept.storage(), kept_qkv.storage()) << kept_as;
  }

  // q, k, v leaves that are views of one packed buffer: the backward writes their gradients into
  // one buffer, and each leaf's .grad must be its own.
  const Tensor packed = randn({B, T, 3 * C});
  const std::vector<Tensor> pieces = split(packed, C, 2);
  std::vector<Tensor> leaves;
  for (const Tensor& p : pieces) leaves.push_back(l.heads(p).detach().set_requires_grad(true));
  scaled_dot_product_attention(leaves[0], leaves[1], leaves[2], Tensor(), 0.0, true)
      .backward(randn({B, H, T, D}));
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(leaves[i].grad().is_contiguous());
    EXPECT_EQ(leaves[i].grad().storage().use_count(), 1) << i;
  }
}

}  // namespace
}  // namespace fabric
