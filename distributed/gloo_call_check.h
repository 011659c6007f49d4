// Before a collective of the Gloo group moves any payload over TCP, every rank sends every peer a
// record of its call (which collective, dtype, element count, op, root) and checks theirs against
// it, so that ranks that disagree get an error instead of a dead process.
//
// Why not leave it to Gloo: its TCP transport terminates the process on a size mismatch. A peer's
// message larger than the receive posted for it fails GLOO_ENFORCE_LE(op.preamble.length,
// op.nbytes) in tcp::Pair::prepareRead, on the device's event-loop thread (tcp::Loop::run), where
// nothing catches it: std::terminate. A smaller one completes the receive with the rest of the
// buffer stale. The receive-ready notice carries the receiver's size, but the sending side never
// looks at it, and no hook reaches that thread; so the sizes must be known to agree before Gloo
// posts anything. The records go all-to-all (one small message per peer, sent at once: one
// message latency per collective), so every rank sees every call and reports the same
// disagreement, also a rank whose ring peers agree with it. The barrier is this same exchange with
// nothing to compare but the collective: an all_reduce on one rank against a barrier on another is
// an error at once, not a timeout.
//
// A send and its recv exchange records too, one each way on a slot of their tag and direction,
// and the payload travels on a slot that also carries a fingerprint of its dtype and element count:
// a payload that
// would not fit the receive (or would be read as another dtype) is never matched with it, so
// Gloo never delivers it, and both ranks learn from the records what the other passed. Everything
// is posted at once, in the worker, as before: no step waits for another rank's record to post
// the next, so no order of sends and recvs that worked before can deadlock now.
#pragma once
#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

#include "distributed/process_group.h"
#include "tensor/tensor.h"

namespace gloo {
class Context;
}

namespace fabric::distributed::gloo_detail {

enum class Collective : uint8_t {
  all_reduce,
  reduce_scatter,
  all_gather,
  all_gather_v,
  broadcast,
  barrier,
  send,  // a send and its recv: one record each way between the two ranks
  recv
};
const char* collective_name(Collective c);

// The first dims of a shape that travel, to name it in errors (the element count always does).
inline constexpr int kCallDims = 8;

// One rank's call as it travels: plain bytes of one layout on every rank (the same build).
struct CallRecord {
  int64_t numel = 0;         // elements this rank sends (reduce_scatter, all_gather: its input)
  uint64_t counts_hash = 0;  // all_gather_v: a fingerprint of its counts
  int64_t sizes[kCallDims] = {};
  int32_t ndim = 0;
  int32_t root = -1;  // broadcast
  uint8_t collective = 0;
  uint8_t dtype = 0;
  uint8_t op = 0;  // all_reduce, reduce_scatter
  uint8_t unused[5] = {};
};

// The record of `collective` on `sent` (undefined for the barrier); `counts` for all_gather_v.
CallRecord make_call_record(Collective collective, const Tensor& sent, ReduceOp op = ReduceOp::sum,
                            int root = -1, const std::vector<int64_t>* counts = nullptr);
// The same from the parts of a tensor (the shared-memory all_reduce takes no Tensor).
CallRecord make_call_record(Collective collective, std::span<const int64_t> shape, DType dtype,
                            ReduceOp op = ReduceOp::sum);

// Sends `mine` to every other rank of `context` and returns every rank's record (index = rank),
// under `tag`. TimeoutError at `deadline` naming the ranks whose record never came ("rank 2 did
// not enter the all_reduce (rank 1 did)"); DistributedError when a connection failed.
std::vector<CallRecord> exchange_call_records(gloo::Context& context, uint32_t tag,
                                              const CallRecord& mine,
                                              std::chrono::steady_clock::time_point deadline);

// Throws on the first rank whose record differs from rank 0's, comparing in this order:
// DistributedError (another collective), DTypeError, ShapeError (element count), ValueError (op,
// root); for all_gather_v, ShapeError when the counts of any rank (`counts`: this rank's) differ
// from the element counts the ranks pass. The message names rank 0's call and the other rank's,
// and this rank's when it is neither. Every rank, holding the same records, throws alike.
void check_call_records(const std::vector<CallRecord>& records, int rank,
                        const std::vector<int64_t>* counts = nullptr);

// Slots of a send from rank `src` to rank `dst` with `tag`, and of its recv: the records' (both
// ways; apart from those of a send the other way with the same tag), and the payload's, which
// carries a 24-bit fingerprint of the record's dtype and element count (records that differ there
// give different slots, all but surely: one pair in 16 million would share one).
uint64_t p2p_record_slot(uint32_t tag, int src, int dst);
uint64_t p2p_payload_slot(uint32_t tag, const CallRecord& record);

// Throws when this rank's send/recv record `mine` and the peer's do not make a pair: DTypeError,
// ShapeError (element count). The message names the sender first ("rank 0 sends shape (8,) (8
// elements) to rank 1 but rank 1 receives into shape (4,) (4 elements) with tag 7"): both ranks
// throw alike. (A send meets a recv: the slots keep apart sends, and recvs, of the two ways.)
void check_p2p_records(const CallRecord& mine, const CallRecord& peer, int rank, int peer_rank,
                       uint32_t tag);

}  // namespace fabric::distributed::gloo_detail
