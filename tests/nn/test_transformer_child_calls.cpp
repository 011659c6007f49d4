// The transformer stacks call their children as torch does (mod(x, mask=...), self.self_attn(...)):
// through the children's forward hooks and activation checkpointing, masks or not. They used to
// call forward() directly whenever a mask was given (the encoder) or always (the decoder, the
// attention blocks, nn::Transformer), so hooks, checkpointing and FSDP units were skipped there.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "nn/nn.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace fabric::nn {
namespace {

// Counts the forward calls of every named submodule of `root` (hooks on all of them).
std::shared_ptr<std::map<std::string, int>> count_calls(Module& root) {
  auto calls = std::make_shared<std::map<std::string, int>>();
  for (auto& [name, m] : root.named_modules())
    m->register_forward_hook([calls, name](Module&, const Tensor&, const Tensor& y) {
      ++(*calls)[name];
      return y;
    });
  return calls;
}

Tensor causal(int64_t n) { return Transformer::generate_square_subsequent_mask(n); }

TEST(TransformerChildCalls, EncoderLayersAndTheirAttentionRunThroughTheHooksWithMasks) {
  manual_seed(0);
  TransformerEncoder enc(
      {.layer = {.d_model = 8, .nhead = 2, .dim_feedforward = 16, .dropout = 0.0},
       .num_layers = 2});
  auto calls = count_calls(enc);
  enc.forward(randn({5, 3, 8}), causal(5), zeros({3, 5}, {.dtype = DType::bool_}));
  for (const char* name : {"layers.0", "layers.1", "layers.0.self_attn", "layers.1.self_attn"})
    EXPECT_EQ((*calls)[name], 1) << name;
}

TEST(TransformerChildCalls, DecoderAndTransformerChildrenRunThroughTheHooks) {
  manual_seed(0);
  Transformer t({.d_model = 8,
                 .nhead = 2,
                 .num_encoder_layers = 1,
                 .num_decoder_layers = 2,
                 .dim_feedforward = 16,
                 .dropout = 0.0});
  auto calls = count_calls(t);
  t.forward(randn({5, 3, 8}), randn({4, 3, 8}), Tensor(), causal(4));
  for (const char* name :
       {"encoder", "decoder", "encoder.layers.0", "encoder.layers.0.self_attn", "decoder.layers.0",
        "decoder.layers.1", "decoder.layers.1.self_attn", "decoder.layers.1.multihead_attn"})
    EXPECT_EQ((*calls)[name], 1) << name;
}

// A checkpointed layer given masks recomputes its forward in backward (linear1 runs twice), and
// every gradient is the plain run's: the input's, a float mask's and the decoder memory's (passed
// to the checkpoint as inputs, not captured) and the weights'.
TEST(TransformerChildCalls, CheckpointedLayersWithMasksRecomputeAndKeepEveryGradient) {
  for (bool decoder : {false, true}) {
    SCOPED_TRACE(decoder ? "decoder" : "encoder");
    struct Run {
      std::vector<float> out, dx, dmask, dmemory, dweights;
      int linear1_calls = 0;
    };
    auto run = [&](bool checkpointed) {
      manual_seed(3);
      Tensor x = randn({5, 2, 8}), memory = randn({6, 2, 8}), mask = mul(randn({5, 5}), 0.5);
      for (Tensor* t : {&x, &memory, &mask}) t->set_requires_grad(true);
      std::shared_ptr<Module> stack;
      if (decoder) {
        stack = std::make_shared<TransformerDecoder>(TransformerDecoderOptions{
            .layer = {.d_model = 8, .nhead = 2, .dim_feedforward = 16, .dropout = 0.0},
            .num_layers = 1});
      } else {
        stack = std::make_shared<TransformerEncoder>(TransformerEncoderOptions{
            .layer = {.d_model = 8, .nhead = 2, .dim_feedforward = 16, .dropout = 0.0},
            .num_layers = 1});
      }
      Module& layer = stack->child("layers").child("0");
      layer.set_activation_checkpointing(checkpointed);
      Run r;
      layer.child("linear1").register_forward_hook([&r](Module&, const Tensor&, const Tensor& y) {
        ++r.linear1_calls;
        return y;
      });
      const Tensor y = decoder ? dynamic_cast<TransformerDecoder&>(*stack).forward(x, memory, mask)
                               : dynamic_cast<TransformerEncoder&>(*stack).forward(x, mask);
      backward(sum(mul(y, y)));
      r.out = y.to_vector<float>();
      r.dx = x.grad().to_vector<float>();
      r.dmask = mask.grad().to_vector<float>();
      if (decoder) r.dmemory = memory.grad().to_vector<float>();
      for (const Tensor& p : stack->parameters())
        for (float g : p.grad().to_vector<float>()) r.dweights.push_back(g);
      return r;
    };
    const Run plain = run(false), checkpointed = run(true);
    EXPECT_EQ(plain.linear1_calls, 1);
    EXPECT_EQ(checkpointed.linear1_calls, 2);
    EXPECT_EQ(checkpointed.out, plain.out);
    EXPECT_EQ(checkpointed.dx, plain.dx);
    EXPECT_EQ(checkpointed.dmask, plain.dmask);
    EXPECT_EQ(checkpointed.dmemory, plain.dmemory);
    EXPECT_EQ(checkpointed.dweights, plain.dweights);
  }
}

}  // namespace
}  // namespace fabric::nn
