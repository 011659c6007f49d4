// The Gloo process group's private parts, shared by its two source files: the group class, its
// Work and queued ops. gloo_process_group.cpp runs the queue; gloo_collectives.cpp the collectives.
#pragma once
#include <gloo/rendezvous/context.h>
#include <gloo/transport/device.h>
#include <gloo/transport/unbound_buffer.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "distributed/gloo_call_check.h"
#include "distributed/gloo_process_group.h"
#include "distributed/process_group.h"
#include "distributed/shm_collectives.h"
#include "distributed/store.h"
#include "tensor/error.h"
#include "tensor/tensor.h"

namespace fabric::distributed::gloo_detail {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

class GlooProcessGroup;

class GlooWork : public Work {
 public:
  explicit GlooWork(std::weak_ptr<GlooProcessGroup> owner) : owner_(std::move(owner)) {}
  void wait() override;  // after GlooProcessGroup
  bool is_completed() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return done_;
  }
  void finish(std::exception_ptr error) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
      error_ = std::move(error);
    }
    cv_.notify_all();
  }

 private:
  std::weak_ptr<GlooProcessGroup> owner_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::exception_ptr error_;
};

// One queued operation. `run` executes on the worker thread (it holds the tensors); when it
// returns false the op handed its completion to the point-to-point waiter.
struct Op {
  const char* name;
  std::string peers;  // "ring peers rank 1 (send) and rank 2 (recv)", "root rank 0", ...
  std::function<bool(Clock::time_point deadline, const std::shared_ptr<GlooWork>& work)> run;
  std::shared_ptr<GlooWork> work;
};

// The records a send and its recv exchange (gloo_call_check.h), on the heap: Gloo holds their
// addresses while PendingP2P moves. The records are declared first, to outlive their buffers.
struct P2PRecords {
  CallRecord mine, peer;
  std::unique_ptr<gloo::transport::UnboundBuffer> to_peer, from_peer;
};

// A posted send/recv whose completion the waiter thread reports.
struct PendingP2P {
  const char* name;
  std::string peers;
  bool is_send;
  int peer;
  uint32_t tag;
  Tensor tensor;  // kept alive until the transfer is done; declared first so it outlives `buffer`
  std::unique_ptr<gloo::transport::UnboundBuffer> buffer;
  std::unique_ptr<P2PRecords> records;
  Clock::time_point deadline;
  std::shared_ptr<GlooWork> work;
};

class GlooProcessGroup : public ProcessGroup,
                         public std::enable_shared_from_this<GlooProcessGroup> {
 public:
  GlooProcessGroup(std::shared_ptr<Store> store, int rank, int size, const GlooOptions& options);
  ~GlooProcessGroup() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "gloo"; }
  milliseconds timeout() const override { return timeout_; }
  std::optional<Device> device() const override { return Device::cpu(); }

  WorkPtr all_reduce(Tensor& tensor, ReduceOp op) override;
  WorkPtr reduce_scatter(Tensor& output, const Tensor& input, ReduceOp op) override;
  WorkPtr all_gather(Tensor& output, const Tensor& input) override;
  WorkPtr all_gather_v(Tensor& output, const Tensor& input,
                       const std::vector<int64_t>& counts) override;
  WorkPtr broadcast(Tensor& tensor, int root) override;
  WorkPtr barrier() override;
  WorkPtr send(const Tensor& tensor, int dst, uint32_t tag) override;
  WorkPtr recv(Tensor& tensor, int src, uint32_t tag) override;

  // Called by Work::wait(): when `work` is next in line and nothing is running, the waiting
  // thread runs it itself, sparing the two thread wake-ups of the hand-off (measurable on a
  // loaded machine: a fifth of a 64K-float all_reduce). Issue order is kept.
  void run_inline_if_next(const GlooWork* work);

 private:
  std::string where() const {
    return "rank " + std::to_string(rank_) + " of " + std::to_string(size_);
  }
  std::string ring_peers() const {
    return "ring peers rank " + std::to_string((rank_ + 1) % size_) + " (send) and rank " +
           std::to_string((rank_ + size_ - 1) % size_) + " (recv)";
  }
  std::exception_ptr broken_error(const char* name, const std::string& reason) const {
    return std::make_exception_ptr(DistributedError(
        "gloo " + std::string(name) + " (" + where() +
        "): the process group is broken by an earlier failure and cannot be used again: " +
        reason));
  }
  void check_tensor(const Tensor& t, const char* op, const char* arg) const;
  void check_same_dtype(const Tensor& out, const Tensor& in, const char* op) const {
    FABRIC_CHECK(out.dtype() == in.dtype(), DTypeError, "gloo ", op, " (", where(), "): output is ",
                 dtype_name(out.dtype()), " but input is ", dtype_name(in.dtype()),
                 "; expected the same dtype");
  }
  void check_peer(int peer, const char* op, const char* what) const;
  // Exchanges `mine` with every rank under `tag` and throws when any rank's call differs
  // (gloo_call_check.h): on the worker, before a collective's payload goes to Gloo.
  void agree_on_call(const CallRecord& mine, uint32_t tag, Clock::time_point deadline,
                     const std::vector<int64_t>* counts = nullptr);
  // Runs a collective of the shared-memory segment; when a peer announced a TCP collective there
  // instead, sends it `mine` over TCP (where every rank then fails alike) and rethrows.
  void on_segment(const CallRecord& mine, uint32_t tag, Clock::time_point deadline,
                  const std::function<void()>& run);
  // What is left of an op's timeout after the call records were exchanged, for Gloo's own timeout.
  static milliseconds time_left(Clock::time_point deadline) {
    return std::max(milliseconds(1), std::chrono::ceil<milliseconds>(deadline - Clock::now()));
  }
  uint32_t next_tag();
  using RunFn = std::function<bool(Clock::time_point, const std::shared_ptr<GlooWork>&)>;
  WorkPtr enqueue(const char* name, std::string peers, RunFn run);
  WorkPtr post_p2p(const char* name, const Tensor& tensor, int peer, uint32_t tag, bool is_send);
  void worker_loop();
  void execute(Op& op);
  void waiter_loop();
  std::exception_ptr translate(const char* name, const std::string& peers,
                               std::exception_ptr error);
  std::string broken_reason();

  const int rank_;
  const int size_;
  const milliseconds timeout_;
  std::shared_ptr<Store> store_;  // prefixed for this group
  std::shared_ptr<gloo::transport::Device> device_;
  std::shared_ptr<gloo::rendezvous::Context> context_;
  std::unique_ptr<ShmCollectives> shm_;  // null unless every rank is on this host

  std::mutex mu_;  // guards everything below up to the threads
  std::condition_variable cv_;
  std::deque<Op> queue_;
  bool stop_ = false;
  bool running_ = false;  // an op is executing (on the worker or inline in a waiting thread)
  uint32_t collective_tag_ = 0;
  std::string broken_;  // the first failure; non-empty once the group is unusable
  std::condition_variable p2p_cv_;
  std::deque<PendingP2P> p2p_;
  bool p2p_stop_ = false;  // set once the worker (which posts sends/recvs) has exited

  std::vector<uint8_t> scratch_;  // worker thread only: the ring reduce-scatter's buffers
  // Bytes this rank sent in the op now running (set by its run; ops are serialized by running_).
  int64_t op_bytes_ = 0;
  std::thread worker_;
  std::thread waiter_;
};

}  // namespace fabric::distributed::gloo_detail
