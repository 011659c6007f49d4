// Shared-memory collectives: the segment, its rendezvous through the store, and the round protocol.
//
// Segment layout (every counter on its own cache line, so ranks never write a shared line):
//   [arrived counter of rank 0..N-1][reduced counter of rank 0..N-1][pid of rank 0..N-1]
//   [call record of rank 0..N-1 (two lines each)][broken]
//   [slot 0]...[slot N-1][result]                       each slot kSlotBytes, page-aligned
// A collective runs in rounds (one per chunk that fits the slots). Round at generation g: copy
// this rank's part into my slot, arrived[me] = g, wait arrived[*] >= g; on a call's first round,
// compare every rank's call record (written before its arrival, read before anyone can start the
// next call: that needs reduced[*] >= g from all); read what this rank needs from the slots
// (all_reduce: reduce my share into result, and after a second barrier copy result back),
// reduced[me] = g, wait reduced[*] >= g. A rank overwrites its slot for g+1 only after every rank
// has published reduced = g (all are done reading slots), and all_reduce's result share only
// after every rank has published arrived = g+1 (all are done copying result out of g).
// `broken` holds the first reason the segment broke: a rank's timeout (which rank gave up on
// which), so that the other ranks waiting for the same missing rank report a timeout too, or a
// group that broke otherwise.
// A collective of the group that does not come here (it runs over TCP) is announced: the rank
// writes its record and publishes arrived = g (one generation), and goes on to TCP, where it
// waits for every rank. A rank in a collective at g then finds it at its check. The announcing
// rank rewrites its record only at a later generation, after every rank's record reached it over
// TCP: after all are done reading the records of g. Ranks whose calls agree stay in step
// generation for generation, so a rank in a collective meets announced records only when the
// calls differ.
#include "distributed/shm_collectives.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sched.h>
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
// Before sleeping on the futex (a sleep/wake-up pair costs more than a short wait), a waiter
// busy-waits: when every rank can have a core of its own, this many pause instructions (tens of
// microseconds: a peer usually arrives within that).
constexpr int kSpins = 4000;
// When the ranks outnumber the cores this process may run on (4 ranks on 2 in bench_sharding), the
// awaited peer may be waiting for this very core, and spinning on it only delays the peer: a few
// pause instructions, then this many yields of the core. Measured on 2 cores, 4 ranks: ZeRO-3's
// 45 small collectives a step ran 5.9-7.7 steps/s spinning against 9.9-14.0 yielding, and a
// 16K-float all_reduce 7-16x faster.
constexpr int kOversubscribedPauses = 64;
constexpr int kOversubscribedYields = 200;
// Longest futex sleep: how often a waiter looks at the deadline and at its peers' processes.
constexpr auto kSleepSlice = std::chrono::milliseconds(2);

int usable_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return std::max(1, CPU_COUNT(&set));
}

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

std::unique_ptr<ShmCollectives> ShmCollectives::connect(Store& store, int rank, int size,
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
  std::unique_ptr<ShmCollectives> self;
  if (base) {
    self.reset(new ShmCollectives(rank, size, base, bytes));
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

ShmCollectives::ShmCollectives(int rank, int size, void* base, size_t bytes)
    : rank_(rank),
      size_(size),
      base_(base),
      bytes_(bytes),
      oversubscribed_(size > usable_cpus()),
      calls_(static_cast<size_t>(size)) {}

ShmCollectives::~ShmCollectives() { munmap(base_, bytes_); }

uint32_t* ShmCollectives::arrived(int r) const {
  return reinterpret_cast<uint32_t*>(static_cast<char*>(base_) + size_t(r) * kLine);
}
uint32_t* ShmCollectives::reduced(int r) const {
  return reinterpret_cast<uint32_t*>(static_cast<char*>(base_) + size_t(size_ + r) * kLine);
}
int32_t* ShmCollectives::pid(int r) const {
  return reinterpret_cast<int32_t*>(static_cast<char*>(base_) + size_t(2 * size_ + r) * kLine);
}
CallRecord* ShmCollectives::call_record(int r) const {
  static_assert(sizeof(CallRecord) <= 2 * kLine, "a rank's record has two cache lines");
  return reinterpret_cast<CallRecord*>(static_cast<char*>(base_) + size_t(3 * size_ + 2 * r) * kLine);
}
uint64_t* ShmCollectives::broken() const {
  return reinterpret_cast<uint64_t*>(static_cast<char*>(base_) + size_t(5 * size_) * kLine);
}
char* ShmCollectives::slot(int r) const {
  return static_cast<char*>(base_) + header_bytes(size_) + size_t(r) * kSlotBytes;
}

void ShmCollectives::publish(uint32_t* word, uint32_t value) {
  __atomic_store_n(word, value, __ATOMIC_RELEASE);
  futex_wake_all(word);
}

void ShmCollectives::abort() { mark_broken(kGroupBroke); }

void ShmCollectives::mark_broken(uint64_t cause) {
  // The first cause stays: the timeout that started a failure, not the aborts that follow it.
  uint64_t none = 0;
  __atomic_compare_exchange_n(broken(), &none, cause, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
  for (int q = 0; q < size_; ++q) {
    futex_wake_all(arrived(q));
    futex_wake_all(reduced(q));
  }
}

void ShmCollectives::throw_broken(uint64_t cause, int awaited, const char* stage) const {
  // awaited < 0: the segment was broken already when this call began.
  const std::string waiting = awaited < 0 ? std::string("at the start of this call")
                                           : "rank " + std::to_string(awaited) + " was awaited " + stage;
  if (cause & kTimedOut) {
    const int by = cause_by(cause), missing = cause_awaited(cause);
    if (missing != rank_)
      // Waiting for the same missing rank, this rank would have timed out too: say so, not
      // "broken", whichever of the waiting ranks reached its deadline first.
      throw TimeoutError(what() + " timed out waiting for rank " +
                         std::to_string(missing) + ": rank " + std::to_string(by) +
                         " reached its timeout waiting for it first (on this rank, " + waiting +
                         ")");
    // This rank is the one that came late: it did not time out, its peer left without it.
    throw DistributedError(what() + ": rank " + std::to_string(by) +
                           " timed out waiting for this rank (rank " + std::to_string(rank_) +
                           ") and left the collective before it arrived (" + waiting + ")");
  }
  throw DistributedError(what() + ": a peer's process group broke (" + waiting + ")");
}

bool ShmCollectives::peer_alive(int r) const {
  const int32_t p = __atomic_load_n(pid(r), __ATOMIC_ACQUIRE);
  if (p == int32_t(getpid())) return true;  // ranks that are threads of this process
  const std::string stat = read_first_line(("/proc/" + std::to_string(p) + "/stat").c_str());
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return false;  // gone
  const char state = stat[paren + 2];
  return state != 'Z' && state != 'X';  // a killed process waiting for its parent is a zombie
}

void ShmCollectives::wait_all(uint32_t* (ShmCollectives::*counter)(int) const, uint32_t value,
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
      if (!oversubscribed_ && spins < kSpins) {
        ++spins;
        cpu_relax();
        continue;
      }
      if (oversubscribed_ && spins < kOversubscribedPauses + kOversubscribedYields) {
        if (spins++ < kOversubscribedPauses)
          cpu_relax();
        else
          sched_yield();
        continue;
      }
      futex_wait(word, seen, kSleepSlice);
      if (Clock::now() > deadline) {
        mark_broken(timed_out_cause(rank_, q));  // the other waiters learn why, and for whom
        throw TimeoutError(what() + " timed out waiting for rank " + std::to_string(q) + " " +
                           stage);
      }
      if (!peer_alive(q))
        throw DistributedError(what() + ": rank " + std::to_string(q) + " (pid " +
                               std::to_string(*pid(q)) + ") exited while awaited " + stage);
    }
  }
}

bool runs_on_segment(Collective c) {
  return c == Collective::all_reduce || c == Collective::reduce_scatter ||
         c == Collective::all_gather;
}

std::string ShmCollectives::what() const {
  return std::string("shared-memory ") + collective_name(current_);
}

void ShmCollectives::check_calls() {
  for (int q = 0; q < size_; ++q) calls_[size_t(q)] = *call_record(q);
  // A peer announced a collective that runs over TCP and waits there for this rank's record.
  // Peers in the segment with another collective of it fail the check below, on every rank alike.
  for (int q = 0; q < size_; ++q)
    if (!runs_on_segment(Collective(calls_[size_t(q)].collective)))
      throw ShmOtherCollective(
          what() + ": rank " + std::to_string(q) + " issues " +
          collective_name(Collective(calls_[size_t(q)].collective)) + " where this rank issues " +
          collective_name(current_) +
          "; every rank must issue the same collectives in the same order");
  // The same comparisons, and messages, as over TCP.
  check_call_records(calls_, rank_);
}

void ShmCollectives::announce(const CallRecord& record) {
  if (__atomic_load_n(broken(), __ATOMIC_ACQUIRE) != 0) return;
  *call_record(rank_) = record;
  publish(arrived(rank_), ++generation_);
}

template <class Fill, class Use, class After>
void ShmCollectives::run_rounds(Collective collective, const ShmCall& call, size_t rounds,
                                const char* stage, Fill fill, Use use, After after,
                                Clock::time_point deadline) {
  current_ = collective;
  // A broken segment stays broken: the counters no longer line up, even if every peer came. (A
  // rank that failed a call marked it itself, so it never rewrites its call record below while a
  // slower peer may still be comparing the records of that call.)
  if (const uint64_t cause = __atomic_load_n(broken(), __ATOMIC_ACQUIRE); cause != 0)
    throw_broken(cause, -1, "");
  *call_record(rank_) = make_call_record(collective, call.shape, call.dtype, call.op);
  try {
    // An empty call takes one (empty) round too: its record must meet the others, and the
    // second barrier keeps it in place until every rank has compared it.
    for (size_t k = 0; k == 0 || k < rounds; ++k) {
      ++generation_;
      fill(k);
      publish(arrived(rank_), generation_);
      wait_all(&ShmCollectives::arrived, generation_, deadline, "to copy in its chunk");
      // Every rank sees the same records, so a mismatch fails all of them here, before any rank
      // reads another's slot (whose bytes would mean something else, or run past its end) or
      // writes an output.
      if (k == 0) check_calls();
      use(k);
      publish(reduced(rank_), generation_);
      wait_all(&ShmCollectives::reduced, generation_, deadline, stage);
      after(k);
    }
  } catch (...) {
    abort();  // the peers' counters no longer line up with ours: fail them too
    throw;
  }
}

static size_t numel_of(std::span<const int64_t> shape) {
  size_t n = 1;
  for (const int64_t d : shape) n *= size_t(d);
  return n;
}

void ShmCollectives::all_reduce(void* data, const ShmCall& call, ReduceFn fn,
                                Clock::time_point deadline) {
  const size_t n = numel_of(call.shape);
  const size_t itemsize = size_t(fabric::itemsize(call.dtype));
  const size_t per_chunk = kSlotBytes / itemsize;
  char* const base = static_cast<char*>(data);
  auto chunk = [&](size_t k) { return std::min(per_chunk, n - k * per_chunk); };
  const size_t rounds = (n + per_chunk - 1) / per_chunk;
  run_rounds(
      Collective::all_reduce, call, rounds, "to reduce its share",
      [&](size_t k) {
        if (n > 0) std::memcpy(slot(rank_), base + k * per_chunk * itemsize, chunk(k) * itemsize);
      },
      [&](size_t k) {
        const size_t m = n > 0 ? chunk(k) : 0;
        const size_t lo = m * size_t(rank_) / size_t(size_);
        const size_t hi = m * size_t(rank_ + 1) / size_t(size_);
        if (hi > lo) {
          char* const out = slot(size_) + lo * itemsize;
          fn(out, slot(0) + lo * itemsize, slot(1) + lo * itemsize, hi - lo);
          for (int q = 2; q < size_; ++q) fn(out, out, slot(q) + lo * itemsize, hi - lo);
        }
      },
      // Once every share is reduced. The next round rewrites the result only after every rank
      // has arrived there, done copying this one out.
      [&](size_t k) {
        if (n > 0) std::memcpy(base + k * per_chunk * itemsize, slot(size_), chunk(k) * itemsize);
      },
      deadline);
}

void ShmCollectives::reduce_scatter(void* out, const void* in, const ShmCall& call, ReduceFn fn,
                                    Clock::time_point deadline) {
  const size_t P = size_t(size_), me = size_t(rank_);
  const size_t n = numel_of(call.shape) / P;  // elements of one chunk (the output)
  const size_t itemsize = size_t(fabric::itemsize(call.dtype));
  // A round moves the same columns [k*per_round, ...) of every chunk: rank q's slot holds its
  // piece of chunk c at c * per_round elements (its own chunk's piece stays out: only rank q,
  // which reads it from its input, needs it).
  const size_t per_round = kSlotBytes / (P * itemsize);
  const char* const src = static_cast<const char*>(in);
  char* const dst = static_cast<char*>(out);
  auto columns = [&](size_t k) { return std::min(per_round, n - k * per_round); };
  const size_t rounds = (n + per_round - 1) / per_round;
  run_rounds(
      Collective::reduce_scatter, call, rounds, "to read the chunks",
      [&](size_t k) {
        if (n == 0) return;
        const size_t m = columns(k);
        for (size_t c = 0; c < P; ++c)
          if (c != me)
            std::memcpy(slot(rank_) + c * per_round * itemsize,
                        src + (c * n + k * per_round) * itemsize, m * itemsize);
      },
      [&](size_t k) {
        if (n == 0) return;
        const size_t m = columns(k);
        // The ring's order (ring_reduce_scatter): chunk r starts at rank r+1 and each next rank
        // adds its own, ((x[r+1] + x[r+2]) + ...) + x[r], so that both paths give the same bits.
        auto piece = [&](size_t q) -> const char* {
          return q == me ? src + (me * n + k * per_round) * itemsize
                         : slot(int(q)) + me * per_round * itemsize;
        };
        char* const o = dst + k * per_round * itemsize;
        const char* const own = piece(me);
        if (P == 2) {
          fn(o, piece(1 - me), own, m);
          return;
        }
        // The output may be this rank's chunk of the input, which is added last: the partial sum
        // then goes to this rank's share of the result slot (all_reduce's, free here: every rank
        // arrived at this generation, done with any earlier result).
        const bool overlaps = o < own + m * itemsize && own < o + m * itemsize;
        char* const acc = overlaps ? slot(size_) + me * per_round * itemsize : o;
        fn(acc, piece((me + 1) % P), piece((me + 2) % P), m);
        for (size_t s = 3; s < P; ++s) fn(acc, acc, piece((me + s) % P), m);
        fn(o, acc, own, m);
      },
      [](size_t) {}, deadline);
}

void ShmCollectives::all_gather(void* out, const void* in, const ShmCall& call,
                                Clock::time_point deadline) {
  const size_t bytes = numel_of(call.shape) * size_t(fabric::itemsize(call.dtype));
  const char* const src = static_cast<const char*>(in);
  char* const dst = static_cast<char*>(out);
  auto part = [&](size_t k) { return std::min(kSlotBytes, bytes - k * kSlotBytes); };
  const size_t rounds = (bytes + kSlotBytes - 1) / kSlotBytes;
  run_rounds(
      Collective::all_gather, call, rounds, "to read the chunks",
      [&](size_t k) {
        if (bytes > 0) std::memcpy(slot(rank_), src + k * kSlotBytes, part(k));
      },
      [&](size_t k) {
        if (bytes == 0) return;
        const size_t m = part(k), at = k * kSlotBytes;
        for (int q = 0; q < size_; ++q) {
          char* const o = dst + size_t(q) * bytes + at;
          // This rank's block from its own input (nothing to do in place).
          if (q == rank_) {
            if (o != src + at) std::memcpy(o, src + at, m);
          } else {
            std::memcpy(o, slot(q), m);
          }
        }
      },
      [](size_t) {}, deadline);
}

}  // namespace fabric::distributed::gloo_detail
