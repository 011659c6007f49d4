// The data loader: DistributedSampler orders against hand-computed ones from torch's algorithm,
// epochs and drop_last, random windows split across ranks, prefetch giving the synchronous order,
// worker errors reaching the consumer, and resume that is bit-identical to an uninterrupted run.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <numeric>
#include <set>

#include "distributed/distributed_sampler.h"
#include "runtime/data_loader.h"
#include "runtime_test_util.h"
#include "tensor/factory.h"

namespace fabric::data {
namespace {

namespace fs = std::filesystem;

std::vector<int64_t> ints(const Tensor& t) { return t.to_vector<int64_t>(); }

std::vector<int64_t> iota_vec(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), int64_t{0});
  return v;
}

bool is_permutation_of_range(std::vector<int64_t> v, int64_t n) {
  std::sort(v.begin(), v.end());
  return v == iota_vec(n);
}

// Examples 0..n-1: input i is [i], target 10 * i, so batches show the order.
std::shared_ptr<TensorDataset> counting(int64_t n) {
  std::vector<int64_t> x = iota_vec(n), y;
  for (int64_t i : x) y.push_back(10 * i);
  return std::make_shared<TensorDataset>(from_vector<int64_t>(x, {n, 1}),
                                         from_vector<int64_t>(y, {n}));
}

// An indexed dataset that fails on one example, to see errors cross the prefetch thread.
class FailingDataset : public Dataset {
 public:
  FailingDataset(int64_t n, int64_t bad) : n_(n), bad_(bad) {}
  Access access() const override { return Access::indexed; }
  int64_t size() const override { return n_; }
  Batch get(std::span<const int64_t> indices) const override {
    std::vector<int64_t> v(indices.begin(), indices.end());
    for (int64_t i : v)
      if (i == bad_) throw ValueError("FailingDataset: bad example " + std::to_string(i));
    Tensor t = from_vector<int64_t>(v);
    return {t, t};
  }
  std::string describe() const override { return "failing"; }

 private:
  int64_t n_, bad_;
};

std::vector<Batch> take(DataLoader& loader, int64_t n) {
  std::vector<Batch> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(loader.next());
  return out;
}

std::vector<uint8_t> raw(const Tensor& t) {
  const auto* p = static_cast<const uint8_t*>(t.contiguous().data_ptr());
  return std::vector<uint8_t>(p, p + t.nbytes());
}

void expect_same(const std::vector<Batch>& a, const std::vector<Batch>& b,
                 const std::string& where) {
  ASSERT_EQ(a.size(), b.size()) << where;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].inputs.sizes(), b[i].inputs.sizes()) << where << " batch " << i;
    EXPECT_EQ(raw(a[i].inputs), raw(b[i].inputs)) << where << " batch " << i;
    EXPECT_EQ(raw(a[i].targets), raw(b[i].targets)) << where << " batch " << i;
  }
}

// A temporary file removed at the end of the test.
struct TempFile {
  explicit TempFile(const std::string& name, const std::string& bytes)
      : path((fs::temp_directory_path() / (name + "_" + std::to_string(::getpid()))).string()) {
    std::ofstream(path, std::ios::binary) << bytes;
  }
  ~TempFile() { fs::remove(path); }
  std::string path;
};

std::string token_bytes(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    const auto v = static_cast<uint16_t>((i * 7919) % 65536);
    s += static_cast<char>(v & 0xFF);
    s += static_cast<char>(v >> 8);
  }
  return s;
}

using testing_util::error_of;

// ---- orders
// ----------------------------------------------------------------------------------------

using Orders = std::vector<std::vector<int64_t>>;

Orders ranks_of(int64_t n, int64_t world, bool drop_last, bool shuffle = false, uint64_t seed = 0,
                int64_t epoch = 0) {
  Orders out;
  for (int64_t r = 0; r < world; ++r)
    out.push_back(distributed_sampler_indices(n, epoch,
                                              {.shuffle = shuffle,
                                               .seed = seed,
                                               .rank = r,
                                               .world_size = world,
                                               .drop_last = drop_last}));
  return out;
}

// Expected orders computed by hand from torch.utils.data.DistributedSampler.__iter__:
// pad with indices[:padding] (repeated when padding > n) or cut to total_size, then
// indices[rank:total_size:num_replicas].
TEST(DistributedSamplerData, PadsAndStridesAsTorch) {
  EXPECT_EQ(ranks_of(10, 3, false), (Orders{{0, 3, 6, 9}, {1, 4, 7, 0}, {2, 5, 8, 1}}));
  EXPECT_EQ(ranks_of(10, 3, true), (Orders{{0, 3, 6}, {1, 4, 7}, {2, 5, 8}}));
  EXPECT_EQ(ranks_of(2, 5, false), (Orders{{0}, {1}, {0}, {1}, {0}}));  // padding 3 > n = 2
  EXPECT_EQ(ranks_of(5, 3, true), (Orders{{0}, {1}, {2}}));             // ceil((5 - 3) / 3) = 1
  EXPECT_EQ(ranks_of(2, 3, true), (Orders{{}, {}, {}}));
  EXPECT_EQ(ranks_of(8, 4, false), (Orders{{0, 4}, {1, 5}, {2, 6}, {3, 7}}));
  EXPECT_EQ(ranks_of(7, 1, false), (Orders{iota_vec(7)}));
  EXPECT_EQ(ranks_of(7, 1, true), (Orders{iota_vec(7)}));
  EXPECT_NE(error_of<ValueError>([] {
              distributed_sampler_indices(4, 0, {.rank = 2, .world_size = 2});
            }).find("rank"),
            std::string::npos);
}

TEST(DistributedSamplerData, ShuffledOrdersAreSeededPermutations) {
  const Orders a = ranks_of(12, 3, false, true, 5, 0);
  EXPECT_EQ(a, ranks_of(12, 3, false, true, 5, 0));  // deterministic
  EXPECT_NE(a, ranks_of(12, 3, false, true, 5, 1));  // a new order each epoch
  EXPECT_EQ(ranks_of(12, 3, false, true, 5, 1),
            ranks_of(12, 3, false, true, 6, 0));  // seeded with seed + epoch
  std::vector<int64_t> all;
  for (const auto& r : a) all.insert(all.end(), r.begin(), r.end());
  EXPECT_TRUE(is_permutation_of_range(all, 12));
  // Padding takes the first items of the shuffled order, torch.randperm(10) under seed 7 + epoch 2;
  // the values are torch 1.13's DistributedSampler(range(10), 3, r, seed=7) after set_epoch(2).
  const std::vector<int64_t> p = distributed::torch_randperm(10, 9);
  EXPECT_EQ(p, (std::vector<int64_t>{0, 5, 8, 7, 6, 2, 9, 1, 4, 3}));
  EXPECT_EQ(ranks_of(10, 3, false, true, 7, 2),
            (Orders{{p[0], p[3], p[6], p[9]}, {p[1], p[4], p[7], p[0]}, {p[2], p[5], p[8], p[1]}}));
  EXPECT_EQ(ranks_of(10, 3, false, true, 7, 2), (Orders{{0, 7, 9, 3}, {5, 6, 1, 0}, {8, 2, 4, 5}}));
}

// ---- epochs over indexed datasets
// ----------------------------------------------------------------

TEST(DataLoaderIndexed, EpochsBatchesAndDropLast) {
  DataLoader loader(counting(10), {.batch_size = 4, .prefetch = 0});
  EXPECT_EQ(loader.batches_per_epoch(), 3);
  const auto b = take(loader, 4);
  EXPECT_EQ(ints(b[0].inputs), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(b[0].inputs.sizes(), (Shape{4, 1}));
  EXPECT_EQ(ints(b[0].targets), (std::vector<int64_t>{0, 10, 20, 30}));
  EXPECT_EQ(ints(b[1].inputs), (std::vector<int64_t>{4, 5, 6, 7}));
  EXPECT_EQ(ints(b[2].inputs), (std::vector<int64_t>{8, 9}));
  EXPECT_EQ(ints(b[3].inputs), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(loader.state(), (DataLoaderState{.epoch = 1, .batch_in_epoch = 1, .batches_drawn = 4}));

  DataLoader dropping(counting(10), {.batch_size = 4, .drop_last = true});
  EXPECT_EQ(dropping.batches_per_epoch(), 2);
  const auto d = take(dropping, 3);
  EXPECT_EQ(ints(d[1].inputs), (std::vector<int64_t>{4, 5, 6, 7}));
  EXPECT_EQ(ints(d[2].inputs), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(dropping.epoch(), 1);

  // Range-for: the rest of the current epoch.
  DataLoader ranged(counting(10), {.batch_size = 4, .shuffle = true, .seed = 1});
  std::vector<int64_t> epoch0;
  int n = 0;
  for (auto& [x, y] : ranged) {
    for (int64_t v : ints(x)) epoch0.push_back(v);
    ++n;
  }
  EXPECT_EQ(n, 3);
  // One rank: the epoch is torch.randperm(10) under seed + epoch (values from torch 1.13).
  EXPECT_EQ(epoch0, distributed::torch_randperm(10, 1));
  EXPECT_EQ(epoch0, (std::vector<int64_t>{5, 6, 1, 2, 0, 8, 9, 3, 7, 4}));
  EXPECT_EQ(ranged.epoch(), 1);
  std::vector<int64_t> epoch1;
  for (const Batch& batch : ranged) {
    for (int64_t v : ints(batch.inputs)) epoch1.push_back(v);
  }
  EXPECT_EQ(epoch1, (std::vector<int64_t>{8, 7, 1, 5, 6, 9, 0, 4, 2, 3}));  // seed 1 + epoch 1
}

// Each rank's batches and batch count are those of torch 1.13's
//   DataLoader(range(n), batch_size=B, drop_last=dl,
//              sampler=DistributedSampler(range(n), W, r, shuffle=False, drop_last=sdl))
// (len(loader) and [b.tolist() for b in loader] for r in range(W)): the last partial batch, the
// padding and both drop_lasts.
TEST(DataLoaderIndexed, BatchesAsTorchDataLoaderOverDistributedSampler) {
  using Batches = std::vector<std::vector<int64_t>>;
  struct Case {
    int64_t n, W, B;
    bool drop_last, sampler_drop_last;
    std::vector<Batches> ranks;  // torch's batches per rank
  };
  const std::vector<Case> cases = {
      {11, 2, 2, true, false, {{{0, 2}, {4, 6}, {8, 10}}, {{1, 3}, {5, 7}, {9, 0}}}},
      {10, 3, 3, false, false, {{{0, 3, 6}, {9}}, {{1, 4, 7}, {0}}, {{2, 5, 8}, {1}}}},
      {10, 3, 2, true, true, {{{0, 3}}, {{1, 4}}, {{2, 5}}}},
      {7, 4, 1, false, false, {{{0}, {4}}, {{1}, {5}}, {{2}, {6}}, {{3}, {0}}}},
      {7, 4, 2, false, true, {{{0}}, {{1}}, {{2}}, {{3}}}},
      {5, 2, 4, false, false, {{{0, 2, 4}}, {{1, 3, 0}}}},
      {13, 3, 2, true, true, {{{0, 3}, {6, 9}}, {{1, 4}, {7, 10}}, {{2, 5}, {8, 11}}}},
  };
  for (const Case& c : cases) {
    for (int64_t r = 0; r < c.W; ++r) {
      const std::string where = "n=" + std::to_string(c.n) + " W=" + std::to_string(c.W) +
                                " B=" + std::to_string(c.B) +
                                " drop_last=" + std::to_string(c.drop_last) +
                                " sampler_drop_last=" + std::to_string(c.sampler_drop_last) +
                                " rank=" + std::to_string(r);
      const Batches& want = c.ranks[static_cast<size_t>(r)];
      DataLoader loader(counting(c.n), {.batch_size = c.B,
                                        .drop_last = c.drop_last,
                                        .rank = r,
                                        .world_size = c.W,
                                        .sampler_drop_last = c.sampler_drop_last});
      EXPECT_EQ(loader.batches_per_epoch(), static_cast<int64_t>(want.size())) << where;
      for (int epoch = 0; epoch < 2; ++epoch) {  // iterating twice gives the same epoch again
        Batches got;
        for (const Batch& b : loader) got.push_back(ints(b.inputs));
        EXPECT_EQ(got, want) << where << " epoch " << epoch;
      }
    }
  }
  // Shuffled: torch's DistributedSampler(range(10), 3, r, shuffle=True, seed=7) after
  // set_epoch(2), batched by DataLoader(batch_size=3).
  const std::vector<Batches> shuffled = {{{0, 7, 9}, {3}}, {{5, 6, 1}, {0}}, {{8, 2, 4}, {5}}};
  for (int64_t r = 0; r < 3; ++r) {
    DataLoader loader(counting(10),
                      {.batch_size = 3, .shuffle = true, .seed = 7, .rank = r, .world_size = 3});
    loader.set_state({.epoch = 2, .generator_seed = 7});
    Batches got;
    for (const Batch& b : loader) got.push_back(ints(b.inputs));
    EXPECT_EQ(got, shuffled[static_cast<size_t>(r)]) << "rank " << r;
  }
}

// A batch_size beyond the data, however large, gives one batch of all of it, as torch's.
TEST(DataLoaderIndexed, AHugeBatchSizeGivesOneBatchOfEverything) {
  for (int64_t b : {int64_t{11}, int64_t{1} << 40, std::numeric_limits<int64_t>::max()}) {
    DataLoader loader(counting(10), {.batch_size = b});
    EXPECT_EQ(loader.batches_per_epoch(), 1) << b;
    EXPECT_EQ(loader.next().inputs.size(0), 10) << b;
  }
}

TEST(DataLoaderIndexed, RanksTogetherCoverTheSamplerOrder) {
  for (int64_t rank = 0; rank < 3; ++rank) {
    DataLoader loader(
        counting(10),
        {.batch_size = 3, .shuffle = true, .seed = 11, .rank = rank, .world_size = 3});
    EXPECT_EQ(loader.batches_per_epoch(), 2);  // 4 samples per rank
    for (int64_t epoch = 0; epoch < 2; ++epoch) {
      std::vector<int64_t> got;
      for (const Batch& b : loader)
        for (int64_t v : ints(b.inputs)) got.push_back(v);
      EXPECT_EQ(got, distributed_sampler_indices(
                         10, epoch, {.shuffle = true, .seed = 11, .rank = rank, .world_size = 3}))
          << "rank " << rank << " epoch " << epoch;
    }
  }
}

TEST(DataLoaderIndexed, BadOptionsAreValueErrors) {
  EXPECT_NE(
      error_of<ValueError>([] { DataLoader(counting(4), {.batch_size = 0}); }).find("batch_size"),
      std::string::npos);
  EXPECT_NE(error_of<ValueError>([] { DataLoader(counting(4), {.rank = 1}); }).find("rank"),
            std::string::npos);
  EXPECT_NE(
      error_of<ValueError>([] { DataLoader(counting(4), {.prefetch = -1}); }).find("prefetch"),
      std::string::npos);
  EXPECT_NE(error_of<ValueError>([] {
              DataLoader(counting(4), {.batch_size = 5, .drop_last = true});
            }).find("no batch"),
            std::string::npos);
  EXPECT_NE(
      error_of<ValueError>([] { DataLoader l(std::shared_ptr<const Dataset>{}); }).find("null"),
      std::string::npos);
  // sampler_drop_last with fewer examples than ranks leaves a rank none: said so, not "fewer
  // than batch_size with drop_last" (the batch's drop_last is off).
  const std::string none = error_of<ValueError>([] {
    DataLoader(counting(10),
               {.batch_size = 4, .rank = 0, .world_size = 20, .sampler_drop_last = true});
  });
  EXPECT_NE(none.find("no example per epoch"), std::string::npos) << none;
  EXPECT_NE(none.find("sampler_drop_last"), std::string::npos) << none;
  // batch_size * world_size beyond int64 (it used to divide by the wrapped 0).
  EXPECT_NE(error_of<ValueError>([] {
              DataLoader(counting(10), {.batch_size = int64_t{1} << 62, .world_size = 4});
            }).find("overflows"),
            std::string::npos);
  DataLoader loader(counting(10), {.batch_size = 4});
  EXPECT_NE(error_of<ValueError>([&] {
              loader.set_state({.batch_in_epoch = 3});
            }).find("batch_in_epoch 3"),
            std::string::npos);
  EXPECT_NE(error_of<KeyError>([] {
              DataLoaderState::from_map({{"epoch", 1}});
            }).find("batch_in_epoch"),
            std::string::npos);
}

// ---- random windows
// ------------------------------------------------------------------------------

TEST(DataLoaderWindows, RanksSliceTheSingleProcessBatch) {
  TempFile text("fabric_loader_text",
                "It is a truth universally acknowledged, that a single man in possession "
                "of a good fortune, must be in want of a wife.\n");
  auto data = std::make_shared<TextDataset>(text.path, TextDatasetOptions{.block_size = 8});
  DataLoader whole(data, {.batch_size = 4, .seed = 3});
  DataLoader r0(data, {.batch_size = 2, .seed = 3, .rank = 0, .world_size = 2});
  DataLoader r1(data, {.batch_size = 2, .seed = 3, .rank = 1, .world_size = 2, .prefetch = 0});
  EXPECT_EQ(whole.batches_per_epoch(), data->num_tokens() / 8 / 4);
  EXPECT_EQ(r0.batches_per_epoch(), whole.batches_per_epoch());
  std::set<std::vector<int64_t>> distinct;
  for (int i = 0; i < 10; ++i) {
    const Batch w = whole.next(), a = r0.next(), b = r1.next();
    ASSERT_EQ(w.inputs.sizes(), (Shape{4, 8}));
    EXPECT_EQ(raw(a.inputs), raw(w.inputs.narrow(0, 0, 2))) << i;
    EXPECT_EQ(raw(b.inputs), raw(w.inputs.narrow(0, 2, 2))) << i;
    EXPECT_EQ(raw(b.targets), raw(w.targets.narrow(0, 2, 2))) << i;
    // Targets are the inputs shifted by one character.
    EXPECT_EQ(raw(w.inputs.narrow(1, 1, 7).contiguous()),
              raw(w.targets.narrow(1, 0, 7).contiguous()))
        << i;
    distinct.insert(ints(w.inputs));
  }
  EXPECT_GT(distinct.size(), 5u);  // random windows, not one repeated
  DataLoader other(data, {.batch_size = 4, .seed = 4});
  EXPECT_NE(raw(other.next().inputs),
            raw(DataLoader(data, {.batch_size = 4, .seed = 3}).next().inputs));
}

// ---- prefetch, errors, resume ------------------------------------------------------------------

TEST(DataLoaderPrefetch, SameBatchesAsSynchronous) {
  TempFile tokens("fabric_loader_tokens", token_bytes(500));
  auto windows = std::make_shared<TokenDataset>(tokens.path, TokenDatasetOptions{.block_size = 16});
  for (int64_t prefetch : {1, 2, 5}) {
    DataLoader sync(counting(23), {.batch_size = 4, .shuffle = true, .seed = 8, .prefetch = 0});
    DataLoader ahead(counting(23),
                     {.batch_size = 4, .shuffle = true, .seed = 8, .prefetch = prefetch});
    expect_same(take(ahead, 20), take(sync, 20), "indexed, prefetch " + std::to_string(prefetch));
    EXPECT_EQ(ahead.state(), sync.state());
    DataLoader wsync(windows, {.batch_size = 3, .seed = 2, .prefetch = 0});
    DataLoader wahead(windows, {.batch_size = 3, .seed = 2, .prefetch = prefetch});
    expect_same(take(wahead, 20), take(wsync, 20), "windows, prefetch " + std::to_string(prefetch));
    EXPECT_EQ(wahead.state(), wsync.state());
  }
  // The state counts what was handed out, not what the thread made ahead.
  DataLoader ahead(counting(23), {.batch_size = 4, .prefetch = 3});
  ahead.next();
  EXPECT_EQ(ahead.state().batches_drawn, 1);
  // Destroying a loader whose thread waits on a full queue returns.
  {
    DataLoader idle(counting(100), {.batch_size = 1, .prefetch = 2});
    idle.next();
  }
}

TEST(DataLoaderPrefetch, WorkerErrorsReachTheConsumer) {
  for (int64_t prefetch : {0, 2}) {
    DataLoader loader(std::make_shared<FailingDataset>(10, 7),
                      {.batch_size = 2, .prefetch = prefetch});
    const auto ok = take(loader, 3);
    EXPECT_EQ(ints(ok[2].inputs), (std::vector<int64_t>{4, 5}));
    EXPECT_NE(error_of<ValueError>([&] { loader.next(); }).find("bad example 7"), std::string::npos)
        << prefetch;
    EXPECT_NE(error_of<ValueError>([&] { loader.next(); }).find("bad example 7"), std::string::npos)
        << prefetch;
    EXPECT_EQ(loader.state().batches_drawn, 3);
    loader.set_state({.epoch = 2, .batch_in_epoch = 4, .batches_drawn = 9});  // past the bad batch
    EXPECT_EQ(ints(loader.next().inputs), (std::vector<int64_t>{8, 9}));
    EXPECT_EQ(loader.state(),
              (DataLoaderState{.epoch = 3, .batch_in_epoch = 0, .batches_drawn = 10}));
  }
}

// A loader stopped after k batches and a new one restored from its saved state give the same
// batches as one that never stopped, with or without prefetching on either side.
void check_resume(const std::function<DataLoader(int64_t prefetch)>& make, int64_t total,
                  const std::string& what) {
  DataLoader straight = make(0);
  const auto want = take(straight, total);
  for (int64_t k : {int64_t{0}, int64_t{1}, int64_t{4}, int64_t{7}, total - 1}) {
    using P = std::pair<int64_t, int64_t>;
    for (auto [before, after] : {P{2, 2}, P{0, 3}, P{3, 0}}) {
      DataLoader first = make(before);
      const auto head = take(first, k);
      const std::map<std::string, int64_t> saved = first.state().to_map();
      DataLoader resumed = make(after);
      resumed.set_state(DataLoaderState::from_map(saved));
      auto got = head;
      const auto tail = take(resumed, total - k);
      got.insert(got.end(), tail.begin(), tail.end());
      expect_same(got, want,
                  what + " stopped at " + std::to_string(k) + ", prefetch " +
                      std::to_string(before) + " -> " + std::to_string(after));
      EXPECT_EQ(resumed.state(), straight.state());
    }
  }
  // Rewinding a running loader replays the same batches.
  DataLoader loader = make(2);
  take(loader, 3);
  const DataLoaderState at3 = loader.state();
  const auto a = take(loader, 5);
  loader.set_state(at3);
  expect_same(take(loader, 5), a, what + " rewound");
}

TEST(DataLoaderResume, BitIdenticalAfterRestore) {
  check_resume(
      [](int64_t p) {
        return DataLoader(counting(10),
                          {.batch_size = 3, .shuffle = true, .seed = 21, .prefetch = p});
      },
      13, "indexed shuffled");
  check_resume(
      [](int64_t p) {
        return DataLoader(counting(11), {.batch_size = 2,
                                         .shuffle = true,
                                         .seed = 5,
                                         .rank = 1,
                                         .world_size = 2,
                                         .prefetch = p});
      },
      13, "indexed rank 1 of 2");
  TempFile tokens("fabric_loader_resume_tokens", token_bytes(300));
  auto windows = std::make_shared<TokenDataset>(tokens.path, TokenDatasetOptions{.block_size = 8});
  check_resume(
      [&](int64_t p) { return DataLoader(windows, {.batch_size = 4, .seed = 99, .prefetch = p}); },
      13, "windows");
  DataLoader w(windows, {.batch_size = 4, .seed = 99});
  take(w, 2);
  EXPECT_GT(w.state().generator_offset, 0);
  EXPECT_EQ(w.state().generator_seed, 99);
}

}  // namespace
}  // namespace fabric::data
