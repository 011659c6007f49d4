// GPT's MLP block as one gelu_mlp op: on the CPU it gives the three layers' values and gradients
// bit for bit (float64, float32, bfloat16 autocast), and the block calls its layers one by one
// whenever calling them would do more than the fused op (hooks, checkpointing, a replaced layer,
// the erf GELU).
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "nn/lora.h"
#include "nn/transformer.h"
#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace fabric::nn {
namespace {

std::shared_ptr<BlockMLP> block(DType dtype, const std::string& gelu = "tanh", bool bias = true) {
  manual_seed(11);
  auto mlp = make<BlockMLP>(BlockOptions{.n_embd = 8, .n_head = 2, .bias = bias, .gelu = gelu});
  mlp->to(dtype);
  return mlp;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.sizes() != b.sizes()) return false;
  const Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.numel() * itemsize(ca.dtype())) == 0;
}

// The block's forward (fused when it can be) and the three layers called one by one, each with
// x's gradient and the parameters' gradients after a backward of sum(out * weights).
struct Outcome {
  Tensor out, dx;
  std::vector<Tensor> grads;
};
Outcome run(BlockMLP& mlp, const Tensor& x0, bool composed) {
  Tensor x = x0.detach().clone().set_requires_grad(true);
  mlp.zero_grad();
  Tensor out = composed ? mlp.c_proj->forward(mlp.gelu->forward(mlp.c_fc->forward(x))) : mlp(x);
  manual_seed(5);
  const Tensor w = randn(out.sizes()).to(out.dtype());
  sum(mul(out, w)).backward();
  Outcome r{out.detach(), x.grad(), {}};
  for (const Tensor& p : mlp.parameters()) r.grads.push_back(p.grad());
  return r;
}

void expect_same(const Outcome& a, const Outcome& b, const std::string& what) {
  EXPECT_TRUE(same_bits(a.out, b.out)) << what << ": output";
  EXPECT_TRUE(same_bits(a.dx, b.dx)) << what << ": x's gradient";
  ASSERT_EQ(a.grads.size(), b.grads.size());
  for (size_t i = 0; i < a.grads.size(); ++i)
    EXPECT_TRUE(same_bits(a.grads[i], b.grads[i])) << what << ": parameter " << i << "'s gradient";
}

TEST(GeluMlpBlock, FusedEqualsTheThreeLayersBitForBit) {
  for (DType dt : {DType::float64, DType::float32}) {
    auto mlp = block(dt);
    ASSERT_TRUE(mlp->fused());
    manual_seed(2);
    const Tensor x = randn({3, 5, 8}).to(dt);
    expect_same(run(*mlp, x, false), run(*mlp, x, true), std::string(dtype_name(dt)));
  }
}

TEST(GeluMlpBlock, FusedEqualsTheThreeLayersUnderBf16Autocast) {
  auto mlp = block(DType::float32);
  manual_seed(2);
  const Tensor x = randn({2, 7, 8});
  autocast_enter(DeviceType::cpu, true, DType::bfloat16, true);
  const Outcome fused = run(*mlp, x, false);
  const Outcome composed = run(*mlp, x, true);
  autocast_exit(DeviceType::cpu);
  EXPECT_EQ(fused.out.dtype(), DType::bfloat16);
  expect_same(fused, composed, "bf16 autocast");
}

TEST(GeluMlpBlock, WithoutBiasesAndForOneRow) {
  auto mlp = block(DType::float32, "tanh", /*bias=*/false);
  ASSERT_TRUE(mlp->fused());
  manual_seed(4);
  const Tensor x = randn({4, 8});
  expect_same(run(*mlp, x, false), run(*mlp, x, true), "no bias");
  auto with_bias = block(DType::float32);
  const Tensor row = randn({8});
  expect_same(run(*with_bias, row, false), run(*with_bias, row, true), "1-d input");
}

TEST(GeluMlpBlock, OneNodeInTheGraph) {
  auto mlp = block(DType::float32);
  const Tensor x = randn({2, 3, 8}).set_requires_grad(true);
  const Tensor out = mlp->forward(x);
  EXPECT_EQ(grad_fn_name(out), "GeluMlpBackward0");
  NoGradGuard no_grad;
  const Tensor inference = mlp->forward(x);
  EXPECT_FALSE(inference.requires_grad());
  EXPECT_TRUE(same_bits(inference, out.detach()));
}

TEST(GeluMlpBlock, LayersAreCalledWhenCallingThemDoesMore) {
  EXPECT_FALSE(block(DType::float32, "none")->fused()) << "erf GELU: no fused op";
  {
    auto mlp = block(DType::float32);
    int calls = 0;
    mlp->c_fc->register_forward_hook([&](Module&, const Tensor&, const Tensor& y) {
      ++calls;
      return y;
    });
    EXPECT_FALSE(mlp->fused());
    (*mlp)(randn({2, 8}));
    EXPECT_EQ(calls, 1) << "c_fc's forward hook must run";
  }
  {
    auto mlp = block(DType::float32);
    mlp->gelu->register_forward_pre_hook([](Module&, const Tensor& x) { return x; });
    EXPECT_FALSE(mlp->fused());
  }
  {
    auto mlp = block(DType::float32);
    mlp->c_proj->set_activation_checkpointing(true);
    EXPECT_FALSE(mlp->fused());
  }
  {
    auto mlp = block(DType::float32);
    apply_lora(*mlp, {.rank = 2, .target = {"c_fc"}});
    EXPECT_FALSE(mlp->fused()) << "a LoRA c_fc";
  }
}

TEST(GeluMlpBlock, ErrorsNameTheOperands) {
  const Tensor x = randn({2, 4}), w1 = randn({8, 4}), b1 = randn({8}), w2 = randn({3, 8});
  EXPECT_THROW(gelu_mlp(x, randn({8, 5}), b1, w2, Tensor()), ShapeError);
  EXPECT_THROW(gelu_mlp(x, w1, b1, randn({3, 6}), Tensor()), ShapeError);
  EXPECT_THROW(gelu_mlp(x, w1, randn({7}), w2, Tensor()), ShapeError);
  EXPECT_THROW(gelu_mlp(x, w1, b1, w2.to(DType::float64), Tensor()), DTypeError);
  try {
    gelu_mlp(x, w1, b1, randn({3, 6}), Tensor());
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("proj_weight"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace fabric::nn
