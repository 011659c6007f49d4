// An op-level FLOP counter, torch.utils.flop_counter.FlopCounterMode's: while a FlopCounter is
// alive on a thread, the GEMM, convolution and fused-attention ops run on that thread (forward
// and backward) add their FLOPs to it, by torch's formulas and under torch's aten op names.
//
//   FlopCounter counter;
//   Tensor loss = model(x).sum();
//   loss.backward();
//   counter.total();            // forward + backward
//   counter.flops_of("addmm");  // per op
//
// Counted, as torch: "mm", "addmm", "bmm" 2·M·N·K (per batch entry); "convolution"
// 2·(output numel)·(C_in/groups)·prod(kernel) and "convolution_backward" (the input and weight
// gradients, each only when computed); "_scaled_dot_product_flash_attention" (and _backward) as
// the bmm's of q·kᵀ and p·v (five in the backward), causal or not. Elementwise ops, reductions,
// norms, matrix-vector and dot products count 0, as in torch.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace fabric {

class FlopCounter {
 public:
  // Starts counting on this thread. Counters nest: an op reports to every counter alive on its
  // thread (torch's nested modes each see the op).
  FlopCounter();
  ~FlopCounter();
  FlopCounter(const FlopCounter&) = delete;
  FlopCounter& operator=(const FlopCounter&) = delete;

  // FLOPs since construction (or the last reset), all ops.
  int64_t total() const { return total_; }
  // FLOPs per op, by torch's op name (without "aten."): "mm", "addmm", "bmm", "convolution", ...
  const std::map<std::string, int64_t, std::less<>>& by_op() const { return by_op_; }
  // One op's FLOPs; 0 for an op that did not run (or does not count).
  int64_t flops_of(std::string_view op) const;
  void reset();

 private:
  friend void report_flops(std::string_view op, int64_t flops);
  std::map<std::string, int64_t, std::less<>> by_op_;
  int64_t total_ = 0;
};

// True while a FlopCounter is alive on this thread: ops compute their count only then.
bool counting_flops();
// Adds flops under op's name to every counter alive on this thread (none: nothing happens).
void report_flops(std::string_view op, int64_t flops);

// While alive, this thread's reports are filed under `op`: an op built from another op's kernel
// reports under its own torch name (conv_transpose2d runs conv2d's input gradient, which torch
// counts as a "convolution", not a "convolution_backward").
class FlopOpName {
 public:
  explicit FlopOpName(const char* op);
  ~FlopOpName();
  FlopOpName(const FlopOpName&) = delete;
  FlopOpName& operator=(const FlopOpName&) = delete;

 private:
  const char* previous_;
};

// While alive, this thread's ops report nothing: the backward of a product torch counts as 0
// (matmul's matrix-vector forms) runs GEMMs that torch's counter never sees (mv's backward is
// ger and mv).
class FlopsNotCounted {
 public:
  FlopsNotCounted();
  ~FlopsNotCounted();
  FlopsNotCounted(const FlopsNotCounted&) = delete;
  FlopsNotCounted& operator=(const FlopsNotCounted&) = delete;
};

}  // namespace fabric
