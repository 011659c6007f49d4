// Fabric members a Lightning Fabric script uses that the other runtime tests leave out
// (fabric-api.md §2, §5): setup_dataloaders on one and two processes, to_device of collections,
// the `logger` property, and seed_everything's bounds, its seed from PL_GLOBAL_SEED and its
// `workers` flag.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/data_loader.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/random.h"
#include "tests/common/expect_error.h"
#include "tests/distributed/dist_test_util.h"

namespace fabric {
namespace {

using namespace std::chrono_literals;

// Examples 0..n-1: input i is [i], target 10 * i, so a batch shows which examples it holds.
std::shared_ptr<data::TensorDataset> counting(int64_t n) {
  std::vector<int64_t> x, y;
  for (int64_t i = 0; i < n; ++i) {
    x.push_back(i);
    y.push_back(10 * i);
  }
  return std::make_shared<data::TensorDataset>(from_vector<int64_t>(x, {n, 1}),
                                               from_vector<int64_t>(y, {n}));
}

// The example indices of the next `batches` batches.
std::vector<int64_t> drawn(data::DataLoader& loader, int64_t batches) {
  std::vector<int64_t> out;
  for (int64_t b = 0; b < batches; ++b) {
    const data::Batch batch = loader.next();
    for (int64_t v : batch.inputs.to_vector<int64_t>()) out.push_back(v);
  }
  return out;
}

// Restores (or removes) an environment variable when the test ends.
class ScopedEnv {
 public:
  explicit ScopedEnv(const char* name) : name_(name) {
    if (const char* v = std::getenv(name)) old_ = v;
  }
  ~ScopedEnv() { old_ ? ::setenv(name_, old_->c_str(), 1) : ::unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(FabricSetupDataloaders, OneProcessKeepsTheOrderAndHandsBatchesOutOnTheDevice) {
  Fabric fab({.accelerator = "cpu"});
  data::DataLoader plain(counting(10),
                         {.batch_size = 3, .shuffle = true, .seed = 7, .prefetch = 0});
  data::DataLoader reference(counting(10),
                             {.batch_size = 3, .shuffle = true, .seed = 7, .prefetch = 0});
  data::DataLoader loader = fab.setup_dataloaders(plain);
  EXPECT_EQ(loader.options().world_size, 1);
  ASSERT_TRUE(loader.options().device.has_value());
  EXPECT_EQ(*loader.options().device, fab.device());
  EXPECT_EQ(&loader.dataset(), &plain.dataset());    // the same data, not a copy
  EXPECT_EQ(drawn(loader, 8), drawn(reference, 8));  // two epochs and a half, the same order
  EXPECT_EQ(loader.next().inputs.device(), fab.device());

  EXPECT_FALSE(
      fab.setup_dataloaders(plain, true, /*move_to_device=*/false).options().device.has_value());
  auto [a, b] = fab.setup_dataloaders(plain, reference);
  EXPECT_EQ(a.options().seed, 7u);
  EXPECT_EQ(b.options().batch_size, 3);
}

// Each rank draws the share torch's DistributedSampler(shuffle, seed) gives it, as the reference's
// setup_dataloaders makes it; a loader sharded by hand, or set up without the sampler, keeps its
// own order.
TEST(FabricSetupDataloaders, TwoRanksTakeTheDistributedSamplersShare) {
  Fabric fab({.accelerator = "cpu",
              .strategy = "ddp",
              .devices = 2,
              .timeout = 120s,
              .launch_argv = dist_test::self_argv()});
  fab.launch([](Fabric& f) {
    const int64_t r = f.global_rank();
    const auto dataset = counting(11);  // odd: the sampler pads rank 1 with example 0's position
    data::DataLoader plain(dataset, {.batch_size = 2, .shuffle = true, .seed = 3});
    data::DataLoader loader = f.setup_dataloaders(plain);
    EXPECT_EQ(loader.options().rank, r);
    EXPECT_EQ(loader.options().world_size, 2);
    EXPECT_EQ(loader.batches_per_epoch(), 3);  // ceil(11 / 2) = 6 examples per rank
    std::vector<int64_t> want;
    for (int64_t epoch = 0; epoch < 2; ++epoch)
      for (int64_t i : data::distributed_sampler_indices(
               11, epoch, {.shuffle = true, .seed = 3, .rank = r, .world_size = 2}))
        want.push_back(i);
    EXPECT_EQ(drawn(loader, 6), want) << "rank " << r;

    data::DataLoader by_hand(dataset, {.batch_size = 2, .seed = 3, .rank = 1, .world_size = 2});
    EXPECT_EQ(f.setup_dataloaders(by_hand).options().rank, 1);
    data::DataLoader whole = f.setup_dataloaders(plain, /*use_distributed_sampler=*/false);
    EXPECT_EQ(whole.options().world_size, 1);
    EXPECT_EQ(whole.batches_per_epoch(), 6);

    // The reference's _get_distributed_sampler: a RandomSampler gives way to a shuffling
    // DistributedSampler (the loader's seed), another sampler is split by
    // DistributedSamplerWrapper (no shuffle: rank r takes positions r, r + 2, ... of its list).
    data::DataLoader random_sampler(
        dataset,
        {.batch_size = 2, .seed = 3, .sampler = std::make_shared<data::RandomSampler>(11)});
    data::DataLoader replaced = f.setup_dataloaders(random_sampler);
    EXPECT_EQ(replaced.options().sampler, nullptr);
    EXPECT_TRUE(replaced.options().shuffle);
    EXPECT_EQ(drawn(replaced, 6), want) << "rank " << r;
    const auto subset =
        std::make_shared<data::SubsetRandomSampler>(std::vector<int64_t>{8, 1, 6, 3}, 5);
    data::DataLoader wrapped =
        f.setup_dataloaders(data::DataLoader(dataset, {.batch_size = 2, .sampler = subset}));
    EXPECT_EQ(wrapped.options().sampler, subset);
    const std::vector<int64_t> list = subset->epoch_indices(0);
    EXPECT_EQ(drawn(wrapped, 1), (std::vector<int64_t>{list[static_cast<size_t>(r)],
                                                       list[static_cast<size_t>(r) + 2]}));
  });
}

TEST(FabricSetupDataloaders, SeveralProcessesNeedLaunchFirst) {
  Fabric fab({.accelerator = "cpu", .strategy = "ddp", .devices = 2});
  data::DataLoader plain(counting(4), {.batch_size = 2});
  EXPECT_CONTAINS(thrown<Error>([&] { fab.setup_dataloaders(plain); }), "launch");
}

// The reference's to_device moves collections member by member; a batch without targets keeps
// them undefined.
TEST(FabricToDevice, BatchesAndListsMoveMemberByMember) {
  Fabric fab({.accelerator = "cpu"});
  const data::Batch moved = fab.to_device(data::Batch{.inputs = ones({2, 3})});
  EXPECT_EQ(moved.inputs.device(), fab.device());
  EXPECT_EQ(moved.inputs.sizes(), (Shape{2, 3}));
  EXPECT_FALSE(moved.targets.defined());
  const std::vector<Tensor> list =
      fab.to_device(std::vector<Tensor>{ones({1}), Tensor(), zeros({2})});
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].device(), fab.device());
  EXPECT_FALSE(list[1].defined());
  EXPECT_EQ(list[2].sizes(), (Shape{2}));
}

TEST(FabricLogger, IsTheFirstLoggerAndAnIndexErrorWithoutOne) {
  Fabric none;
  EXPECT_CONTAINS(thrown<IndexError>([&] { none.logger(); }), "no logger");
  const std::string dir =
      ::testing::TempDir() + "/fabric_logger_property_" + std::to_string(::getpid());
  auto first = std::make_shared<CSVLogger>(CSVLoggerOptions{.root_dir = dir});
  auto second = std::make_shared<CSVLogger>(CSVLoggerOptions{.root_dir = dir, .name = "other"});
  Fabric fab({.loggers = {first, second}});
  EXPECT_EQ(fab.logger().get(), first.get());
}

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Lightning's CSVLogger touches the disk on first use only (its experiment is rank-zero-only): a
// logger that never logs, as every rank but 0 under Fabric, must neither delete nor rewrite the
// file rank 0 writes at the same path, nor make directories.
TEST(FabricLogger, ACsvLoggerThatNeverLogsLeavesTheDiskAlone) {
  const std::string root = ::testing::TempDir() + "/fabric_csv_idle_" + std::to_string(::getpid());
  std::filesystem::remove_all(root);
  const std::string file = root + "/lightning_logs/version_3/metrics.csv";
  std::filesystem::create_directories(root + "/lightning_logs/version_3");
  std::ofstream(file) << "loss,step\n1,0\n";
  {
    CSVLogger idle({.root_dir = root, .version = "3"});
    idle.flush();
  }
  EXPECT_EQ(lines_of(file), (std::vector<std::string>{"loss,step", "1,0"}));
  {
    CSVLogger fresh({.root_dir = root, .name = "other"});
    EXPECT_EQ(fresh.version(), "version_0");  // chosen, not created
  }
  EXPECT_FALSE(std::filesystem::exists(root + "/other"));
  {
    CSVLogger writer({.root_dir = root, .version = "3"});  // the first write replaces the old file
    writer.log_metrics({{"acc", 0.5}}, 4);
  }
  EXPECT_EQ(lines_of(file), (std::vector<std::string>{"acc,step", "0.5,4"}));
  std::filesystem::remove_all(root);
}

// Every rank builds the same Fabric, loggers included (the launcher re-runs the program); rank 0's
// rows are the file's, whatever the other rank's logger does when it is destroyed.
TEST(FabricLogger, CsvLoggerOnTwoRanksKeepsRankZerosRows) {
  const std::string root = ::testing::TempDir() + "/fabric_csv_ranks_" +
                           std::to_string(dist_test::is_launched_rank() ? ::getppid() : ::getpid());
  if (!dist_test::is_launched_rank()) std::filesystem::remove_all(root);
  {
    Fabric fab({.accelerator = "cpu",
                .strategy = "ddp",
                .devices = 2,
                .loggers = {std::make_shared<CSVLogger>(CSVLoggerOptions{.root_dir = root})},
                .timeout = 120s,
                .launch_argv = dist_test::self_argv()});
    fab.launch([](Fabric& f) {
      f.log_dict({{"rank", double(f.global_rank())}}, 0);
      f.logger()->flush();
      f.barrier("logged");
    });
  }
  if (dist_test::is_launched_rank()) return;
  EXPECT_EQ(lines_of(root + "/lightning_logs/version_0/metrics.csv"),
            (std::vector<std::string>{"rank,step", "0.0,0"}));
  EXPECT_FALSE(std::filesystem::exists(root + "/lightning_logs/version_1"));
  std::filesystem::remove_all(root);
}

TEST(FabricSeed, OutsideZeroToTwoToThe32IsAValueError) {
  ScopedEnv global("PL_GLOBAL_SEED"), workers("PL_SEED_WORKERS");
  EXPECT_EQ(Fabric::seed_everything(4294967295), 4294967295u);
  EXPECT_STREQ(std::getenv("PL_GLOBAL_SEED"), "4294967295");
  EXPECT_CONTAINS(thrown<ValueError>([] { Fabric::seed_everything(int64_t(1) << 32); }),
                  "4294967296 is not in bounds, numpy accepts from 0 to 4294967295");
  EXPECT_CONTAINS(thrown<ValueError>([] { Fabric::seed_everything(-1); }), "-1 is not in bounds");
  EXPECT_STREQ(std::getenv("PL_GLOBAL_SEED"), "4294967295");  // a refused seed changes nothing
}

TEST(FabricSeed, WithoutASeedPlGlobalSeedOrZero) {
  ScopedEnv global("PL_GLOBAL_SEED"), workers("PL_SEED_WORKERS");
  ::setenv("PL_GLOBAL_SEED", "123", 1);
  EXPECT_EQ(Fabric::seed_everything(), 123u);
  const std::vector<float> after_env = randn({4}).to_vector<float>();
  manual_seed(123);
  EXPECT_EQ(randn({4}).to_vector<float>(), after_env);

  ::setenv("PL_GLOBAL_SEED", "12x", 1);
  EXPECT_CONTAINS(thrown<ValueError>([] { Fabric::seed_everything(); }),
                  "Invalid seed specified via PL_GLOBAL_SEED: '12x'");
  ::setenv("PL_GLOBAL_SEED", "4294967296", 1);
  EXPECT_CONTAINS(thrown<ValueError>([] { Fabric::seed_everything(); }), "not in bounds");
  ::unsetenv("PL_GLOBAL_SEED");
  EXPECT_EQ(Fabric::seed_everything(), 0u);
  EXPECT_STREQ(std::getenv("PL_GLOBAL_SEED"), "0");
}

TEST(FabricSeed, WorkersFlagIsPlSeedWorkers) {
  ScopedEnv global("PL_GLOBAL_SEED"), workers("PL_SEED_WORKERS");
  Fabric::seed_everything(5, /*workers=*/false);
  EXPECT_STREQ(std::getenv("PL_SEED_WORKERS"), "0");
  Fabric::seed_everything(5);  // Fabric's default: workers=True
  EXPECT_STREQ(std::getenv("PL_SEED_WORKERS"), "1");
}

}  // namespace
}  // namespace fabric
