// all_reduce through a shared-memory segment for a Gloo group whose ranks all run on one host.
// Gloo moves every byte over TCP, and a loopback socket costs two kernel copies per byte: measured
// 0.7 GB/s one way on the project's machine, so a 7.4 MB DDP gradient all_reduce took 7-12 ms of a
// 27 ms step. Here each rank copies its chunk into the segment, reduces a 1/N share of it over
// every rank's copy in rank order, and copies the reduced chunk back: memory speed, and every rank
// gets the same bits (each element is reduced once, by one rank). NCCL's SHM transport plays the
// same part between GPUs of one host. Gloo still does everything else, and all of it across hosts.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "distributed/gloo_reduce.h"
#include "distributed/store.h"
#include "tensor/error.h"

namespace fabric::distributed::gloo_detail {

struct CallRecord;  // gloo_call_check.h

// What run() throws when a peer announced another collective where this rank called run(): that
// peer compares the calls over TCP (gloo_call_check.h) and waits there for this rank's record, so
// the caller sends it the same way, where the check fails on every rank alike.
class ShmOtherCollective : public DistributedError {
 public:
  using DistributedError::DistributedError;
};

// What a rank passes to ShmAllReduce::run, compared with every peer's before anything is reduced:
// ranks that disagree get an error instead of each other's bytes.
struct ShmAllReduceCall {
  // Its elements are reduced; the shape itself only names them in errors. A view: nothing is
  // allocated per call.
  std::span<const int64_t> shape;
  DType dtype;
  ReduceOp op;
};

class ShmAllReduce {
 public:
  using Clock = std::chrono::steady_clock;

  // Collective over the group's store: every rank calls it at the same point. Returns null, on
  // every rank alike, when the ranks are not all on one host (same hostname, boot, PID and mount
  // namespaces), when any rank has it disabled (`enabled` false, or FABRIC_GLOO_SHM=0 in its
  // environment), or when any rank cannot map the segment. Nothing is left in /dev/shm: the name
  // is unlinked as soon as every rank has mapped it.
  static std::unique_ptr<ShmAllReduce> connect(Store& store, int rank, int size, bool enabled);
  ~ShmAllReduce();
  ShmAllReduce(const ShmAllReduce&) = delete;
  ShmAllReduce& operator=(const ShmAllReduce&) = delete;

  // Reduces the numel(call.shape) elements of call.dtype at data in place over all ranks with fn
  // (c = a op b, applied in rank order). Each rank publishes `call` with its arrival (an empty
  // tensor too); when the ranks disagree on the number of elements, the dtype or the op, every
  // rank throws what the TCP call check would (ShapeError, DTypeError, ValueError: naming rank 0's
  // call and the first rank that differs from it) and the segment is broken, as after abort().
  // ShmOtherCollective when a peer announced another collective instead. TimeoutError after
  // `deadline`, naming the rank that did not come; the same TimeoutError, naming that same rank,
  // when a peer gave up waiting for it first (every rank left waiting for a missing one sees a
  // timeout, whichever deadline passes first); DistributedError when a peer process has died or a
  // peer's group broke otherwise (see abort()). Not thread-safe: one caller per group.
  void run(void* data, const ShmAllReduceCall& call, ReduceFn fn, Clock::time_point deadline);

  // Publishes `record`, the call of a collective that does not go through the segment, with this
  // rank's arrival, and returns at once: a peer that called run() at this point learns from it
  // that the calls differ (ShmOtherCollective) instead of waiting for its timeout. Every rank
  // calls announce() or run() for each collective, so that the arrivals stay in step. Nothing
  // when the segment is broken (the caller's TCP check reports the failure).
  void announce(const CallRecord& record);

  // Marks the segment broken, so that peers waiting in run() fail at once instead of at their
  // timeout (the TCP equivalent: a closed connection). The first mark wins: a later abort() keeps
  // the cause of an earlier timeout.
  void abort();

 private:
  ShmAllReduce(int rank, int size, void* base, size_t bytes);
  uint32_t* arrived(int r) const;
  uint32_t* reduced(int r) const;
  int32_t* pid(int r) const;
  CallRecord* call_record(int r) const;  // what rank r passed to its current call
  // Every rank's call against rank 0's; throws on the first difference (every rank alike).
  void check_calls();
  uint64_t* broken() const;  // 0, or why the segment broke (encoded by shm_all_reduce.cpp)
  void mark_broken(uint64_t cause);
  [[noreturn]] void throw_broken(uint64_t cause, int awaited, const char* stage) const;
  char* slot(int r) const;  // slot(size_) is the reduced chunk
  void publish(uint32_t* word, uint32_t value);
  void wait_all(uint32_t* (ShmAllReduce::*counter)(int) const, uint32_t value,
                Clock::time_point deadline, const char* stage);
  bool peer_alive(int r) const;

  const int rank_;
  const int size_;
  void* base_;
  const size_t bytes_;
  uint32_t generation_ = 0;
  std::vector<CallRecord> calls_;  // check_calls()' copy of the records: allocated once
};

}  // namespace fabric::distributed::gloo_detail
