// agree_on_world: ranks that disagree on the world size, or two processes of one rank, fail at
// once with a message naming both worlds, on every rank that would otherwise wait; rank 0 names
// the ranks that never came.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "distributed/store.h"
#include "distributed/world_handshake.h"
#include "tests/common/expect_error.h"

namespace fabric::distributed {
namespace {

using namespace std::chrono_literals;

struct Rank {
  int rank, size;
  std::string how;
};

// Runs every rank on a thread over one store; each one's error message ("" when it returned).
std::vector<std::string> run(const std::vector<Rank>& ranks,
                             std::chrono::milliseconds timeout = 5s) {
  auto store = std::make_shared<HashStore>();
  std::vector<std::string> errors(ranks.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < ranks.size(); ++i)
    threads.emplace_back([&, i] {
      try {
        agree_on_world(*store, ranks[i].rank, ranks[i].size, ranks[i].how, timeout);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

TEST(WorldHandshake, RanksThatAgreePass) {
  for (const std::string& e : run({{0, 3, "a"}, {1, 3, "a"}, {2, 3, "a"}})) EXPECT_EQ(e, "");
}

TEST(WorldHandshake, AnotherWorldSizeFailsOnEveryRankNamingBoth) {
  // Node 0 with 1 device (world 2) and node 1 with 2 (world 4: ranks 2 and 3).
  const auto errors = run({{0, 2, "devices 1 x num_nodes 2, node_rank 0"},
                           {2, 4, "devices 2 x num_nodes 2, node_rank 1"},
                           {3, 4, "devices 2 x num_nodes 2, node_rank 1"}});
  for (const std::string& e : errors) {
    EXPECT_CONTAINS(
        e,
        "the ranks disagree on the world size: rank 0 expects 2 ranks (devices 1 x num_nodes 2, "
        "node_rank 0), rank ");
    EXPECT_CONTAINS(e, " expects 4 (devices 2 x num_nodes 2, node_rank 1)");
  }
}

// The second process of rank 1 fails at once; rank 0 and the first one may have agreed already
// (the run then goes on with them) or see its problem.
TEST(WorldHandshake, TwoProcessesOfOneRankAreRefused) {
  const auto errors = run({{0, 2, "x"}, {1, 2, "x"}, {1, 2, "y"}}, 2s);
  const std::string problem = "two processes took rank 1 of 2 (this one: ";
  EXPECT_EQ((errors[1].rfind(problem, 0) == 0) + (errors[2].rfind(problem, 0) == 0), 1)
      << errors[1] << " | " << errors[2];
  for (const std::string& e : errors) EXPECT_TRUE(e.empty() || e.rfind(problem, 0) == 0) << e;
}

TEST(WorldHandshake, RankZeroNamesTheRanksThatNeverCame) {
  const auto errors = run({{0, 3, "devices 3 x num_nodes 1, node_rank 0"},
                           {1, 3, "devices 3 x num_nodes 1, node_rank 0"}},
                          300ms);
  EXPECT_CONTAINS(errors[0], "ranks 2 of 3 never joined within 300 ms");
  EXPECT_EQ(errors[1], "");
}

}  // namespace
}  // namespace fabric::distributed
