// The reductions behind the Gloo process group, private to it: element-wise reduce functions
// (c = a op b, per dtype) handed to Gloo, and the ring reduce-scatter built on Gloo's buffers.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "distributed/process_group.h"
#include "tensor/dtype.h"

namespace gloo {
class Context;
}

namespace fabric::distributed::gloo_detail {

// Gloo's AllreduceOptions::Func signature; c may alias a or b (element for element).
using ReduceFn = void (*)(void* c, const void* a, const void* b, size_t n);

// The function for `dtype` and `op` (avg reduces with sum; the caller divides by the world size
// with divide_in_place). DTypeError naming `what` (the collective) when the pair is unsupported:
// fp8, integer avg, bool other than max/min.
ReduceFn reduce_function(DType dtype, ReduceOp op, const char* what);

// data[i] /= divisor in place (floating dtypes; reduced floats go through float).
void divide_in_place(void* data, DType dtype, size_t n, int divisor);

// Slots of our own point-to-point traffic, clear of Gloo's collective slot prefixes (0x01-0x08):
// the prefix in the top byte, the tag in the middle 32 bits, a step number in the low 24 bits.
inline constexpr uint64_t kReduceScatterSlotPrefix = 0x20;
inline constexpr uint64_t kSendRecvSlotPrefix = 0x21;
inline constexpr uint64_t kCallSlotPrefix = 0x22;  // call records (gloo_call_check.h), barrier
inline constexpr uint64_t kP2PRecordSlotPrefix = 0x23;  // a send's and its recv's records
constexpr uint64_t make_slot(uint64_t prefix, uint32_t tag, uint32_t step = 0) {
  return (prefix << 56) | (static_cast<uint64_t>(tag) << 24) | (step & 0xFFFFFFu);
}

// Reduce-scatter of `in` (context.size chunks of `count` elements, `bytes` each) into `out` (this
// rank's chunk reduced over all ranks) by a ring over unbound buffers. `scratch` grows to four
// chunks at most and is reused across calls. Throws Gloo's exceptions (timeouts at `deadline`).
void ring_reduce_scatter(gloo::Context& context, void* out, const void* in, size_t bytes,
                         size_t count, ReduceFn fn, uint32_t tag,
                         std::chrono::steady_clock::time_point deadline,
                         std::vector<uint8_t>& scratch);

}  // namespace fabric::distributed::gloo_detail
