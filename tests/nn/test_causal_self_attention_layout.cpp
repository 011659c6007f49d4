// CausalSelfAttention (nn/transformer.cpp) on the CPU hands c_proj the attention output's heads
// side by side without a copy: the fused op lays its output out as the heads cut from c_attn's
// output lie, (B, T, nh, hs), so y.transpose(1, 2).contiguous().view(B, T, C) is a view of it. Its
// output and input gradient are those of the composed attention.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autograd/autograd.h"
#include "nn/nn.h"
#include "nn/transformer.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace fabric {
namespace {

TEST(CausalSelfAttentionLayout, ProjectionReadsTheAttentionOutputInPlace) {
  const int64_t B = 2, T = 70, C = 24;
  manual_seed(7);
  auto attn = nn::make<nn::CausalSelfAttention>(
      nn::BlockOptions{.n_embd = C, .n_head = 3, .block_size = T});
  Tensor seen;  // c_proj's input
  attn->child("c_proj").register_forward_pre_hook([&](nn::Module&, const Tensor& in) {
    seen = in;
    return in;
  });
  const Tensor x_values = randn({B, T, C});
  const Tensor g = randn({B, T, C});
  auto run = [&](bool fused) {
    set_fused_attention(fused);
    Tensor x = x_values.clone().set_requires_grad(true);
    Tensor y = (*attn)(x);
    y.backward(g);
    set_fused_attention(true);
    return std::make_pair(y.to_vector<float>(), x.grad().to_vector<float>());
  };

  const auto [y, dx] = run(true);
  ASSERT_TRUE(seen.defined());
  EXPECT_TRUE(seen.is_contiguous());
  // A view of the attention's own output: no copy (CloneBackward0) in between.
  ASSERT_NE(seen.impl()->view_base, nullptr);
  EXPECT_EQ(grad_fn_name(Tensor(seen.impl()->view_base)), "ScaledDotProductAttentionBackward0");

  const auto [y_composed, dx_composed] = run(false);
  ASSERT_EQ(y.size(), y_composed.size());
  for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], y_composed[i], 1e-5) << i;
  for (size_t i = 0; i < dx.size(); ++i) ASSERT_NEAR(dx[i], dx_composed[i], 1e-5) << i;
}

}  // namespace
}  // namespace fabric
