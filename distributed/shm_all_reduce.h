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

#include "distributed/gloo_reduce.h"
#include "distributed/store.h"

namespace fabric::distributed::gloo_detail {

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

  // Reduces n elements of itemsize bytes at data in place over all ranks with fn (c = a op b,
  // applied in rank order). TimeoutError after `deadline`, naming the rank that did not come; the
  // same TimeoutError, naming that same rank, when a peer gave up waiting for it first (every
  // rank left waiting for a missing one sees a timeout, whichever deadline passes first);
  // DistributedError when a peer process has died or a peer's group broke otherwise (see
  // abort()). Not thread-safe: one caller per group.
  void run(void* data, size_t n, size_t itemsize, ReduceFn fn, Clock::time_point deadline);

  // Marks the segment broken, so that peers waiting in run() fail at once instead of at their
  // timeout (the TCP equivalent: a closed connection). The first mark wins: a later abort() keeps
  // the cause of an earlier timeout.
  void abort();

 private:
  ShmAllReduce(int rank, int size, void* base, size_t bytes);
  uint32_t* arrived(int r) const;
  uint32_t* reduced(int r) const;
  int32_t* pid(int r) const;
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
};

}  // namespace fabric::distributed::gloo_detail
