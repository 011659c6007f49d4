// torch.utils.data's samplers (runtime/samplers.h) against torch 1.13's indices, epoch after epoch
// (sampler_torch_rows.h, from tools/fixtures/make_sampler_rows.py), BatchSampler's batches and
// lengths, torch's argument errors, and a DataLoader taking its order from a sampler: torch
// DataLoader's batches, resume mid-epoch in a new loader, and the combinations it refuses.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <thread>

#include "runtime/data_loader.h"
#include "runtime/samplers.h"
#include "runtime_test_util.h"
#include "sampler_torch_rows.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::data {
namespace {

using testing_util::error_of;
using Ints = std::vector<int64_t>;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

const SamplerTorchRow& sampler_row(const std::string& name) {
  for (const auto& r : sampler_torch_rows())
    if (name == r.name) return r;
  throw std::runtime_error("no sampler row " + name);
}

const BatchTorchRow& batch_row(const std::string& name) {
  for (const auto& r : batch_torch_rows())
    if (name == r.name) return r;
  throw std::runtime_error("no batch row " + name);
}

const std::vector<double> kWeightsA = {0.1, 0.9, 0.4, 0.7, 3.0, 0.6};
const std::vector<double> kWeightsB = {0.9, 0.4, 0.05, 0.2, 0.3, 0.1};

// The samplers of make_sampler_rows.py's sampler_cases(), by row name.
std::shared_ptr<const Sampler> make(const std::string& name) {
  using P = std::shared_ptr<const Sampler>;
  static const std::map<std::string, std::function<P()>> makers = {
      {"sequential_10", [] { return P(std::make_shared<SequentialSampler>(10)); }},
      {"random_10_seed0", [] { return P(std::make_shared<RandomSampler>(10)); }},
      {"random_100_seed7",
       [] { return P(std::make_shared<RandomSampler>(100, RandomSamplerOptions{.seed = 7})); }},
      {"random_10_seed_2p40_plus_7",
       [] {
         return P(std::make_shared<RandomSampler>(
             10, RandomSamplerOptions{.seed = (uint64_t{1} << 40) + 7}));
       }},
      {"random_1",
       [] { return P(std::make_shared<RandomSampler>(1, RandomSamplerOptions{.seed = 3})); }},
      {"random_replacement_10_ns70",
       [] {
         return P(std::make_shared<RandomSampler>(
             10, RandomSamplerOptions{.replacement = true, .num_samples = 70, .seed = 3}));
       }},
      {"random_replacement_7_ns64",
       [] {
         return P(std::make_shared<RandomSampler>(
             7, RandomSamplerOptions{.replacement = true, .num_samples = 64, .seed = 11}));
       }},
      {"random_replacement_10",
       [] {
         return P(std::make_shared<RandomSampler>(
             10, RandomSamplerOptions{.replacement = true, .seed = 5}));
       }},
      {"random_10_ns25",
       [] {
         return P(std::make_shared<RandomSampler>(
             10, RandomSamplerOptions{.num_samples = 25, .seed = 1}));
       }},
      {"random_10_ns20",
       [] {
         return P(std::make_shared<RandomSampler>(
             10, RandomSamplerOptions{.num_samples = 20, .seed = 2}));
       }},
      {"random_10_ns4",
       [] {
         return P(std::make_shared<RandomSampler>(
             10, RandomSamplerOptions{.num_samples = 4, .seed = 4}));
       }},
      {"subset_seed5",
       [] {
         return P(std::make_shared<SubsetRandomSampler>(Ints{3, 17, 5, 42, 8, 11, 0}, 5));
       }},
      {"subset_empty", [] { return P(std::make_shared<SubsetRandomSampler>(Ints{}, 5)); }},
      {"weighted_replacement",
       [] { return P(std::make_shared<WeightedRandomSampler>(kWeightsA, 12, true, 2)); }},
      {"weighted_no_replacement",
       [] { return P(std::make_shared<WeightedRandomSampler>(kWeightsB, 5, false, 4)); }},
      {"weighted_no_replacement_all",
       [] { return P(std::make_shared<WeightedRandomSampler>(kWeightsA, 6, false, 9)); }},
      {"weighted_one",
       [] { return P(std::make_shared<WeightedRandomSampler>(kWeightsA, 1, true, 6)); }},
  };
  return makers.at(name)();
}

// ---- samplers ----------------------------------------------------------------------------------

// For each row (torch 1.13, e.g. "random_10_ns25"):
//   s = RandomSampler(range(10), num_samples=25, generator=torch.Generator().manual_seed(1))
//   [list(iter(s)) for _ in range(3)], len(s)
TEST(Samplers, EveryEpochIsTorchs) {
  ASSERT_EQ(sampler_torch_rows().size(), 17u);
  for (const auto& row : sampler_torch_rows()) {
    SCOPED_TRACE(row.name);
    const auto s = make(row.name);
    EXPECT_EQ(s->size(), row.len);
    for (size_t e = 0; e < row.epochs.size(); ++e)
      EXPECT_EQ(s->epoch_indices(static_cast<int64_t>(e)), row.epochs[e]) << "epoch " << e;
  }
}

// Epochs asked for out of order, or in a fresh sampler, replay the generator from the seed.
TEST(Samplers, AnyEpochInAnyOrder) {
  for (const char* name : {"random_10_seed0", "random_10_ns20", "random_replacement_10_ns70",
                           "subset_seed5", "weighted_no_replacement_all"}) {
    SCOPED_TRACE(name);
    const auto& row = sampler_row(name);
    ASSERT_EQ(row.epochs.size(), 3u);
    EXPECT_EQ(make(name)->epoch_indices(2), row.epochs[2]);
    const auto s = make(name);
    EXPECT_EQ(s->epoch_indices(1), row.epochs[1]);
    EXPECT_EQ(s->epoch_indices(1), row.epochs[1]);  // the same epoch again
    EXPECT_EQ(s->epoch_indices(0), row.epochs[0]);  // back: from the seed
    EXPECT_EQ(s->epoch_indices(2), row.epochs[2]);
    EXPECT_EQ(s->epoch_indices(1), row.epochs[1]);
  }
  // A copy starts over from the seed and leaves the original where it was.
  RandomSampler a(10, {.num_samples = 25, .seed = 1});
  EXPECT_EQ(a.epoch_indices(1), sampler_row("random_10_ns25").epochs[1]);
  RandomSampler b = a;
  EXPECT_EQ(b.epoch_indices(2), sampler_row("random_10_ns25").epochs[2]);
  EXPECT_EQ(b.epoch_indices(0), sampler_row("random_10_ns25").epochs[0]);
  EXPECT_EQ(a.epoch_indices(2), sampler_row("random_10_ns25").epochs[2]);
  EXPECT_TRUE(contains(error_of<ValueError>([&] { a.epoch_indices(-1); }), "epoch must be >= 0"));
}

// One sampler shared by threads (loaders' prefetch threads): each gets torch's epochs.
TEST(Samplers, ThreadsShareOneSampler) {
  const auto s = make("random_100_seed7");
  const auto& row = sampler_row("random_100_seed7");
  std::vector<int> bad(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int k = 0; k < 50; ++k) {
        const int64_t e = (k + t) % 2;
        if (s->epoch_indices(e) != row.epochs[static_cast<size_t>(e)])
          ++bad[static_cast<size_t>(t)];
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad, (std::vector<int>{0, 0, 0, 0}));
}

// torch 1.13:
//   RandomSampler(range(3), num_samples=-1) -> ValueError num_samples should be a positive
//     integer value, but got num_samples=-1 (and range(0) without num_samples: num_samples=0)
//   list(RandomSampler(range(0), num_samples=3)) -> ZeroDivisionError
//   list(WeightedRandomSampler([1., 2.], 3, False)) -> RuntimeError cannot sample n_sample >
//     prob_dist.size(-1) samples without replacement
//   [1., -2.] -> invalid multinomial distribution (encountering probability entry < 0); nan: the
//   same; inf: (encountering probability entry = infinity or NaN); [0., 0.] and []: (sum of
//   probabilities <= 0); num_samples=0: num_samples should be a positive integer value, but got
//   num_samples=0
//   BatchSampler(range(3), 0, False) -> ValueError batch_size should be a positive integer value,
//     but got batch_size=0
TEST(Samplers, TorchsArgumentErrors) {
  auto random = [](int64_t n, RandomSamplerOptions o) {
    return error_of<ValueError>([&] { RandomSampler(n, o); });
  };
  EXPECT_TRUE(contains(random(3, {.num_samples = -1}),
                       "num_samples should be a positive integer value, but got num_samples=-1"));
  EXPECT_TRUE(contains(random(0, {}),
                       "num_samples should be a positive integer value, but got num_samples=0"));
  EXPECT_TRUE(contains(random(0, {.num_samples = 3}), "empty range (n=0)"));
  EXPECT_TRUE(contains(random(0, {.replacement = true, .num_samples = 3}), "empty range (n=0)"));
  EXPECT_TRUE(contains(error_of<ValueError>([] { SequentialSampler(-1); }), "n must be >= 0"));

  auto weighted = [](std::vector<double> w, int64_t ns, bool replacement) {
    return error_of<ValueError>([&] { WeightedRandomSampler(w, ns, replacement); });
  };
  EXPECT_TRUE(contains(weighted({1.0, 2.0}, 3, false),
                       "cannot sample n_sample > prob_dist.size(-1) samples without replacement"));
  EXPECT_TRUE(contains(weighted({1.0, -2.0}, 3, true),
                       "invalid multinomial distribution (encountering probability entry < 0)"));
  EXPECT_TRUE(contains(weighted({std::numeric_limits<double>::quiet_NaN(), 0.0}, 3, true),
                       "invalid multinomial distribution (encountering probability entry < 0)"));
  EXPECT_TRUE(contains(weighted({std::numeric_limits<double>::infinity(), 0.0}, 3, true),
                       "(encountering probability entry = infinity or NaN)"));
  EXPECT_TRUE(contains(weighted({0.0, 0.0}, 3, true),
                       "invalid multinomial distribution (sum of probabilities <= 0)"));
  EXPECT_TRUE(contains(weighted({}, 3, true),
                       "invalid multinomial distribution (sum of probabilities <= 0)"));
  EXPECT_TRUE(contains(weighted({1.0}, 0, true),
                       "num_samples should be a positive integer value, but got num_samples=0"));

  EXPECT_TRUE(contains(
      error_of<ValueError>([] { BatchSampler(std::make_shared<SequentialSampler>(3), 0, false); }),
      "batch_size should be a positive integer value, but got batch_size=0"));
  EXPECT_TRUE(
      contains(error_of<ValueError>([] { BatchSampler(nullptr, 2, false); }), "sampler is null"));
}

// A sampler of one's own whose draw() breaks its size() is caught.
class WrongSizeSampler : public Sampler {
 public:
  WrongSizeSampler() : Sampler(std::nullopt) {}
  int64_t size() const override { return 3; }

 protected:
  Ints draw(Generator*) const override { return {0, 1}; }
};

TEST(Samplers, DrawMustGiveSizeIndices) {
  EXPECT_TRUE(contains(error_of<ValueError>([] { WrongSizeSampler().epoch_indices(0); }),
                       "gave 2 indices, but the sampler's size() is 3"));
}

// For each row (torch 1.13, e.g. "batch_random_10_b3_drop"):
//   b = BatchSampler(RandomSampler(range(10), generator=torch.Generator().manual_seed(0)), 3, True)
//   [list(iter(b)) for _ in range(2)], len(b)
TEST(Samplers, BatchSamplerIsTorchs) {
  using Sp = std::shared_ptr<const Sampler>;
  const std::map<std::string, std::function<BatchSampler()>> makers = {
      {"batch_random_10_b3", [] { return BatchSampler(make("random_10_seed0"), 3, false); }},
      {"batch_random_10_b3_drop", [] { return BatchSampler(make("random_10_seed0"), 3, true); }},
      {"batch_sequential_9_b3",
       [] { return BatchSampler(Sp(std::make_shared<SequentialSampler>(9)), 3, false); }},
      {"batch_sequential_9_b3_drop",
       [] { return BatchSampler(Sp(std::make_shared<SequentialSampler>(9)), 3, true); }},
      {"batch_sequential_10_b3",
       [] { return BatchSampler(Sp(std::make_shared<SequentialSampler>(10)), 3, false); }},
      {"batch_sequential_10_b3_drop",
       [] { return BatchSampler(Sp(std::make_shared<SequentialSampler>(10)), 3, true); }},
      {"batch_weighted_b5", [] { return BatchSampler(make("weighted_replacement"), 5, false); }},
  };
  for (const auto& [name, maker] : makers) {
    SCOPED_TRACE(name);
    const auto& row = batch_row(name);
    const BatchSampler b = maker();
    EXPECT_EQ(b.size(), row.len);
    for (size_t e = 0; e < row.epochs.size(); ++e)
      EXPECT_EQ(b.epoch_batches(static_cast<int64_t>(e)), row.epochs[e]) << "epoch " << e;
  }
  // A batch_size beyond the indices: one short batch, or none with drop_last.
  const BatchSampler huge(std::make_shared<SequentialSampler>(4),
                          std::numeric_limits<int64_t>::max(), false);
  EXPECT_EQ(huge.size(), 1);
  EXPECT_EQ(huge.epoch_batches(0), (std::vector<Ints>{{0, 1, 2, 3}}));
  const BatchSampler none(std::make_shared<SequentialSampler>(4), 5, true);
  EXPECT_EQ(none.size(), 0);
  EXPECT_TRUE(none.epoch_batches(0).empty());
}

// ---- the loader with a sampler -----------------------------------------------------------------

// make_sampler_rows.py's counting(n): input i is [i], target 10 * i.
std::shared_ptr<TensorDataset> counting(int64_t n) {
  Ints x, y;
  for (int64_t i = 0; i < n; ++i) {
    x.push_back(i);
    y.push_back(10 * i);
  }
  return std::make_shared<TensorDataset>(from_vector<int64_t>(x, {n, 1}),
                                         from_vector<int64_t>(y, {n}));
}

void expect_torch_loader(DataLoader& loader, const BatchTorchRow& row) {
  ASSERT_EQ(loader.batches_per_epoch(), row.len);
  for (size_t e = 0; e < row.epochs.size(); ++e)
    for (size_t b = 0; b < row.epochs[e].size(); ++b) {
      const Batch batch = loader.next();
      const Ints& want = row.epochs[e][b];
      EXPECT_EQ(batch.inputs.sizes(), (Shape{static_cast<int64_t>(want.size()), 1}));
      EXPECT_EQ(batch.inputs.to_vector<int64_t>(), want) << "epoch " << e << " batch " << b;
      Ints tens;
      for (int64_t i : want) tens.push_back(10 * i);
      EXPECT_EQ(batch.targets.to_vector<int64_t>(), tens) << "epoch " << e << " batch " << b;
    }
}

// torch 1.13 (rows "loader_*"), e.g.
//   ds = TensorDataset(torch.arange(10).reshape(10, 1), torch.arange(10) * 10)
//   dl = DataLoader(ds, batch_size=4, sampler=RandomSampler(ds, generator=g.manual_seed(0)))
//   [[b[0].reshape(-1).tolist() for b in dl] for _ in range(3)], len(dl)
TEST(DataLoaderSampler, BatchesAreTorchDataLoaders) {
  for (int64_t prefetch : {0, 2}) {
    SCOPED_TRACE(prefetch);
    {
      DataLoader loader(
          counting(10),
          {.batch_size = 4, .prefetch = prefetch, .sampler = std::make_shared<RandomSampler>(10)});
      expect_torch_loader(loader, batch_row("loader_random_10_b4"));
    }
    {
      std::vector<double> w = kWeightsA;
      w.insert(w.end(), 4, 1.0);
      DataLoader loader(counting(10),
                        {.batch_size = 4,
                         .drop_last = true,
                         .prefetch = prefetch,
                         .sampler = std::make_shared<WeightedRandomSampler>(w, 11, true, 8)});
      expect_torch_loader(loader, batch_row("loader_weighted_b4_drop"));
    }
    {
      DataLoader loader(counting(10),
                        {.batch_size = 2,
                         .prefetch = prefetch,
                         .sampler = std::make_shared<SubsetRandomSampler>(Ints{1, 4, 9, 2, 7}, 3)});
      expect_torch_loader(loader, batch_row("loader_subset_b2"));
    }
  }
}

// Saved mid-epoch 2 and resumed by a new loader with a new sampler of the same seed: the batches
// that follow are the uninterrupted loader's, and torch's (row "loader_random_10_b4").
TEST(DataLoaderSampler, ResumeMidEpochTwoIsExact) {
  const auto& row = batch_row("loader_random_10_b4");
  for (int64_t prefetch : {0, 2}) {
    SCOPED_TRACE(prefetch);
    auto options = [&] {
      return DataLoaderOptions{
          .batch_size = 4, .prefetch = prefetch, .sampler = std::make_shared<RandomSampler>(10)};
    };
    DataLoader a(counting(10), options());
    for (int i = 0; i < 7; ++i) a.next();  // epochs 0 and 1 (3 batches each), one of epoch 2
    const DataLoaderState saved = a.state();
    EXPECT_EQ(saved, (DataLoaderState{.epoch = 2, .batch_in_epoch = 1, .batches_drawn = 7}));
    std::vector<Batch> rest;
    for (int i = 0; i < 5; ++i) rest.push_back(a.next());  // into epoch 3

    DataLoader b(counting(10), options());
    b.set_state(DataLoaderState::from_map(saved.to_map()));
    for (size_t i = 0; i < rest.size(); ++i) {
      const Batch got = b.next();
      EXPECT_EQ(got.inputs.to_vector<int64_t>(), rest[i].inputs.to_vector<int64_t>()) << i;
      EXPECT_EQ(got.targets.to_vector<int64_t>(), rest[i].targets.to_vector<int64_t>()) << i;
    }
    EXPECT_EQ(b.state(), a.state());
    EXPECT_EQ(rest[0].inputs.to_vector<int64_t>(), row.epochs[2][1]);
    EXPECT_EQ(rest[1].inputs.to_vector<int64_t>(), row.epochs[2][2]);

    // Back to epoch 0 on the same loader: the sampler replays from its seed.
    b.set_state({});
    EXPECT_EQ(b.next().inputs.to_vector<int64_t>(), row.epochs[0][0]);
  }
}

// torch 1.13: DataLoader(range(3), sampler=range(3), shuffle=True) -> ValueError sampler option is
// mutually exclusive with shuffle.
TEST(DataLoaderSampler, Refusals) {
  auto loader_error = [](std::shared_ptr<const Dataset> ds, DataLoaderOptions o) {
    return error_of<ValueError>([&] { DataLoader(ds, o); });
  };
  const std::shared_ptr<const Sampler> random10 = std::make_shared<RandomSampler>(10);
  EXPECT_TRUE(contains(loader_error(counting(10), {.shuffle = true, .sampler = random10}),
                       "sampler option is mutually exclusive with shuffle"));
  // Larger than the dataset: known when the loader is built.
  const std::string big = loader_error(counting(8), {.sampler = random10});
  EXPECT_TRUE(contains(big, "indices up to 9")) << big;
  EXPECT_TRUE(contains(big, "of size 8")) << big;
  EXPECT_TRUE(contains(loader_error(counting(10), {.sampler = std::make_shared<SubsetRandomSampler>(
                                                       Ints{2, 10, 3})}),
                       "indices up to 10"));
  EXPECT_TRUE(contains(
      loader_error(counting(10), {.sampler = std::make_shared<SubsetRandomSampler>(Ints{})}),
      "no index per epoch"));
  EXPECT_TRUE(contains(
      loader_error(counting(10), {.batch_size = 4,
                                  .drop_last = true,
                                  .sampler = std::make_shared<SubsetRandomSampler>(Ints{1, 2})}),
      "fewer than batch_size 4"));

  // Negative indices have no bound: the epoch's order is checked when drawn, and next() names it.
  for (int64_t prefetch : {0, 2}) {
    DataLoader loader(counting(10), {.prefetch = prefetch,
                                     .sampler = std::make_shared<SubsetRandomSampler>(Ints{-1})});
    const std::string e = error_of<ValueError>([&] { loader.next(); });
    EXPECT_TRUE(contains(e, "sampler's index -1")) << e;
    EXPECT_TRUE(contains(e, "of size 10")) << e;
  }
}

// With several ranks each takes its share of the sampler's epoch as Lightning's
// DistributedSamplerWrapper (what Fabric.setup_dataloaders wraps a custom sampler in) gives it:
//   wrapped = DistributedSampler(_DatasetSamplerWrapper(sampler), num_replicas=2, rank=r,
//                                shuffle=False)  # setup_dataloaders: shuffle only for
//                                RandomSampler
//   [list(sampler)[i] for i in wrapped]  # 5 indices: padded with the first, rank 1 gets i1, i3, i0
TEST(DataLoaderSampler, SeveralRanksSplitTheSamplersEpochAsLightningsWrapper) {
  const auto sampler = std::make_shared<SubsetRandomSampler>(Ints{9, 3, 5, 7, 1}, 11);
  for (int64_t epoch : {0, 1}) {
    const Ints all = sampler->epoch_indices(epoch);
    const Ints want0{all[0], all[2], all[4]}, want1{all[1], all[3], all[0]};
    for (int64_t rank : {0, 1}) {
      DataLoader loader(
          counting(10),
          {.batch_size = 3, .rank = rank, .world_size = 2, .prefetch = 0, .sampler = sampler});
      EXPECT_EQ(loader.batches_per_epoch(), 1);
      loader.set_state({.epoch = epoch});
      EXPECT_EQ(loader.next().inputs.to_vector<int64_t>(), rank == 0 ? want0 : want1) << epoch;
    }
  }
  // sampler_drop_last (DistributedSampler(drop_last=True)) cuts the tail instead: 2 each.
  DataLoader cut(counting(10), {.batch_size = 3,
                                .rank = 1,
                                .world_size = 2,
                                .sampler_drop_last = true,
                                .prefetch = 0,
                                .sampler = sampler});
  const Ints all = sampler->epoch_indices(0);
  EXPECT_EQ(cut.next().inputs.to_vector<int64_t>(), (Ints{all[1], all[3]}));
}

// A window dataset draws random windows: no sampler.
TEST(DataLoaderSampler, RefusesWindowDatasets) {
  class Windows : public Dataset {
   public:
    Access access() const override { return Access::windows; }
    int64_t size() const override { return 100; }
    Batch get(std::span<const int64_t>) const override { return {}; }
    std::string describe() const override { return "windows"; }
  };
  const std::string e = error_of<ValueError>([] {
    DataLoader(std::make_shared<Windows>(), {.sampler = std::make_shared<SequentialSampler>(10)});
  });
  EXPECT_TRUE(contains(e, "needs an indexed dataset")) << e;
}

}  // namespace
}  // namespace fabric::data
