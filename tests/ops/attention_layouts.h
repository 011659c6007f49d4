// The packed-qkv layouts the attention layout tests (test_attention_backward_layout.cpp,
// test_attention_output_layout.cpp) run through: how a (..., 3C) qkv is cut into (B, H, T, D)
// heads, how the output's heads are put side by side again, and the strides the CPU op's output
// has when it lies as the heads do.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace fabric::attention_test {

constexpr int64_t B = 2, T = 70, H = 3, D = 8, C = H * D;  // T > 64: two query blocks

struct Layout {
  std::string name;
  Shape qkv_shape;                                  // (..., 3C)
  std::function<Tensor(const Tensor&)> heads;       // a (..., C) piece -> (B, H, T, D)
  std::function<Tensor(const Tensor&)> heads_back;  // (B, H, T, D) -> (..., C), contiguous
  Strides out_strides;                              // of an output lying as the heads do
};

inline std::vector<Layout> layouts() {
  return {
      // nanoGPT's CausalSelfAttention (nn/transformer.cpp): (B, T, 3C), output lying as
      // (B, T, H, D).
      {"gpt",
       {B, T, 3 * C},
       [](const Tensor& p) { return p.view({B, T, H, D}).transpose(1, 2); },
       [](const Tensor& y) { return y.transpose(1, 2).contiguous().view({B, T, C}); },
       {T * H * D, D, H * D, 1}},
      // MultiheadAttention's (L, N, 3E) (nn/multihead_attention.cpp), batch inside the rows,
      // output lying as (T, B, H, D).
      {"mha",
       {T, B, 3 * C},
       [](const Tensor& p) { return p.reshape({T, B, H, D}).permute({1, 2, 0, 3}); },
       [](const Tensor& y) { return y.permute({2, 0, 1, 3}).contiguous().view({T, B, C}); },
       {H * D, D, B * H * D, 1}},
  };
}

}  // namespace fabric::attention_test
