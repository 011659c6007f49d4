// Child-process machinery behind the local launcher: fork + execve with a parent-death signal,
// pidfd-woken waiting, and the reap and kill-and-reap paths.
#include "distributed/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <system_error>

#include "tensor/error.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace fabric::distributed::child_process_detail {
namespace {

bool is_executable_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

}  // namespace

std::string errno_text(int e) { return std::system_category().message(e); }

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
bool kill_and_reap(std::vector<Child>& kids, std::chrono::milliseconds grace) {
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

// Waits for every child; the first failure kills the rest and its status is returned.
int wait_all(std::vector<Child>& kids, std::chrono::milliseconds timeout, const char* op) {
  const auto deadline = timeout == std::chrono::milliseconds::max() ? Clock::time_point::max()
                                                                    : Clock::now() + timeout;
  // A child reaped before (by the launcher's watchdog, which held its failure) fails first.
  std::vector<size_t> newly;
  for (size_t i = 0; i < kids.size(); ++i)
    if (failed(kids[i])) newly.push_back(i);
  for (;;) {
    reap_ended(kids, newly);
    for (size_t i : newly) {
      if (!failed(kids[i])) continue;
      const int code = status_code(kids[i].wstatus);
      write_stderr(
          detail::cat("fabric launcher: ", describe(kids[i]), "; killing the other local ranks\n"));
      kill_and_reap(kids);
      return code;
    }
    newly.clear();
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

}  // namespace fabric::distributed::child_process_detail
