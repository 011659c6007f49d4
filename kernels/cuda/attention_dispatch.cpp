// The CUDA attention stubs: cuDNN's fused flash attention first when the op's backend is cuDNN
// (attention_cudnn.h; it takes out, grad_out and the gradients strided as the op lays them out),
// then our kernels (attention_ours.h), which take contiguous layouts only: a strided out or
// gradient is written to a contiguous buffer and copied into place, a strided out or grad_out
// read from a contiguous copy. cuDNN's lse and ours are the same statistic, so either backward
// runs after either forward.
#include <cstddef>
#include <cstdint>
#include <optional>

#include "kernels/cuda/attention_cudnn.h"
#include "kernels/cuda/attention_ours.h"
#include "kernels/cuda/device_scratch.h"
#include "kernels/cuda/stream.h"
#include "tensor/copy_kernels.h"
#include "tensor/strided_loop.h"

namespace fabric::cuda {
namespace {

// A (batch, heads, rows, cols) tensor of the problem's dtype: its memory and element strides.
struct Layout {
  char* data;
  AttentionStrides strides;
};

AttentionStrides packed(int64_t heads, int64_t rows, int64_t cols) {
  return {heads * rows * cols, rows * cols, cols};
}

// dst <- src over (batch, heads, rows, cols), on `device`'s compute stream.
void copy_layout(int device, DType dtype, int64_t batch, int64_t heads, int64_t rows, int64_t cols,
                 const Layout& dst, const Layout& src) {
  const int64_t item = itemsize(dtype);
  StridedLoop loop;
  loop.ndim = 4;
  loop.sizes = {batch, heads, rows, cols};
  for (const Layout* l : {&dst, &src}) {
    LoopOperand& op = loop.ops[static_cast<size_t>(loop.num_operands++)];
    op.data = l->data;
    op.dtype = dtype;
    op.strides[0] = l->strides.batch * item;
    op.strides[1] = l->strides.head * item;
    op.strides[2] = l->strides.row * item;
    op.strides[3] = item;
  }
  copy_stub(Device::cuda(device))(loop, false);
}

// A contiguous stand-in for a strided (batch, heads, rows, cols) operand.
struct Staged {
  std::optional<DeviceScratch> buffer;
  Layout strided{};
  int64_t rows = 0, cols = 0;

  Staged(int device, DType dtype, int64_t batch, int64_t heads, int64_t rows_, int64_t cols_,
         const void* data, const std::optional<AttentionStrides>& strides)
      : rows(rows_), cols(cols_) {
    strided = {static_cast<char*>(const_cast<void*>(data)), strides.value_or(AttentionStrides{})};
    if (!strides) return;
    buffer.emplace(device, static_cast<size_t>(batch * heads * rows * cols * itemsize(dtype)));
  }
  // The pointer the kernels get: the buffer, or the operand itself when it was contiguous.
  char* data() const { return buffer ? buffer->as<char>() : strided.data; }
};

}  // namespace

bool attention_forward_cuda(const AttentionArgs& a, void* out, void* lse) {
  if (a.prefer_cudnn && attention_forward_cudnn(a, out, lse)) return true;
  if (!a.out_strides) return attention_forward_ours(a, out, lse);
  const int device = device_of_pointer(out);
  AttentionArgs contiguous = a;
  contiguous.out_strides.reset();
  Staged o(device, a.dtype, a.batch, a.heads, a.L, a.Ev, out, a.out_strides);
  if (!attention_forward_ours(contiguous, o.data(), lse)) return false;
  copy_layout(device, a.dtype, a.batch, a.heads, a.L, a.Ev, o.strided,
              {o.data(), packed(a.heads, a.L, a.Ev)});
  return true;
}

void attention_backward_cuda(const AttentionBackwardArgs& args) {
  const AttentionArgs& a = args.fwd;
  if (a.prefer_cudnn && attention_backward_cudnn(args)) return;
  const bool strided = a.out_strides || args.grad_out_strides || args.grad_q_strides ||
                       args.grad_k_strides || args.grad_v_strides;
  if (!strided) return attention_backward_ours(args);
  const int device = device_of_pointer(args.grad_q);
  const int64_t B = a.batch, H = a.heads;
  Staged out(device, a.dtype, B, H, a.L, a.Ev, args.out, a.out_strides);
  Staged grad_out(device, a.dtype, B, H, a.L, a.Ev, args.grad_out, args.grad_out_strides);
  Staged dq(device, a.dtype, B, H, a.L, a.E, args.grad_q, args.grad_q_strides);
  Staged dk(device, a.dtype, B, H, a.S, a.E, args.grad_k, args.grad_k_strides);
  Staged dv(device, a.dtype, B, H, a.S, a.Ev, args.grad_v, args.grad_v_strides);
  for (const Staged* in : {&out, &grad_out}) {
    if (in->buffer)
      copy_layout(device, a.dtype, B, H, in->rows, in->cols,
                  {in->data(), packed(H, in->rows, in->cols)}, in->strided);
  }
  AttentionBackwardArgs contiguous = args;
  contiguous.fwd.out_strides.reset();
  contiguous.grad_out_strides.reset();
  contiguous.grad_q_strides.reset();
  contiguous.grad_k_strides.reset();
  contiguous.grad_v_strides.reset();
  contiguous.out = out.data();
  contiguous.grad_out = grad_out.data();
  contiguous.grad_q = dq.data();
  contiguous.grad_k = dk.data();
  contiguous.grad_v = dv.data();
  attention_backward_ours(contiguous);
  for (const Staged* g : {&dq, &dk, &dv}) {
    if (g->buffer)
      copy_layout(device, a.dtype, B, H, g->rows, g->cols, g->strided,
                  {g->data(), packed(H, g->rows, g->cols)});
  }
}

}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(attention_stub, cuda, &cuda::attention_forward_cuda);
FABRIC_REGISTER_KERNEL(attention_backward_stub, cuda, &cuda::attention_backward_cuda);
}  // namespace fabric
