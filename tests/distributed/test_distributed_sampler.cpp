// DistributedSampler and torch_randperm against orders torch 1.13 computed
// (tools/fixtures/make_sampler_fixture.py), the runtime loader's sampler against both, and errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "distributed/distributed_sampler.h"
#include "runtime/data_loader.h"
#include "tensor/error.h"

namespace fabric::distributed {
namespace {

using json = nlohmann::json;
using Ints = std::vector<int64_t>;

const json& fixture() {
  static const json doc = [] {
    const std::string path = FABRIC_TEST_DATA_DIR "/sampler_fixture.json";
    std::ifstream in(path);
    if (!in)
      throw IOError("cannot open " + path + " (made by tools/fixtures/make_sampler_fixture.py)");
    return json::parse(in);
  }();
  return doc;
}

// The fixture's hash: FNV-1a over the values as 64-bit words.
std::string fnv(const Ints& v) {
  uint64_t h = 14695981039346656037ull;
  for (int64_t x : v) h = (h ^ static_cast<uint64_t>(x)) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// Checks `got` against a fixture list: the values themselves, or {"len", "head", "fnv"}.
void expect_matches(const Ints& got, const json& want, const std::string& where) {
  if (want.is_array()) {
    EXPECT_EQ(got, want.get<Ints>()) << where;
    return;
  }
  ASSERT_EQ(static_cast<int64_t>(got.size()), want.at("len").get<int64_t>()) << where;
  const Ints head = want.at("head").get<Ints>();
  EXPECT_EQ(Ints(got.begin(), got.begin() + static_cast<ptrdiff_t>(head.size())), head) << where;
  EXPECT_EQ(fnv(got), want.at("fnv").get<std::string>()) << where;
}

bool is_permutation_of_range(Ints v, int64_t n) {
  std::sort(v.begin(), v.end());
  for (int64_t i = 0; i < n; ++i)
    if (v[static_cast<size_t>(i)] != i) return false;
  return static_cast<int64_t>(v.size()) == n;
}

template <class E, class F>
std::string error_of(F&& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("(other error) ") + e.what();
  }
  return "(no error)";
}

TEST(DistributedSamplerTorch, FixtureComesFromTorch) {
  EXPECT_EQ(fixture().at("torch").get<std::string>().substr(0, 4), "1.13");
  EXPECT_GE(fixture().at("randperm").size(), 30u);
  EXPECT_GE(fixture().at("sampler").size(), 500u);
}

TEST(DistributedSamplerTorch, RandpermMatchesTorch) {
  for (const json& c : fixture().at("randperm")) {
    const auto n = c.at("n").get<int64_t>();
    const auto seed = c.at("seed").get<uint64_t>();
    const Ints p = torch_randperm(n, seed);
    expect_matches(p, c.at("perm"),
                   "torch.randperm(" + std::to_string(n) + ") seed " + std::to_string(seed));
  }
}

TEST(DistributedSamplerTorch, EveryRankMatchesTorch) {
  for (const json& c : fixture().at("sampler")) {
    const auto n = c.at("n").get<int64_t>();
    const auto W = c.at("num_replicas").get<int64_t>();
    const bool shuffle = c.at("shuffle").get<bool>();
    const bool drop_last = c.at("drop_last").get<bool>();
    const auto seed = c.at("seed").get<uint64_t>();
    const auto epoch = c.at("epoch").get<int64_t>();
    const json& ranks = c.at("ranks");
    ASSERT_EQ(static_cast<int64_t>(ranks.size()), W);
    for (int64_t rank = 0; rank < W; ++rank) {
      const std::string where =
          "n=" + std::to_string(n) + " W=" + std::to_string(W) + " rank=" + std::to_string(rank) +
          " shuffle=" + std::to_string(shuffle) + " drop_last=" + std::to_string(drop_last) +
          " seed=" + std::to_string(seed) + " epoch=" + std::to_string(epoch);
      DistributedSampler sampler(n, {.num_replicas = W,
                                     .rank = rank,
                                     .shuffle = shuffle,
                                     .seed = seed,
                                     .drop_last = drop_last});
      EXPECT_EQ(sampler.num_samples(), c.at("num_samples").get<int64_t>()) << where;
      EXPECT_EQ(sampler.total_size(), c.at("total_size").get<int64_t>()) << where;
      sampler.set_epoch(epoch);
      const Ints got = sampler.indices();
      EXPECT_EQ(static_cast<int64_t>(got.size()), sampler.num_samples()) << where;
      expect_matches(got, ranks[static_cast<size_t>(rank)], where);
      // The loader's entry point gives the same order.
      expect_matches(data::distributed_sampler_indices(n, epoch,
                                                       {.shuffle = shuffle,
                                                        .seed = seed,
                                                        .rank = rank,
                                                        .world_size = W,
                                                        .drop_last = drop_last}),
                     ranks[static_cast<size_t>(rank)], where + " (data loader)");
      if (!shuffle) {  // unshuffled orders ignore seed and epoch
        DistributedSampler other(n, {.num_replicas = W,
                                     .rank = rank,
                                     .shuffle = false,
                                     .seed = seed + 1,
                                     .drop_last = drop_last});
        other.set_epoch(epoch + 5);
        expect_matches(other.indices(), ranks[static_cast<size_t>(rank)], where + " (other seed)");
      }
    }
  }
}

TEST(DistributedSamplerTorch, UnshuffledRankTakesEveryWthIndex) {
  DistributedSampler s(10, {.num_replicas = 3, .rank = 1, .shuffle = false});
  EXPECT_EQ(s.num_samples(), 4);
  EXPECT_EQ(s.total_size(), 12);
  EXPECT_EQ(s.indices(), (Ints{1, 4, 7, 0}));  // padded with the order's head: 0, 1
  DistributedSampler d(10, {.num_replicas = 3, .rank = 2, .shuffle = false, .drop_last = true});
  EXPECT_EQ(d.num_samples(), 3);
  EXPECT_EQ(d.indices(), (Ints{2, 5, 8}));
}

// seed + epoch wraps modulo 2^64, as torch stores a negative seed: DistributedSampler(seed=0) after
// set_epoch(-1) seeds with -1, i.e. 2^64 - 1 (torch 1.13: randperm(10) = these values).
TEST(DistributedSamplerTorch, SeedPlusEpochWrapsLikeTorch) {
  DistributedSampler s(10, {.seed = 0});
  s.set_epoch(-1);
  EXPECT_EQ(s.epoch(), -1);
  EXPECT_EQ(s.indices(), (Ints{1, 4, 6, 2, 0, 5, 8, 7, 9, 3}));
  EXPECT_EQ(s.indices(), torch_randperm(10, ~uint64_t{0}));
  DistributedSampler t(10, {.seed = 5});
  t.set_epoch(3);
  EXPECT_EQ(t.indices(), torch_randperm(10, 8));
}

TEST(DistributedSamplerTorch, RandpermIsAUniformPermutation) {
  EXPECT_TRUE(torch_randperm(0, 1).empty());
  EXPECT_EQ(torch_randperm(1, 1), (Ints{0}));
  EXPECT_TRUE(is_permutation_of_range(torch_randperm(1000, 3), 1000));
  EXPECT_NE(torch_randperm(1000, 3), torch_randperm(1000, 4));
  // 4! = 24 orders over 4800 seeds: each about 200 times (sd 14); the first item about 1200 (sd
  // 30).
  std::map<Ints, int> seen;
  std::vector<int> first(4, 0);
  for (uint64_t s = 0; s < 4800; ++s) {
    const Ints p = torch_randperm(4, s);
    ++seen[p];
    ++first[static_cast<size_t>(p[0])];
  }
  EXPECT_EQ(seen.size(), 24u);
  for (const auto& [p, c] : seen) EXPECT_NEAR(c, 200, 80);
  for (int c : first) EXPECT_NEAR(c, 1200, 160);
}

TEST(DistributedSamplerTorch, BadArgumentsAreValueErrors) {
  const std::string msg =
      error_of<ValueError>([] { DistributedSampler(10, {.num_replicas = 4, .rank = 4}); });
  EXPECT_NE(msg.find("DistributedSampler"), std::string::npos) << msg;
  EXPECT_NE(msg.find("invalid rank 4"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[0, 3]"), std::string::npos) << msg;
  EXPECT_NE(error_of<ValueError>([] {
              DistributedSampler(10, {.num_replicas = 2, .rank = -1});
            }).find("invalid rank -1"),
            std::string::npos);
  EXPECT_NE(error_of<ValueError>([] {
              DistributedSampler(10, {.num_replicas = 0});
            }).find("num_replicas must be >= 1, got 0"),
            std::string::npos);
  EXPECT_NE(error_of<ValueError>([] { DistributedSampler(-3, {}); }).find("dataset_size"),
            std::string::npos);
  EXPECT_NE(error_of<ValueError>([] { torch_randperm(-1, 0); }).find("n must be >= 0, got -1"),
            std::string::npos);
}

}  // namespace
}  // namespace fabric::distributed
