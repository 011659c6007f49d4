// Helpers for tests that run several processes: the launcher re-runs this test binary restricted
// to the current test, so rank 1.. execute the same test body and meet rank 0 in launch().
#pragma once
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "distributed/cluster_env.h"

namespace fabric::dist_test {

// This binary, restricted to the running test (DISABLED_ tests included).
inline std::vector<std::string> self_argv() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return {std::filesystem::read_symlink("/proc/self/exe").string(),
          std::string("--gtest_filter=") + info->test_suite_name() + "." + info->name(),
          "--gtest_also_run_disabled_tests"};
}

// Whether this process is a rank started by a launcher (not the process ctest started).
inline bool is_launched_rank() { return std::getenv("LOCAL_RANK") != nullptr; }

struct ChildResult {
  int status = -1;        // exit code, or 128 + signal
  bool timed_out = false;
  double seconds = 0;
};

// Runs this binary's test `suite.name` (usually a DISABLED_ worker) in a new process with extra
// environment variables, and waits up to `timeout` (then kills it).
inline ChildResult run_test_in_child(const std::string& test, const std::map<std::string, std::string>& env,
                                     std::chrono::seconds timeout) {
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string filter = "--gtest_filter=" + test;
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);  // its own process group: the test can kill every rank it started
    unsetenv("LOCAL_RANK");  // unless env sets it: a fresh start, not a launched rank
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    execl(exe.c_str(), exe.c_str(), filter.c_str(), "--gtest_also_run_disabled_tests", static_cast<char*>(nullptr));
    _exit(127);
  }
  ChildResult r;
  int st = 0;
  while (true) {
    const pid_t done = waitpid(pid, &st, WNOHANG);
    if (done == pid) break;
    if (std::chrono::steady_clock::now() - start > timeout) {
      r.timed_out = true;
      kill(-pid, SIGKILL);
      waitpid(pid, &st, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

inline bool process_alive(pid_t pid) { return kill(pid, 0) == 0; }

// Runs `test` once per "node" on loopback, as `fabric-train --num-nodes N --node-rank R` would
// start it (NODE_RANK, MASTER_ADDR, MASTER_PORT), all at once, and expects every node to exit 0.
inline void expect_nodes_succeed(const std::string& test, int nodes, std::chrono::seconds timeout) {
  const int port = distributed::find_free_port();
  std::vector<ChildResult> results(static_cast<size_t>(nodes));
  std::vector<std::thread> threads;
  for (int node = 0; node < nodes; ++node) {
    threads.emplace_back([&, node] {
      results[size_t(node)] = run_test_in_child(
          test, {{"NODE_RANK", std::to_string(node)}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", std::to_string(port)}},
          timeout);
    });
  }
  for (auto& t : threads) t.join();
  for (int node = 0; node < nodes; ++node) {
    EXPECT_FALSE(results[size_t(node)].timed_out) << test << " node " << node;
    EXPECT_EQ(results[size_t(node)].status, 0) << test << " node " << node;
  }
}

}  // namespace fabric::dist_test
