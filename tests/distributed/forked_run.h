// Test scaffolding for the launcher tests: launch() rewrites the environment and its watchdog may
// _exit the whole process, so each test runs it in a forked child (run_forked) and reads back what
// the child wrote (key=value lines) and, when asked, its stderr.
#pragma once
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>

namespace fabric::distributed::testing {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/fabric_launcher_XXXXXX";
    path_ = ::mkdtemp(tmpl) ? tmpl : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void put(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

struct Forked {
  int code = -1;  // exit code, or 128 + signal
  bool timed_out = false;
  std::string out;                        // what the body put()
  std::map<std::string, std::string> kv;  // its key=value lines
  std::string err;                        // its stderr, when run_forked was given a file for it
};

// Runs body in a forked child and collects what it writes to its fd; the child exits 0 when body
// returns, 99 when it throws (after writing exception=<what>, as a program reports its error). A
// child past the timeout is SIGKILLed (its ranks die with it). With stderr_path, the child's
// stderr goes to that file and comes back in Forked::err.
inline Forked run_forked(const std::function<void(int)>& body, std::chrono::milliseconds timeout,
                         const std::string& stderr_path = "") {
  using Clock = std::chrono::steady_clock;
  Forked r;
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return r;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(p[0]);
    if (!stderr_path.empty()) {
      const int fd = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd >= 0) ::dup2(fd, STDERR_FILENO);
    }
    try {
      body(p[1]);
    } catch (const std::exception& e) {
      put(p[1], std::string("exception=") + e.what() + "\n");
      ::_exit(99);
    }
    ::_exit(0);
  }
  ::close(p[1]);
  const auto deadline = Clock::now() + timeout;
  char buf[4096];
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) break;
    pollfd pfd{p[0], POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left)) <= 0) continue;
    const ssize_t n = ::read(p[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    r.out.append(buf, static_cast<size_t>(n));
  }
  ::close(p[0]);
  int st = 0;
  for (;;) {
    if (::waitpid(pid, &st, WNOHANG) == pid) break;
    if (Clock::now() >= deadline) {
      r.timed_out = true;
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    const size_t eq = line.find('=');
    if (eq != std::string::npos) r.kv[line.substr(0, eq)] = line.substr(eq + 1);
  }
  if (!stderr_path.empty()) {
    std::ifstream f(stderr_path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    r.err = ss.str();
  }
  return r;
}

}  // namespace fabric::distributed::testing
