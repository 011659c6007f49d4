// The local subprocess launcher: fork + execve with a parent-death signal, a watchdog woken by
// pidfds, and the kill-and-reap paths shared by join(), kill_all() and run_all_and_wait().
#include "distributed/launcher.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>

#include "tensor/error.h"

extern char** environ;

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace fabric::distributed {
namespace {

using Clock = std::chrono::steady_clock;

// The variables the launcher owns: extra_env may not override them, or ranks would disagree.
constexpr const char* kOwnedVars[] = {"LOCAL_RANK", "RANK",        "WORLD_SIZE",
                                      "NODE_RANK",  "MASTER_ADDR", "MASTER_PORT"};
// Not exported, as in the reference: ranks derive it from NODE_RANK and LOCAL_RANK. An inherited
// RANK is removed, because RANK with WORLD_SIZE and LOCAL_RANK reads as a torchrun environment,
// and every rank would then claim the same global rank.
constexpr const char* kStaleVar = "RANK";

// True once this process exported LOCAL_RANK itself. A LOCAL_RANK found without it was set by a
// launcher (ours, torchrun, SLURM): launching from such a rank would multiply the processes.
std::atomic<bool> g_exported_local_rank{false};

std::string errno_text(int e) { return std::system_category().message(e); }

struct Child {
  int local_rank = 0;
  pid_t pid = -1;
  int pidfd = -1;     // readable once the child has ended; -1 where pidfd_open is unavailable
  bool done = false;  // reaped (or lost)
  bool lost =
      false;  // reaped by someone else (SIGCHLD ignored, or a wait(-1) elsewhere): status unknown
  int wstatus = 0;
};

bool failed(const Child& c) {
  return c.done && !c.lost && !(WIFEXITED(c.wstatus) && WEXITSTATUS(c.wstatus) == 0);
}

// The shell convention: the exit code, or 128 + the signal.
int status_code(int wstatus) {
  if (WIFEXITED(wstatus)) return WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) return 128 + WTERMSIG(wstatus);
  return 1;
}

std::string describe(const Child& c) {
  std::string s = detail::cat("local rank ", c.local_rank, " (pid ", c.pid, ")");
  if (c.lost) return s + " ended, but its status was collected elsewhere";
  if (WIFSIGNALED(c.wstatus)) {
    const int sig = WTERMSIG(c.wstatus);
    const char* abbrev = sigabbrev_np(sig);
    return detail::cat(s, " was killed by signal ", sig,
                       abbrev ? detail::cat(" (SIG", abbrev, ")") : std::string());
  }
  return detail::cat(s, " exited with status ", status_code(c.wstatus));
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// Reaps every child that has ended, without blocking; appends their indices to `newly`.
// Only our own pids are waited for, so other children of the process are left to their owners.
void reap_ended(std::vector<Child>& kids, std::vector<size_t>& newly) {
  for (size_t i = 0; i < kids.size(); ++i) {
    Child& c = kids[i];
    if (c.done) continue;
    int st = 0;
    pid_t r;
    do r = ::waitpid(c.pid, &st, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == c.pid) {
      c.done = true;
      c.wstatus = st;
    } else if (r < 0 && errno == ECHILD) {
      c.done = c.lost = true;
    } else {
      continue;
    }
    close_fd(c.pidfd);
    newly.push_back(i);
  }
}

bool all_done(const std::vector<Child>& kids) {
  return std::all_of(kids.begin(), kids.end(), [](const Child& c) { return c.done; });
}

// Sleeps until a child may have ended, wake_fd became readable, or the deadline passed. Without
// pidfds it falls back to polling every 20 ms; with them the 1 s cap is only a safety net.
void wait_for_event(const std::vector<Child>& kids, int wake_fd, Clock::time_point deadline) {
  std::vector<pollfd> fds;
  bool all_pidfds = true;
  for (const Child& c : kids) {
    if (c.done) continue;
    if (c.pidfd >= 0)
      fds.push_back({c.pidfd, POLLIN, 0});
    else
      all_pidfds = false;
  }
  if (wake_fd >= 0) fds.push_back({wake_fd, POLLIN, 0});
  auto cap = std::chrono::milliseconds(all_pidfds ? 1000 : 20);
  const auto now = Clock::now();
  if (deadline != Clock::time_point::max())
    cap = std::min(cap, std::chrono::ceil<std::chrono::milliseconds>(
                            std::max(deadline - now, Clock::duration::zero())));
  ::poll(fds.data(), fds.size(), static_cast<int>(cap.count()));
}

// SIGKILLs every child still running and reaps them; bounded so a child stuck in the kernel
// (uninterruptible I/O) cannot hang the caller. Returns false when some could not be reaped.
bool kill_and_reap(std::vector<Child>& kids,
                   std::chrono::milliseconds grace = std::chrono::seconds(5)) {
  // Unreaped pids cannot have been reused, so kill() hits our child and nothing else.
  for (const Child& c : kids)
    if (!c.done) ::kill(c.pid, SIGKILL);
  const auto deadline = Clock::now() + grace;
  std::vector<size_t> newly;
  for (;;) {
    reap_ended(kids, newly);
    if (all_done(kids)) return true;
    if (Clock::now() >= deadline) return false;
    wait_for_event(kids, -1, deadline);
  }
}

void write_stderr(const std::string& msg) {
  // write(2), not stdio: another thread (rank 0's code) may hold stderr's lock while blocked.
  size_t off = 0;
  while (off < msg.size()) {
    const ssize_t n = ::write(STDERR_FILENO, msg.data() + off, msg.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

// Argument/environment arrays for execve, built before fork: allocating after it is not
// async-signal-safe in a multi-threaded process.
struct CArray {
  std::vector<std::string> strings;
  std::vector<char*> ptrs;
  explicit CArray(std::vector<std::string> s) : strings(std::move(s)) {
    for (auto& x : strings) ptrs.push_back(x.data());
    ptrs.push_back(nullptr);
  }
  CArray(CArray&& o) noexcept
      : strings(std::move(o.strings)), ptrs(std::move(o.ptrs)) {}  // ptrs stay valid
};

struct Command {
  std::string path;     // what execve runs
  std::string display;  // argv[0], for messages
  std::vector<std::string> args;
};

std::vector<std::string> own_command_line() {
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> args;
  for (std::string arg; std::getline(f, arg, '\0');) args.push_back(arg);
  if (args.empty())
    throw DistributedError(
        "SubprocessLauncher: cannot read this program's command line from /proc/self/cmdline; "
        "pass LaunchOptions::argv explicitly");
  return args;
}

bool is_executable_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

Command resolve_command(const std::vector<std::string>& argv) {
  Command cmd;
  if (argv.empty()) {
    // /proc/self/exe in the forked child is this very binary, even if the file was rebuilt since.
    cmd.args = own_command_line();
    cmd.path = "/proc/self/exe";
    cmd.display = cmd.args[0];
    return cmd;
  }
  cmd.args = argv;
  cmd.display = argv[0];
  if (argv[0].empty())
    throw ValueError(
        "SubprocessLauncher: LaunchOptions::argv[0] is empty; expected the program to run");
  if (argv[0].find('/') != std::string::npos) {
    cmd.path = argv[0];
    return cmd;
  }
  // execvp is not async-signal-safe, so the PATH lookup happens here, before fork.
  const char* env_path = std::getenv("PATH");
  const std::string path_list = env_path ? env_path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  for (;;) {
    const size_t end = path_list.find(':', start);
    std::string dir =
        path_list.substr(start, end == std::string::npos ? std::string::npos : end - start);
    const std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + argv[0];
    if (is_executable_file(candidate)) {
      cmd.path = candidate;
      return cmd;
    }
    if (end == std::string::npos) break;
    start = end + 1;
  }
  throw DistributedError("could not start " + argv[0] +
                         ": no executable of that name in PATH=" + path_list + "; give a path");
}

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

int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  const long fd = ::syscall(SYS_pidfd_open, pid, 0);
  if (fd >= 0) {
    // pidfds are close-on-exec already; be explicit so no rank ever holds a sibling's.
    ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
    return static_cast<int>(fd);
  }
#endif
  return -1;
}

// Forks and execs one rank. The child reports an exec failure's errno over a close-on-exec pipe, so
// the parent can name it; EOF on that pipe means execve succeeded.
Child spawn(const Command& cmd, CArray& args, CArray& env, int local_rank, int fd_limit) {
  int errpipe[2];
  if (::pipe2(errpipe, O_CLOEXEC) != 0)
    throw DistributedError("could not start " + cmd.display + ": pipe2: " + errno_text(errno));
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    ::close(errpipe[0]);
    ::close(errpipe[1]);
    throw DistributedError(detail::cat("could not start ", cmd.display, " (local rank ", local_rank,
                                       "): fork: ", errno_text(e)));
  }
  if (pid == 0) {
    // Child of a possibly multi-threaded parent: async-signal-safe calls only until execve.
    ::close(errpipe[0]);
    int err = 0;
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) err = errno;
    if (::getppid() != parent) ::_exit(127);  // the parent died before the death signal was armed
    sigset_t none;
    sigemptyset(&none);
    // The forking thread's signal mask must not leak into the rank.
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // The rank gets stdin/stdout/stderr only, as subprocess.Popen(close_fds=True) gives it.
    long marked = -1;
#ifdef SYS_close_range
    marked = ::syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC);
#endif
    if (err == 0 && marked != 0) {
      for (int fd = 3; fd < fd_limit; ++fd) {
        const int flags = ::fcntl(fd, F_GETFD);
        if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
      }
    }
    if (err == 0) {
      ::execve(cmd.path.c_str(), args.ptrs.data(), env.ptrs.data());
      err = errno;
    }
    ssize_t w;
    do w = ::write(errpipe[1], &err, sizeof err);
    while (w < 0 && errno == EINTR);
    ::_exit(127);
  }
  ::close(errpipe[1]);
  int child_errno = 0;
  ssize_t n;
  do n = ::read(errpipe[0], &child_errno, sizeof child_errno);
  while (n < 0 && errno == EINTR);
  ::close(errpipe[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    int st;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    throw DistributedError(detail::cat("could not start ", cmd.display, " (local rank ", local_rank,
                                       "): ", errno_text(child_errno)));
  }
  Child c;
  c.local_rank = local_rank;
  c.pid = pid;
  c.pidfd = open_pidfd(pid);
  return c;
}

int fd_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 65536;
  return static_cast<int>(std::min<rlim_t>(rl.rlim_cur, 1 << 20));
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

// Waits for every child; the first failure kills the rest and its status is returned.
int wait_all(std::vector<Child>& kids, std::chrono::milliseconds timeout, const char* op) {
  const auto deadline = Clock::now() + timeout;
  std::vector<size_t> newly;
  for (;;) {
    newly.clear();
    reap_ended(kids, newly);
    for (size_t i : newly) {
      if (!failed(kids[i])) continue;
      const int code = status_code(kids[i].wstatus);
      write_stderr(
          detail::cat("fabric launcher: ", describe(kids[i]), "; killing the other local ranks\n"));
      kill_and_reap(kids);
      return code;
    }
    if (all_done(kids)) return 0;
    if (Clock::now() >= deadline) {
      std::string running;
      for (const Child& c : kids)
        if (!c.done)
          running += detail::cat(running.empty() ? "" : ", ", c.local_rank, " (pid ", c.pid, ")");
      kill_and_reap(kids);
      throw TimeoutError(detail::cat(op, ": local ranks ", running, " still running after ",
                                     timeout.count(), " ms; killed them"));
    }
    wait_for_event(kids, -1, deadline);
  }
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
  int wake_fd = -1;
  std::thread watchdog;
  // What launch() changed in this process's environment, with the previous values.
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_env;

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
  }

  void watch() {
    for (;;) {
      wait_for_event(kids, wake_fd, Clock::time_point::max());
      std::lock_guard<std::mutex> lock(mu);
      if (stop) return;
      std::vector<size_t> newly;
      reap_ended(kids, newly);
      for (size_t i : newly) {
        if (!failed(kids[i])) continue;
        // Holding mu: join()/kill_all() cannot slip in between this decision and _exit.
        const int code = status_code(kids[i].wstatus);
        kill_and_reap(kids, std::chrono::seconds(2));
        write_stderr(detail::cat("fabric launcher: ", describe(kids[i]),
                                 "; killed the other local ranks, exiting with status ", code,
                                 "\n"));
        ::_exit(code);
      }
      if (all_done(kids)) return;
    }
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
