// cuDNN's fused flash attention (the SDPA engines of cuDNN 9, reached through the backend graph
// API) behind the CUDA attention stubs, as the third way to run scaled_dot_product_attention
// next to our fused kernels and the matmul/softmax composition (FABRIC_ATTENTION=cudnn or
// set_attention_backend(AttentionBackend::cudnn) selects it; tensor/ops.h). Same contract as
// tensor/attention_kernels.h. CUDA-free: tests and benchmarks include it.
//
// It takes bf16 and f16 problems without dropout, E == Ev a multiple of 8 up to 128, causal or no
// mask, q/k/v, out, grad_out and the gradients strided as the op hands them (heads cut from a
// packed (B, T, 3C) projection, an out lying as (B, T, H, E), gradients written into one
// (B, T, 3C) buffer) when every stride is a multiple of 8 elements and every pointer 16-byte
// aligned, on a
// device of compute capability 8.0 or newer with a cuDNN 9 runtime. Anything else, and any problem
// for which cuDNN builds no graph or offers no engine, is declined (returns false, writes
// nothing) and our kernels run it: a problem never fails because cuDNN lacks an engine. A failure
// while *running* a plan cuDNN accepted is an error (DeviceError naming the call and status).
// The forward writes the softmax statistics cuDNN keeps (the natural log-sum-exp of each row's
// scaled scores, exactly our lse), so either backward runs from either forward.
#pragma once
#include <cstdint>
#include <string>

#include "tensor/attention_kernels.h"

namespace fabric::cuda {

// The cuDNN forward and backward. Each returns false, writing nothing, when it declines.
bool attention_forward_cudnn(const AttentionArgs& a, void* out, void* lse);
bool attention_backward_cudnn(const AttentionBackwardArgs& args);

// Counts since the process started, and why the latest declined problem was declined (empty when
// none was): for the benchmark's row and the tests.
struct CudnnAttentionStats {
  int64_t forward_taken = 0, forward_declined = 0;
  int64_t backward_taken = 0, backward_declined = 0;
  std::string last_decline;
};
CudnnAttentionStats cudnn_attention_stats();

// The cuDNN library loaded at run time, as cudnnGetVersion() gives it (e.g. 91900 for 9.19.0).
int64_t cudnn_runtime_version();

// Checks the graph without a GPU: builds the forward (or backward) graph of `a` (bf16/f16,
// E == Ev; only sizes, strides, dtype and causal are read, no data) and returns how many engine
// configurations cuDNN's heuristics offer for it on the device that `device_json` describes (a
// cuDNN device-property JSON; cuDNN 9.8+). 0 means no engine matches the graph. cuDNN offers its
// runtime-compiled engines, the flash-attention ones among them, only where it can load libcuda
// (the driver's, or the toolkit's stub). Throws DeviceError for a failing cuDNN call.
int64_t cudnn_attention_engines_for(const AttentionArgs& a, bool backward,
                                    const std::string& device_json);
// The same for a backward with its grad_out and gradient strides (args.fwd: the forward).
int64_t cudnn_attention_engines_for(const AttentionBackwardArgs& args, bool backward,
                                    const std::string& device_json);

}  // namespace fabric::cuda
