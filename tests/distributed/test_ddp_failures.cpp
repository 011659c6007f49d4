// A rank that dies or fails mid-training ends the whole job with an error instead of a hang: under
// our launcher (its watchdog), and with ranks started externally (torchrun-style variables), where
// the survivors' next collective fails.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <fstream>

#include "distributed/cluster_env.h"
#include "nn/mlp.h"
#include "optim/sgd.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/distributed/dist_test_util.h"

namespace fabric {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

// Trains an MLP over 2 ranks; FABRIC_TEST_FAIL = kill<r> | throw<r> makes rank r SIGKILL itself or
// throw at step 5. Every rank writes its pid to FABRIC_TEST_DIR/rank<r>.pid first.
TEST(DDPFailure, DISABLED_Worker) {
  const std::string mode = env_or("FABRIC_TEST_FAIL", "");
  const std::string dir = env_or("FABRIC_TEST_DIR", "/tmp");
  FabricOptions o{.accelerator = "cpu", .strategy = "ddp", .devices = 2, .timeout = 20s};
  if (!dist_test::is_launched_rank()) o.launch_argv = dist_test::self_argv();
  Fabric fab(o);
  fab.launch([&](Fabric& f) {
    const int64_t r = f.global_rank();
    std::ofstream(dir + "/rank" + std::to_string(r) + ".pid") << getpid() << "\n";
    manual_seed(1);
    auto mlp = std::make_shared<nn::MLP>(nn::MLPConfig{.sizes = {8, 32, 4}});
    optim::SGD sgd(mlp->parameters(), {.lr = 0.01});
    auto [model, opt] = f.setup(mlp, sgd);
    for (int step = 0; step < 400; ++step) {
      if (step == 5 && mode == "kill" + std::to_string(r)) std::raise(SIGKILL);
      if (step == 5 && mode == "throw" + std::to_string(r)) throw std::runtime_error("rank failed on purpose");
      opt.zero_grad();
      f.backward(mse_loss(model(ones({4, 8})), zeros({4, 4})));
      opt.step();
    }
  });
}

pid_t read_pid(const std::string& path) {
  pid_t pid = 0;
  std::ifstream(path) >> pid;
  return pid;
}

void expect_gone_soon(pid_t pid) {
  ASSERT_GT(pid, 0);
  for (int i = 0; i < 100 && dist_test::process_alive(pid); ++i) std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(dist_test::process_alive(pid)) << "pid " << pid << " is still running";
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("fabric_ddp_fail_" + std::to_string(getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

TEST(DDPFailure, AKilledRankEndsTheLaunchWithItsStatus) {
  TempDir tmp;
  const auto r = dist_test::run_test_in_child("DDPFailure.DISABLED_Worker",
                                              {{"FABRIC_TEST_FAIL", "kill1"}, {"FABRIC_TEST_DIR", tmp.path}}, 60s);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 128 + SIGKILL);
  expect_gone_soon(read_pid(tmp.path / "rank1.pid"));
}

TEST(DDPFailure, ARankThatThrowsEndsTheLaunchNonZero) {
  TempDir tmp;
  const auto r = dist_test::run_test_in_child("DDPFailure.DISABLED_Worker",
                                              {{"FABRIC_TEST_FAIL", "throw1"}, {"FABRIC_TEST_DIR", tmp.path}}, 60s);
  EXPECT_FALSE(r.timed_out);
  EXPECT_NE(r.status, 0);
}

TEST(DDPFailure, RankZeroFailingKillsTheRanksItStarted) {
  TempDir tmp;
  const auto r = dist_test::run_test_in_child("DDPFailure.DISABLED_Worker",
                                              {{"FABRIC_TEST_FAIL", "throw0"}, {"FABRIC_TEST_DIR", tmp.path}}, 60s);
  EXPECT_FALSE(r.timed_out);
  EXPECT_NE(r.status, 0);
  expect_gone_soon(read_pid(tmp.path / "rank1.pid"));
}

// Ranks started by someone else (torchrun-style variables, no watchdog): when rank 1 is killed,
// rank 0's next collective fails and it exits with an error well within the timeout.
TEST(DDPFailure, ExternallyStartedSurvivorExitsWithAnError) {
  TempDir tmp;
  const int port = distributed::find_free_port();
  std::vector<std::thread> threads;
  std::vector<dist_test::ChildResult> results(2);
  for (int rank = 0; rank < 2; ++rank) {
    threads.emplace_back([&, rank] {
      results[size_t(rank)] = dist_test::run_test_in_child(
          "DDPFailure.DISABLED_Worker",
          {{"FABRIC_TEST_FAIL", "kill1"}, {"FABRIC_TEST_DIR", tmp.path}, {"WORLD_SIZE", "2"},
           {"RANK", std::to_string(rank)}, {"LOCAL_RANK", std::to_string(rank)},
           {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", std::to_string(port)}},
          60s);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(results[1].status, 128 + SIGKILL);
  EXPECT_FALSE(results[0].timed_out);
  EXPECT_NE(results[0].status, 0);
  EXPECT_LT(results[0].seconds, 20.0) << "the survivor should fail fast, not at the 20 s timeout";
}

}  // namespace
}  // namespace fabric
