// Tests of the local subprocess launcher. Ranks are `/bin/sh -c` scripts (no helper binary); every
// test that calls launch() runs it in a forked child, because launch() rewrites the environment and
// its watchdog may _exit the whole process.
#include <dlfcn.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <sstream>
#include <thread>

#include "distributed/launcher.h"
#include "tests/distributed/forked_run.h"
#include "tensor/error.h"

namespace fabric::distributed {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kChildDirVar = "FABRIC_LAUNCHER_TEST_CHILD_DIR";
constexpr const char* kOmpDirVar = "FABRIC_LAUNCHER_TEST_OMP_DIR";

// The test binary does not link OpenMP itself; the runtime library does, so its symbols are
// reachable at run time (and its runtime has read the environment before any of this code runs).
int omp_max_threads() {
  using Fn = int (*)();
  static Fn fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "omp_get_max_threads"));
  return fn ? fn() : -1;
}
void omp_set_threads(int n) {
  using Fn = void (*)(int);
  static Fn fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  if (fn) fn(n);
}

std::string read_fd_all(int fd) {
  std::string s;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) s.append(buf, static_cast<size_t>(n));
  return s;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string self_link(const char* path) {
  char buf[4096];
  const ssize_t n = ::readlink(path, buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// When ReRunsOwnCommandLine re-executes this test binary, the re-run lands here before main(): it
// records what it was started with and exits, so no test runs twice.
[[maybe_unused]] const bool g_rerun_hook = [] {
  const char* dir = std::getenv(kChildDirVar);
  if (!dir) return false;
  const char* lr = std::getenv("LOCAL_RANK");
  const char* ws = std::getenv("WORLD_SIZE");
  const int cfd = ::open("/proc/self/cmdline", O_RDONLY);
  const std::string cmdline = cfd >= 0 ? read_fd_all(cfd) : std::string();
  std::ofstream(std::string(dir) + "/rerun_" + (lr ? lr : "unset"), std::ios::binary)
      << (lr ? lr : "-") << ' ' << (ws ? ws : "-") << '\n'
      << self_link("/proc/self/exe") << '\n'
      << cmdline;
  std::_Exit(0);
}();

// When EveryRankRunsWithTheChosenOmpThreadCount re-executes this test binary, the re-run writes
// the thread count its OpenMP runtime took from the environment and exits before main().
[[maybe_unused]] const bool g_omp_rerun_hook = [] {
  const char* dir = std::getenv(kOmpDirVar);
  if (!dir) return false;
  const char* lr = std::getenv("LOCAL_RANK");
  std::ofstream(std::string(dir) + "/omp_" + (lr ? lr : "unset")) << omp_max_threads() << '\n';
  std::_Exit(0);
}();

using testing::Forked;
using testing::put;
using testing::run_forked;
using testing::TempDir;

// Dead: no such process, or a zombie awaiting a reaper that is not us.
bool process_gone(pid_t pid) {
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  const std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

bool wait_gone(pid_t pid, std::chrono::milliseconds within) {
  const auto deadline = Clock::now() + within;
  while (!process_gone(pid)) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

std::string env_or_dash(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "-";
}

int expected_omp_threads(int nprocs) {
  if (const char* v = std::getenv("OMP_NUM_THREADS")) return std::atoi(v);
  cpu_set_t set;
  CPU_ZERO(&set);
  const int cpus = ::sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
  return std::max(1, cpus / nprocs);
}

// A rank script that writes "LOCAL_RANK RANK(- when unset) WORLD_SIZE NODE_RANK MASTER_ADDR
// MASTER_PORT OMP_NUM_THREADS EXTRA" to dir/env_<LOCAL_RANK> (atomically, via rename).
std::vector<std::string> env_dump_argv(const TempDir& dir) {
  const std::string f = dir.path() + "/env_$LOCAL_RANK";
  return {"/bin/sh", "-c",
          "echo \"$LOCAL_RANK ${RANK:--} $WORLD_SIZE $NODE_RANK $MASTER_ADDR $MASTER_PORT "
          "$OMP_NUM_THREADS ${EXTRA:--}\" > " +
              f + ".tmp && mv " + f + ".tmp " + f};
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

pid_t to_pid(const std::string& s) { return static_cast<pid_t>(std::atol(s.c_str())); }

// ---- options --------------------------------------------------------------------------------

LaunchOptions with(const std::function<void(LaunchOptions&)>& edit) {
  LaunchOptions o;
  o.argv = {"/bin/true"};
  edit(o);
  return o;
}

TEST(LauncherOptions, RejectsBadValuesWithActionableErrors) {
  EXPECT_THROW(SubprocessLauncher(with([](auto& o) { o.nprocs = 0; })), ValueError);
  EXPECT_THROW(SubprocessLauncher(with([](auto& o) { o.main_port = -1; })), ValueError);
  EXPECT_THROW(SubprocessLauncher(with([](auto& o) { o.main_port = 70000; })), ValueError);
  EXPECT_THROW(SubprocessLauncher(with([](auto& o) { o.num_nodes = 0; })), ValueError);
  EXPECT_THROW(SubprocessLauncher(
                   with([](auto& o) { o.num_nodes = 2, o.node_rank = 2, o.main_port = 29500; })),
               ValueError);
  EXPECT_THROW(SubprocessLauncher(with([](auto& o) { o.num_nodes = 2; })),
               ValueError);  // port 0 on 2 nodes
  EXPECT_THROW(SubprocessLauncher(with([](auto& o) { o.main_address = ""; })), ValueError);
  EXPECT_THROW(SubprocessLauncher(with([](auto& o) {
                 o.extra_env = {{"LOCAL_RANK", "3"}};
               })),
               ValueError);
  EXPECT_THROW(SubprocessLauncher(with([](auto& o) { o.extra_env = {{"A=B", "1"}}; })), ValueError);
  EXPECT_THROW(run_all_and_wait(with([](auto& o) { o.nprocs = -2; }), 1s), ValueError);
  EXPECT_THROW(run_all_and_wait(with([](auto& o) { o.argv = {""}; }), 1s), ValueError);
  try {
    SubprocessLauncher l(with([](auto& o) { o.main_port = 70000; }));
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("main_port"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("70000"), std::string::npos) << e.what();
  }
}

TEST(LauncherOptions, JoinBeforeLaunchThrows) {
  SubprocessLauncher l(with([](auto& o) { o.nprocs = 2; }));
  EXPECT_THROW(l.join(1s), DistributedError);
  EXPECT_TRUE(l.child_pids().empty());
}

TEST(LauncherOptions, MainAddressThatIsNotLocalCannotPickAPort) {
  if (trimmed(slurp("/proc/sys/net/ipv4/ip_nonlocal_bind")) == "1")
    GTEST_SKIP() << "ip_nonlocal_bind=1 lets any address bind";
  // 192.0.2.0/24 is TEST-NET-1: never an address of this machine.
  try {
    run_all_and_wait(with([](auto& o) { o.main_address = "192.0.2.1"; }), 1s);
    FAIL() << "expected DistributedError";
  } catch (const DistributedError& e) {
    EXPECT_NE(std::string(e.what()).find("could not bind main_address '192.0.2.1'"),
              std::string::npos)
        << e.what();
  }
}

// ---- launch() + join() / kill_all() ---------------------------------------------------------

TEST(LauncherJoin, ExportsTheEnvironmentToChildrenAndItself) {
  TempDir dir;
  const Forked r = run_forked(
      [&](int out) {
        ::unsetenv("OMP_NUM_THREADS");
        ::setenv("RANK", "5", 1);  // stale: must reach no rank
        LaunchOptions o;
        o.nprocs = 3;
        o.argv = env_dump_argv(dir);
        o.extra_env = {{"EXTRA", "hello"}};
        SubprocessLauncher l(o);
        l.launch();
        put(out, "self=" + env_or_dash("LOCAL_RANK") + " " + env_or_dash("RANK") + " " +
                     env_or_dash("WORLD_SIZE") + " " + env_or_dash("NODE_RANK") + " " +
                     env_or_dash("MASTER_ADDR") + " " + env_or_dash("MASTER_PORT") + " " +
                     env_or_dash("OMP_NUM_THREADS") + " " + env_or_dash("EXTRA") + "\n");
        put(out, "port=" + std::to_string(l.main_port()) +
                     "\nchildren=" + std::to_string(l.child_pids().size()) + "\n");
        put(out, "join=" + std::to_string(l.join(5s)) + "\n");
        put(out, "after=" + env_or_dash("LOCAL_RANK") + " " + env_or_dash("RANK") + " " +
                     env_or_dash("WORLD_SIZE") + " " + env_or_dash("MASTER_PORT") + " " +
                     env_or_dash("OMP_NUM_THREADS") + "\n");
      },
      10s);
  ASSERT_FALSE(r.timed_out) << r.out;
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.kv.at("after"), "- 5 - - -");  // join() put the environment back
  const std::string port = r.kv.at("port");
  EXPECT_NE(port, "0");
  EXPECT_EQ(r.kv.at("children"), "2");
  EXPECT_EQ(r.kv.at("join"), "0");
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(::sched_getaffinity(0, sizeof set, &set), 0);
  const std::string omp = std::to_string(std::max(1, CPU_COUNT(&set) / 3));
  EXPECT_EQ(r.kv.at("self"),
            "0 - 3 0 127.0.0.1 " + port + " " + omp + " -");  // extra_env is for the children only
  for (int rank : {1, 2})
    EXPECT_EQ(trimmed(slurp(dir.file("env_" + std::to_string(rank)))),
              detail::cat(rank, " - 3 0 127.0.0.1 ", port, " ", omp, " hello"));
  EXPECT_FALSE(
      std::filesystem::exists(dir.file("env_0")));  // rank 0 is the launching process itself
}

TEST(LauncherJoin, KeepsAnOmpNumThreadsThatIsAlreadySet) {
  TempDir dir;
  const Forked r = run_forked(
      [&](int out) {
        ::setenv("OMP_NUM_THREADS", "7", 1);
        omp_set_threads(5);  // the user's own choice in code: not the launcher's to change
        LaunchOptions o;
        o.nprocs = 2;
        o.argv = env_dump_argv(dir);
        SubprocessLauncher l(o);
        l.launch();
        put(out, "self_omp=" + env_or_dash("OMP_NUM_THREADS") + "\n");
        put(out, "self_threads=" + std::to_string(omp_max_threads()) + "\n");
        put(out, "join=" + std::to_string(l.join(5s)) + "\n");
      },
      10s);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.kv.at("self_omp"), "7");
  EXPECT_EQ(r.kv.at("self_threads"), "5");
  EXPECT_EQ(r.kv.at("join"), "0");
  std::istringstream fields(slurp(dir.file("env_1")));
  std::vector<std::string> f{std::istream_iterator<std::string>(fields), {}};
  ASSERT_EQ(f.size(), 8u);
  EXPECT_EQ(f[6], "7");
}

// The CPUs this process may run on: what the launcher divides among the ranks.
int affinity_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  EXPECT_EQ(::sched_getaffinity(0, sizeof set, &set), 0);
  return CPU_COUNT(&set);
}

// The launcher chooses OMP_NUM_THREADS = cpus / nprocs; rank 0 is this process, whose OpenMP
// runtime had read its (unset) environment long before, so launch() must set its count too.
TEST(LauncherJoin, EveryRankRunsWithTheChosenOmpThreadCount) {
  ASSERT_GT(omp_max_threads(), 0) << "OpenMP runtime not loaded";
  const int cpus = affinity_cpus();
  const int chosen = std::max(1, cpus / 2);
  TempDir dir;
  const Forked r = run_forked(
      [&](int out) {
        ::unsetenv("OMP_NUM_THREADS");
        // What the runtime took at start without OMP_NUM_THREADS is every core; more here, so
        // that the count differs from the chosen one on any machine.
        omp_set_threads(cpus + 3);
        LaunchOptions o;
        o.nprocs = 2;
        o.extra_env = {{kOmpDirVar, dir.path()}};  // the re-run stops in g_omp_rerun_hook
        SubprocessLauncher l(o);
        l.launch();
        put(out, "rank0=" + std::to_string(omp_max_threads()) + "\n");
        put(out, "join=" + std::to_string(l.join(20s)) + "\n");
        put(out, "after=" + std::to_string(omp_max_threads()) + "\n");
      },
      30s);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.kv.at("join"), "0");
  EXPECT_EQ(r.kv.at("rank0"), std::to_string(chosen));
  EXPECT_EQ(trimmed(slurp(dir.file("omp_1"))), std::to_string(chosen));
  EXPECT_EQ(r.kv.at("after"), std::to_string(cpus + 3));  // the run is over: the count is back
}

// A count the program already lowered itself (fabric-train's deterministic mode: one thread) is
// not raised to the launcher's choice.
TEST(LauncherJoin, LeavesALowerOmpThreadCountAlone) {
  const int cpus = affinity_cpus();
  if (cpus < 2) GTEST_SKIP() << "one CPU: the launcher's choice is 1 thread anyway";
  const Forked r = run_forked(
      [&](int out) {
        ::unsetenv("OMP_NUM_THREADS");
        omp_set_threads(1);
        LaunchOptions o;
        o.nprocs = 1;  // chooses every CPU
        o.argv = {"/bin/true"};
        SubprocessLauncher l(o);
        l.launch();
        put(out, "env=" + env_or_dash("OMP_NUM_THREADS") + "\n");
        put(out, "threads=" + std::to_string(omp_max_threads()) + "\n");
        put(out, "join=" + std::to_string(l.join(5s)) + "\n");
      },
      10s);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.kv.at("env"), std::to_string(cpus));
  EXPECT_EQ(r.kv.at("threads"), "1");
}

// rank 1 fails a second after start (after join() has taken over from the watchdog); rank 2 sleeps.
Forked join_with_failing_rank(const std::string& failure) {
  return run_forked(
      [&](int out) {
        LaunchOptions o;
        o.nprocs = 3;
        o.argv = {"/bin/sh", "-c",
                  "if [ \"$LOCAL_RANK\" = 1 ]; then sleep 1; " + failure + "; fi; exec sleep 30"};
        SubprocessLauncher l(o);
        l.launch();
        const auto pids = l.child_pids();
        put(out, "sibling=" + std::to_string(pids.at(1)) + "\n");
        const int status = l.join(10s);
        put(out, "join=" + std::to_string(status) + "\n");
        put(out, std::string("sibling_gone=") +
                     (::kill(pids.at(1), 0) != 0 && errno == ESRCH ? "1" : "0") + "\n");
      },
      15s);
}

TEST(LauncherJoin, ReturnsTheFailingRanksStatusAndKillsTheOthers) {
  const Forked r = join_with_failing_rank("exit 3");
  ASSERT_FALSE(r.timed_out) << r.out;
  ASSERT_EQ(r.code, 0)
      << "status " << r.code
      << " without join= means the watchdog fired before join() (machine overloaded?): " << r.out;
  EXPECT_EQ(r.kv.at("join"), "3");
  EXPECT_EQ(r.kv.at("sibling_gone"), "1");
  EXPECT_TRUE(wait_gone(to_pid(r.kv.at("sibling")), 1s));
}

TEST(LauncherJoin, ReportsARankKilledBySignalAs128PlusSignal) {
  const Forked r = join_with_failing_rank("kill -9 $$");
  ASSERT_FALSE(r.timed_out) << r.out;
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.kv.at("join"), "137");
  EXPECT_EQ(r.kv.at("sibling_gone"), "1");
}

TEST(LauncherJoin, KillAllReapsSleepingChildren) {
  const Forked r = run_forked(
      [&](int out) {
        LaunchOptions o;
        o.nprocs = 4;
        o.argv = {"/bin/sh", "-c", "exec sleep 30"};
        SubprocessLauncher l(o);
        l.launch();
        const auto pids = l.child_pids();
        put(out, "children=" + std::to_string(pids.size()) + "\n");
        for (pid_t p : pids)
          put(out, std::string("alive_before=") + (::kill(p, 0) == 0 ? "1" : "0") + "\n");
        l.kill_all();
        put(out, "local_rank_after=" + env_or_dash("LOCAL_RANK") + "\n");
        int gone = 0;
        for (pid_t p : pids) gone += ::kill(p, 0) != 0 && errno == ESRCH;
        put(out, "gone=" + std::to_string(gone) + "\n");
      },
      5s);
  ASSERT_FALSE(r.timed_out) << r.out;
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.kv.at("children"), "3");
  EXPECT_EQ(r.kv.at("alive_before"), "1");
  EXPECT_EQ(r.kv.at("gone"), "3");
  EXPECT_EQ(r.kv.at("local_rank_after"), "-");
}

TEST(LauncherJoin, JoinTimeoutKillsTheChildrenAndThrows) {
  const Forked r = run_forked(
      [&](int out) {
        LaunchOptions o;
        o.nprocs = 2;
        o.argv = {"/bin/sh", "-c", "exec sleep 30"};
        SubprocessLauncher l(o);
        l.launch();
        const pid_t child = l.child_pids().at(0);
        try {
          l.join(300ms);
          put(out, "threw=0\n");
        } catch (const TimeoutError& e) {
          put(out, std::string("threw=1\nmessage=") + e.what() + "\n");
        }
        put(out,
            std::string("gone=") + (::kill(child, 0) != 0 && errno == ESRCH ? "1" : "0") + "\n");
        try {
          l.join(300ms);
        } catch (const TimeoutError&) {
          put(out, "rethrew=1\n");
        }
      },
      5s);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.kv.at("threw"), "1");
  EXPECT_NE(r.kv.at("message").find("local ranks 1 (pid"), std::string::npos) << r.out;
  EXPECT_EQ(r.kv.at("gone"), "1");
  EXPECT_EQ(r.kv.count("rethrew"), 1u);
}

TEST(LauncherJoin, ReRunsOwnCommandLineWhenArgvIsEmpty) {
  TempDir dir;
  const Forked r = run_forked(
      [&](int out) {
        LaunchOptions o;
        o.nprocs = 2;
        o.extra_env = {{kChildDirVar, dir.path()}};  // makes the re-run stop in g_rerun_hook
        SubprocessLauncher l(o);
        l.launch();
        put(out, "join=" + std::to_string(l.join(20s)) + "\n");
      },
      30s);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.kv.at("join"), "0");
  const int cfd = ::open("/proc/self/cmdline", O_RDONLY);
  ASSERT_GE(cfd, 0);
  const std::string own_cmdline = read_fd_all(cfd);
  ::close(cfd);
  EXPECT_EQ(slurp(dir.file("rerun_1")), "1 2\n" + self_link("/proc/self/exe") + "\n" + own_cmdline);
}

TEST(LauncherJoin, RefusesToLaunchFromARankThatWasLaunched) {
  const Forked r = run_forked(
      [&](int out) {
        ::setenv("LOCAL_RANK", "1", 1);
        LaunchOptions o;
        o.nprocs = 2;
        o.argv = {"/bin/sh", "-c", "exit 0"};
        SubprocessLauncher l(o);
        try {
          l.launch();
          put(out, "threw=0\n");
        } catch (const DistributedError& e) {
          put(out, std::string("threw=1\nmessage=") + e.what() + "\n");
        }
        put(out, "children=" + std::to_string(l.child_pids().size()) + "\n");
      },
      5s);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.kv.at("threw"), "1");
  EXPECT_NE(r.kv.at("message").find("LOCAL_RANK=1 is already set"), std::string::npos) << r.out;
  EXPECT_EQ(r.kv.at("children"), "0");
}

TEST(LauncherJoin, ReportsAProgramThatCannotBeStarted) {
  TempDir dir;
  const std::string not_executable = dir.file("not_executable");
  std::ofstream(not_executable) << "#!/bin/sh\nexit 0\n";
  const Forked r = run_forked(
      [&](int out) {
        int i = 0;
        for (const std::string& prog : std::vector<std::string>{
                 "/nonexistent/fabric-prog", "fabric-no-such-program-in-path", not_executable}) {
          LaunchOptions o;
          o.nprocs = 3;
          o.argv = {prog};
          SubprocessLauncher l(o);
          try {
            l.launch();
            put(out, "message" + std::to_string(i) + "=none\n");
          } catch (const DistributedError& e) {
            put(out, "message" + std::to_string(i) + "=" + e.what() + "\n");
          }
          ++i;
        }
        put(out, "local_rank_after=" + env_or_dash("LOCAL_RANK") + "\n");  // nothing left exported
        // Ranks started before the failing one were killed and reaped: no child is left.
        put(out, std::string("no_children=") +
                     (::waitpid(-1, nullptr, WNOHANG) < 0 && errno == ECHILD ? "1" : "0") + "\n");
      },
      5s);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.kv.at("message0"),
            "could not start /nonexistent/fabric-prog (local rank 1): No such file or directory");
  EXPECT_NE(
      r.kv.at("message1")
          .find(
              "could not start fabric-no-such-program-in-path: no executable of that name in PATH"),
      std::string::npos)
      << r.out;
  EXPECT_EQ(r.kv.at("message2"),
            "could not start " + not_executable + " (local rank 1): Permission denied");
  EXPECT_EQ(r.kv.at("no_children"), "1");
  EXPECT_EQ(r.kv.at("local_rank_after"), "-");
}

// ---- the watchdog: a rank that fails while rank 0 is still working ends the whole process ----

Forked watchdog_run(const std::string& failure, const std::string& stderr_path) {
  return run_forked(
      [&](int out) {
        LaunchOptions o;
        o.nprocs = 3;
        o.argv = {"/bin/sh", "-c",
                  "if [ \"$LOCAL_RANK\" = 1 ]; then sleep 0.3; " + failure + "; fi; exec sleep 30"};
        SubprocessLauncher l(o);
        l.launch();
        const auto pids = l.child_pids();
        put(out, "failing=" + std::to_string(pids.at(0)) +
                     "\nsibling=" + std::to_string(pids.at(1)) + "\n");
        std::this_thread::sleep_for(20s);  // rank 0 "blocked in a collective"
        put(out, "survived=1\n");
      },
      10s, stderr_path);
}

TEST(LauncherWatchdog, ExitsWithTheFailingRanksStatusAndKillsTheOthers) {
  TempDir dir;
  const Forked r = watchdog_run("exit 5", dir.file("stderr"));
  ASSERT_FALSE(r.timed_out) << r.out;
  EXPECT_EQ(r.code, 5) << r.out;
  EXPECT_EQ(r.kv.count("survived"), 0u);
  EXPECT_TRUE(wait_gone(to_pid(r.kv.at("sibling")), 1s));
  const std::string err = slurp(dir.file("stderr"));
  EXPECT_NE(err.find("local rank 1 (pid " + r.kv.at("failing") + ") exited with status 5"),
            std::string::npos)
      << err;
}

TEST(LauncherWatchdog, ReportsARankKilledBySignal) {
  TempDir dir;
  const Forked r = watchdog_run("kill -9 $$", dir.file("stderr"));
  ASSERT_FALSE(r.timed_out) << r.out;
  EXPECT_EQ(r.code, 137) << r.out;
  EXPECT_TRUE(wait_gone(to_pid(r.kv.at("sibling")), 1s));
  const std::string err = slurp(dir.file("stderr"));
  EXPECT_NE(
      err.find("local rank 1 (pid " + r.kv.at("failing") + ") was killed by signal 9 (SIGKILL)"),
      std::string::npos)
      << err;
}

// Rank 0 fails because a child died (its collective with the child broke) and calls kill_all()
// before the watchdog has seen the death: the child's status still ends the process. Rank 0 here
// notices at once, through a FIFO the child holds open; several runs, since the order of the two
// is a race (before the fix kill_all() often won it and rank 0 went on as if nothing had failed).
TEST(LauncherWatchdog, KillAllAfterAChildDiedExitsWithTheChildsStatus) {
  TempDir dir;
  const std::string fifo = dir.file("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  for (int run = 0; run < 6; ++run) {
    const Forked r = run_forked(
        [&](int out) {
          LaunchOptions o;
          o.nprocs = 2;
          o.argv = {"/bin/sh", "-c", "exec 3>" + fifo + "; kill -9 $$"};
          SubprocessLauncher l(o);
          l.launch();
          const int fd = ::open(fifo.c_str(), O_RDONLY);  // until the child opens it
          char byte;
          while (::read(fd, &byte, 1) < 0 && errno == EINTR) {  // EOF: the child is dying
          }
          l.kill_all();  // what rank 0 unwinding from its broken collective does
          put(out, "survived=1\n");
        },
        10s, dir.file("stderr"));
    ASSERT_FALSE(r.timed_out) << "run " << run << ": " << r.out;
    EXPECT_EQ(r.code, 137) << "run " << run << ": " << r.out;
    EXPECT_EQ(r.kv.count("survived"), 0u) << "run " << run;
    const std::string err = slurp(dir.file("stderr"));
    EXPECT_NE(err.find("was killed by signal 9 (SIGKILL)"), std::string::npos)
        << "run " << run << ": " << err;
  }
}

TEST(LauncherWatchdog, ChildrenDieWithAHardKilledRankZero) {
  // SIGKILL gives rank 0 no chance to clean up: the parent-death signal must take the ranks down.
  const Forked r = run_forked(
      [&](int out) {
        LaunchOptions o;
        o.nprocs = 3;
        o.argv = {"/bin/sh", "-c", "exec sleep 30"};
        SubprocessLauncher l(o);
        l.launch();
        for (pid_t p : l.child_pids())
          put(out, "child" + std::to_string(p) + "=" + std::to_string(p) + "\n");
        ::kill(::getpid(), SIGKILL);
      },
      5s);
  ASSERT_FALSE(r.timed_out) << r.out;
  EXPECT_EQ(r.code, 137);
  ASSERT_EQ(r.kv.size(), 2u) << r.out;
  for (const auto& [key, pid] : r.kv) EXPECT_TRUE(wait_gone(to_pid(pid), 1s)) << key;
}

// ---- run_all_and_wait: every rank a child of a watching parent --------------------------------

TEST(LauncherRunAll, AllRanksSucceedWithMultiNodeVariables) {
  TempDir dir;
  LaunchOptions o;
  o.nprocs = 2;
  o.num_nodes = 2;
  o.node_rank = 1;
  o.main_address = "10.1.2.3";  // only exported: a given port is never bound here
  o.main_port = 29517;
  o.argv = env_dump_argv(dir);
  EXPECT_EQ(run_all_and_wait(o, 5s), 0);
  const std::string omp = std::to_string(expected_omp_threads(2));
  EXPECT_EQ(trimmed(slurp(dir.file("env_0"))), "0 - 4 1 10.1.2.3 29517 " + omp + " -");
  EXPECT_EQ(trimmed(slurp(dir.file("env_1"))), "1 - 4 1 10.1.2.3 29517 " + omp + " -");
}

// Ranks other than `failing` record their pid and sleep; `failing` waits for those records, then
// fails.
std::vector<std::string> fail_after_siblings_argv(const TempDir& dir, int nprocs, int failing,
                                                  const std::string& failure) {
  std::string wait_all;
  for (int r = 0; r < nprocs; ++r)
    if (r != failing)
      wait_all += (wait_all.empty() ? "" : " || ") + std::string("[ ! -e ") +
                  dir.file("pid_" + std::to_string(r)) + " ]";
  const std::string f = dir.path() + "/pid_$LOCAL_RANK";
  return {"/bin/sh", "-c",
          "if [ \"$LOCAL_RANK\" = " + std::to_string(failing) + " ]; then while " + wait_all +
              "; do sleep 0.02; done; " + failure + "; fi; echo $$ > " + f + ".tmp && mv " + f +
              ".tmp " + f + " && exec sleep 30"};
}

TEST(LauncherRunAll, ReturnsTheFirstFailureAndKillsTheOthers) {
  TempDir dir;
  LaunchOptions o;
  o.nprocs = 3;
  o.argv = fail_after_siblings_argv(dir, 3, 1, "exit 3");
  EXPECT_EQ(run_all_and_wait(o, 10s), 3);
  for (int r : {0, 2})
    EXPECT_TRUE(process_gone(to_pid(slurp(dir.file("pid_" + std::to_string(r)))))) << "rank " << r;
}

TEST(LauncherRunAll, ARankKilledBySignalIs137) {
  TempDir dir;
  LaunchOptions o;
  o.nprocs = 2;
  o.argv = fail_after_siblings_argv(dir, 2, 0, "kill -9 $$");
  EXPECT_EQ(run_all_and_wait(o, 10s), 137);
  EXPECT_TRUE(process_gone(to_pid(slurp(dir.file("pid_1")))));
}

TEST(LauncherRunAll, ProgramsThatCannotBeStarted) {
  LaunchOptions o;
  o.nprocs = 2;
  o.argv = {"/nonexistent/fabric-prog"};
  try {
    run_all_and_wait(o, 5s);
    FAIL() << "expected DistributedError";
  } catch (const DistributedError& e) {
    EXPECT_STREQ(
        e.what(),
        "could not start /nonexistent/fabric-prog (local rank 0): No such file or directory");
  }
  o.argv = {"/bin/sh", "-c", "exec /nonexistent/fabric-prog"};  // the shell's own exec failure: 127
  EXPECT_EQ(run_all_and_wait(o, 5s), 127);
}

TEST(LauncherRunAll, TimeoutKillsEveryRankAndThrows) {
  TempDir dir;
  LaunchOptions o;
  o.nprocs = 2;
  const std::string f = dir.path() + "/pid_$LOCAL_RANK";
  o.argv = {"/bin/sh", "-c",
            "echo $$ > " + f + ".tmp && mv " + f + ".tmp " + f + " && exec sleep 30"};
  EXPECT_THROW(run_all_and_wait(o, 1s), TimeoutError);
  for (int r : {0, 1}) {
    const std::string pid = slurp(dir.file("pid_" + std::to_string(r)));
    if (!pid.empty()) {  // a rank may be killed before it wrote its pid
      EXPECT_TRUE(process_gone(to_pid(pid))) << "rank " << r;
    }
  }
}

TEST(LauncherRunAll, ChildrenInheritOnlyTheStandardStreams) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);  // deliberately not close-on-exec
  ASSERT_EQ(::dup2(p[0], 100), 100);
  LaunchOptions o;
  o.nprocs = 1;
  o.argv = {"/bin/sh", "-c", "if [ -e /proc/$$/fd/100 ]; then exit 9; fi; exit 0"};
  const int rc = run_all_and_wait(o, 5s);
  ::close(100);
  ::close(p[0]);
  ::close(p[1]);
  EXPECT_EQ(rc, 0) << "fd 100 leaked into the rank";
}

}  // namespace
}  // namespace fabric::distributed
