// measure_flops (Lightning's lightning.fabric.utilities.throughput.measure_flops) on an MLP and
// nanoGPT, forward and forward + backward, with the expected counts worked from torch's
// flop_counter formulas in the comments; the model's gradients are left as they were.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "nn/activation.h"
#include "nn/containers.h"
#include "nn/gpt.h"
#include "nn/linear.h"
#include "runtime/measure_flops.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

// (4, 5) -> Linear(5, 6) -> ReLU -> Linear(6, 3).
std::shared_ptr<nn::Sequential> make_mlp() {
  return nn::make<nn::Sequential>({nn::make<nn::Linear>({.in_features = 5, .out_features = 6}),
                                   nn::make<nn::ReLU>(),
                                   nn::make<nn::Linear>({.in_features = 6, .out_features = 3})});
}

Tensor summed(const Tensor& y) { return sum(y); }

TEST(MeasureFlops, CountsTheForwardAndTheBackward) {
  const bool fused_was = fused_attention_enabled();
  set_fused_attention(true);  // the CPU's fused kernel takes every float problem
  auto mlp = make_mlp();
  const Tensor x = randn({4, 5});

  // B 2, T 5, C 8 (2 heads of 4), V 11, 2 layers.
  const int64_t B = 2, T = 5, C = 8, V = 11, L = 2;
  auto gpt =
      nn::make<nn::GPT>({.vocab_size = V, .block_size = 8, .n_layer = L, .n_head = 2, .n_embd = 8});
  const Tensor idx = randint(0, V, {B, T});
  // Per block, addmm 2·B·T·C·3C (c_attn) + 2·B·T·C·C (attn.c_proj) + 2·B·T·C·4C twice (the MLP),
  // = 24·B·T·C²; attention q·kᵀ and p·v 2 · 2·B·nh·T·T·hs = 4·B·T²·C; lm_head (no bias) mm
  // 2·B·T·C·V. The backward: two mm's per linear layer (every layer's input needs a gradient),
  // five attention bmm's (2·B·nh·T·T·(3 + 2)·hs = 10·B·T²·C).
  const int64_t gpt_linear = L * 24 * B * T * C * C + 2 * B * T * C * V;
  const int64_t gpt_forward = gpt_linear + L * 4 * B * T * T * C;
  const int64_t gpt_backward = 2 * gpt_linear + L * 10 * B * T * T * C;

  struct Case {
    const char* name;
    std::function<int64_t()> measure;
    int64_t expected;
  };
  const std::vector<Case> cases = {
      // addmm 2·4·5·6 = 240 and 2·4·6·3 = 144.
      {"MLP forward", [&] { return measure_flops(*mlp, [&] { return (*mlp)(x); }); }, 384},
      // + the second layer's input and weight gradients (144 each) and the first layer's weight
      // gradient (240); x needs no gradient, so the first layer's input gradient is not computed.
      {"MLP forward and backward",
       [&] {
         return measure_flops(
             *mlp, [&] { return (*mlp)(x); }, summed);
       },
       384 + 144 + 144 + 240},
      {"GPT forward", [&] { return measure_flops(*gpt, [&] { return (*gpt)(idx); }); },
       gpt_forward},
      {"GPT forward and backward",
       [&] {
         return measure_flops(
             *gpt, [&] { return (*gpt)(idx); }, summed);
       },
       gpt_forward + gpt_backward},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(c.measure(), c.expected);
    EXPECT_EQ(c.measure(), c.expected) << "a second measurement counts the same";
  }
  set_fused_attention(fused_was);
}

// The gradients a model held before measure_flops are there after it, untouched (accumulating
// ones included), and a parameter without one still has none, also when forward_fn throws.
TEST(MeasureFlops, LeavesTheModelsGradientsAsTheyWere) {
  auto mlp = make_mlp();
  const Tensor x = randn({4, 5});
  const std::vector<Tensor> params = mlp->parameters();
  const Tensor held = ones(params[0].sizes());
  set_grad(params[0], held);
  struct Case {
    const char* name;
    std::function<void()> measure;
  };
  const std::vector<Case> cases = {
      {"forward and backward",
       [&] {
         measure_flops(
             *mlp, [&] { return (*mlp)(x); }, summed);
       }},
      {"forward_fn throws",
       [&] {
         EXPECT_THROW(measure_flops(*mlp,
                                    [&]() -> Tensor {
                                      sum((*mlp)(x)).backward();
                                      throw ValueError("from forward_fn");
                                    }),
                      ValueError);
       }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    c.measure();
    EXPECT_TRUE(params[0].grad().is_same(held));
    EXPECT_EQ(params[0].grad().to_vector<float>(), std::vector<float>(30, 1.0f));
    for (size_t i = 1; i < params.size(); ++i) EXPECT_FALSE(params[i].grad().defined()) << i;
  }
}

TEST(MeasureFlops, RejectsAMissingForwardOrLoss) {
  auto mlp = make_mlp();
  const Tensor x = randn({4, 5});
  struct Case {
    const char* name;
    std::function<void()> call;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"empty forward_fn", [&] { measure_flops(*mlp, {}); }, "measure_flops: forward_fn is empty"},
      {"undefined loss",
       [&] {
         measure_flops(
             *mlp, [&] { return (*mlp)(x); }, [](const Tensor&) { return Tensor(); });
       },
       "measure_flops: loss_fn returned an undefined tensor"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_CONTAINS(thrown<ValueError>(c.call), c.message);
  }
}

}  // namespace
}  // namespace fabric
