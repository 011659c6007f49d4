// The launcher when rank 0 fails and a child fails right after it, as a consequence (its
// collective with rank 0 broke): rank 0's own error, the cause, must still be reported, not hidden
// behind the child's status. Ranks are `/bin/sh -c` scripts; each run is in a forked child, because
// launch() rewrites the environment and the watchdog may _exit the whole process.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <thread>

#include "distributed/launcher.h"
#include "tests/distributed/forked_run.h"

namespace fabric::distributed {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using testing::Forked;
using testing::put;
using testing::TempDir;

// The forked run with its stderr kept in dir (rank 0's error and the launcher's lines).
Forked run_forked(const std::function<void(int)>& body, const TempDir& dir,
                  std::chrono::seconds timeout) {
  return testing::run_forked(body, timeout, dir.file("stderr"));
}

// Rank 0 fails with an error of its own: its broken connection (a FIFO here) makes local rank 1
// fail at once with an error status ("peer closed"), and `unwinding` later rank 0 reaches
// kill_all(), as its Strategy's destructor does, then its error reaches the program.
Forked rank0_fails_first(const TempDir& dir, std::chrono::milliseconds unwinding) {
  const std::string fifo = dir.file("connection");
  ::unlink(fifo.c_str());
  if (::mkfifo(fifo.c_str(), 0600) != 0) return {};
  return run_forked(
      [&](int out) {
        LaunchOptions o;
        o.nprocs = 2;
        o.argv = {
            "/bin/sh", "-c",
            "exec 3<" + fifo +
                "; cat <&3 >/dev/null; echo 'local rank 1: connection closed by peer rank 0' >&2; "
                "exit 1"};
        SubprocessLauncher l(o);
        l.launch();
        put(out, "child=" + std::to_string(l.child_pids().at(0)) + "\n");
        const int fd = ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);  // until the child opens its end
        ::close(fd);  // rank 0's failure breaks the connection
        std::this_thread::sleep_for(unwinding);
        l.kill_all();
        throw std::runtime_error("rank 0's own error (the cause)");
      },
      dir, 15s);
}

void expect_rank0_error_reported(const Forked& r, const std::string& what) {
  ASSERT_FALSE(r.timed_out) << what;
  // Rank 0's error reached the program (before the fix the launcher ended the process with the
  // child's status 1, and rank 0's error was never printed).
  EXPECT_EQ(r.code, 99) << what << "\n" << r.err;
  EXPECT_EQ(r.kv.count("exception") ? r.kv.at("exception") : "", "rank 0's own error (the cause)")
      << what;
  ASSERT_TRUE(r.kv.count("child")) << what;
  // Which ranks failed: the child by pid and status, and that rank 0's error follows.
  EXPECT_NE(r.err.find("fabric launcher: local rank 0 failed, and local rank 1 (pid " +
                       r.kv.at("child") + ") exited with status 1 while it did"),
            std::string::npos)
      << what << "\n"
      << r.err;
  EXPECT_NE(r.err.find("local rank 0's error follows"), std::string::npos) << what << "\n" << r.err;
  EXPECT_NE(r.err.find("local rank 1: connection closed by peer rank 0"), std::string::npos)
      << what << "\n"
      << r.err;
}

// kill_all() within the grace of the child's consequence failure: reported, not replaced by it.
// Several runs: whether the child's end is seen by kill_all() or by the watchdog is a race.
TEST(LauncherRankZeroFailure, ItsErrorIsReportedWhenAChildFailsRightAfter) {
  TempDir dir;
  for (int run = 0; run < 3; ++run)
    expect_rank0_error_reported(rank0_fails_first(dir, 0ms), "run " + std::to_string(run));
}

// Rank 0 takes a while to unwind to kill_all(): the watchdog sees the child's failure first and
// holds it instead of ending the run at once with the child's status.
TEST(LauncherRankZeroFailure, TheWatchdogHoldsAChildsErrorExitWhileRankZeroUnwinds) {
  TempDir dir;
  expect_rank0_error_reported(rank0_fails_first(dir, 300ms), "unwinding 300 ms");
}

// Rank 0 finishes normally just after a child failed (held by the watchdog): join() returns the
// child's status, as it would have had the child failed after join() began.
TEST(LauncherRankZeroFailure, JoinReturnsTheStatusOfAChildTheWatchdogHeld) {
  TempDir dir;
  const Forked r = run_forked(
      [&](int out) {
        LaunchOptions o;
        o.nprocs = 2;
        o.argv = {"/bin/sh", "-c", "exit 3"};
        SubprocessLauncher l(o);
        l.launch();
        std::this_thread::sleep_for(300ms);
        put(out, "joined=" + std::to_string(l.join()) + "\n");
      },
      dir, 15s);
  ASSERT_FALSE(r.timed_out);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.kv.count("joined") ? r.kv.at("joined") : "", "3") << r.err;
  EXPECT_NE(r.err.find("exited with status 3"), std::string::npos) << r.err;
}

// Rank 0 blocked (in a collective with the failed rank): the held failure ends the run with the
// child's status once the grace is over; a child killed by a signal ends it at once.
TEST(LauncherRankZeroFailure, AChildsFailureStillEndsTheRunWhileRankZeroIsBlocked) {
  TempDir dir;
  for (const auto& [script, status] :
       {std::pair<std::string, int>{"exit 4", 4}, {"kill -9 $$", 137}}) {
    const auto start = Clock::now();
    const Forked r = run_forked(
        [&](int) {
          LaunchOptions o;
          o.nprocs = 2;
          o.argv = {"/bin/sh", "-c", script};
          SubprocessLauncher l(o);
          l.launch();
          std::this_thread::sleep_for(20s);  // "blocked in a collective"
        },
        dir, 15s);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    ASSERT_FALSE(r.timed_out) << script;
    EXPECT_EQ(r.code, status) << script << "\n" << r.err;
    EXPECT_LT(seconds, 10.0) << script;
    EXPECT_NE(
        r.err.find("killed the other local ranks, exiting with status " + std::to_string(status)),
        std::string::npos)
        << r.err;
  }
}

}  // namespace
}  // namespace fabric::distributed
