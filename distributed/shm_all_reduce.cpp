// Shared-memory all_reduce: the segment, its rendezvous through the store, and the chunk protocol.
//
// Segment layout (every counter on its own cache line, so ranks never write a shared line):
//   [arrived counter of rank 0..N-1][reduced counter of rank 0..N-1][pid of rank 0..N-1]
//   [call record of rank 0..N-1 (two lines each)][broken]
//   [slot 0]...[slot N-1][result]                       each slot kSlotBytes, page-aligned
// Per chunk (generation g): copy the chunk into my slot, arrived[me] = g, wait arrived[*] >= g;
// on a call's first chunk, compare every rank's call record (written before its arrival, read
// before anyone can start the next call: that needs reduced[*] >= g from all); reduce my share
// [m*me/N, m*(me+1)/N) of the slots into result, reduced[me] = g, wait reduced[*] >= g; copy
// result back. A rank overwrites its slot for g+1 only after every rank has
// published reduced = g (all are done reading slots), and its result share only after every rank
// has published arrived = g+1 (all are done copying result out of g): two barriers per chunk.
// `broken` holds the first reason the segment broke: a rank's timeout (which rank gave up on
// which), so that the other ranks waiting for the same missing rank report a timeout too, or a
// group that broke otherwise.
// A collective of the group that does not come here (it runs over TCP) is announced: the rank
// writes its record and publishes arrived = g (one generation), and goes on to TCP, where it
// waits for every rank. A rank in run() at g then finds it at its check. The announcing rank
// rewrites its record only at a later generation, after every rank's record reached it over TCP:
// after all are done reading the records of g. Ranks whose calls agree stay in step generation
// for generation, so a rank in run() meets announced records only when the calls differ.
#include "distributed/shm_all_reduce.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "distributed/gloo_call_check.h"
#include "tensor/error.h"

namespace fabric::distributed::gloo_detail {
namespace {

constexpr size_t kLine = 64;
constexpr size_t kSlotBytes = size_t{4} << 20;
// Busy-wait this many pause instructions (tens of microseconds) before sleeping on the futex: a
// peer usually arrives within that, and a sleep/wake-up pair costs more.
constexpr int kSpins = 4000;
// Longest futex sleep: how often a waiter looks at the deadline and at its peers' processes.
constexpr auto kSleepSlice = std::chrono::milliseconds(2);

// The broken word: 0 while usable; kGroupBroke for a group that failed or went away; or
// kTimedOut | by << 32 | awaited when rank `by` reached its deadline waiting for rank `awaited`.
constexpr uint64_t kGroupBroke = 1;
constexpr uint64_t kTimedOut = uint64_t{1} << 63;
uint64_t timed_out_cause(int by, int awaited) {
  return kTimedOut | (uint64_t(uint32_t(by)) << 32) | uint32_t(awaited);
}
int cause_by(uint64_t cause) { return int((cause & ~kTimedOut) >> 32); }
int cause_awaited(uint64_t cause) { return int(uint32_t(cause)); }

size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

size_t header_bytes(int size) { return round_up((5 * size_t(size) + 1) * kLine, 4096); }

size_t segment_bytes(int size) { return header_bytes(size) + (size_t(size) + 1) * kSlotBytes; }

std::string read_first_line(const char* path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return line;
}

std::string link_target(const char* path) {
  char buf[256];
  const ssize_t n = readlink(path, buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, size_t(n)) : std::string();
}

// What must be equal on every rank for them to share a segment: the machine and its boot (a
// hostname can repeat across machines), and the PID and mount namespaces (peer liveness is read
// from /proc by pid; /dev/shm is a mount).
std::string host_identity() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return std::string(host) + "|" + read_first_line("/proc/sys/kernel/random/boot_id") + "|" +
         link_target("/proc/self/ns/pid") + "|" + link_target("/proc/self/ns/mnt");
}

bool disabled_by_environment() {
  const char* v = std::getenv("FABRIC_GLOO_SHM");
  return v && (std::strcmp(v, "0") == 0 || std::strcmp(v, "false") == 0 ||
               std::strcmp(v, "off") == 0);
}

std::string as_string(const Bytes& b) { return std::string(b.begin(), b.end()); }
Bytes as_bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

void* map_segment(int fd, size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  return p == MAP_FAILED ? nullptr : p;
}

uint32_t load_acquire(const uint32_t* w) { return __atomic_load_n(w, __ATOMIC_ACQUIRE); }

void futex_wait(uint32_t* word, uint32_t seen, std::chrono::nanoseconds slice) {
  timespec ts{0, long(slice.count())};
  syscall(SYS_futex, word, FUTEX_WAIT, seen, &ts, nullptr, 0);  // shared: not FUTEX_PRIVATE
}

void futex_wake_all(uint32_t* word) {
  syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

std::unique_ptr<ShmAllReduce> ShmAllReduce::connect(Store& store, int rank, int size,
                                                    bool enabled) {
  if (size < 2) return nullptr;
  const std::string r = std::to_string(rank);
  // A rank that opts out says so in its identity, which then matches nobody's.
  const bool willing = enabled && !disabled_by_environment();
  store.set("shm/identity/" + r, as_bytes(willing ? host_identity() : "off/" + r));
  const Bytes mine = store.get("shm/identity/" + r);
  for (int q = 0; q < size; ++q)
    if (store.get("shm/identity/" + std::to_string(q)) != mine) return nullptr;

  const size_t bytes = segment_bytes(size);
  std::string name;
  int fd = -1;
  if (rank == 0) {
    std::random_device rd;
    std::ostringstream os;
    os << "/fabric-gloo-" << getpid() << "-" << std::hex << rd() << rd();
    name = os.str();
    fd = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    // Reserve every page now: a sparse segment on a small /dev/shm (64 MB in a default Docker
    // container) would pass ftruncate and then kill the process with SIGBUS at the first write
    // past the limit. posix_fallocate fails cleanly instead, and the group keeps to TCP.
    if (fd >= 0 &&
        (ftruncate(fd, off_t(bytes)) != 0 || posix_fallocate(fd, 0, off_t(bytes)) != 0)) {
      close(fd);
      shm_unlink(name.c_str());
      fd = -1;
    }
    store.set("shm/name", as_bytes(fd >= 0 ? name : std::string()));
  } else {
    name = as_string(store.get("shm/name"));
    if (!name.empty()) fd = shm_open(name.c_str(), O_RDWR, 0600);
  }
  void* base = fd >= 0 ? map_segment(fd, bytes) : nullptr;
  if (fd >= 0) close(fd);  // the mapping keeps the segment
  std::unique_ptr<ShmAllReduce> self;
  if (base) {
    self.reset(new ShmAllReduce(rank, size, base, bytes));
    __atomic_store_n(self->pid(rank), int32_t(getpid()), __ATOMIC_RELEASE);
  }
  store.set("shm/mapped/" + r, as_bytes(base ? "1" : "0"));
  bool all = true;
  for (int q = 0; q < size; ++q) all = as_string(store.get("shm/mapped/" + std::to_string(q))) == "1" && all;
  // Every rank has answered, so every rank that could map has: the name is no longer needed.
  if (rank == 0 && !name.empty()) shm_unlink(name.c_str());
  if (!all) return nullptr;
  return self;
}

ShmAllReduce::ShmAllReduce(int rank, int size, void* base, size_t bytes)
    : rank_(rank), size_(size), base_(base), bytes_(bytes), calls_(static_cast<size_t>(size)) {}

ShmAllReduce::~ShmAllReduce() { munmap(base_, bytes_); }

uint32_t* ShmAllReduce::arrived(int r) const {
  return reinterpret_cast<uint32_t*>(static_cast<char*>(base_) + size_t(r) * kLine);
}
uint32_t* ShmAllReduce::reduced(int r) const {
  return reinterpret_cast<uint32_t*>(static_cast<char*>(base_) + size_t(size_ + r) * kLine);
}
int32_t* ShmAllReduce::pid(int r) const {
  return reinterpret_cast<int32_t*>(static_cast<char*>(base_) + size_t(2 * size_ + r) * kLine);
}
CallRecord* ShmAllReduce::call_record(int r) const {
  static_assert(sizeof(CallRecord) <= 2 * kLine, "a rank's record has two cache lines");
  return reinterpret_cast<CallRecord*>(static_cast<char*>(base_) + size_t(3 * size_ + 2 * r) * kLine);
}
uint64_t* ShmAllReduce::broken() const {
  return reinterpret_cast<uint64_t*>(static_cast<char*>(base_) + size_t(5 * size_) * kLine);
}
char* ShmAllReduce::slot(int r) const {
  return static_cast<char*>(base_) + header_bytes(size_) + size_t(r) * kSlotBytes;
}

void ShmAllReduce::publish(uint32_t* word, uint32_t value) {
  __atomic_store_n(word, value, __ATOMIC_RELEASE);
  futex_wake_all(word);
}

void ShmAllReduce::abort() { mark_broken(kGroupBroke); }

void ShmAllReduce::mark_broken(uint64_t cause) {
  // The first cause stays: the timeout that started a failure, not the aborts that follow it.
  uint64_t none = 0;
  __atomic_compare_exchange_n(broken(), &none, cause, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
  for (int q = 0; q < size_; ++q) {
    futex_wake_all(arrived(q));
    futex_wake_all(reduced(q));
  }
}

void ShmAllReduce::throw_broken(uint64_t cause, int awaited, const char* stage) const {
  // awaited < 0: the segment was broken already when this call began.
  const std::string waiting = awaited < 0 ? std::string("at the start of this call")
                                           : "rank " + std::to_string(awaited) + " was awaited " + stage;
  if (cause & kTimedOut) {
    const int by = cause_by(cause), missing = cause_awaited(cause);
    if (missing != rank_)
      // Waiting for the same missing rank, this rank would have timed out too: say so, not
      // "broken", whichever of the waiting ranks reached its deadline first.
      throw TimeoutError("shared-memory all_reduce timed out waiting for rank " +
                         std::to_string(missing) + ": rank " + std::to_string(by) +
                         " reached its timeout waiting for it first (on this rank, " + waiting +
                         ")");
    // This rank is the one that came late: it did not time out, its peer left without it.
    throw DistributedError("shared-memory all_reduce: rank " + std::to_string(by) +
                           " timed out waiting for this rank (rank " + std::to_string(rank_) +
                           ") and left the collective before it arrived (" + waiting + ")");
  }
  throw DistributedError("shared-memory all_reduce: a peer's process group broke (" + waiting + ")");
}

bool ShmAllReduce::peer_alive(int r) const {
  const int32_t p = __atomic_load_n(pid(r), __ATOMIC_ACQUIRE);
  if (p == int32_t(getpid())) return true;  // ranks that are threads of this process
  const std::string stat = read_first_line(("/proc/" + std::to_string(p) + "/stat").c_str());
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return false;  // gone
  const char state = stat[paren + 2];
  return state != 'Z' && state != 'X';  // a killed process waiting for its parent is a zombie
}

void ShmAllReduce::wait_all(uint32_t* (ShmAllReduce::*counter)(int) const, uint32_t value,
                            Clock::time_point deadline, const char* stage) {
  for (int q = 0; q < size_; ++q) {
    if (q == rank_) continue;
    uint32_t* word = (this->*counter)(q);
    int spins = 0;
    for (;;) {
      const uint32_t seen = load_acquire(word);
      if (int32_t(seen - value) >= 0) break;  // generations wrap around
      const uint64_t cause = __atomic_load_n(broken(), __ATOMIC_ACQUIRE);
      if (cause != 0) {
        // The peer may have arrived between the two loads and then broken the segment itself (or
        // another rank that saw it arrive did), after finding the calls mismatched: this rank
        // must then go on to compare the calls too, and fail with the mismatch, not "broken". The
        // arrival was published before the break, so the acquire load above makes it visible.
        if (int32_t(load_acquire(word) - value) >= 0) break;
        throw_broken(cause, q, stage);
      }
      if (spins < kSpins) {
        ++spins;
        cpu_relax();
        continue;
      }
      futex_wait(word, seen, kSleepSlice);
      if (Clock::now() > deadline) {
        mark_broken(timed_out_cause(rank_, q));  // the other waiters learn why, and for whom
        throw TimeoutError("shared-memory all_reduce timed out waiting for rank " +
                           std::to_string(q) + " " + stage);
      }
      if (!peer_alive(q))
        throw DistributedError("shared-memory all_reduce: rank " + std::to_string(q) + " (pid " +
                               std::to_string(*pid(q)) + ") exited while awaited " + stage);
    }
  }
}

void ShmAllReduce::check_calls() {
  for (int q = 0; q < size_; ++q) calls_[size_t(q)] = *call_record(q);
  for (int q = 0; q < size_; ++q)
    if (Collective(calls_[size_t(q)].collective) != Collective::all_reduce)
      throw ShmOtherCollective(
          "shared-memory all_reduce: rank " + std::to_string(q) + " issues " +
          collective_name(Collective(calls_[size_t(q)].collective)) +
          " where this rank issues all_reduce; every rank must issue the same collectives in the "
          "same order");
  // The same comparisons, and messages, as over TCP.
  check_call_records(calls_, rank_);
}

void ShmAllReduce::announce(const CallRecord& record) {
  if (__atomic_load_n(broken(), __ATOMIC_ACQUIRE) != 0) return;
  *call_record(rank_) = record;
  publish(arrived(rank_), ++generation_);
}

void ShmAllReduce::run(void* data, const ShmAllReduceCall& call, ReduceFn fn, Clock::time_point deadline) {
  // A broken segment stays broken: the counters no longer line up, even if every peer came. (A
  // rank that failed a call marked it itself, so it never rewrites its call record below while a
  // slower peer may still be comparing the records of that call.)
  if (const uint64_t cause = __atomic_load_n(broken(), __ATOMIC_ACQUIRE); cause != 0)
    throw_broken(cause, -1, "");
  *call_record(rank_) = make_call_record(Collective::all_reduce, call.shape, call.dtype, call.op);
  const size_t n = size_t(call_record(rank_)->numel);
  const size_t itemsize = size_t(fabric::itemsize(call.dtype));
  const size_t per_chunk = kSlotBytes / itemsize;
  char* const base = static_cast<char*>(data);
  try {
    // An empty tensor takes one (empty) chunk too: its record must meet the others, and the
    // second barrier keeps it in place until every rank has compared it.
    for (size_t off = 0; off == 0 || off < n; off += per_chunk) {
      const size_t m = std::min(per_chunk, n - off);
      char* const mine = base + off * itemsize;
      ++generation_;
      if (m > 0) std::memcpy(slot(rank_), mine, m * itemsize);
      publish(arrived(rank_), generation_);
      wait_all(&ShmAllReduce::arrived, generation_, deadline, "to copy in its chunk");
      // Every rank sees the same records, so a mismatch fails all of them here, before any rank
      // reads another's slot (whose bytes would mean something else, or run past its end).
      if (off == 0) check_calls();
      const size_t lo = m * size_t(rank_) / size_t(size_);
      const size_t hi = m * size_t(rank_ + 1) / size_t(size_);
      if (hi > lo) {
        char* const out = slot(size_) + lo * itemsize;
        fn(out, slot(0) + lo * itemsize, slot(1) + lo * itemsize, hi - lo);
        for (int q = 2; q < size_; ++q) fn(out, out, slot(q) + lo * itemsize, hi - lo);
      }
      publish(reduced(rank_), generation_);
      wait_all(&ShmAllReduce::reduced, generation_, deadline, "to reduce its share");
      if (m > 0) std::memcpy(mine, slot(size_), m * itemsize);
    }
  } catch (...) {
    abort();  // the peers' counters no longer line up with ours: fail them too
    throw;
  }
}

}  // namespace fabric::distributed::gloo_detail
