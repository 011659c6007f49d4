#include "distributed/world_handshake.h"

#include <thread>
#include <vector>

#include "tensor/error.h"

namespace fabric::distributed {
namespace {

const char* const kProblem = "world/problem";  // the first disagreement seen, for every rank

std::string said_key(int rank) { return "world/said_by_rank_" + std::to_string(rank); }

// What a rank says: "<size>\n<how>".
std::string saying(int size, const std::string& how) { return std::to_string(size) + "\n" + how; }

[[noreturn]] void disagree(Store& store, const std::string& problem) {
  store.set(kProblem, problem);
  throw DistributedError(problem);
}

void check_same(Store& store, int rank, int size, const std::string& how, int other,
                const std::string& said) {
  const size_t newline = said.find('\n');
  const std::string other_size = said.substr(0, newline);
  if (other_size == std::to_string(size)) return;
  disagree(store, "the ranks disagree on the world size: rank " + std::to_string(other) +
                      " expects " + other_size + " ranks (" +
                      (newline == std::string::npos ? std::string() : said.substr(newline + 1)) +
                      "), rank " + std::to_string(rank) + " expects " + std::to_string(size) +
                      " (" + how + "); start every node with the same devices and num_nodes");
}

}  // namespace

void agree_on_world(Store& store, int rank, int size, const std::string& how,
                    std::chrono::milliseconds timeout) {
  if (size <= 1) return;
  // Two processes of one rank (two nodes given one node_rank) would both say it; checked after the
  // sizes, whose disagreement (nodes started with different devices) says more.
  auto refuse_a_second_process = [&] {
    if (store.add("world/processes_of_rank_" + std::to_string(rank), 1) > 1)
      disagree(store, "two processes took rank " + std::to_string(rank) + " of " +
                          std::to_string(size) + " (this one: " + how +
                          "); start every node with the same devices and num_nodes, and each with "
                          "its own node_rank");
  };
  store.set(said_key(rank), saying(size, how));
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  if (rank != 0) {
    // Rank 0's saying, or a problem another rank found first.
    while (!store.check({said_key(0)})) {
      if (store.check({kProblem})) throw DistributedError(store.get_string(kProblem));
      if (std::chrono::steady_clock::now() >= deadline)
        throw TimeoutError("rank 0 never joined within " + std::to_string(timeout.count()) +
                           " ms (rank " + std::to_string(rank) + " of " + std::to_string(size) +
                           ", " + how + ")");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    check_same(store, rank, size, how, 0, store.get_string(said_key(0)));
    refuse_a_second_process();
    return;
  }
  refuse_a_second_process();
  std::vector<int> waiting;
  for (int r = 1; r < size; ++r) waiting.push_back(r);
  while (!waiting.empty()) {
    if (store.check({kProblem})) throw DistributedError(store.get_string(kProblem));
    std::vector<int> still;
    for (int r : waiting) {
      if (!store.check({said_key(r)})) {
        still.push_back(r);
        continue;
      }
      check_same(store, rank, size, how, r, store.get_string(said_key(r)));
    }
    waiting = std::move(still);
    if (waiting.empty()) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      std::string missing;
      for (int r : waiting) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
      throw TimeoutError("ranks " + missing + " of " + std::to_string(size) +
                         " never joined within " + std::to_string(timeout.count()) +
                         " ms (rank 0: " + how +
                         "); did every node start, with the same devices and num_nodes?");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace fabric::distributed
