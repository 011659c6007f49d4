// The NCCL communicator state: init over the store, teardown that aborts what does not finish,
// issuing and waiting for operations with NCCL's asynchronous errors and the group timeout, and
// the watchdog that enforces both while no thread waits.
#include "distributed/nccl_comm.h"

#ifdef FABRIC_WITH_CUDA
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <thread>
#include <utility>

#include "tensor/error.h"

namespace fabric::distributed::nccl_comm_detail {

namespace {

// The stream the caller's kernels are ordered against. The legacy default stream waits for, and
// is waited on by, every blocking stream of its device (per-thread default streams included), so
// an event recorded there covers whatever the caller issued before, however its code was built.
const cudaStream_t kCallerStream = cudaStreamLegacy;

// How long teardown waits for outstanding work and for ncclCommFinalize before aborting.
constexpr milliseconds kTeardownWait{10000};

// How often the watchdog looks at the oldest outstanding op (at most; never less often than a
// quarter of the timeout, so a short timeout is still enforced close to its deadline).
constexpr milliseconds kWatchEvery{100};

}  // namespace

std::string cuda_msg(const char* call, cudaError_t e) {
  return std::string(call) + " failed: " + cudaGetErrorString(e) + " (code " +
         std::to_string(int(e)) + ")";
}

namespace {

std::string nccl_detail(ncclResult_t r, ncclComm_t comm) {
  std::string m = std::string(ncclGetErrorString(r)) + " (code " + std::to_string(int(r)) + ")";
  const char* last = ncclGetLastError(comm);
  if (last != nullptr && last[0] != '\0') m += "; NCCL's last error: " + std::string(last);
  return m;
}

std::string nccl_msg(const char* call, ncclResult_t r, ncclComm_t comm) {
  return std::string(call) + " failed: " + nccl_detail(r, comm);
}

// An error NCCL found in the background (a peer failed, a network error, ...), not in one call.
std::string async_msg(ncclResult_t r, ncclComm_t comm) {
  return "the communicator reported an asynchronous error: " + nccl_detail(r, comm);
}

// Busy-polls briefly (collectives often finish in microseconds), then sleeps with a growing step.
void pause(int iteration) {
  if (iteration < 64) {
    std::this_thread::yield();
  } else {
    const int us = std::min(1000, 20 * (iteration - 63));
    std::this_thread::sleep_for(std::chrono::microseconds(us));
  }
}

// Makes `device` current on this thread and restores the previous device afterwards: NCCL and the
// stream/event calls act on the current device, and the caller's thread must not be left moved.
class DeviceGuard {
 public:
  DeviceGuard(int device, std::nothrow_t) noexcept {
    error_ = cudaGetDevice(&prev_);
    if (error_ != cudaSuccess) {
      call_ = "cudaGetDevice";
      return;
    }
    if (prev_ != device) {
      error_ = cudaSetDevice(device);
      if (error_ != cudaSuccess) {
        call_ = "cudaSetDevice";
        return;
      }
      restore_ = true;
    }
  }
  ~DeviceGuard() {
    if (restore_) cudaSetDevice(prev_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;
  bool ok() const { return error_ == cudaSuccess; }
  std::string error() const { return cuda_msg(call_, error_); }

 private:
  int prev_ = 0;
  bool restore_ = false;
  cudaError_t error_ = cudaSuccess;
  const char* call_ = "";
};

}  // namespace

void CommState::init(std::shared_ptr<Store> store) {
  const std::string what = "nccl process group (rank " + std::to_string(rank_) + " of " +
                           std::to_string(size_) + ", cuda:" + std::to_string(device_) +
                           ", timeout " + std::to_string(timeout_.count()) + " ms)";
  int count = 0;
  const cudaError_t ce = cudaGetDeviceCount(&count);
  if (ce != cudaSuccess) {
    throw DeviceError(what + ": no usable CUDA device: " + cuda_msg("cudaGetDeviceCount", ce));
  }
  FABRIC_CHECK(device_ < count, DeviceError, what, ": CUDA device ", device_, " does not exist (",
               count, " visible); expected 0 <= device < ", count);
  // The rank's GPU becomes the calling thread's current device and stays so, as Lightning's
  // CUDAAccelerator.setup_device (torch.cuda.set_device) makes it: the backend's device guards put
  // back the device they found, and with GPU 0 left current every rank process would make a
  // context there too (hundreds of MB each on GPU 0; refused in EXCLUSIVE_PROCESS mode).
  const cudaError_t made_current = cudaSetDevice(device_);
  if (made_current != cudaSuccess)
    throw DeviceError(what + ": " + cuda_msg("cudaSetDevice", made_current));

  // Several groups share one store: the n-th group this rank creates on it uses prefix nccl/n,
  // which matches across ranks as long as all create their groups in the same order.
  const int64_t index = store->add("nccl/groups_created_by_rank_" + std::to_string(rank_), 1) - 1;
  const std::string prefix = "nccl/" + std::to_string(index);
  PrefixStore pstore(prefix, std::move(store));

  DeviceGuard guard(device_, std::nothrow);
  if (!guard.ok()) throw DistributedError(what + ": " + guard.error());
  auto check = [&](const char* call, cudaError_t e) {
    if (e != cudaSuccess) throw DistributedError(what + ": " + cuda_msg(call, e));
  };
  int major = 0;
  check("cudaDeviceGetAttribute",
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device_));
  fp8_reductions_ = major >= 9;
  check("cudaStreamCreateWithFlags", cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  check("cudaEventCreateWithFlags", cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
  check("cudaMalloc", cudaMalloc(reinterpret_cast<void**>(&barrier_buf_), sizeof(float)));
  check("cudaMemset", cudaMemset(barrier_buf_, 0, sizeof(float)));

  ncclUniqueId id;
  std::memset(&id, 0, sizeof(id));
  if (rank_ == 0) {
    const ncclResult_t r = ncclGetUniqueId(&id);
    if (r != ncclSuccess)
      throw DistributedError(what + ": " + nccl_msg("ncclGetUniqueId", r, nullptr));
    const auto* p = reinterpret_cast<const uint8_t*>(&id);
    pstore.set("nccl_unique_id", Bytes(p, p + sizeof(id)));
  } else {
    Bytes b;
    try {
      b = pstore.get("nccl_unique_id");  // waits up to the store's timeout
    } catch (const TimeoutError& e) {
      throw TimeoutError(what + ": rank 0 did not publish the NCCL unique id (store prefix '" +
                         prefix + "'; did rank 0 start and reach the store?): " + e.what());
    }
    FABRIC_CHECK(b.size() == sizeof(id), DistributedError, what,
                 ": the NCCL unique id in the store (key '", prefix, "/nccl_unique_id') has ",
                 b.size(), " bytes, expected ", sizeof(id));
    std::memcpy(&id, b.data(), sizeof(id));
  }

  // Non-blocking, so that a rank that never joins costs a timeout and an abort, not a hang.
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  const auto deadline = Clock::now() + timeout_;
  std::lock_guard<std::mutex> lock(mu_);
  ncclResult_t r = ncclCommInitRankConfig(&comm_, size_, id, rank_, &config);
  if (r != ncclSuccess && r != ncclInProgress) {
    const std::string msg = nccl_msg("ncclCommInitRankConfig", r, comm_);
    if (comm_ != nullptr) ncclCommAbort(comm_);
    comm_ = nullptr;
    throw DistributedError(what + ": " + msg);
  }
  for (int it = 0;; ++it) {
    ncclResult_t state = ncclInProgress;
    r = ncclCommGetAsyncError(comm_, &state);
    if (r != ncclSuccess || (state != ncclSuccess && state != ncclInProgress)) {
      const std::string msg = r != ncclSuccess ? nccl_msg("ncclCommGetAsyncError", r, comm_)
                                               : nccl_msg("ncclCommInitRankConfig", state, comm_);
      ncclCommAbort(comm_);
      comm_ = nullptr;
      throw DistributedError(what + ": creating the communicator failed: " + msg);
    }
    if (state == ncclSuccess) break;
    if (Clock::now() >= deadline) {
      ncclCommAbort(comm_);
      comm_ = nullptr;
      throw TimeoutError(what + ": creating the communicator timed out after " +
                         std::to_string(timeout_.count()) +
                         " ms (did every rank start and call make_nccl_process_group?)");
    }
    pause(it);
  }
  watchdog_ = std::thread([this] { watch(); });
}

void CommState::watch() {
  // NCCL and event calls act on the current device, which is per thread.
  cudaSetDevice(device_);
  const milliseconds every = std::max(milliseconds(1), std::min(kWatchEvery, timeout_ / 4));
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    wake_watchdog_.wait_for(lock, every);
    if (stopping_ || comm_ == nullptr || !broken_.empty()) continue;
    std::vector<std::shared_ptr<OpRecord>> done;
    reap_locked(done);
    watch_locked();
    lock.unlock();
    done.clear();  // their tensors go back to the allocator without mu_ held
    lock.lock();
  }
}

// One look of the watchdog: an error NCCL reports, or an op past its deadline, breaks the group as
// a waiting thread would (the same messages, so a later wait() throws what it would have thrown),
// and says so on stderr, since the thread it concerns may be blocked elsewhere and learn it late.
void CommState::watch_locked() {
  if (in_flight_.empty()) return;
  OpRecord& oldest = *in_flight_.front();
  ncclResult_t state = ncclSuccess;
  const ncclResult_t a = ncclCommGetAsyncError(comm_, &state);
  if (a != ncclSuccess) {
    break_locked(oldest.name, oldest.peers, nccl_msg("ncclCommGetAsyncError", a, comm_), false,
                 &oldest, /*say=*/true);
  } else if (state != ncclSuccess && state != ncclInProgress) {
    break_locked(oldest.name, oldest.peers, async_msg(state, comm_), false, &oldest,
                 /*say=*/true);
  } else {
    time_out_oldest_locked("found by the group's watchdog", /*say=*/true);
  }
}

std::string CommState::time_out_oldest_locked(const char* found_by, bool say) {
  if (in_flight_.empty()) return "";
  OpRecord& oldest = *in_flight_.front();
  if (Clock::now() < oldest.deadline || cudaEventQuery(oldest.done) != cudaErrorNotReady) return "";
  return break_locked(oldest.name, oldest.peers,
                      std::string("the operation had not completed on the GPU (") + found_by + ")",
                      true, &oldest, say);
}

CommState::~CommState() {
  // Never throws: every failure here only decides between a clean destroy and an abort.
  if (watchdog_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    wake_watchdog_.notify_all();
    watchdog_.join();
  }
  DeviceGuard guard(device_, std::nothrow);
  std::lock_guard<std::mutex> lock(mu_);
  const auto deadline = Clock::now() + std::min(timeout_, kTeardownWait);
  bool healthy = comm_ != nullptr && broken_.empty() && guard.ok();
  // Outstanding work finishes in issue order: waiting for the last op waits for them all.
  for (int it = 0; healthy && !in_flight_.empty(); ++it) {
    const cudaError_t q = cudaEventQuery(in_flight_.back()->done);
    if (q == cudaSuccess) break;
    ncclResult_t state = ncclSuccess;
    if (q != cudaErrorNotReady || ncclCommGetAsyncError(comm_, &state) != ncclSuccess ||
        (state != ncclSuccess && state != ncclInProgress) || Clock::now() >= deadline) {
      healthy = false;
      break;
    }
    pause(it);
  }
  if (comm_ != nullptr) {
    bool finalized = false;
    if (healthy) {
      // Finalize flushes and quiesces; on a non-blocking communicator it reports its progress
      // through the async error, after which ncclCommDestroy only frees local resources.
      const ncclResult_t f = ncclCommFinalize(comm_);
      for (int it = 0; f == ncclSuccess || f == ncclInProgress; ++it) {
        ncclResult_t state = ncclInProgress;
        if (ncclCommGetAsyncError(comm_, &state) != ncclSuccess) break;
        if (state == ncclSuccess) {
          finalized = true;
          break;
        }
        if (state != ncclInProgress || Clock::now() >= deadline) break;
        pause(it);
      }
    }
    // Destroy frees the communicator even when it reports an error: never abort after it.
    if (finalized)
      ncclCommDestroy(comm_);
    else
      ncclCommAbort(comm_);
    comm_ = nullptr;
  }
  if (stream_ != nullptr) {
    // After an abort NCCL's kernels quit; give the stream a moment to drain before the tensors go.
    const auto drain = Clock::now() + milliseconds(1000);
    for (int it = 0; cudaStreamQuery(stream_) == cudaErrorNotReady && Clock::now() < drain; ++it)
      pause(it);
    cudaStreamDestroy(stream_);
    stream_ = nullptr;
  }
  in_flight_.clear();
  if (ready_ != nullptr) cudaEventDestroy(ready_);
  if (barrier_buf_ != nullptr) cudaFree(barrier_buf_);
}

void CommState::throw_record(const OpRecord& rec) const {
  if (rec.timed_out) throw TimeoutError(rec.error);
  throw DistributedError(rec.error);
}

// Breaks the group: the first failure is remembered, every op not yet complete is failed with it,
// and the communicator is aborted (which also stops NCCL kernels waiting for a peer). Returns the
// failure's full message.
std::string CommState::break_locked(const char* op, const std::string& peers,
                                    const std::string& msg, bool timeout, OpRecord* trigger,
                                    bool say) {
  const std::string full =
      head(op, peers) +
      (timeout ? " timed out after " + std::to_string(timeout_.count()) +
                     " ms (did every rank issue the same collectives in the same order?): "
               : " failed: ") +
      msg + "; the communicator was aborted";
  if (broken_.empty()) broken_ = full;
  if (trigger != nullptr && trigger->error.empty()) {
    trigger->error = full;
    trigger->timed_out = timeout;
  }
  for (auto& rec : in_flight_) {
    if (rec->error.empty() && cudaEventQuery(rec->done) != cudaSuccess) {
      rec->error =
          head(rec->name, rec->peers) + " did not complete: the process group broke: " + full;
    }
  }
  if (say) std::fprintf(stderr, "fabric: %s\n", full.c_str());
  if (comm_ != nullptr) {
    ncclCommAbort(comm_);  // its own failure changes nothing: the group is broken either way
    comm_ = nullptr;
  }
  return full;
}

void CommState::fail_locked(const char* op, const std::string& peers, const std::string& msg,
                            bool timeout, OpRecord* trigger) {
  const std::string full = break_locked(op, peers, msg, timeout, trigger);
  if (timeout) throw TimeoutError(full);
  throw DistributedError(full);
}

// A non-blocking communicator may answer ncclInProgress while it still sets up connections and
// enqueues the kernels; nothing may be issued on it (or recorded after the op) until that is done.
void CommState::settle_locked(const char* op, const std::string& peers, const char* call,
                              ncclResult_t r, Clock::time_point deadline) {
  if (r == ncclSuccess) return;
  if (r != ncclInProgress) fail_locked(op, peers, nccl_msg(call, r, comm_), false, nullptr);
  for (int it = 0;; ++it) {
    ncclResult_t state = ncclInProgress;
    const ncclResult_t q = ncclCommGetAsyncError(comm_, &state);
    if (q != ncclSuccess)
      fail_locked(op, peers, nccl_msg("ncclCommGetAsyncError", q, comm_), false, nullptr);
    if (state == ncclSuccess) return;
    if (state != ncclInProgress) {
      fail_locked(op, peers, async_msg(state, comm_) + " (while enqueuing " + call + ")", false,
                  nullptr);
    }
    if (Clock::now() >= deadline) {
      fail_locked(op, peers,
                  std::string(call) + " was still enqueuing (NCCL reported ncclInProgress)", true,
                  nullptr);
    }
    // The watchdog cannot look while this holds mu_: an older op past its deadline is timed out
    // here instead of after this one's whole timeout.
    const std::string older =
        time_out_oldest_locked("found while enqueuing a later operation", /*say=*/false);
    if (!older.empty()) throw TimeoutError(older);
    pause(it);
  }
}

void CommState::reap_locked(std::vector<std::shared_ptr<OpRecord>>& done) {
  while (!in_flight_.empty() && cudaEventQuery(in_flight_.front()->done) == cudaSuccess) {
    done.push_back(std::move(in_flight_.front()));
    in_flight_.pop_front();
  }
}

std::shared_ptr<OpRecord> CommState::issue(const char* op, std::string peers,
                                           std::vector<Tensor> keep, const char* call,
                                           const Launch& launch) {
  // Declared before the lock: the reaped ops' tensors are freed after mu_ is released.
  std::vector<std::shared_ptr<OpRecord>> done;
  std::lock_guard<std::mutex> lock(mu_);
  if (!broken_.empty()) {
    throw DistributedError(
        head(op, peers) +
        ": the process group is broken by an earlier failure and cannot be used again: " + broken_);
  }
  DeviceGuard guard(device_, std::nothrow);
  if (!guard.ok()) fail_locked(op, peers, guard.error(), false, nullptr);
  reap_locked(done);
  auto rec = std::make_shared<OpRecord>();
  rec->name = op;
  rec->peers = std::move(peers);
  rec->deadline = Clock::now() + timeout_;
  rec->keep = std::move(keep);
  check_cuda_locked(op, rec->peers, "cudaEventCreateWithFlags",
                    cudaEventCreateWithFlags(&rec->done, cudaEventDisableTiming));
  // The op reads what the caller's kernels wrote: order the group stream after them.
  check_cuda_locked(op, rec->peers, "cudaEventRecord", cudaEventRecord(ready_, kCallerStream));
  check_cuda_locked(op, rec->peers, "cudaStreamWaitEvent", cudaStreamWaitEvent(stream_, ready_, 0));
  try {
    // An empty op issues no NCCL call (every rank skips it alike) but still orders like one.
    const ncclResult_t result = launch ? launch(comm_, stream_, call) : ncclSuccess;
    settle_locked(op, rec->peers, call, result, rec->deadline);
    check_cuda_locked(op, rec->peers, "cudaEventRecord", cudaEventRecord(rec->done, stream_));
  } catch (...) {
    // NCCL may have enqueued kernels on the stream before failing, and an abort only makes them
    // quit soon, not at once: the op's tensors stay alive until the stream has passed its event
    // (reaped as any op, or drained at teardown), so their memory is not reused under them.
    cudaEventRecord(rec->done, stream_);
    in_flight_.push_back(rec);
    throw;
  }
  in_flight_.push_back(rec);
  return rec;
}

bool CommState::completed(const OpRecord& rec) const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!rec.error.empty()) return true;
  }
  // NotReady is the only "still running"; any error is reported by wait().
  return cudaEventQuery(rec.done) != cudaErrorNotReady;
}

void CommState::wait(OpRecord& rec) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!rec.error.empty()) throw_record(rec);
  }
  DeviceGuard guard(device_, std::nothrow);
  if (!guard.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_locked(rec.name, rec.peers, guard.error(), false, &rec);
  }
  for (int it = 0;; ++it) {
    const cudaError_t q = cudaEventQuery(rec.done);
    std::vector<Tensor> released;  // freed after mu_ is released (see reap_locked)
    {
      std::lock_guard<std::mutex> lock(mu_);
      // Checked after the query: a break marks unfinished ops before its abort lets them
      // "complete".
      if (!rec.error.empty()) throw_record(rec);
      if (q == cudaSuccess) {
        released.swap(rec.keep);
        // Later kernels on the caller's stream read the result.
        check_cuda_locked(rec.name, rec.peers, "cudaStreamWaitEvent",
                          cudaStreamWaitEvent(kCallerStream, rec.done, 0));
        return;
      }
      if (q != cudaErrorNotReady)
        fail_locked(rec.name, rec.peers, cuda_msg("cudaEventQuery", q), false, &rec);
      if (comm_ == nullptr) {
        // Defensive: the communicator is gone (every op pending then was marked), so this op
        // can never complete.
        rec.error =
            head(rec.name, rec.peers) + " did not complete: the process group broke: " + broken_;
        throw_record(rec);
      }
      ncclResult_t state = ncclSuccess;
      const ncclResult_t a = ncclCommGetAsyncError(comm_, &state);
      if (a != ncclSuccess)
        fail_locked(rec.name, rec.peers, nccl_msg("ncclCommGetAsyncError", a, comm_), false, &rec);
      if (state != ncclSuccess && state != ncclInProgress) {
        fail_locked(rec.name, rec.peers, async_msg(state, comm_), false, &rec);
      }
      if (Clock::now() >= rec.deadline) {
        fail_locked(rec.name, rec.peers, "the operation had not completed on the GPU", true, &rec);
      }
    }
    pause(it);  // unlocked, so that other threads can issue meanwhile
  }
}

}  // namespace fabric::distributed::nccl_comm_detail
#endif  // FABRIC_WITH_CUDA
