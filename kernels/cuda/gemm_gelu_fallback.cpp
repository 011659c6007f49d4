// See gemm_gelu_fallback.h. The GELU and its backward go through the registered elementwise
// CUDA kernels (unary_stub's gelu_tanh, activation_backward_stub's gelu_tanh, copy_stub), on
// loops over the (batch, M, N) matrices built from the GEMM's leading dims and batch strides.
#include "kernels/cuda/gemm_gelu_fallback.h"

#include "tensor/activation_backward.h"
#include "tensor/copy_kernels.h"
#include "tensor/elementwise_kernels.h"
#include "tensor/strided_loop.h"

namespace fabric::cuda::detail {
namespace {

// One (batch, M, N) operand in C's dtype: row i of batch b starts at b * stride + i * ld.
LoopOperand matrices(void* data, DType dtype, int64_t ld, int64_t batch, int64_t stride) {
  const int64_t item = itemsize(dtype);
  LoopOperand op;
  op.data = static_cast<char*>(data);
  op.dtype = dtype;
  op.strides[0] = batch > 1 ? stride * item : 0;
  op.strides[1] = ld * item;
  op.strides[2] = item;
  return op;
}

StridedLoop loop_over(const GemmDesc& d, std::initializer_list<LoopOperand> operands) {
  StridedLoop loop;
  loop.ndim = 3;
  loop.sizes[0] = d.batch;
  loop.sizes[1] = d.M;
  loop.sizes[2] = d.N;
  for (const LoopOperand& op : operands) loop.ops[static_cast<size_t>(loop.num_operands++)] = op;
  return loop;
}

}  // namespace

void gemm_gelu_after_product(int device, const GemmDesc& d, const GeluAux& aux) {
  const LoopOperand c = matrices(d.C, d.c_dtype, d.ldc, d.batch, d.stride_c);
  if (aux.data) {
    const LoopOperand kept = matrices(aux.data, d.c_dtype, aux.ld, d.batch, aux.stride);
    copy_stub(Device::cuda(device))(loop_over(d, {kept, c}), false);
  }
  // In place: every element is read before it is written, by the same thread.
  unary_stub(Device::cuda(device))(UnaryOp::gelu_tanh, loop_over(d, {c, c}));
}

void gemm_gelu_from_aux(int device, const GemmDesc& d, const GeluAux& aux) {
  const LoopOperand c = matrices(d.C, d.c_dtype, d.ldc, d.batch, d.stride_c);
  const LoopOperand pre = matrices(aux.data, d.c_dtype, aux.ld, d.batch, aux.stride);
  unary_stub(Device::cuda(device))(UnaryOp::gelu_tanh, loop_over(d, {c, pre}));
}

void gemm_dgelu_after_product(int device, const GemmDesc& d, const GeluAux& aux) {
  const LoopOperand c = matrices(d.C, d.c_dtype, d.ldc, d.batch, d.stride_c);
  const LoopOperand pre = matrices(aux.data, d.c_dtype, aux.ld, d.batch, aux.stride);
  // grad_input (C) = grad_output (C, in place) * gelu'(pre-activation).
  activation_backward_stub(Device::cuda(device))(ActGrad::gelu_tanh, ActivationParams{},
                                                 loop_over(d, {c, c, pre}));
}

}  // namespace fabric::cuda::detail
