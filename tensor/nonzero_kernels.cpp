// nonzero's direct kernels' stubs and their op-layer entry (nonzero_kernels.h).
#include "tensor/nonzero_kernels.h"

#include <vector>

#include "tensor/factory.h"

namespace fabric {

FABRIC_DEFINE_STUB(nonzero_count_stub, NonzeroCountFn);
FABRIC_DEFINE_STUB(nonzero_write_stub, NonzeroWriteFn);
FABRIC_DEFINE_STUB(masked_compact_stub, MaskedCompactFn);

namespace {

bool counted_dtype(DType t) {
  switch (t) {
    case DType::bool_: case DType::uint8: case DType::int8: case DType::int32: case DType::int64:
    case DType::float16: case DType::bfloat16: case DType::float32: case DType::float64:
      return true;
    default:  // float8: left to the composition (and its errors)
      return false;
  }
}

// begin[c] <- the nonzero elements before chunk c, for every chunk and one past the last (the
// total), counted by the device's kernel.
std::vector<int64_t> chunk_offsets(NonzeroCountFn count_kernel, const NonzeroDesc& d) {
  const int64_t chunks = (d.numel + kNonzeroChunk - 1) / kNonzeroChunk;
  std::vector<int64_t> begin(static_cast<size_t>(chunks) + 1, 0);
  if (chunks > 0) count_kernel(d, begin.data() + 1);
  for (int64_t c = 0; c < chunks; ++c) begin[c + 1] += begin[c];
  return begin;
}

}  // namespace

Tensor masked_select_direct(const Tensor& values, const Tensor& mask) {
  const NonzeroCountFn count_kernel = nonzero_count_stub.find(mask.device());
  const MaskedCompactFn compact_kernel = masked_compact_stub.find(mask.device());
  if (!count_kernel || !compact_kernel) return Tensor();
  const Tensor m = mask.detach().contiguous(), v = values.detach().contiguous();
  NonzeroDesc d;
  d.src = m.data_ptr();
  d.dtype = DType::bool_;
  d.numel = m.numel();
  const int64_t flat = d.numel;
  d.sizes = &flat;
  d.ndim = 1;
  const std::vector<int64_t> begin = chunk_offsets(count_kernel, d);
  Tensor out = empty({begin.back()}, {.dtype = values.dtype(), .device = values.device()});
  if (begin.back() > 0)
    compact_kernel(d, v.data_ptr(), v.element_size(), begin.data(), out.data_ptr());
  return out;
}

Tensor nonzero_direct(const Tensor& a) {
  const NonzeroCountFn count_kernel = nonzero_count_stub.find(a.device());
  const NonzeroWriteFn write_kernel = nonzero_write_stub.find(a.device());
  // The kernel walks coordinates in a fixed array of 64 (torch's own limit on dims is 25).
  if (!count_kernel || !write_kernel || !counted_dtype(a.dtype()) || a.dim() > 64) return Tensor();
  const Tensor src = a.detach().contiguous();
  // A 0-dim tensor counts as one element of shape (1): its result has no columns to write.
  const Shape sizes = a.dim() == 0 ? Shape{1} : a.sizes();
  NonzeroDesc d;
  d.src = src.data_ptr();
  d.dtype = src.dtype();
  d.numel = src.numel();
  d.sizes = sizes.data();
  d.ndim = static_cast<int64_t>(sizes.size());
  const std::vector<int64_t> begin = chunk_offsets(count_kernel, d);
  const int64_t count = begin.back();
  Tensor out = empty({count, a.dim()}, {.dtype = DType::int64, .device = a.device()});
  if (count > 0 && a.dim() > 0) write_kernel(d, begin.data(), out.data<int64_t>());
  return out;
}

}  // namespace fabric
