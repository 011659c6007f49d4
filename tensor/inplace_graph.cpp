// See inplace_graph.h.
#include "tensor/inplace_graph.h"

#include "tensor/copy_kernels.h"
#include "tensor/factory.h"
#include "tensor/memory_overlap.h"
#include "tensor/ops.h"
#include "tensor/strided_loop.h"

namespace fabric {

void check_no_internal_overlap(const char* op, const Tensor& self) {
  if (self.numel() == 0) return;  // nothing is written (PyTorch allows it too)
  for (int64_t d = 0; d < self.dim(); ++d) {
    FABRIC_CHECK(
        self.sizes()[d] <= 1 || self.strides()[d] != 0, ValueError, op,
        ": unsupported operation: more than one element of the written-to tensor (shape ",
        shape_str(self.sizes()), ", strides ", shape_str(self.strides()),
        ", an expanded view) refers to a single memory location. Please clone() the tensor before "
        "performing the operation");
  }
}

void write_values(Tensor& dst, const Tensor& src) {
  if (dst.numel() == 0) return;
  // dst's own values (x.copy_(x), or a second view of x's elements in the same order): already in
  // place, and memcpy / cudaMemcpyAsync onto themselves are undefined.
  if (dst.dtype() == src.dtype() && memory_overlap(dst, src) == MemOverlap::full) {
    dst.storage()->bump_version();
    return;
  }
  const Tensor staged = src.device() == dst.device() ? src : src.detach().to(dst.device());
  StridedLoop loop = make_strided_loop("copy_", dst, {&staged});
  copy_stub(dst.device())(loop, false);
  dst.storage()->bump_version();
}

// Zeros that carry self's history with a zero gradient, as torch's FillBackward / ZeroBackward /
// CopyBackwards give the overwritten value: selected away (where), not multiplied by 0, so that an
// inf or NaN gradient of the new value gives the old one 0, not NaN (inf * 0).
Tensor overwritten_history(const Tensor& self) {
  return where(zeros({}, {.dtype = DType::bool_, .device = self.device()}), self, Scalar(0.0));
}

}  // namespace fabric
