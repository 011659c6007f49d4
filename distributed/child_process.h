// Child-process machinery behind the local launcher: fork + execve of one rank, pidfd-woken
// waiting, reaping and kill-and-reap. Internal: for launcher.cpp, never for public headers.
#pragma once
#include <sys/types.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace fabric::distributed::child_process_detail {

using Clock = std::chrono::steady_clock;

struct Child {
  int local_rank = 0;
  pid_t pid = -1;
  int pidfd = -1;     // readable once the child has ended; -1 where pidfd_open is unavailable
  bool done = false;  // reaped (or lost)
  bool lost =
      false;  // reaped by someone else (SIGCHLD ignored, or a wait(-1) elsewhere): status unknown
  int wstatus = 0;
};

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

std::string errno_text(int e);

// True when the child was reaped with a status other than exit 0 (a lost status is not a failure).
bool failed(const Child& c);
// The shell convention: the exit code, or 128 + the signal.
int status_code(int wstatus);
// "local rank R (pid P) exited with status S" / "was killed by signal N (SIGX)".
std::string describe(const Child& c);
void close_fd(int& fd);

void reap_ended(std::vector<Child>& kids, std::vector<size_t>& newly);
bool all_done(const std::vector<Child>& kids);
void wait_for_event(const std::vector<Child>& kids, int wake_fd, Clock::time_point deadline);
bool kill_and_reap(std::vector<Child>& kids,
                   std::chrono::milliseconds grace = std::chrono::seconds(5));
// Waits for every child; the first failure (one reaped before the call first) kills the rest and
// its status is returned. milliseconds::max() waits without a limit.
int wait_all(std::vector<Child>& kids, std::chrono::milliseconds timeout, const char* op);

void write_stderr(const std::string& msg);

// argv empty: this process's own command line, run as /proc/self/exe; a bare argv[0] is looked
// up in PATH here, before fork.
Command resolve_command(const std::vector<std::string>& argv);
std::vector<std::string> own_command_line();
int open_pidfd(pid_t pid);
int fd_limit();
Child spawn(const Command& cmd, CArray& args, CArray& env, int local_rank, int fd_limit);

}  // namespace fabric::distributed::child_process_detail
