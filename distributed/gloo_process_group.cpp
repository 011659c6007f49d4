// The Gloo process group: rendezvous through our Store, collectives run by Gloo on the tensors'
// own memory from one worker thread per group, and every Gloo failure turned into an error that
// names the op, this rank, the world size and the peer.
#include "distributed/gloo_process_group.h"

#include <gloo/allgather.h>
#include <gloo/allgatherv.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>
#include <gloo/transport/unbound_buffer.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

#include "distributed/gloo_reduce.h"
#include "tensor/error.h"

namespace fabric::distributed {

namespace {

using Clock = std::chrono::steady_clock;
using gloo_detail::ReduceFn;
using std::chrono::milliseconds;

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

// A posted send/recv whose completion the waiter thread reports.
struct PendingP2P {
  const char* name;
  std::string peers;
  bool is_send;
  Tensor tensor;  // kept alive until the transfer is done; declared first so it outlives `buffer`
  std::unique_ptr<gloo::transport::UnboundBuffer> buffer;
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
  std::thread worker_;
  std::thread waiter_;
};

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
  try {
    std::rethrow_exception(error);
  } catch (const TimeoutError& e) {
    msg = e.what();
    timeout = true;
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
  if (timeout) return std::make_exception_ptr(TimeoutError(full));
  return std::make_exception_ptr(DistributedError(full));
}

void GlooProcessGroup::execute(Op& op) {
  std::exception_ptr error;
  bool done = true;
  const std::string broken = broken_reason();
  if (!broken.empty()) {
    error = broken_error(op.name, broken);
  } else {
    try {
      done = op.run(Clock::now() + timeout_, op.work);
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
      const auto left = std::max(
          milliseconds(1), std::chrono::duration_cast<milliseconds>(p.deadline - Clock::now()));
      const bool ok = p.is_send ? p.buffer->waitSend(left) : p.buffer->waitRecv(left);
      if (!ok) throw DistributedError("the transfer was aborted");
    } catch (...) {
      error = translate(p.name, p.peers, std::current_exception());
    }
    p.buffer.reset();
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

// Gloo's typed setters only record sizeof(T): pick an unsigned type of the element's width so
// that segments never split an element.
void set_allreduce_output(gloo::AllreduceOptions& o, void* p, size_t n, int64_t itemsize) {
  switch (itemsize) {
    case 1:
      o.setOutput(static_cast<uint8_t*>(p), n);
      break;
    case 2:
      o.setOutput(static_cast<uint16_t*>(p), n);
      break;
    case 4:
      o.setOutput(static_cast<uint32_t*>(p), n);
      break;
    default:
      o.setOutput(static_cast<uint64_t*>(p), n);
      break;
  }
}

WorkPtr GlooProcessGroup::all_reduce(Tensor& tensor, ReduceOp op) {
  check_tensor(tensor, "all_reduce", "tensor");
  const ReduceFn fn = gloo_detail::reduce_function(tensor.dtype(), op, "all_reduce");
  const uint32_t tag = next_tag();
  return enqueue("all_reduce", ring_peers(),
                 [this, t = tensor, op, fn, tag](Clock::time_point, const auto&) {
                   const size_t n = static_cast<size_t>(t.numel());
                   if (n == 0 || size_ == 1) return true;
                   gloo::AllreduceOptions o(context_);
                   set_allreduce_output(o, t.data_ptr(), n, t.element_size());
                   o.setAlgorithm(gloo::AllreduceOptions::Algorithm::RING);
                   o.setReduceFunction(fn);
                   o.setTag(tag);
                   o.setTimeout(timeout_);
                   gloo::allreduce(o);
                   if (op == ReduceOp::avg)
                     gloo_detail::divide_in_place(t.data_ptr(), t.dtype(), n, size_);
                   return true;
                 });
}

WorkPtr GlooProcessGroup::reduce_scatter(Tensor& output, const Tensor& input, ReduceOp op) {
  check_tensor(output, "reduce_scatter", "output");
  check_tensor(input, "reduce_scatter", "input");
  check_same_dtype(output, input, "reduce_scatter");
  FABRIC_CHECK(input.numel() == output.numel() * size_, ShapeError, "gloo reduce_scatter (",
               where(), "): input must hold size() = ", size_, " chunks of the output's numel ",
               output.numel(), " (", output.numel() * size_, " elements), got input shape ",
               shape_str(input.shape()), " and output shape ", shape_str(output.shape()));
  const ReduceFn fn = gloo_detail::reduce_function(input.dtype(), op, "reduce_scatter");
  const uint32_t tag = next_tag();
  return enqueue(
      "reduce_scatter", ring_peers(),
      [this, out = output, in = input, op, fn, tag](Clock::time_point deadline, const auto&) {
        const size_t n = static_cast<size_t>(out.numel());
        const size_t bytes = n * static_cast<size_t>(out.element_size());
        if (n == 0) return true;
        if (size_ == 1) {
          if (out.data_ptr() != in.data_ptr()) std::memmove(out.data_ptr(), in.data_ptr(), bytes);
          return true;
        }
        gloo_detail::ring_reduce_scatter(*context_, out.data_ptr(), in.data_ptr(), bytes, n, fn,
                                         tag, deadline, scratch_);
        if (op == ReduceOp::avg)
          gloo_detail::divide_in_place(out.data_ptr(), out.dtype(), n, size_);
        return true;
      });
}

WorkPtr GlooProcessGroup::all_gather(Tensor& output, const Tensor& input) {
  check_tensor(output, "all_gather", "output");
  check_tensor(input, "all_gather", "input");
  check_same_dtype(output, input, "all_gather");
  FABRIC_CHECK(output.numel() == input.numel() * size_, ShapeError, "gloo all_gather (", where(),
               "): output must hold size() = ", size_, " copies of the input's numel ",
               input.numel(), " (", input.numel() * size_, " elements), got output shape ",
               shape_str(output.shape()), " and input shape ", shape_str(input.shape()));
  const uint32_t tag = next_tag();
  return enqueue("all_gather", ring_peers(),
                 [this, out = output, in = input, tag](Clock::time_point, const auto&) {
                   const size_t bytes = static_cast<size_t>(in.nbytes());
                   uint8_t* o = static_cast<uint8_t*>(out.data_ptr());
                   uint8_t* i = static_cast<uint8_t*>(in.data_ptr());
                   if (bytes == 0) return true;
                   if (size_ == 1) {
                     if (o != i) std::memmove(o, i, bytes);
                     return true;
                   }
                   gloo::AllgatherOptions opts(context_);
                   // In place (input already at this rank's slot): Gloo takes no input.
                   if (i != o + bytes * size_t(rank_)) opts.setInput(i, bytes);
                   opts.setOutput(o, bytes * size_t(size_));
                   opts.setTag(tag);
                   opts.setTimeout(timeout_);
                   gloo::allgather(opts);
                   return true;
                 });
}

WorkPtr GlooProcessGroup::all_gather_v(Tensor& output, const Tensor& input,
                                       const std::vector<int64_t>& counts) {
  check_tensor(output, "all_gather_v", "output");
  check_tensor(input, "all_gather_v", "input");
  check_same_dtype(output, input, "all_gather_v");
  FABRIC_CHECK(counts.size() == size_t(size_), ValueError, "gloo all_gather_v (", where(),
               "): got ", counts.size(), " counts, expected one per rank (", size_, ")");
  int64_t total = 0;
  for (size_t k = 0; k < counts.size(); ++k) {
    FABRIC_CHECK(counts[k] >= 0, ValueError, "gloo all_gather_v (", where(), "): counts[", k,
                 "] = ", counts[k], " is negative");
    total += counts[k];
  }
  FABRIC_CHECK(counts[size_t(rank_)] == input.numel(), ShapeError, "gloo all_gather_v (", where(),
               "): counts[", rank_, "] = ", counts[size_t(rank_)], " but this rank's input has ",
               input.numel(), " elements (shape ", shape_str(input.shape()), ")");
  FABRIC_CHECK(total == output.numel(), ShapeError, "gloo all_gather_v (", where(),
               "): the counts sum to ", total, " but output has ", output.numel(),
               " elements (shape ", shape_str(output.shape()), ")");
  const uint32_t tag = next_tag();
  return enqueue(
      "all_gather_v", ring_peers(),
      [this, out = output, in = input, counts, total, tag](Clock::time_point, const auto&) {
        const size_t isz = static_cast<size_t>(in.element_size());
        uint8_t* o = static_cast<uint8_t*>(out.data_ptr());
        uint8_t* i = static_cast<uint8_t*>(in.data_ptr());
        if (total == 0) return true;
        if (size_ == 1) {
          if (o != i) std::memmove(o, i, size_t(total) * isz);
          return true;
        }
        std::vector<size_t> bytes(counts.size());
        for (size_t k = 0; k < counts.size(); ++k) bytes[k] = size_t(counts[k]) * isz;
        gloo::AllgathervOptions opts(context_);
        opts.setInput(i, bytes[size_t(rank_)]);
        opts.setOutput(o, bytes);
        opts.setTag(tag);
        opts.setTimeout(timeout_);
        gloo::allgatherv(opts);
        return true;
      });
}

WorkPtr GlooProcessGroup::broadcast(Tensor& tensor, int root) {
  check_tensor(tensor, "broadcast", "tensor");
  check_peer(root, "broadcast", "root");
  const uint32_t tag = next_tag();
  return enqueue("broadcast", "root rank " + std::to_string(root),
                 [this, t = tensor, root, tag](Clock::time_point, const auto&) {
                   const size_t bytes = static_cast<size_t>(t.nbytes());
                   if (bytes == 0 || size_ == 1) return true;
                   gloo::BroadcastOptions opts(context_);
                   opts.setOutput(static_cast<uint8_t*>(t.data_ptr()), bytes);
                   opts.setRoot(root);
                   opts.setTag(tag);
                   opts.setTimeout(timeout_);
                   gloo::broadcast(opts);
                   return true;
                 });
}

WorkPtr GlooProcessGroup::barrier() {
  const uint32_t tag = next_tag();
  return enqueue("barrier", "all ranks", [this, tag](Clock::time_point, const auto&) {
    if (size_ == 1) return true;
    gloo::BarrierOptions opts(context_);
    opts.setTag(tag);
    opts.setTimeout(timeout_);
    gloo::barrier(opts);
    return true;
  });
}

// Sends and receives are posted from the worker, in issue order, but do not hold it: a send
// completes only once the peer posts the matching receive, so waiting on the worker would
// deadlock a ring of send-then-recv. The waiter thread reports their completion.
WorkPtr GlooProcessGroup::post_p2p(const char* name, const Tensor& tensor, int peer, uint32_t tag,
                                   bool is_send) {
  check_tensor(tensor, name, "tensor");
  check_peer(peer, name, is_send ? "destination" : "source");
  FABRIC_CHECK(peer != rank_, ValueError, "gloo ", name, " (", where(),
               "): ", is_send ? "destination" : "source", " rank ", peer,
               " is this rank; expected another rank");
  std::string peers = "peer rank " + std::to_string(peer) + ", tag " + std::to_string(tag);
  return enqueue(
      name, peers,
      [this, name, t = tensor, peer, tag, is_send, peers](Clock::time_point deadline,
                                                          const std::shared_ptr<GlooWork>& work) {
        PendingP2P p{name,
                     peers,
                     is_send,
                     t,
                     context_->createUnboundBuffer(t.data_ptr(), size_t(t.nbytes())),
                     deadline,
                     work};
        if (is_send)
          p.buffer->send(peer, gloo_detail::make_slot(gloo_detail::kSendRecvSlotPrefix, tag));
        else
          p.buffer->recv(peer, gloo_detail::make_slot(gloo_detail::kSendRecvSlotPrefix, tag));
        {
          std::lock_guard<std::mutex> lock(mu_);
          p2p_.push_back(std::move(p));
        }
        p2p_cv_.notify_one();
        return false;
      });
}

WorkPtr GlooProcessGroup::send(const Tensor& tensor, int dst, uint32_t tag) {
  return post_p2p("send", tensor, dst, tag, true);
}

WorkPtr GlooProcessGroup::recv(Tensor& tensor, int src, uint32_t tag) {
  return post_p2p("recv", tensor, src, tag, false);
}

}  // namespace

std::shared_ptr<ProcessGroup> make_gloo_process_group(std::shared_ptr<Store> store, int rank,
                                                      int size, const GlooOptions& options) {
  return std::make_shared<GlooProcessGroup>(std::move(store), rank, size, options);
}

}  // namespace fabric::distributed
