// The state behind one NCCL process group: the non-blocking communicator, its stream, and the
// records of issued operations, which Work polls against the timeout and a watchdog thread checks
// while nobody waits. Internal (CUDA builds only).
#pragma once
#ifdef FABRIC_WITH_CUDA
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "distributed/store.h"
#include "tensor/tensor.h"

namespace fabric::distributed::nccl_comm_detail {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string cuda_msg(const char* call, cudaError_t e);

// One issued operation: its completion event and the tensors it reads and writes, kept alive until
// the event has completed (or the group is torn down).
struct OpRecord {
  const char* name = "";
  std::string peers;  // "root rank 1", "peer rank 0", ... (empty for plain collectives)
  cudaEvent_t done = nullptr;
  Clock::time_point deadline;
  std::vector<Tensor> keep;
  // Set under CommState::mu_ when the op failed or the group broke before it completed.
  std::string error;
  bool timed_out = false;

  OpRecord() = default;
  OpRecord(const OpRecord&) = delete;
  OpRecord& operator=(const OpRecord&) = delete;
  ~OpRecord() {
    if (done != nullptr) cudaEventDestroy(done);  // deferred by CUDA while the event is pending
  }
};

// Enqueues an op's NCCL calls; `call` names the one whose result is returned (for errors).
using Launch = std::function<ncclResult_t(ncclComm_t, cudaStream_t, const char*& call)>;

// The communicator, stream and outstanding work of one group, shared by the group and its Work
// objects so that a Work may outlive the group. Torn down when the last of them goes.
class CommState {
 public:
  CommState(int rank, int size, int device, milliseconds timeout)
      : rank_(rank), size_(size), device_(device), timeout_(timeout) {}
  ~CommState();
  CommState(const CommState&) = delete;
  CommState& operator=(const CommState&) = delete;

  void init(std::shared_ptr<Store> store);
  std::shared_ptr<OpRecord> issue(const char* op, std::string peers, std::vector<Tensor> keep,
                                  const char* call, const Launch& launch);
  void wait(OpRecord& rec);
  bool completed(const OpRecord& rec) const;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int device() const { return device_; }
  milliseconds timeout() const { return timeout_; }
  bool fp8_reductions() const { return fp8_reductions_; }
  float* barrier_buffer() const { return barrier_buf_; }
  std::string head(const char* op, const std::string& peers = "") const {
    return "nccl " + std::string(op) + " (rank " + std::to_string(rank_) + " of " +
           std::to_string(size_) + ", cuda:" + std::to_string(device_) +
           (peers.empty() ? "" : ", " + peers) + ")";
  }

 private:
  // `say`: also on stderr, before the abort releases threads blocked behind the group's kernels.
  std::string break_locked(const char* op, const std::string& peers, const std::string& msg,
                           bool timeout, OpRecord* trigger, bool say = false);
  [[noreturn]] void fail_locked(const char* op, const std::string& peers, const std::string& msg,
                                bool timeout, OpRecord* trigger);
  [[noreturn]] void throw_record(const OpRecord& rec) const;
  void check_cuda_locked(const char* op, const std::string& peers, const char* call,
                         cudaError_t e) {
    if (e != cudaSuccess) fail_locked(op, peers, cuda_msg(call, e), false, nullptr);
  }
  void settle_locked(const char* op, const std::string& peers, const char* call, ncclResult_t r,
                     Clock::time_point deadline);
  // Moves the completed ops at the front out of in_flight_ into `done`, which the caller destroys
  // after unlocking mu_: freeing an op's tensors may wait for the caching allocator, whose lock a
  // thread may hold across a device-wide wait for this very group (the watchdog must not wait
  // behind it with mu_ held).
  void reap_locked(std::vector<std::shared_ptr<OpRecord>>& done);
  void watch();
  void watch_locked();
  // The oldest unfinished op past its deadline: breaks the group (a waiter's message, or the
  // watchdog's) and returns the message; "" when none is.
  std::string time_out_oldest_locked(const char* found_by, bool say);

  const int rank_, size_, device_;
  const milliseconds timeout_;
  bool fp8_reductions_ = false;  // NCCL reduces fp8 on sm_90 and newer only

  mutable std::mutex mu_;  // guards everything below; every use of comm_ holds it
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr;  // recorded on the caller's stream before each op
  float* barrier_buf_ = nullptr;
  std::string broken_;  // the first failure; non-empty once the group is unusable
  std::deque<std::shared_ptr<OpRecord>> in_flight_;  // in issue order, which is completion order

  // The watchdog: breaks the group when the oldest op passes its deadline or NCCL reports an
  // error while no thread waits for it (a rank blocked in cudaDeviceSynchronize, or one that never
  // waits), so that the abort stops NCCL's kernels and the device drains instead of hanging.
  std::thread watchdog_;
  std::condition_variable wake_watchdog_;
  bool stopping_ = false;
};

}  // namespace fabric::distributed::nccl_comm_detail
#endif  // FABRIC_WITH_CUDA
