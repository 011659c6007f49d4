// See memory_overlap.h.
#include "tensor/memory_overlap.h"

#include <algorithm>
#include <numeric>
#include <utility>
#include <vector>

namespace fabric {

bool is_non_overlapping_and_dense(const Tensor& t) {
  // The common case, answered without sorting (which allocates): copy_ asks this of both operands
  // on every call.
  if (t.numel() > 0 && t.is_contiguous()) return true;
  const int64_t n = t.dim();
  // Dims by increasing stride (size-1 dims never move, so their stride is irrelevant); dense
  // means each stride is the product of the sizes of the dims before it in that order.
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    const bool a_moves = t.sizes()[a] > 1, b_moves = t.sizes()[b] > 1;
    if (a_moves != b_moves) return a_moves;  // size-1 dims last: they take any stride
    return t.strides()[a] < t.strides()[b];
  });
  int64_t expected = 1;
  for (int64_t d : order) {
    const int64_t size = t.sizes()[d];
    if (size <= 1) continue;
    if (t.strides()[d] != expected) return false;
    expected *= size;
  }
  return true;
}

namespace {

// Whether two tensors over the same bytes put element i at the same address for every i: equal
// itemsizes and equal (size, stride) over the dims that move (x vs x.t() is not). PyTorch compares
// the whole stride lists, so it also refuses x.view({1, n}).copy_(x) and takes a float64 row
// broadcast over int32 memory of the same bytes as full; neither is followed here.
bool same_element_order(const Tensor& a, const Tensor& b) {
  if (a.element_size() != b.element_size()) return false;
  std::vector<std::pair<int64_t, int64_t>> moving_a, moving_b;
  for (int64_t d = 0; d < a.dim(); ++d)
    if (a.sizes()[d] > 1) moving_a.emplace_back(a.sizes()[d], a.strides()[d]);
  for (int64_t d = 0; d < b.dim(); ++d)
    if (b.sizes()[d] > 1) moving_b.emplace_back(b.sizes()[d], b.strides()[d]);
  return moving_a == moving_b;
}

}  // namespace

MemOverlap memory_overlap(const Tensor& a, const Tensor& b) {
  if (a.numel() == 0 || b.numel() == 0) return MemOverlap::none;
  if (a.device() != b.device()) return MemOverlap::none;  // distinct memories
  if (!is_non_overlapping_and_dense(a) || !is_non_overlapping_and_dense(b)) {
    return MemOverlap::too_hard;
  }
  // Byte ranges, not storages: two storages may wrap the same memory (from_blob, mappings).
  const char* a_begin = static_cast<const char*>(a.data_ptr());
  const char* b_begin = static_cast<const char*>(b.data_ptr());
  const char* a_end = a_begin + a.nbytes();
  const char* b_end = b_begin + b.nbytes();
  if (a_begin == b_begin && a_end == b_end) {
    return same_element_order(a, b) ? MemOverlap::full : MemOverlap::partial;
  }
  return a_begin < b_end && b_begin < a_end ? MemOverlap::partial : MemOverlap::none;
}

void check_no_partial_overlap(const char* op, const Tensor& dst, const Tensor& src) {
  FABRIC_CHECK(memory_overlap(dst, src) != MemOverlap::partial, ValueError, op,
               ": unsupported operation: some elements of the input tensor (shape ",
               shape_str(src.sizes()), ", strides ", shape_str(src.strides()),
               ") and the written-to tensor (shape ", shape_str(dst.sizes()), ", strides ",
               shape_str(dst.strides()),
               ") refer to a single memory location. Please clone() the tensor before performing "
               "the operation");
}

}  // namespace fabric
