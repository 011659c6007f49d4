// Dispatch stubs for fused scaled-dot-product attention: softmax(scale * q k^T [causal]) v per
// (batch, head) without a (L, S) score tensor in memory, and its backward recomputing the scores
// from the saved row log-sum-exp (the flash-attention scheme). The op (tensor/ops_attention.cpp)
// falls back to the composition of matmul/softmax when a device has no kernel or its kernel
// declines a problem (returns false), so kernels may take only the cases they are fast at (a
// kernel without dropout declines dropout_p > 0).
#pragma once
#include <cstdint>
#include <optional>

#include "tensor/dispatch_stub.h"
#include "tensor/dtype.h"

namespace fabric {

// One operand: element strides between batches, heads and rows; its last dim is contiguous.
struct AttentionOperand {
  const void* data = nullptr;
  int64_t batch_stride = 0, head_stride = 0, row_stride = 0;
};

// Where out, grad_out or a gradient lies when it is not contiguous: element strides between
// batches, heads and rows, its last dim contiguous.
struct AttentionStrides {
  int64_t batch = 0, head = 0, row = 0;
};

struct AttentionArgs {
  int64_t batch = 1, heads = 1;
  int64_t L = 0, S = 0;  // query and key/value lengths (both > 0)
  int64_t E = 0, Ev = 0;  // q/k and v head sizes (both > 0)
  DType dtype = DType::float32;  // of q, k, v, out, grad_out and the gradients
  AttentionOperand q, k, v;  // q (L, E), k (S, E), v (S, Ev) per (batch, head)
  double scale = 1.0;        // multiplies q k^T
  // Key j is attended from query i iff j <= i (torch's is_causal, top-left aligned); every row
  // keeps at least key 0.
  bool causal = false;
  // Dropout on the probabilities, 0 <= dropout_p < 1 (0: none). Probability (b, h, i, j) is
  // multiplied by 1/(1 - dropout_p) rounded to `dtype` when kept, by 0 when dropped; it is kept
  // iff the dropout contract of tensor/random_kernels.h keeps element
  // ((b * heads + h) * L + i) * S + j of a draw at Philox counter `offset` under `seed`: the mask
  // the dropout op would draw over the contiguous (batch, heads, L, S) probabilities. The backward
  // regenerates the same mask. lse stays that of the probabilities before dropout.
  double dropout_p = 0.0;
  uint64_t seed = 0, offset = 0;
  // Where out lies (the forward writes it, the backward reads it) when it is not contiguous
  // (batch, heads, L, Ev): on the CPU the op lays it out as q lies, so that a transformer's heads
  // cut from (batch, L, 3 * heads * E) give an out lying as (batch, L, heads, Ev), whose heads side
  // by side again are a view instead of a copy. The CPU kernels and cuDNN's take it (CUDA's own
  // kernels through a contiguous copy); the op sets it on the CPU, and on CUDA when cuDNN is the
  // backend.
  std::optional<AttentionStrides> out_strides;
  // The op's attention backend is cuDNN (attention_backend(), tensor/ops.h): a CUDA device offers
  // the problem to cuDNN's fused attention first. The op decides; the CPU kernels ignore it.
  bool prefer_cudnn = false;
};

// out: (batch, heads, L, Ev) in dtype, contiguous unless a.out_strides is set. lse: contiguous
// (batch, heads, L), the natural log of each row's sum of exp(score), in float64 for float64
// problems and float32 otherwise.
// Returns false, writing nothing, when the kernel does not take this problem.
using AttentionFn = bool (*)(const AttentionArgs& a, void* out, void* lse);
FABRIC_DECLARE_STUB(attention_stub, AttentionFn);

struct AttentionBackwardArgs {
  AttentionArgs fwd;           // the forward problem (same q, k, v)
  const void* out = nullptr;   // the forward output, laid out as fwd.out_strides says
  const void* grad_out = nullptr;  // contiguous (batch, heads, L, Ev), or as grad_out_strides says
  const void* lse = nullptr;   // the forward's lse
  // Outputs, contiguous (batch, heads, L|S, E|Ev) in dtype unless their strides are set; every
  // element is written. They must not overlap each other or the inputs.
  void* grad_q = nullptr;
  void* grad_k = nullptr;
  void* grad_v = nullptr;
  // Strided layouts, so that the op needs no copy of a transposed grad_out and can write dq, dk
  // and dv straight into the pieces of one (..., 3 * heads * E) gradient. Set where out_strides
  // may be (above).
  std::optional<AttentionStrides> grad_out_strides, grad_q_strides, grad_k_strides, grad_v_strides;
};
// Takes every problem the same device's forward kernel took.
using AttentionBackwardFn = void (*)(const AttentionBackwardArgs& a);
FABRIC_DECLARE_STUB(attention_backward_stub, AttentionBackwardFn);

}  // namespace fabric
