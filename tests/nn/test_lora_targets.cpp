// apply_lora's targets follow PEFT's target_modules: a layer's whole dotted path or a dotted tail
// of it. Only the last component used to match, so an MLP's "layers.0" (its state_dict's name) and
// one block's "h.0.attn.c_attn" were refused.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "nn/gpt.h"
#include "nn/lora.h"
#include "nn/mlp.h"
#include "tests/common/expect_error.h"

namespace fabric::nn {
namespace {

std::shared_ptr<GPT> tiny_gpt() {
  return std::make_shared<GPT>(
      GPTConfig{.vocab_size = 16, .block_size = 8, .n_layer = 2, .n_head = 2, .n_embd = 8});
}

TEST(LoRATargets, AWholePathOrADottedTailNamesALayer) {
  EXPECT_EQ(
      apply_lora(*tiny_gpt(), {.target = {"c_attn"}}),
      (std::vector<std::string>{"transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"}));
  EXPECT_EQ(apply_lora(*tiny_gpt(), {.target = {"h.1.attn.c_attn"}}),
            (std::vector<std::string>{"transformer.h.1.attn.c_attn"}));
  EXPECT_EQ(apply_lora(*tiny_gpt(), {.target = {"transformer.h.0.mlp.c_fc"}}),
            (std::vector<std::string>{"transformer.h.0.mlp.c_fc"}));
  // A tail must start at a dot: "attn" is no tail of "c_attn".
  EXPECT_CONTAINS(thrown<ValueError>([] { apply_lora(*tiny_gpt(), {.target = {"_attn"}}); }),
                  "no layer of this GPT is named any of [_attn]");
  auto mlp = std::make_shared<MLP>(MLPConfig{.sizes = {4, 8, 3}});
  EXPECT_EQ(apply_lora(*mlp, {.target = {"layers.0"}}), (std::vector<std::string>{"layers.0"}));
}

}  // namespace
}  // namespace fabric::nn
