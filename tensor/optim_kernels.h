// Dispatch stubs for the fused optimizer updates: one kernel per optimizer reads the parameter,
// its gradient and its state and writes the parameter and the state back in a single pass.
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/dispatch_stub.h"
#include "tensor/dtype.h"

namespace fabric {

// Adam/AdamW hyper-parameters for one step of one tensor. `step` is the step count after this
// step's increment; the bias corrections are derived from it inside the kernel, in float64.
struct AdamKernelArgs {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
  double step = 1;
  bool decoupled_weight_decay = false;  // AdamW: p *= 1 - lr * weight_decay before the update
  bool amsgrad = false;
  bool maximize = false;
};

// All buffers are contiguous, n elements of `dtype` each (float64, float32, bfloat16, float16);
// param and the states are updated in place, grad is read. max_exp_avg_sq is null unless amsgrad.
// float64 follows PyTorch's single-tensor Adam op by op; float32 does the same ops in float32;
// bfloat16/float16 compute in float32 and round each stored tensor once (PyTorch's fused Adam).
using AdamStepFn = void (*)(DType dtype, int64_t n, void* param, const void* grad, void* exp_avg,
                            void* exp_avg_sq, void* max_exp_avg_sq, const AdamKernelArgs& args);
FABRIC_DECLARE_STUB(adam_step_stub, AdamStepFn);

// One tensor of a multi-tensor Adam step: AdamStepFn's buffers.
struct AdamTensorPtrs {
  int64_t n = 0;
  void* param = nullptr;
  const void* grad = nullptr;
  void* exp_avg = nullptr;
  void* exp_avg_sq = nullptr;
  void* max_exp_avg_sq = nullptr;  // null unless amsgrad
};

// The same step for several tensors of one dtype on one device with the same hyper-parameters
// (one step count), each exactly as AdamStepFn would update it, in a few launches instead of one
// per tensor. Registered where such a kernel exists (CUDA); elsewhere the optimizers call
// adam_step_stub per tensor.
using AdamMultiStepFn = void (*)(DType dtype, const std::vector<AdamTensorPtrs>& tensors,
                                 const AdamKernelArgs& args);
FABRIC_DECLARE_STUB(adam_multi_step_stub, AdamMultiStepFn);

// SGD hyper-parameters for one step of one tensor. With momentum != 0, first_step makes the
// momentum buffer a copy of the (decayed) gradient, as PyTorch does when the buffer is None.
struct SgdKernelArgs {
  double lr = 1e-3;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
  bool maximize = false;
  bool first_step = false;
};

// momentum_buffer is null when momentum == 0. Same dtype rules as AdamStepFn.
using SgdStepFn = void (*)(DType dtype, int64_t n, void* param, const void* grad, void* momentum_buffer,
                           const SgdKernelArgs& args);
FABRIC_DECLARE_STUB(sgd_step_stub, SgdStepFn);

// RMSprop hyper-parameters for one step of one tensor (torch.optim.RMSprop's names).
struct RmspropKernelArgs {
  double lr = 1e-2;
  double alpha = 0.99;
  double eps = 1e-8;
  double weight_decay = 0;
  double momentum = 0;
  bool centered = false;
  bool maximize = false;
};

// grad_avg is null unless centered, momentum_buffer null unless momentum > 0. Same dtype rules as
// AdamStepFn, except that float64 and float32 both follow PyTorch 1.13's single-tensor RMSprop op
// by op (in that dtype, with its CPU kernels' fused multiply-adds), so both match it bit for bit.
using RmspropStepFn = void (*)(DType dtype, int64_t n, void* param, const void* grad,
                               void* square_avg, void* grad_avg, void* momentum_buffer,
                               const RmspropKernelArgs& args);
FABRIC_DECLARE_STUB(rmsprop_step_stub, RmspropStepFn);

// Adagrad hyper-parameters for one step of one tensor. `step` is the count after this step's
// increment; the decayed lr, lr / (1 + (step - 1) * lr_decay), is computed in float64.
struct AdagradKernelArgs {
  double lr = 1e-2;
  double lr_decay = 0;
  double eps = 1e-10;
  double weight_decay = 0;
  double step = 1;
  bool maximize = false;
};

// `sum` is the squared-gradient accumulator. Same dtype rules as RmspropStepFn.
using AdagradStepFn = void (*)(DType dtype, int64_t n, void* param, const void* grad, void* sum,
                               const AdagradKernelArgs& args);
FABRIC_DECLARE_STUB(adagrad_step_stub, AdagradStepFn);

}  // namespace fabric
