// See gemm_gelu_fallback.h. The GELU and its backward go through the registered elementwise
// CUDA kernels (unary_stub's gelu_tanh, activation_backward_stub's gelu_tanh, copy_stub), on
// loops over the (batch, M, N) matrices built from the GEMM's leading dims and batch strides
// (one flat dimension when all are dense).
#include "kernels/cuda/gemm_gelu_fallback.h"

#include "tensor/activation_backward.h"
#include "tensor/copy_kernels.h"
#include "tensor/elementwise_kernels.h"
#include "tensor/strided_loop.h"

namespace fabric::cuda::detail {
namespace {

// One (batch, M, N) operand in C's dtype: row i of batch b starts at b * stride + i * ld.
struct Matrix {
  void* data;
  int64_t ld, stride;
};

// The loop over the operands: one dimension of batch * M * N elements when every operand is
// dense (the common case: the elementwise kernels then move 16-byte pieces), else (batch, M, N).
StridedLoop loop_over(const GemmDesc& d, std::initializer_list<Matrix> operands) {
  bool dense = true;
  for (const Matrix& m : operands)
    dense = dense && m.ld == d.N && (d.batch == 1 || m.stride == d.M * d.N);
  const int64_t item = itemsize(d.c_dtype);
  StridedLoop loop;
  if (dense) {
    loop.ndim = 1;
    loop.sizes[0] = d.batch * d.M * d.N;
  } else {
    loop.ndim = 3;
    loop.sizes[0] = d.batch;
    loop.sizes[1] = d.M;
    loop.sizes[2] = d.N;
  }
  for (const Matrix& m : operands) {
    LoopOperand op;
    op.data = static_cast<char*>(m.data);
    op.dtype = d.c_dtype;
    if (dense) {
      op.strides[0] = item;
    } else {
      op.strides[0] = d.batch > 1 ? m.stride * item : 0;
      op.strides[1] = m.ld * item;
      op.strides[2] = item;
    }
    loop.ops[static_cast<size_t>(loop.num_operands++)] = op;
  }
  return loop;
}

}  // namespace

void gemm_gelu_after_product(int device, const GemmDesc& d, const GeluAux& aux) {
  const Matrix c{d.C, d.ldc, d.stride_c};
  if (aux.data) {
    const Matrix kept{aux.data, aux.ld, aux.stride};
    copy_stub(Device::cuda(device))(loop_over(d, {kept, c}), false);
  }
  // In place: every element is read before it is written, by the same thread.
  unary_stub(Device::cuda(device))(UnaryOp::gelu_tanh, loop_over(d, {c, c}));
}

void gemm_gelu_from_aux(int device, const GemmDesc& d, const GeluAux& aux) {
  const Matrix c{d.C, d.ldc, d.stride_c};
  const Matrix pre{aux.data, aux.ld, aux.stride};
  unary_stub(Device::cuda(device))(UnaryOp::gelu_tanh, loop_over(d, {c, pre}));
}

void gemm_dgelu_after_product(int device, const GemmDesc& d, const GeluAux& aux) {
  const Matrix c{d.C, d.ldc, d.stride_c};
  const Matrix pre{aux.data, aux.ld, aux.stride};
  // grad_input (C) = grad_output (C, in place) * gelu'(pre-activation).
  activation_backward_stub(Device::cuda(device))(ActGrad::gelu_tanh, ActivationParams{},
                                                 loop_over(d, {c, c, pre}));
}

}  // namespace fabric::cuda::detail
