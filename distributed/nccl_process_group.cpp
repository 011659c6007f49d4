// The NCCL process group: a non-blocking NCCL communicator (so that a hung or failed collective
// can be aborted), one CUDA stream per group ordered after the caller's default stream, and Work
// that polls its event and NCCL's asynchronous error against the group timeout.
#include "distributed/nccl_process_group.h"

#include "tensor/error.h"

#ifdef FABRIC_WITH_CUDA
#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <utility>
#include <vector>
#endif

namespace fabric::distributed {

#ifdef FABRIC_WITH_CUDA

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The stream the caller's kernels are ordered against. The legacy default stream waits for, and
// is waited on by, every blocking stream of its device (per-thread default streams included), so
// an event recorded there covers whatever the caller issued before, however its code was built.
const cudaStream_t kCallerStream = cudaStreamLegacy;

// How long teardown waits for outstanding work and for ncclCommFinalize before aborting.
constexpr milliseconds kTeardownWait{10000};

std::string cuda_msg(const char* call, cudaError_t e) {
  return std::string(call) + " failed: " + cudaGetErrorString(e) + " (code " +
         std::to_string(int(e)) + ")";
}

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
  [[noreturn]] void fail_locked(const char* op, const std::string& peers, const std::string& msg,
                                bool timeout, OpRecord* trigger);
  [[noreturn]] void throw_record(const OpRecord& rec) const;
  void check_cuda_locked(const char* op, const std::string& peers, const char* call,
                         cudaError_t e) {
    if (e != cudaSuccess) fail_locked(op, peers, cuda_msg(call, e), false, nullptr);
  }
  void settle_locked(const char* op, const std::string& peers, const char* call, ncclResult_t r,
                     Clock::time_point deadline);
  void reap_locked();

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
};

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
}

CommState::~CommState() {
  // Never throws: every failure here only decides between a clean destroy and an abort.
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
// and the communicator is aborted (which also stops NCCL kernels waiting for a peer).
void CommState::fail_locked(const char* op, const std::string& peers, const std::string& msg,
                            bool timeout, OpRecord* trigger) {
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
  if (comm_ != nullptr) {
    ncclCommAbort(comm_);  // its own failure changes nothing: the group is broken either way
    comm_ = nullptr;
  }
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
    pause(it);
  }
}

void CommState::reap_locked() {
  while (!in_flight_.empty() && cudaEventQuery(in_flight_.front()->done) == cudaSuccess)
    in_flight_.pop_front();
}

std::shared_ptr<OpRecord> CommState::issue(const char* op, std::string peers,
                                           std::vector<Tensor> keep, const char* call,
                                           const Launch& launch) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!broken_.empty()) {
    throw DistributedError(
        head(op, peers) +
        ": the process group is broken by an earlier failure and cannot be used again: " + broken_);
  }
  DeviceGuard guard(device_, std::nothrow);
  if (!guard.ok()) fail_locked(op, peers, guard.error(), false, nullptr);
  reap_locked();
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
  // An empty op issues no NCCL call (every rank skips it alike) but still orders like one.
  const ncclResult_t result = launch ? launch(comm_, stream_, call) : ncclSuccess;
  settle_locked(op, rec->peers, call, result, rec->deadline);
  check_cuda_locked(op, rec->peers, "cudaEventRecord", cudaEventRecord(rec->done, stream_));
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
    {
      std::lock_guard<std::mutex> lock(mu_);
      // Checked after the query: a break marks unfinished ops before its abort lets them
      // "complete".
      if (!rec.error.empty()) throw_record(rec);
      if (q == cudaSuccess) {
        rec.keep.clear();
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

class NcclWork : public Work {
 public:
  NcclWork(std::shared_ptr<CommState> state, std::shared_ptr<OpRecord> rec)
      : state_(std::move(state)), rec_(std::move(rec)) {}
  void wait() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (error_) std::rethrow_exception(error_);
    if (done_) return;
    try {
      state_->wait(*rec_);
      done_ = true;
    } catch (...) {
      error_ = std::current_exception();
      throw;
    }
  }
  bool is_completed() const override {
    std::lock_guard<std::mutex> lock(mu_);
    if (done_ || error_) return true;
    return state_->completed(*rec_);
  }

 private:
  std::shared_ptr<CommState> state_;
  std::shared_ptr<OpRecord> rec_;
  mutable std::mutex mu_;
  bool done_ = false;
  std::exception_ptr error_;
};

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
      return ncclSum;
    case ReduceOp::product:
      return ncclProd;
    case ReduceOp::max:
      return ncclMax;
    case ReduceOp::min:
      return ncclMin;
    case ReduceOp::avg:
      return ncclAvg;
  }
  return ncclSum;
}

class NcclProcessGroup : public ProcessGroup {
 public:
  explicit NcclProcessGroup(std::shared_ptr<CommState> state) : state_(std::move(state)) {}

  int rank() const override { return state_->rank(); }
  int size() const override { return state_->size(); }
  std::string backend() const override { return "nccl"; }
  milliseconds timeout() const override { return state_->timeout(); }

  WorkPtr all_reduce(Tensor& tensor, ReduceOp op) override;
  WorkPtr reduce_scatter(Tensor& output, const Tensor& input, ReduceOp op) override;
  WorkPtr all_gather(Tensor& output, const Tensor& input) override;
  WorkPtr all_gather_v(Tensor& output, const Tensor& input,
                       const std::vector<int64_t>& counts) override;
  WorkPtr broadcast(Tensor& tensor, int root) override;
  WorkPtr barrier() override;
  WorkPtr send(const Tensor& tensor, int dst, uint32_t tag) override;
  WorkPtr recv(Tensor& tensor, int src, uint32_t tag) override;

 private:
  std::string where() const {
    return "rank " + std::to_string(rank()) + " of " + std::to_string(size()) +
           ", cuda:" + std::to_string(state_->device());
  }
  void check_tensor(const Tensor& t, const char* op, const char* arg) const;
  ncclDataType_t data_type(DType dtype, const char* op) const;
  ncclDataType_t reduce_type(DType dtype, ReduceOp rop, const char* op) const;
  void check_peer(int peer, const char* op, const char* what) const;
  void check_same_dtype(const Tensor& out, const Tensor& in, const char* op) const;
  WorkPtr p2p(const char* op, const Tensor& tensor, int peer, uint32_t tag, bool is_send);
  // `launch` is left empty for an op with no elements.
  WorkPtr run(const char* op, std::string peers, std::vector<Tensor> keep, const char* call,
              const Launch& launch) {
    auto rec = state_->issue(op, std::move(peers), std::move(keep), call, launch);
    return std::make_shared<NcclWork>(state_, std::move(rec));
  }

  std::shared_ptr<CommState> state_;
};

void NcclProcessGroup::check_tensor(const Tensor& t, const char* op, const char* arg) const {
  FABRIC_CHECK(t.defined(), ValueError, "nccl ", op, " (", where(), "): ", arg,
               " is an undefined tensor");
  FABRIC_CHECK(t.device() == Device::cuda(state_->device()), DeviceError, "nccl ", op, " (",
               where(), "): ", arg, ": NCCL process group takes cuda:", state_->device(),
               " tensors; got ", t.device().str(),
               t.device().is_cpu() ? " (use the Gloo process group for CPU tensors)" : "");
  FABRIC_CHECK(t.is_contiguous(), ValueError, "nccl ", op, " (", where(), "): ", arg,
               " must be contiguous, got shape ", shape_str(t.shape()), " with strides ",
               shape_str(t.strides()), "; call .contiguous() first");
}

ncclDataType_t NcclProcessGroup::data_type(DType dtype, const char* op) const {
  switch (dtype) {
    case DType::float64:
      return ncclFloat64;
    case DType::float32:
      return ncclFloat32;
    case DType::float16:
      return ncclFloat16;
    case DType::bfloat16:
      return ncclBfloat16;
    case DType::int64:
      return ncclInt64;
    case DType::int32:
      return ncclInt32;
    case DType::int8:
      return ncclInt8;
    case DType::uint8:
      return ncclUint8;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 24, 0)
    case DType::float8_e4m3fn:
      return ncclFloat8e4m3;
    case DType::float8_e5m2:
      return ncclFloat8e5m2;
#endif
    default:
      break;
  }
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 24, 0)
  const std::string fp8 = " (or float8_e4m3fn/float8_e5m2)";
#else
  const std::string fp8 = " (fp8 needs NCCL 2.24 or newer; this build has NCCL " +
                          std::to_string(NCCL_VERSION_CODE) + ")";
#endif
  throw DTypeError(
      "nccl " + std::string(op) + " (" + where() + "): NCCL does not take " +
      std::string(dtype_name(dtype)) +
      " tensors; expected float64, float32, float16, bfloat16, int64, int32, int8 or uint8" + fp8);
}

ncclDataType_t NcclProcessGroup::reduce_type(DType dtype, ReduceOp rop, const char* op) const {
  const ncclDataType_t t = data_type(dtype, op);
  // As the Gloo group: an average of integers would truncate, so it is refused on both backends.
  FABRIC_CHECK(
      rop != ReduceOp::avg || is_floating(dtype), DTypeError, "nccl ", op, " (", where(),
      "): ReduceOp avg needs a floating tensor (float64, float32, float16, bfloat16), got ",
      dtype_name(dtype), "; use sum and divide");
  FABRIC_CHECK(!is_fp8(dtype) || state_->fp8_reductions(), DTypeError, "nccl ", op, " (", where(),
               "): NCCL reduces ", dtype_name(dtype),
               " only on compute capability 9.0 or newer; cuda:", state_->device(),
               " is older (all_gather/broadcast/send/recv of fp8 work)");
  return t;
}

void NcclProcessGroup::check_peer(int peer, const char* op, const char* what) const {
  FABRIC_CHECK(peer >= 0 && peer < size(), ValueError, "nccl ", op, " (", where(), "): ", what,
               " rank ", peer, " is out of range (expected 0 <= rank < ", size(), ")");
}

void NcclProcessGroup::check_same_dtype(const Tensor& out, const Tensor& in, const char* op) const {
  FABRIC_CHECK(out.dtype() == in.dtype(), DTypeError, "nccl ", op, " (", where(), "): output is ",
               dtype_name(out.dtype()), " but input is ", dtype_name(in.dtype()),
               "; expected the same dtype");
}

WorkPtr NcclProcessGroup::all_reduce(Tensor& tensor, ReduceOp op) {
  check_tensor(tensor, "all_reduce", "tensor");
  const ncclDataType_t type = reduce_type(tensor.dtype(), op, "all_reduce");
  const size_t n = static_cast<size_t>(tensor.numel());
  void* p = tensor.data_ptr();
  const ncclRedOp_t rop = nccl_op(op);
  Launch launch;
  if (n > 0)
    launch = [=](ncclComm_t c, cudaStream_t s, const char*&) {
      return ncclAllReduce(p, p, n, type, rop, c, s);
    };
  return run("all_reduce", "", {tensor}, "ncclAllReduce", launch);
}

WorkPtr NcclProcessGroup::reduce_scatter(Tensor& output, const Tensor& input, ReduceOp op) {
  check_tensor(output, "reduce_scatter", "output");
  check_tensor(input, "reduce_scatter", "input");
  check_same_dtype(output, input, "reduce_scatter");
  FABRIC_CHECK(input.numel() == output.numel() * size(), ShapeError, "nccl reduce_scatter (",
               where(), "): input must hold size() = ", size(), " chunks of the output's numel ",
               output.numel(), " (", output.numel() * size(), " elements), got input shape ",
               shape_str(input.shape()), " and output shape ", shape_str(output.shape()));
  const ncclDataType_t type = reduce_type(input.dtype(), op, "reduce_scatter");
  const size_t n = static_cast<size_t>(output.numel());
  const void* in = input.data_ptr();
  void* out = output.data_ptr();
  const ncclRedOp_t rop = nccl_op(op);
  Launch launch;
  if (n > 0) {
    launch = [=](ncclComm_t c, cudaStream_t s, const char*&) {
      return ncclReduceScatter(in, out, n, type, rop, c, s);
    };
  }
  return run("reduce_scatter", "", {output, input}, "ncclReduceScatter", launch);
}

WorkPtr NcclProcessGroup::all_gather(Tensor& output, const Tensor& input) {
  check_tensor(output, "all_gather", "output");
  check_tensor(input, "all_gather", "input");
  check_same_dtype(output, input, "all_gather");
  FABRIC_CHECK(output.numel() == input.numel() * size(), ShapeError, "nccl all_gather (", where(),
               "): output must hold size() = ", size(), " copies of the input's numel ",
               input.numel(), " (", input.numel() * size(), " elements), got output shape ",
               shape_str(output.shape()), " and input shape ", shape_str(input.shape()));
  const ncclDataType_t type = data_type(input.dtype(), "all_gather");
  const size_t n = static_cast<size_t>(input.numel());
  const void* in = input.data_ptr();
  void* out = output.data_ptr();
  Launch launch;
  if (n > 0)
    launch = [=](ncclComm_t c, cudaStream_t s, const char*&) {
      return ncclAllGather(in, out, n, type, c, s);
    };
  return run("all_gather", "", {output, input}, "ncclAllGather", launch);
}

// NCCL has no uneven all-gather: one broadcast per rank, rooted at that rank, into its slot of the
// output, fused into one group so they progress together.
WorkPtr NcclProcessGroup::all_gather_v(Tensor& output, const Tensor& input,
                                       const std::vector<int64_t>& counts) {
  check_tensor(output, "all_gather_v", "output");
  check_tensor(input, "all_gather_v", "input");
  check_same_dtype(output, input, "all_gather_v");
  FABRIC_CHECK(counts.size() == size_t(size()), ValueError, "nccl all_gather_v (", where(),
               "): got ", counts.size(), " counts, expected one per rank (", size(), ")");
  int64_t total = 0;
  for (size_t k = 0; k < counts.size(); ++k) {
    FABRIC_CHECK(counts[k] >= 0, ValueError, "nccl all_gather_v (", where(), "): counts[", k,
                 "] = ", counts[k], " is negative");
    total += counts[k];
  }
  FABRIC_CHECK(counts[size_t(rank())] == input.numel(), ShapeError, "nccl all_gather_v (", where(),
               "): counts[", rank(), "] = ", counts[size_t(rank())], " but this rank's input has ",
               input.numel(), " elements (shape ", shape_str(input.shape()), ")");
  FABRIC_CHECK(total == output.numel(), ShapeError, "nccl all_gather_v (", where(),
               "): the counts sum to ", total, " but output has ", output.numel(),
               " elements (shape ", shape_str(output.shape()), ")");
  const ncclDataType_t type = data_type(input.dtype(), "all_gather_v");
  const size_t isz = static_cast<size_t>(input.element_size());
  const void* in = input.data_ptr();
  char* out = static_cast<char*>(output.data_ptr());
  const int me = rank();
  Launch launch;
  if (total > 0) {
    launch = [=](ncclComm_t c, cudaStream_t s, const char*& call) {
      call = "ncclGroupStart";
      ncclResult_t r = ncclGroupStart();
      if (r != ncclSuccess) return r;
      ncclResult_t failed = ncclSuccess;
      size_t offset = 0;
      for (size_t q = 0; q < counts.size() && failed == ncclSuccess; ++q) {
        const size_t n = static_cast<size_t>(counts[q]);
        char* slot = out + offset * isz;
        offset += n;
        if (n == 0) continue;  // every rank has the same counts, so every rank skips it
        const void* send = int(q) == me ? in : slot;  // only the root's send buffer is read
        r = ncclBroadcast(send, slot, n, type, int(q), c, s);
        if (r != ncclSuccess && r != ncclInProgress) failed = r;
      }
      const ncclResult_t end = ncclGroupEnd();  // closes the group even after a failed call
      call = failed != ncclSuccess ? "ncclBroadcast" : "ncclGroupEnd";
      return failed != ncclSuccess ? failed : end;
    };
  }
  return run("all_gather_v", "", {output, input}, "ncclGroupEnd", launch);
}

WorkPtr NcclProcessGroup::broadcast(Tensor& tensor, int root) {
  check_tensor(tensor, "broadcast", "tensor");
  check_peer(root, "broadcast", "root");
  const ncclDataType_t type = data_type(tensor.dtype(), "broadcast");
  const size_t n = static_cast<size_t>(tensor.numel());
  void* p = tensor.data_ptr();
  Launch launch;
  if (n > 0)
    launch = [=](ncclComm_t c, cudaStream_t s, const char*&) {
      return ncclBroadcast(p, p, n, type, root, c, s);
    };
  return run("broadcast", "root rank " + std::to_string(root), {tensor}, "ncclBroadcast", launch);
}

WorkPtr NcclProcessGroup::barrier() {
  // A one-float all-reduce: it completes on a rank only once every rank has issued it.
  float* buf = state_->barrier_buffer();
  return run("barrier", "all ranks", {}, "ncclAllReduce",
             [=](ncclComm_t c, cudaStream_t s, const char*&) {
               return ncclAllReduce(buf, buf, 1, ncclFloat32, ncclSum, c, s);
             });
}

// The tag is not sent: NCCL pairs a rank's sends to a peer with that peer's receives from it in
// issue order. A send holds its stream until the peer receives, so two ranks that both send
// first wait on each other until the timeout: one side must receive first.
WorkPtr NcclProcessGroup::p2p(const char* op, const Tensor& tensor, int peer, uint32_t tag,
                              bool is_send) {
  const char* what = is_send ? "destination" : "source";
  check_tensor(tensor, op, "tensor");
  check_peer(peer, op, what);
  FABRIC_CHECK(peer != rank(), ValueError, "nccl ", op, " (", where(), "): ", what, " rank ", peer,
               " is this rank; expected another rank");
  const ncclDataType_t type = data_type(tensor.dtype(), op);
  const size_t n = static_cast<size_t>(tensor.numel());
  void* p = tensor.data_ptr();
  Launch launch;
  if (n > 0) {
    launch = [=](ncclComm_t c, cudaStream_t s, const char*&) {
      return is_send ? ncclSend(p, n, type, peer, c, s) : ncclRecv(p, n, type, peer, c, s);
    };
  }
  std::string peers =
      "peer rank " + std::to_string(peer) + ", tag " + std::to_string(tag) + " (unused by NCCL)";
  return run(op, std::move(peers), {tensor}, is_send ? "ncclSend" : "ncclRecv", launch);
}

WorkPtr NcclProcessGroup::send(const Tensor& tensor, int dst, uint32_t tag) {
  return p2p("send", tensor, dst, tag, true);
}

WorkPtr NcclProcessGroup::recv(Tensor& tensor, int src, uint32_t tag) {
  return p2p("recv", tensor, src, tag, false);
}

}  // namespace

std::shared_ptr<ProcessGroup> make_nccl_process_group(std::shared_ptr<Store> store, int rank,
                                                      int size, int device,
                                                      const NcclOptions& options) {
  FABRIC_CHECK(store != nullptr, ValueError, "make_nccl_process_group: the store is null");
  FABRIC_CHECK(size >= 1, ValueError, "make_nccl_process_group: size must be >= 1, got ", size);
  FABRIC_CHECK(rank >= 0 && rank < size, ValueError, "make_nccl_process_group: rank ", rank,
               " is out of range for size ", size, " (expected 0 <= rank < size)");
  FABRIC_CHECK(device >= 0, ValueError,
               "make_nccl_process_group: device must be a CUDA device index >= 0, got ", device);
  FABRIC_CHECK(options.timeout.count() > 0, ValueError,
               "make_nccl_process_group: timeout must be > 0 ms, got ", options.timeout.count());
  auto state = std::make_shared<CommState>(rank, size, device, options.timeout);
  state->init(std::move(store));  // on failure ~CommState releases what init created
  return std::make_shared<NcclProcessGroup>(std::move(state));
}

bool nccl_available() { return true; }

#else  // !FABRIC_WITH_CUDA

std::shared_ptr<ProcessGroup> make_nccl_process_group(std::shared_ptr<Store> /*store*/, int rank,
                                                      int size, int device,
                                                      const NcclOptions& /*options*/) {
  throw DeviceError(
      "make_nccl_process_group (rank " + std::to_string(rank) + " of " + std::to_string(size) +
      ", cuda:" + std::to_string(device) +
      "): this build has no CUDA backend (FABRIC_CUDA=OFF or no nvcc); use the Gloo process group");
}

bool nccl_available() { return false; }

#endif  // FABRIC_WITH_CUDA

}  // namespace fabric::distributed
