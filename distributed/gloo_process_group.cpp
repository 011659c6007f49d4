// The Gloo process group: rendezvous through our Store, operations run in issue order from one
// worker thread per group (collectives in gloo_collectives.cpp), and every Gloo failure turned into
// an error that names the op, this rank, the world size and the peer.
#include "distributed/gloo_process_group.h"

#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>
#include <gloo/transport/unbound_buffer.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

#include "distributed/gloo_group.h"
#include "distributed/gloo_reduce.h"
#include "tensor/error.h"

namespace fabric::distributed::gloo_detail {

namespace {

// Gloo writes to sockets from our threads and from its event-loop thread; a peer that died turns
// the next write into SIGPIPE, whose default action kills the process. Threads started while this
// guard is alive (our workers, Gloo's loop) inherit the blocked mask and get EPIPE instead.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~SigpipeBlock() {
    // Swallow a SIGPIPE raised on this thread meanwhile so that unblocking does not deliver it.
    sigset_t pending;
    if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
      const timespec zero{0, 0};
      sigtimedwait(&set_, nullptr, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  sigset_t set_, old_;
};

// Gloo's rendezvous store interface over ours.
class StoreAdapter : public gloo::rendezvous::Store {
 public:
  StoreAdapter(std::shared_ptr<distributed::Store> store, milliseconds timeout)
      : store_(std::move(store)), timeout_(timeout) {}
  void set(const std::string& key, const std::vector<char>& data) override {
    store_->set(key, Bytes(data.begin(), data.end()));
  }
  std::vector<char> get(const std::string& key) override {
    store_->wait({key}, timeout_);
    const Bytes b = store_->get(key);
    return std::vector<char>(b.begin(), b.end());
  }
  void wait(const std::vector<std::string>& keys) override { store_->wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys, const milliseconds& timeout) override {
    store_->wait(keys, timeout);
  }

 private:
  std::shared_ptr<distributed::Store> store_;
  milliseconds timeout_;
};

bool contains_nocase(std::string s, const char* sub) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s.find(sub) != std::string::npos;
}

}  // namespace

GlooProcessGroup::GlooProcessGroup(std::shared_ptr<Store> store, int rank, int size,
                                   const GlooOptions& options)
    : rank_(rank), size_(size), timeout_(options.timeout) {
  FABRIC_CHECK(store != nullptr, ValueError, "make_gloo_process_group: the store is null");
  FABRIC_CHECK(size >= 1, ValueError, "make_gloo_process_group: size must be >= 1, got ", size);
  FABRIC_CHECK(rank >= 0 && rank < size, ValueError, "make_gloo_process_group: rank ", rank,
               " is out of range for size ", size, " (expected 0 <= rank < size)");
  FABRIC_CHECK(options.timeout.count() > 0, ValueError,
               "make_gloo_process_group: timeout must be > 0 ms, got ", options.timeout.count());
  // Several groups share one store: the n-th group this rank creates on it uses prefix gloo/n,
  // which matches across ranks as long as all create their groups in the same order.
  const int64_t index = store->add("gloo/groups_created_by_rank_" + std::to_string(rank), 1) - 1;
  const std::string prefix = "gloo/" + std::to_string(index);
  store_ = std::make_shared<PrefixStore>(prefix, std::move(store));
  const std::string what = "gloo process group (" + where() + ", hostname '" + options.hostname +
                           "', store prefix '" + prefix + "', timeout " +
                           std::to_string(timeout_.count()) + " ms)";

  SigpipeBlock block_sigpipe;
  try {
    gloo::transport::tcp::attr attr;
    attr.hostname = options.hostname;
    device_ = gloo::transport::tcp::CreateDevice(attr);
  } catch (const std::exception& e) {
    throw DistributedError(what + ": cannot create a TCP device on hostname '" + options.hostname +
                           "': " + e.what());
  }
  try {
    context_ = std::make_shared<gloo::rendezvous::Context>(rank_, size_);
    context_->setTimeout(timeout_);
    StoreAdapter adapter(store_, timeout_);
    context_->connectFullMesh(adapter, device_);
  } catch (const TimeoutError& e) {
    throw TimeoutError(
        what + ": rendezvous timed out (did every rank start and reach the store?): " + e.what());
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    const std::string full = what + ": connecting to the other ranks failed: " + msg;
    if (contains_nocase(msg, "timed out") || contains_nocase(msg, "timeout"))
      throw TimeoutError(full);
    throw DistributedError(full);
  }
  shm_ = ShmCollectives::connect(*store_, rank_, size_, options.shared_memory);
  worker_ = std::thread([this] { worker_loop(); });
  waiter_ = std::thread([this] { waiter_loop(); });
}

GlooProcessGroup::~GlooProcessGroup() {
  // Drain: queued ops still run (each is bounded by the timeout), then the posted sends/recvs.
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    p2p_stop_ = true;
  }
  p2p_cv_.notify_all();
  if (waiter_.joinable()) waiter_.join();
  // Every collective this rank issued has finished, so no peer legitimately waits on it in the
  // segment any more: one still waiting skipped a collective and may fail now, not at its timeout.
  if (shm_) shm_->abort();
}

void GlooProcessGroup::check_tensor(const Tensor& t, const char* op, const char* arg) const {
  FABRIC_CHECK(t.defined(), ValueError, "gloo ", op, " (", where(), "): ", arg,
               " is an undefined tensor");
  FABRIC_CHECK(t.device().is_cpu(), DeviceError, "gloo ", op, " (", where(), "): ", arg, " is on ",
               t.device().str(), "; the Gloo process group takes CPU tensors; use NCCL for cuda");
  FABRIC_CHECK(t.is_contiguous(), ValueError, "gloo ", op, " (", where(), "): ", arg,
               " must be contiguous, got shape ", shape_str(t.shape()), " with strides ",
               shape_str(t.strides()), "; call .contiguous() first");
}

void GlooProcessGroup::check_peer(int peer, const char* op, const char* what) const {
  FABRIC_CHECK(peer >= 0 && peer < size_, ValueError, "gloo ", op, " (", where(), "): ", what,
               " rank ", peer, " is out of range (expected 0 <= rank < ", size_, ")");
}

uint32_t GlooProcessGroup::next_tag() {
  std::lock_guard<std::mutex> lock(mu_);
  return collective_tag_++;
}

std::string GlooProcessGroup::broken_reason() {
  std::lock_guard<std::mutex> lock(mu_);
  return broken_;
}

WorkPtr GlooProcessGroup::enqueue(const char* name, std::string peers, RunFn run) {
  auto work = std::make_shared<GlooWork>(weak_from_this());
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!broken_.empty()) {
      // Fail at once: nothing can complete on a group whose connections are in an unknown state.
      work->finish(broken_error(name, broken_));
      return work;
    }
    queue_.push_back(Op{name, std::move(peers), std::move(run), work});
  }
  cv_.notify_one();
  return work;
}

std::exception_ptr GlooProcessGroup::translate(const char* name, const std::string& peers,
                                               std::exception_ptr error) {
  std::string msg;
  bool timeout = false;
  // A mismatch the ranks found together (the call records of gloo_call_check.h, the shared-memory
  // all_reduce's own) keeps its type: it is the caller's mistake. The group is broken all the same.
  enum { other, shape, dtype, value } kind = other;
  try {
    std::rethrow_exception(error);
  } catch (const TimeoutError& e) {
    msg = e.what();
    timeout = true;
  } catch (const ShapeError& e) {
    msg = e.what();
    kind = shape;
  } catch (const DTypeError& e) {
    msg = e.what();
    kind = dtype;
  } catch (const ValueError& e) {
    msg = e.what();
    kind = value;
  } catch (const std::exception& e) {
    msg = e.what();
  } catch (...) {
    msg = "unknown exception";
  }
  timeout = timeout || contains_nocase(msg, "timed out") || contains_nocase(msg, "timeout");
  const std::string head = "gloo " + std::string(name) + " on " + where() + " (" + peers + ")";
  const std::string full = timeout ? head + " timed out after " + std::to_string(timeout_.count()) +
                                         " ms (did every rank issue the same collectives?): " + msg
                                   : head + " failed: " + msg;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (broken_.empty()) broken_ = full;
  }
  if (shm_) shm_->abort();  // peers waiting in the segment fail now, as over a closed connection
  // As PyTorch's Gloo group: after a failure the ranks' connections (and, after a mismatch, their
  // sequence of collectives) are in no state to trust, so nothing more runs on the group.
  const std::string told =
      full + "; the process group cannot be used again (every later operation on it fails)";
  if (timeout) return std::make_exception_ptr(TimeoutError(told));
  if (kind == shape) return std::make_exception_ptr(ShapeError(told));
  if (kind == dtype) return std::make_exception_ptr(DTypeError(told));
  if (kind == value) return std::make_exception_ptr(ValueError(told));
  return std::make_exception_ptr(DistributedError(told));
}

void GlooProcessGroup::execute(Op& op) {
  std::exception_ptr error;
  bool done = true;
  const std::string broken = broken_reason();
  if (!broken.empty()) {
    error = broken_error(op.name, broken);
  } else {
    try {
      op_bytes_ = 0;
      done = op.run(Clock::now() + timeout_, op.work);
      if (done) add_traffic(op_bytes_);  // sends/recvs count in the waiter once done
    } catch (...) {
      error = translate(op.name, op.peers, std::current_exception());
    }
  }
  op.run = nullptr;  // releases the tensors before the Work reports completion
  if (done || error) op.work->finish(error);
}

void GlooProcessGroup::worker_loop() {
  for (;;) {
    Op op;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return !running_ && (stop_ || !queue_.empty()); });
      if (queue_.empty()) return;
      op = std::move(queue_.front());
      queue_.pop_front();
      running_ = true;
    }
    execute(op);
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_ = false;
    }
  }
}

void GlooProcessGroup::run_inline_if_next(const GlooWork* work) {
  Op op;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (running_ || queue_.empty() || queue_.front().work.get() != work) return;
    op = std::move(queue_.front());
    queue_.pop_front();
    running_ = true;
  }
  {
    SigpipeBlock block_sigpipe;  // this thread now writes to sockets, as the worker does
    execute(op);
  }
  bool more;
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_ = false;
    more = !queue_.empty();
  }
  if (more) cv_.notify_one();  // the worker takes the ops queued behind this one
}

void GlooProcessGroup::waiter_loop() {
  for (;;) {
    PendingP2P p;
    {
      std::unique_lock<std::mutex> lock(mu_);
      p2p_cv_.wait(lock, [&] { return !p2p_.empty() || p2p_stop_; });
      if (p2p_.empty()) return;
      p = std::move(p2p_.front());
      p2p_.pop_front();
    }
    std::exception_ptr error;
    try {
      auto left = [&] { return time_left(p.deadline); };
      // The records first: a mismatched payload never arrives (its slot differs), and this
      // rank's record must be sent before its buffer goes, or Gloo's event loop would stall on
      // it. All three are posted already, so these waits hold up no transfer; but a send now
      // completes only once its peer's record is in, one small message after the recv's posting.
      P2PRecords& records = *p.records;
      if (!records.from_peer->waitRecv(left()) || !records.to_peer->waitSend(left()))
        throw DistributedError("the exchange of call records was aborted");
      check_p2p_records(records.mine, records.peer, rank_, p.peer, p.tag);
      const bool ok = p.is_send ? p.buffer->waitSend(left()) : p.buffer->waitRecv(left());
      if (!ok) throw DistributedError("the transfer was aborted");
    } catch (...) {
      error = translate(p.name, p.peers, std::current_exception());
    }
    if (!error) add_traffic(p.is_send ? p.tensor.nbytes() : 0);  // send: its bytes
    p.buffer.reset();
    p.records.reset();
    p.tensor = Tensor();
    p.work->finish(error);
  }
}

void GlooWork::wait() {
  if (!is_completed())
    if (auto group = owner_.lock()) group->run_inline_if_next(this);
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return done_; });
  if (error_) std::rethrow_exception(error_);
}

}  // namespace fabric::distributed::gloo_detail

namespace fabric::distributed {

std::shared_ptr<ProcessGroup> make_gloo_process_group(std::shared_ptr<Store> store, int rank,
                                                      int size, const GlooOptions& options) {
  return std::make_shared<gloo_detail::GlooProcessGroup>(std::move(store), rank, size, options);
}

}  // namespace fabric::distributed
