// The op-level FLOP counter (tensor/flop_counter.h) against torch.utils.flop_counter's formulas,
// worked by hand in each row: mm/addmm/bmm 2·M·N·K per batch entry, convolution
// 2·(output numel)·(C_in/groups)·prod(kernel) and its backward (input gradient as the forward,
// weight gradient 2·N·OH·OW·C_in·C_out·prod(kernel) over all channels, each only when needed),
// scaled_dot_product_attention as its bmm's (2 forward, 5 backward), 0 for everything else. torch
// 1.13 has no FlopCounterMode: the names and rules are torch 2.x's.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <string>
#include <thread>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/flop_counter.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

using Counts = std::map<std::string, int64_t>;

Tensor arg(const Shape& shape, bool requires_grad = false) {
  Tensor t = randn(shape, {.dtype = DType::float64});
  if (requires_grad) t.set_requires_grad(true);
  return t;
}

Counts counted(const std::function<void()>& fn) {
  FlopCounter counter;
  fn();
  Counts out(counter.by_op().begin(), counter.by_op().end());
  int64_t sum = 0;
  for (const auto& [op, flops] : out) sum += flops;
  EXPECT_EQ(counter.total(), sum) << "total() is the sum over the ops";
  return out;
}

// Forces the fused attention path (the CPU has a kernel for every float dtype) and restores the
// setting (FABRIC_ATTENTION may have chosen "composed").
struct FusedAttention {
  bool was = fused_attention_enabled();
  explicit FusedAttention(bool on) { set_fused_attention(on); }
  ~FusedAttention() { set_fused_attention(was); }
};

struct FlopCase {
  const char* name;
  std::function<void()> run;  // runs under the counter: forward, and backward where the row says
  Counts expected;
};

// x (2, 4, 9, 9), w (6, 2, 3, 3), groups 2, stride 2, padding 1: output (2, 6, 5, 5), 300
// elements; forward 2 · 300 · (4/2) · 9 = 10800; weight gradient 2 · 2·5·5 · 4 · 6 · 9 = 21600
// (torch's formula multiplies all input by all output channels: groups times the forward).
Tensor grouped_conv(const Tensor& x, const Tensor& w) {
  return conv2d(x, w, Tensor(), {2, 2}, {1, 1}, {1, 1}, 2);
}

// q (2, 3, 8, 4), k (2, 3, 6, 4), v (2, 3, 6, 5): b·h = 6, L 8, S 6, E 4, Ev 5.
// Forward: q·kᵀ 2·6·8·6·4 = 2304, p·v 2·6·8·6·5 = 2880, 5184 in all.
// Backward: scores again 2304, g·vᵀ 2880, pᵀ·g 2880, ds·k 2304, dsᵀ·q 2304 = 12672.
Tensor attention(bool requires_grad, const Tensor& mask = Tensor()) {
  return scaled_dot_product_attention(arg({2, 3, 8, 4}, requires_grad),
                                      arg({2, 3, 6, 4}, requires_grad),
                                      arg({2, 3, 6, 5}, requires_grad), mask);
}

// Two linear layers, (4, 5) -> 6 -> 3, with biases: forward addmm 2·4·5·6 = 240 and 2·4·6·3 = 144.
// Backward, as torch's addmm rule: each layer's weight gradient gᵀ·x (mm, its forward's FLOPs)
// and input gradient g·W (mm, likewise), the first layer's input gradient only when x needs one.
void mlp(bool input_requires_grad) {
  Tensor x = arg({4, 5}, input_requires_grad);
  Tensor h = relu(linear(x, arg({6, 5}, true), arg({6}, true)));
  sum(linear(h, arg({3, 6}, true), arg({3}, true))).backward();
}

TEST(FlopCounter, CountsEachOpAsTorchsFlopCounter) {
  FusedAttention fused(true);
  const std::vector<FlopCase> cases = {
      {"mm (3,5)x(5,7): 2·3·5·7",
       [] {
         mm(arg({3, 5}), arg({5, 7}));
       },
       {{"mm", 210}}},
      {"bmm (4,3,5)x(4,5,7)",
       [] {
         bmm(arg({4, 3, 5}), arg({4, 5, 7}));
       },
       {{"bmm", 840}}},
      {"linear with bias is addmm",
       [] {
         linear(arg({3, 5}), arg({7, 5}), arg({7}));
       },
       {{"addmm", 210}}},
      {"linear without bias is mm",
       [] {
         linear(arg({3, 5}), arg({7, 5}));
       },
       {{"mm", 210}}},
      {"linear on a contiguous (2,3,5) input folds to addmm (6,5)x(5,7)",
       [] {
         linear(arg({2, 3, 5}), arg({7, 5}), arg({7}));
       },
       {{"addmm", 420}}},
      {"linear on a non-contiguous input: matmul, folded for a weight needing grad",
       [] {
         linear(arg({3, 2, 5}).transpose(0, 1), arg({7, 5}, true), arg({7}));
       },
       {{"mm", 420}}},
      {"linear on a 1-D input: (1,5)x(5,7)",
       [] {
         linear(arg({5}), arg({7, 5}));
       },
       {{"mm", 70}}},
      {"matmul 2-D x 2-D is mm",
       [] {
         matmul(arg({3, 5}), arg({5, 7}));
       },
       {{"mm", 210}}},
      {"matmul (2,3,5)x(5,7) folds into mm (6,5)x(5,7)",
       [] {
         matmul(arg({2, 3, 5}), arg({5, 7}));
       },
       {{"mm", 420}}},
      {"matmul of a batch whose rows do not fold is bmm",
       [] {
         matmul(arg({3, 2, 5}).transpose(0, 1), arg({5, 7}));
       },
       {{"bmm", 420}}},
      {"matmul (2,3,5)x(2,5,7) is bmm",
       [] {
         matmul(arg({2, 3, 5}), arg({2, 5, 7}));
       },
       {{"bmm", 420}}},
      {"matmul broadcasts (2,1,3,5)x(4,5,7) to 8 products",
       [] {
         matmul(arg({2, 1, 3, 5}), arg({4, 5, 7}));
       },
       {{"bmm", 1680}}},
      {"matmul (5)x(5,7) is mm (1,5)x(5,7)",
       [] {
         matmul(arg({5}), arg({5, 7}));
       },
       {{"mm", 70}}},
      {"matmul (5)x(2,5,7) is bmm",
       [] {
         matmul(arg({5}), arg({2, 5, 7}));
       },
       {{"bmm", 140}}},
      {"matrix-vector and dot products count 0, as torch's mv and dot",
       [] {
         matmul(arg({3, 5}), arg({5}));
         matmul(arg({2, 3, 5}), arg({5}));
         matmul(arg({5}), arg({5}));
       },
       {}},
      {"conv2d with groups and stride",
       [] {
         grouped_conv(arg({2, 4, 9, 9}), arg({6, 2, 3, 3}));
       },
       {{"convolution", 10800}}},
      {"conv2d unbatched (4,9,9): N = 1",
       [] {
         grouped_conv(arg({4, 9, 9}), arg({6, 2, 3, 3}));
       },
       {{"convolution", 5400}}},
      {"conv1d (2,4,10) by (6,4,3): 2·(2·6·8)·4·3",
       [] {
         conv1d(arg({2, 4, 10}), arg({6, 4, 3}));
       },
       {{"convolution", 2304}}},
      {"conv_transpose2d counts over the input's pixels: 2·1·5·5·4·3·9",
       [] {
         conv_transpose2d(arg({1, 4, 5, 5}), arg({4, 3, 3, 3}), Tensor(), {2, 2});
       },
       {{"convolution", 5400}}},
      {"fused attention: q·kᵀ and p·v",
       [] { attention(false); },
       {{"_scaled_dot_product_flash_attention", 5184}}},
      {"attention with a mask: the composition's two bmm's",
       [] {
         attention(false, zeros({8, 6}, {.dtype = DType::float64}));
       },
       {{"bmm", 5184}}},
      {"elementwise ops, reductions, softmax and norms count 0",
       [] {
         Tensor a = arg({4, 5});
         sum(softmax(relu(add(a, a)), -1));
         layer_norm(a, {5});
       },
       {}},
      {"MLP forward and backward, input without grad",
       [] { mlp(false); },
       {{"addmm", 384}, {"mm", 144 + 144 + 240}}},
      {"MLP forward and backward, input with grad",
       [] { mlp(true); },
       {{"addmm", 384}, {"mm", 144 + 144 + 240 + 240}}},
      {"conv2d backward: input and weight gradients",
       [] {
         sum(grouped_conv(arg({2, 4, 9, 9}, true), arg({6, 2, 3, 3}, true))).backward();
       },
       {{"convolution", 10800}, {"convolution_backward", 10800 + 21600}}},
      {"conv2d backward, input without grad: the weight gradient only",
       [] {
         sum(grouped_conv(arg({2, 4, 9, 9}), arg({6, 2, 3, 3}, true))).backward();
       },
       {{"convolution", 10800}, {"convolution_backward", 21600}}},
      {"conv2d backward, weight without grad: the input gradient only",
       [] {
         sum(grouped_conv(arg({2, 4, 9, 9}, true), arg({6, 2, 3, 3}))).backward();
       },
       {{"convolution", 10800}, {"convolution_backward", 10800}}},
      {"conv2d backward with create_graph: the recorded gradient ops count the same",
       [] {
         Tensor x = arg({2, 4, 9, 9}, true), w = arg({6, 2, 3, 3}, true);
         grad({sum(grouped_conv(x, w))}, {x, w}, {}, std::nullopt, /*create_graph=*/true);
       },
       {{"convolution", 10800}, {"convolution_backward", 10800 + 21600}}},
      {"conv_transpose2d backward: both gradients are one torch convolution_backward",
       [] {
         sum(conv_transpose2d(arg({1, 4, 5, 5}, true), arg({4, 3, 3, 3}, true), Tensor(), {2, 2}))
             .backward();
       },
       {{"convolution", 5400}, {"convolution_backward", 5400 + 5400}}},
      {"matmul (3,4,5)x(5,6) backward: torch's folded mm and MmBackward0's two mm's",
       [] {
         sum(matmul(arg({3, 4, 5}, true), arg({5, 6}, true))).backward();
       },
       {{"mm", 720 * 3}}},
      {"fused attention backward: five bmm's",
       [] { sum(attention(true)).backward(); },
       {{"_scaled_dot_product_flash_attention", 5184},
        {"_scaled_dot_product_flash_attention_backward", 12672}}},
  };
  for (const FlopCase& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(counted(c.run), c.expected);
  }
}

// Counting spans the counter's life on its thread: ops before it, after it, or on another thread
// are not counted; nested counters each see the ops run while they are alive.
TEST(FlopCounter, CountsOnlyWhileAliveOnItsThread) {
  Tensor a = arg({3, 5}), b = arg({5, 7});
  mm(a, b);  // no counter: nothing to report to
  FlopCounter outer;
  {
    FlopCounter inner;
    mm(a, b);
    EXPECT_EQ(inner.total(), 210);
  }
  mm(a, b);
  std::thread([&] { mm(a, b); }).join();  // another thread's op
  EXPECT_EQ(outer.total(), 420);
  EXPECT_EQ(outer.flops_of("mm"), 420);
  EXPECT_EQ(outer.flops_of("bmm"), 0);
  outer.reset();
  EXPECT_EQ(outer.total(), 0);
  EXPECT_TRUE(outer.by_op().empty());
}

// The backward pass counts when it runs under a counter, not where its forward did.
TEST(FlopCounter, CountsTheBackwardWhereItRuns) {
  Tensor w = arg({6, 5}, true);
  Tensor loss;
  {
    FlopCounter forward_only;
    loss = sum(linear(arg({4, 5}), w));
    EXPECT_EQ(forward_only.total(), 240);
  }
  FlopCounter backward_only;
  loss.backward();
  EXPECT_EQ(backward_only.by_op(), (std::map<std::string, int64_t, std::less<>>{{"mm", 240}}));
}

// A matmul torch runs as mv (a vector operand) counts 0 forward and backward: torch's backward is
// ger and mv, which its counter has no rule for. A vector times a matrix is a real mm.
TEST(FlopCounter, MatrixVectorProductsCountNothingInTheirBackwardEither) {
  const std::vector<std::pair<Shape, Shape>> zero = {
      {{3, 4}, {4}}, {{2, 3, 4}, {4}}, {{4}, {2, 4, 5}}, {{4}, {4}}};
  for (const auto& [sa, sb] : zero) {
    FlopCounter counter;
    sum(matmul(arg(sa, true), arg(sb, true))).backward();
    EXPECT_EQ(counter.total(), 0) << shape_str(sa) << " @ " << shape_str(sb);
  }
  FlopCounter counter;
  sum(matmul(arg({4}, true), arg({4, 5}, true))).backward();
  EXPECT_EQ(counter.total(), 120);  // forward mm 40, backward 40 + 40 (torch: 120)
}

}  // namespace
}  // namespace fabric
