// all_reduce, reduce_scatter and all_gather through a shared-memory segment for a Gloo group
// whose ranks all run on one host. Gloo moves every byte over TCP, and a loopback socket costs
// two kernel copies per byte: measured 0.7 GB/s one way on the project's machine, so a 7.4 MB DDP
// gradient all_reduce took 7-12 ms of a 27 ms step; and each small collective of ZeRO-3 and FSDP
// paid a TCP exchange of call records plus a ring of messages, milliseconds each when the ranks
// outnumber the cores. Here each rank copies its part into its slot of the segment, and then every
// rank reads what it needs from every slot: memory speed, one pair of barriers per chunk.
//   all_reduce: each rank reduces a 1/N share of every rank's copy in rank order into the result
//     slot and copies the reduced chunk back: every rank gets the same bits.
//   reduce_scatter: rank r reduces its own chunk over the ranks in the order Gloo's ring (our
//     ring_reduce_scatter) adds them, r+1, r+2, ..., r+N-1, r: the same bits as over TCP.
//   all_gather: every rank copies every slot into its output.
// NCCL's SHM transport plays the same part between GPUs of one host. Gloo still does everything
// else, and all of it across hosts.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "distributed/gloo_call_check.h"
#include "distributed/gloo_reduce.h"
#include "distributed/store.h"
#include "tensor/error.h"

namespace fabric::distributed::gloo_detail {

// What a collective throws when a peer announced a collective that does not go through the
// segment where this rank called one that does: that peer compares the calls over TCP
// (gloo_call_check.h) and waits there for this rank's record, so the caller sends it the same
// way, where the check fails on every rank alike.
class ShmOtherCollective : public DistributedError {
 public:
  using DistributedError::DistributedError;
};

// What a rank passes to a collective of the segment (the tensor it sends: all_reduce's tensor,
// reduce_scatter's and all_gather's input), compared with every peer's before anything is read
// from a slot or written to an output: ranks that disagree get an error instead of each other's
// bytes.
struct ShmCall {
  // Its elements travel; the shape itself only names them in errors. A view: nothing is
  // allocated per call.
  std::span<const int64_t> shape;
  DType dtype;
  ReduceOp op = ReduceOp::sum;  // all_reduce, reduce_scatter
};

// Whether `c` goes through the segment when the group has one (the others go over TCP and are
// announced to it).
bool runs_on_segment(Collective c);

class ShmCollectives {
 public:
  using Clock = std::chrono::steady_clock;

  // Collective over the group's store: every rank calls it at the same point. Returns null, on
  // every rank alike, when the ranks are not all on one host (same hostname, boot, PID and mount
  // namespaces), when any rank has it disabled (`enabled` false, or FABRIC_GLOO_SHM=0 in its
  // environment), or when any rank cannot map the segment. Nothing is left in /dev/shm: the name
  // is unlinked as soon as every rank has mapped it.
  static std::unique_ptr<ShmCollectives> connect(Store& store, int rank, int size, bool enabled);
  ~ShmCollectives();
  ShmCollectives(const ShmCollectives&) = delete;
  ShmCollectives& operator=(const ShmCollectives&) = delete;

  // Every collective below: each rank publishes `call` with its arrival (an empty tensor too);
  // when the ranks disagree on the collective, the number of elements, the dtype or the op, every
  // rank throws what the TCP call check would (DistributedError, ShapeError, DTypeError,
  // ValueError: naming rank 0's call and the first rank that differs from it), nothing is written
  // to the outputs, and the segment is broken, as after abort(). ShmOtherCollective when a peer
  // announced a collective that does not come here instead. TimeoutError after `deadline`, naming
  // the rank that did not come; the same TimeoutError, naming that same rank, when a peer gave up
  // waiting for it first (every rank left waiting for a missing one sees a timeout, whichever
  // deadline passes first); DistributedError when a peer process has died or a peer's group broke
  // otherwise (see abort()). Not thread-safe: one caller per group.

  // Reduces the numel(call.shape) elements of call.dtype at data in place over all ranks with fn
  // (c = a op b, applied in rank order).
  void all_reduce(void* data, const ShmCall& call, ReduceFn fn, Clock::time_point deadline);
  // `in` holds size chunks of numel(call.shape) / size elements; chunk `rank` reduced over all
  // ranks with fn goes to `out` (which may be that chunk of `in`), in the TCP ring's order.
  void reduce_scatter(void* out, const void* in, const ShmCall& call, ReduceFn fn,
                      Clock::time_point deadline);
  // `out` receives size blocks of numel(call.shape) elements, rank q's `in` at block q (`in` may
  // be this rank's block of `out`).
  void all_gather(void* out, const void* in, const ShmCall& call, Clock::time_point deadline);

  // Publishes `record`, the call of a collective that does not go through the segment, with this
  // rank's arrival, and returns at once: a peer that called a collective of the segment at this
  // point learns from it that the calls differ (ShmOtherCollective) instead of waiting for its
  // timeout. Every rank calls announce() or a collective for each collective, so that the
  // arrivals stay in step. Nothing when the segment is broken (the caller's TCP check reports the
  // failure).
  void announce(const CallRecord& record);

  // Marks the segment broken, so that peers waiting in a collective fail at once instead of at
  // their timeout (the TCP equivalent: a closed connection). The first mark wins: a later abort()
  // keeps the cause of an earlier timeout.
  void abort();

 private:
  ShmCollectives(int rank, int size, void* base, size_t bytes);
  uint32_t* arrived(int r) const;
  uint32_t* reduced(int r) const;  // rank r is done reading the slots of its last round
  int32_t* pid(int r) const;
  CallRecord* call_record(int r) const;  // what rank r passed to its current call
  // Every rank's call against rank 0's; throws on the first difference (every rank alike).
  void check_calls();
  uint64_t* broken() const;  // 0, or why the segment broke (encoded by shm_collectives.cpp)
  void mark_broken(uint64_t cause);
  [[noreturn]] void throw_broken(uint64_t cause, int awaited, const char* stage) const;
  char* slot(int r) const;  // slot(size_) is all_reduce's reduced chunk
  void publish(uint32_t* word, uint32_t value);
  void wait_all(uint32_t* (ShmCollectives::*counter)(int) const, uint32_t value,
                Clock::time_point deadline, const char* stage);
  bool peer_alive(int r) const;
  // The frame of every collective: checks the segment, publishes the call record, runs `rounds`
  // rounds (at least one, so that an empty call's record meets the others) and breaks the segment
  // when one throws. A round: fill(k) writes this rank's part of round k into its slot; arrival
  // barrier; the records are compared on round 0; use(k) reads the slots; "done reading" barrier
  // (`stage` names it in a timeout); after(k).
  template <class Fill, class Use, class After>
  void run_rounds(Collective collective, const ShmCall& call, size_t rounds, const char* stage,
                  Fill fill, Use use, After after, Clock::time_point deadline);
  std::string what() const;  // "shared-memory all_reduce" etc., for messages

  const int rank_;
  const int size_;
  void* base_;
  const size_t bytes_;
  // The group has more ranks than this process has cores: waiters yield instead of spinning.
  const bool oversubscribed_;
  uint32_t generation_ = 0;
  Collective current_ = Collective::all_reduce;  // the call in progress (messages)
  std::vector<CallRecord> calls_;  // check_calls()' copy of the records: allocated once
};

}  // namespace fabric::distributed::gloo_detail
