// GPT::generate_each hands out generate's draws as they are made, keeping only block_size tokens
// of context; generate (built on it) still draws exactly what the token-by-token definition does:
// each step samples after the whole sequence so far, cropped to the last block_size tokens.
#include <gtest/gtest.h>

#include <limits>
#include <string>

#include "autograd/grad_mode.h"
#include "nn/gpt.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace fabric::nn {
namespace {

GPTConfig tiny_gpt() {
  return {.vocab_size = 11, .block_size = 8, .n_layer = 2, .n_head = 2, .n_embd = 16};
}

TEST(GPTGenerateEach, SameDrawsAsTheTokenByTokenDefinition) {
  GPT gpt(tiny_gpt());
  gpt.eval();
  const Tensor ctx =
      from_vector<int64_t>({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {2, 10});
  for (const std::optional<int64_t> top_k : {std::optional<int64_t>(), std::optional<int64_t>(3)})
    for (double temperature : {0.0, 1.0}) {
      SCOPED_TRACE(testing::Message()
                   << "temperature " << temperature << ", top_k " << top_k.value_or(0));
      // The definition: one token at a time after the whole, growing sequence.
      Generator g_ref(11);
      Tensor want = ctx;
      for (int s = 0; s < 30; ++s) want = gpt.generate(want, 1, temperature, top_k, &g_ref, 9);
      Generator g(11);
      const Tensor got = gpt.generate(ctx, 30, temperature, top_k, &g, 9);
      EXPECT_EQ(got.sizes(), (Shape{2, 40}));
      EXPECT_EQ(got.to_vector<int64_t>(), want.to_vector<int64_t>());
      // generate_each: the same ids, step by step, one per batch row.
      Generator g_each(11);
      std::vector<int64_t> steps;
      gpt.generate_each(ctx, 30, temperature, top_k, &g_each, 9,
                        [&](const std::vector<int64_t>& next) {
                          ASSERT_EQ(next.size(), 2u);
                          steps.insert(steps.end(), next.begin(), next.end());
                        });
      ASSERT_EQ(steps.size(), 60u);
      for (int64_t s = 0; s < 30; ++s)
        for (int64_t b = 0; b < 2; ++b)
          EXPECT_EQ(steps[size_t(s * 2 + b)], want.select(0, b).select(0, 10 + s).item<int64_t>())
              << s << " " << b;
    }
  EXPECT_EQ(gpt.generate(ctx, 0).to_vector<int64_t>(), ctx.to_vector<int64_t>());
}

// A diverged model (NaN or inf logits) is refused on every path, greedy included: max_element would
// have drawn id 0 for NaN. A tiny positive temperature is greedy, not an overflow to inf - inf.
TEST(GPTGenerateEach, NonFiniteLogitsAreRefusedAndATinyTemperatureIsGreedy) {
  GPT gpt(tiny_gpt());
  gpt.eval();
  const Tensor ctx = from_vector<int64_t>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor greedy = gpt.generate(ctx, 5, 0.0);
  Generator g(3);
  EXPECT_EQ(gpt.generate(ctx, 5, 1e-320, std::nullopt, &g).to_vector<int64_t>(),
            greedy.to_vector<int64_t>());
  Generator g_k(3);
  EXPECT_EQ(gpt.generate(ctx, 5, 1e-300, 4, &g_k).to_vector<int64_t>(),
            greedy.to_vector<int64_t>());
  for (float bad :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    {
      NoGradGuard no_grad;
      gpt.lm_head->weight.fill_(bad);
    }
    for (double temperature : {0.0, 1.0}) {
      try {
        gpt.generate(ctx, 1, temperature);
        ADD_FAILURE() << "logits from weights " << bad << " were sampled at temperature "
                      << temperature;
      } catch (const ValueError& e) {
        EXPECT_NE(std::string(e.what()).find("not finite"), std::string::npos) << e.what();
      }
    }
  }
}

// Token ids are integers, as forward requires: a float context is refused, not truncated.
TEST(GPTGenerateEach, AFloatContextIsRefused) {
  GPT gpt(tiny_gpt());
  try {
    gpt.generate(from_vector(std::vector<float>{1.5f, 2.f}, {1, 2}), 1);
    ADD_FAILURE() << "a float context was taken";
  } catch (const DTypeError& e) {
    EXPECT_NE(std::string(e.what()).find("expected integer token ids"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(gpt.generate(from_vector<int32_t>({1, 2}, {1, 2}), 2).size(1), 4);
}

}  // namespace
}  // namespace fabric::nn
