// The local subprocess launcher's policy: validating options, the environment every rank gets,
// the watchdog that ends the run on a rank's failure, and join(), kill_all(), run_all_and_wait().
#include "distributed/launcher.h"

#include <netdb.h>
#include <omp.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>

#include "distributed/child_process.h"
#include "tensor/error.h"

extern char** environ;

namespace fabric::distributed {
using namespace child_process_detail;
namespace {

// The variables the launcher owns: extra_env may not override them, or ranks would disagree.
constexpr const char* kOwnedVars[] = {"LOCAL_RANK", "RANK",        "WORLD_SIZE",
                                      "NODE_RANK",  "MASTER_ADDR", "MASTER_PORT"};
// Not exported, as in the reference: ranks derive it from NODE_RANK and LOCAL_RANK. An inherited
// RANK is removed, because RANK with WORLD_SIZE and LOCAL_RANK reads as a torchrun environment,
// and every rank would then claim the same global rank.
constexpr const char* kStaleVar = "RANK";

// How long kill_all() waits for a child whose failure may have caused rank 0's: a rank killed
// (SIGKILL) breaks its connections a moment before it can be reaped; one that failed with an error
// breaks them while it unwinds, before it exits. Also how long the watchdog holds a child's error
// exit before ending the run, in case rank 0 is failing too (see watch()).
constexpr std::chrono::milliseconds kChildFailureGrace{1000};

bool killed_by_signal(const Child& c) { return failed(c) && WIFSIGNALED(c.wstatus); }

// True once this process exported LOCAL_RANK itself. A LOCAL_RANK found without it was set by a
// launcher (ours, torchrun, SLURM): launching from such a rank would multiply the processes.
std::atomic<bool> g_exported_local_rank{false};

void validate(const LaunchOptions& o) {
  FABRIC_CHECK(o.nprocs >= 1, ValueError,
               "SubprocessLauncher: nprocs (processes on this node) must be >= 1, got ", o.nprocs);
  FABRIC_CHECK(o.num_nodes >= 1, ValueError, "SubprocessLauncher: num_nodes must be >= 1, got ",
               o.num_nodes);
  FABRIC_CHECK(o.node_rank >= 0 && o.node_rank < o.num_nodes, ValueError,
               "SubprocessLauncher: node_rank must be in 0..", o.num_nodes - 1,
               " (num_nodes=", o.num_nodes, "), got ", o.node_rank);
  FABRIC_CHECK(static_cast<int64_t>(o.nprocs) * o.num_nodes <= (1 << 20), ValueError,
               "SubprocessLauncher: world size nprocs*num_nodes = ",
               static_cast<int64_t>(o.nprocs) * o.num_nodes, " is implausibly large");
  FABRIC_CHECK(o.main_port >= 0 && o.main_port <= 65535, ValueError,
               "SubprocessLauncher: main_port must be in 0..65535 (0 picks a free port), got ",
               o.main_port);
  FABRIC_CHECK(
      o.main_port != 0 || o.num_nodes == 1, ValueError,
      "SubprocessLauncher: main_port 0 (pick a free port) only works on one node; with num_nodes=",
      o.num_nodes, " give every node the same main_port");
  FABRIC_CHECK(
      !o.main_address.empty(), ValueError,
      "SubprocessLauncher: main_address is empty; expected the main node's host name or IP");
  for (const auto& [key, value] : o.extra_env) {
    FABRIC_CHECK(
        !key.empty() && key.find('=') == std::string::npos && key.find('\0') == std::string::npos,
        ValueError, "SubprocessLauncher: extra_env has an invalid variable name '", key,
        "' (empty or containing '=')");
    FABRIC_CHECK(value.find('\0') == std::string::npos, ValueError,
                 "SubprocessLauncher: extra_env[", key, "] contains a NUL byte");
    for (const char* owned : kOwnedVars)
      FABRIC_CHECK(key != owned, ValueError, "SubprocessLauncher: extra_env may not set ", key,
                   ": the launcher owns it (use LaunchOptions' fields instead)");
  }
}

void refuse_if_launched_rank(const char* op) {
  const char* lr = std::getenv("LOCAL_RANK");
  if (lr && !g_exported_local_rank.load())
    throw DistributedError(detail::cat(op, ": LOCAL_RANK=", lr,
                                       " is already set, so this process was started by a launcher "
                                       "(this one, torchrun, SLURM or mpirun); "
                                       "re-running it would start more processes from every rank. "
                                       "Check whether processes are created "
                                       "externally before launching, or unset LOCAL_RANK."));
}

// Binds port 0 on the main address and reads what the kernel picked; nothing listened on it, so
// closing leaves no TIME_WAIT and the store can bind it next.
int pick_free_port(const std::string& address) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(address.c_str(), "0", &hints, &res);
  if (rc != 0)
    throw ValueError("SubprocessLauncher: main_address '" + address +
                     "' does not resolve: " + gai_strerror(rc));
  int last_errno = 0;
  int port = 0;
  for (addrinfo* ai = res; ai && port == 0; ai = ai->ai_next) {
    const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last_errno = errno;
      continue;
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
      port = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                      : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    } else {
      last_errno = errno;
    }
    ::close(fd);
  }
  ::freeaddrinfo(res);
  if (port == 0)
    throw DistributedError("SubprocessLauncher: could not bind main_address '" + address +
                           "' to pick a free port: " + errno_text(last_errno) +
                           "; main_address must be an address of this machine, or give main_port");
  return port;
}

int usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  // The affinity mask, not the machine's core count: taskset/cpusets limit what we may use.
  if (::sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

// The variables every local rank shares (LOCAL_RANK is added per rank).
std::map<std::string, std::string> shared_vars(const LaunchOptions& o, int port) {
  std::map<std::string, std::string> v = {
      {"MASTER_ADDR", o.main_address},
      {"MASTER_PORT", std::to_string(port)},
      {"NODE_RANK", std::to_string(o.node_rank)},
      {"WORLD_SIZE", std::to_string(o.nprocs * o.num_nodes)},
  };
  if (!std::getenv("OMP_NUM_THREADS"))
    v["OMP_NUM_THREADS"] = std::to_string(std::max(1, usable_cpus() / o.nprocs));
  return v;
}

CArray child_env(const LaunchOptions& o, const std::map<std::string, std::string>& shared,
                 int local_rank) {
  std::map<std::string, std::string> over = o.extra_env;
  for (const auto& [k, v] : shared) over[k] = v;
  over["LOCAL_RANK"] = std::to_string(local_rank);
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const std::string entry = *e;
    const std::string key = entry.substr(0, entry.find('='));
    if (!over.count(key) && key != kStaleVar) env.push_back(entry);
  }
  for (const auto& [k, v] : over) env.push_back(k + "=" + v);
  return CArray(std::move(env));
}

// Spawns the given local ranks; on any failure kills and reaps the ones already started.
std::vector<Child> spawn_ranks(const LaunchOptions& o, const Command& cmd,
                               const std::map<std::string, std::string>& shared, int first_rank) {
  CArray args(cmd.args);
  std::vector<CArray> envs;
  for (int r = first_rank; r < o.nprocs; ++r) envs.push_back(child_env(o, shared, r));
  const int limit = fd_limit();
  std::vector<Child> kids;
  try {
    for (int r = first_rank; r < o.nprocs; ++r)
      kids.push_back(spawn(cmd, args, envs[r - first_rank], r, limit));
  } catch (...) {
    kill_and_reap(kids);
    for (Child& c : kids) close_fd(c.pidfd);
    throw;
  }
  return kids;
}

}  // namespace

struct SubprocessLauncher::State {
  LaunchOptions opts;
  int port = 0;
  bool launched = false;
  bool finished = false;  // join() or kill_all() collected the children
  int result = 0;
  std::exception_ptr join_error;  // a timed-out join() throws the same error when called again
  std::vector<Child> kids;
  std::mutex mu;  // the watchdog's decision to _exit and join()/kill_all()'s stop are ordered by it
  bool stop = false;
  // A child that exited with an error status, which the watchdog holds for kChildFailureGrace
  // before ending the run (rank 0 may be failing at the same time, with the error that caused it).
  std::optional<size_t> held_failure;
  int wake_fd = -1;
  std::thread watchdog;
  // What launch() changed in this process's environment, with the previous values.
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_env;
  // This thread's OpenMP thread count before launch() chose one (none when it did not choose).
  std::optional<int> saved_omp_threads;

  // The OpenMP runtime read OMP_NUM_THREADS when the process started, long before launch()
  // exported it: without this, rank 0 (this process) alone would keep every core and
  // oversubscribe the CPUs its sibling ranks were given. Only ever lowered: a count the program
  // already set lower itself (fabric-train's deterministic mode runs one thread) stays.
  void apply_omp_threads(int n) {
    saved_omp_threads = omp_get_max_threads();
    if (n < *saved_omp_threads) omp_set_num_threads(n);
  }

  void export_var(const std::string& key, const char* value) {
    const char* old = std::getenv(key.c_str());
    saved_env.emplace_back(key, old ? std::optional<std::string>(old) : std::nullopt);
    if (value)
      ::setenv(key.c_str(), value, 1);
    else
      ::unsetenv(key.c_str());
  }

  // The run is over: a Fabric created later in this process must see the environment it was
  // started with, not mistake itself for a launched rank (LOCAL_RANK set) and wait for peers.
  void restore_env() {
    for (auto it = saved_env.rbegin(); it != saved_env.rend(); ++it) {
      if (it->second)
        ::setenv(it->first.c_str(), it->second->c_str(), 1);
      else
        ::unsetenv(it->first.c_str());
    }
    // LOCAL_RANK is no longer ours: one found from now on was set by someone else.
    if (!saved_env.empty()) g_exported_local_rank = false;
    saved_env.clear();
    if (saved_omp_threads) omp_set_num_threads(*saved_omp_threads);
    saved_omp_threads.reset();
  }

  // Child i failed: the run is over. Kills the others, says which rank failed and how, and ends
  // this process with that rank's status.
  [[noreturn]] void exit_for_failed_child(size_t i, const char* note) {
    const int code = status_code(kids[i].wstatus);
    kill_and_reap(kids, std::chrono::seconds(2));
    write_stderr(detail::cat("fabric launcher: ", describe(kids[i]), note,
                             "; killed the other local ranks, exiting with status ", code, "\n"));
    ::_exit(code);
  }

  // A child killed by a signal ends the run at once: no error of rank 0's leads to that. A child
  // that exited with an error status is held for kChildFailureGrace first: its error may be the
  // consequence of one of rank 0's (a peer whose collective timed out closes its connections, and
  // the others fail "peer closed" right away), and rank 0, unwinding, reaches kill_all() only
  // after that; ending the run here would hide rank 0's error, the cause. When rank 0 does not
  // stop the watchdog within the grace (it is blocked on the failed rank), the child's failure
  // ends the run.
  void watch() {
    Clock::time_point held_until = Clock::time_point::max();
    for (;;) {
      wait_for_event(kids, wake_fd, held_until);
      std::lock_guard<std::mutex> lock(mu);
      if (stop) return;
      std::vector<size_t> newly;
      reap_ended(kids, newly);
      // Holding mu: join()/kill_all() cannot slip in between these decisions and _exit.
      for (size_t i : newly) {
        if (killed_by_signal(kids[i])) exit_for_failed_child(i, "");
        if (failed(kids[i]) && !held_failure) {
          held_failure = i;
          held_until = Clock::now() + kChildFailureGrace;
        }
      }
      if (held_failure && Clock::now() >= held_until) exit_for_failed_child(*held_failure, "");
      if (all_done(kids) && !held_failure) return;
    }
  }

  // Rank 0 failed, with the watchdog stopped. Its error may be the consequence of a child's
  // failure (a collective with a rank that died breaks at once) or the cause of one (the child's
  // collective with rank 0 then fails), and both can reach this point in either order. A child
  // killed by a signal, now or within `grace`, is the run's failure: this process ends as the
  // watchdog would have ended it (rank 0's error is a consequence: no error makes a peer die of a
  // signal). A child that exited with an error status is said, and this returns, so that rank 0's
  // own error is reported after it rather than hidden: whichever came first, both are seen.
  // Returns too when no child failed (the children still running are blocked on rank 0).
  void settle_child_failures(std::chrono::milliseconds grace) {
    const auto deadline = Clock::now() + grace;
    std::vector<size_t> seen;  // failures in the order they were seen, the watchdog's first
    if (held_failure) seen.push_back(*held_failure);
    std::vector<size_t> newly;
    for (;;) {
      newly.clear();
      reap_ended(kids, newly);
      for (size_t i : newly)
        if (failed(kids[i])) seen.push_back(i);
      for (size_t i : seen)
        if (killed_by_signal(kids[i]))
          exit_for_failed_child(i, " (local rank 0 failed too, after it)");
      if (all_done(kids) || Clock::now() >= deadline) break;
      wait_for_event(kids, -1, deadline);
    }
    if (seen.empty()) return;
    std::string others;
    for (size_t k = 1; k < seen.size(); ++k)
      others += detail::cat(k == 1 ? "; then " : ", ", describe(kids[seen[k]]));
    write_stderr(detail::cat(
        "fabric launcher: local rank 0 failed, and ", describe(kids[seen[0]]), others,
        " while it did (a rank's error printed above is its own; one rank's failure may have "
        "caused the other's, as a collective with a failed peer fails at once); killing the "
        "other local ranks; local rank 0's error follows\n"));
  }

  void stop_watchdog() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    if (wake_fd >= 0) {
      const uint64_t one = 1;
      [[maybe_unused]] ssize_t w = ::write(wake_fd, &one, sizeof one);
    }
    if (watchdog.joinable()) watchdog.join();
  }
};

SubprocessLauncher::SubprocessLauncher(LaunchOptions options) : state_(std::make_unique<State>()) {
  validate(options);
  state_->opts = std::move(options);
}

SubprocessLauncher::~SubprocessLauncher() {
  if (!state_) return;
  if (state_->launched && !state_->finished) {
    try {
      kill_all();
    } catch (...) {
    }
  }
  if (state_->watchdog.joinable()) state_->stop_watchdog();
  for (Child& c : state_->kids) close_fd(c.pidfd);
  close_fd(state_->wake_fd);
}

void SubprocessLauncher::launch() {
  State& s = *state_;
  if (s.launched)
    throw DistributedError(
        "SubprocessLauncher::launch: already launched; create a new launcher for another run");
  const LaunchOptions& o = s.opts;
  refuse_if_launched_rank("SubprocessLauncher::launch");
  const Command cmd = resolve_command(o.argv);
  s.port = o.main_port != 0 ? o.main_port : pick_free_port(o.main_address);
  const auto shared = shared_vars(o, s.port);

  for (const auto& [k, v] : shared) s.export_var(k, v.c_str());
  if (const auto chosen = shared.find("OMP_NUM_THREADS"); chosen != shared.end())
    s.apply_omp_threads(std::stoi(chosen->second));  // chosen only when the user had not set it
  s.export_var("LOCAL_RANK", "0");
  s.export_var(kStaleVar, nullptr);
  g_exported_local_rank = true;

  try {  // a run that could not start leaves the environment as it found it
    if (o.nprocs > 1) {
      s.wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      if (s.wake_fd < 0)
        throw DistributedError("SubprocessLauncher::launch: eventfd: " + errno_text(errno));
      s.kids = spawn_ranks(o, cmd, shared, 1);
      try {
        s.watchdog = std::thread([&s] { s.watch(); });
      } catch (...) {
        kill_and_reap(s.kids);
        s.launched = s.finished = true;
        throw;
      }
    }
  } catch (...) {
    s.restore_env();
    throw;
  }
  s.launched = true;
}

int SubprocessLauncher::join(std::chrono::milliseconds timeout) {
  State& s = *state_;
  if (!s.launched) throw DistributedError("SubprocessLauncher::join: called before launch()");
  if (s.join_error) std::rethrow_exception(s.join_error);
  if (s.finished) return s.result;
  s.stop_watchdog();
  s.finished = true;  // even when wait_all throws: its timeout path has killed and reaped them
  try {
    s.result = wait_all(s.kids, timeout, "SubprocessLauncher::join");
  } catch (...) {
    s.join_error = std::current_exception();
    s.restore_env();
    throw;
  }
  s.restore_env();
  return s.result;
}

void SubprocessLauncher::kill_all() {
  State& s = *state_;
  if (!s.launched || s.finished) return;
  s.stop_watchdog();
  s.finished = true;
  s.settle_child_failures(kChildFailureGrace);
  s.restore_env();
  if (!kill_and_reap(s.kids))
    write_stderr(
        "fabric launcher: some local ranks did not die within 5 s of SIGKILL (stuck in the "
        "kernel?); not waiting for them\n");
}

std::vector<pid_t> SubprocessLauncher::child_pids() const {
  std::vector<pid_t> pids;
  for (const Child& c : state_->kids) pids.push_back(c.pid);
  return pids;
}

int SubprocessLauncher::main_port() const { return state_->port; }

int run_all_and_wait(const LaunchOptions& options, std::chrono::milliseconds timeout) {
  validate(options);
  if (options.argv.empty()) refuse_if_launched_rank("run_all_and_wait");
  const Command cmd = resolve_command(options.argv);
  const int port =
      options.main_port != 0 ? options.main_port : pick_free_port(options.main_address);
  std::vector<Child> kids = spawn_ranks(options, cmd, shared_vars(options, port), 0);
  struct CloseFds {
    std::vector<Child>& k;
    ~CloseFds() {
      for (Child& c : k) close_fd(c.pidfd);
    }
  } closer{kids};
  return wait_all(kids, timeout, "run_all_and_wait");
}

}  // namespace fabric::distributed
