// GPT-2 124M as llm.c trains it (12 layers, 12 heads, C 768, T 1024, batch 8, vocab 50304 with
// GPT-2's tanh GELU): the model of bench_gpu's GPT row and of bench_host_step.
#pragma once
#include <cstdint>

#include "nn/gpt.h"

namespace fabric::bench {

inline constexpr int64_t kGpt2Batch = 8, kGpt2Tokens = 1024;

inline nn::GPTConfig gpt2_124m() {
  return {.vocab_size = 50304,
          .block_size = kGpt2Tokens,
          .n_layer = 12,
          .n_head = 12,
          .n_embd = 768,
          .dropout = 0.0,
          .bias = true,
          .gelu = "tanh"};
}

}  // namespace fabric::bench
