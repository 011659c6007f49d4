// FSDP checkpoints through Fabric with real processes (Gloo over loopback): sharded (one file per
// rank + meta.json) and full, resumed by the same, a smaller and a larger world size, consolidated
// and loaded into a single-process run; the errors a damaged sharded checkpoint raises.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "distributed/fsdp.h"
#include "optim/adam.h"
#include "runtime/fabric.h"
#include "runtime/sharded_checkpoint.h"
#include "runtime/sharded_checkpoint_reader.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/safetensors.h"
#include "tests/common/expect_error.h"
#include "tests/distributed/dist_test_util.h"
#include "tests/distributed/zero_test_util.h"

namespace fabric {
namespace {

namespace fs = std::filesystem;
using dist_test::self_argv;
using namespace std::chrono_literals;
using namespace zero_test;

FabricOptions fsdp_options(int devices, const std::string& state_dict_type = "sharded") {
  FabricOptions o{.accelerator = "cpu",
                  .strategy = "fsdp",
                  .devices = devices,
                  .timeout = 120s,
                  .launch_argv = devices > 1 ? self_argv() : std::vector<std::string>{}};
  o.fsdp.auto_wrap_policy = {"Block"};
  o.fsdp.state_dict_type = state_dict_type;
  return o;
}

// Steps [from, to) of the GPT problem. Rank r of N takes rows [r * 2kB / N, (r + 1) * 2kB / N) of
// each step's 2kB rows: the global batch, hence the update, is the same for every world size.
void gpt_steps(Fabric& f, FabricModule& model, FabricOptimizer& fopt, const Problem& p, int64_t from, int64_t to) {
  const int64_t rows = 2 * kB / f.world_size(), first = f.global_rank() * rows;
  for (int64_t s = from; s < to; ++s) {
    fopt.zero_grad();
    f.backward(loss_of("gpt", model(p.x[s].narrow(0, first, rows)), p.y[s].narrow(0, first, rows)));
    fopt.step();
  }
}

std::unique_ptr<optim::AdamW> other_adamw(const std::vector<Tensor>& params) {
  return std::make_unique<optim::AdamW>(params, optim::AdamWOptions{.lr = 0.5});  // the checkpoint's lr replaces it
}

// The module's state_dict in the single-process layout (collective under FSDP).
nn::StateDict gathered(Fabric& f, nn::Module& m) {
  nn::StateDict out;
  for (const auto& [k, t] : f.strategy_object().module_state_to_save(m)) out.insert(k, t.clone());
  return out;
}

// Max relative difference over the keys of `ref` (each must be in `a`, equally shaped).
double max_rel_diff(const nn::StateDict& a, const nn::StateDict& ref) {
  double worst = 0;
  for (const auto& [k, r] : ref) {
    const Tensor* t = a.find(k);
    EXPECT_NE(t, nullptr) << k;
    if (!t) return 1e30;
    EXPECT_EQ(t->sizes(), r.sizes()) << k;
    if (t->sizes() != r.sizes()) return 1e30;
    worst = std::max(worst, zero_test::max_rel_diff({*t}, {r}));
  }
  return worst;
}

nn::StateDict read_state(const std::string& file) {
  nn::StateDict sd;
  for (auto& [k, t] : load_safetensors(file).tensors) sd.insert(k, t);
  return sd;
}

std::string shared_dir(Fabric& f, const std::string& name) {
  return ::testing::TempDir() + "/" + name + "_" + f.broadcast(std::to_string(::getpid()));
}

int64_t bytes_of(const fs::path& p) { return int64_t(fs::file_size(p)); }

// One process, strategy single_device: loads `dir` (full, consolidated or sharded) into a fresh
// GPT and AdamW. The weights must equal the FSDP run's at step 10 exactly; the AdamW state must be
// that of the same 10 steps in one process (the state is numbered like its parameters); the next
// 10 steps on the whole batch must give the FSDP run's weights at step 20.
void expect_loads_into_one_process(const std::string& dir, const Problem& p, const nn::StateDict& w10,
                                   const nn::StateDict& w20, const std::string& what) {
  SCOPED_TRACE(what + " " + dir);
  Fabric ref_fab({.accelerator = "cpu"});
  auto ref = make_model("gpt", 7);
  auto ref_opt = make_optimizer("adamw", ref->parameters());
  auto [ref_model, ref_fopt] = ref_fab.setup(ref, *ref_opt);
  gpt_steps(ref_fab, ref_model, ref_fopt, p, 0, 10);

  Fabric single({.accelerator = "cpu"});
  ASSERT_EQ(single.strategy_object().name(), "single_device");
  auto module = make_model("gpt", 555);
  auto opt = other_adamw(module->parameters());
  auto [model, fopt] = single.setup(module, *opt);
  State st{{"model", model}, {"optimizer", fopt}, {"step", int64_t(0)}};
  single.load(dir, st, /*strict=*/true);
  EXPECT_EQ(st.at("step").get<int64_t>(), 10);
  EXPECT_EQ(opt->lr(0), 1e-2);
  EXPECT_EQ(max_rel_diff(module->state_dict(), w10), 0.0) << "weights differ from the gathered FSDP weights";
  const std::vector<Tensor> params = module->parameters(), ref_params = ref->parameters();
  ASSERT_EQ(params.size(), ref_params.size());
  double exp_avg_diff = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    const optim::ParamState* s = opt->state(params[i]);
    const optim::ParamState* r = ref_opt->state(ref_params[i]);
    ASSERT_TRUE(s && r) << "parameter " << i << " has no AdamW state";
    EXPECT_EQ(s->at("step").item<double>(), 10.0) << i;
    ASSERT_EQ(s->at("exp_avg").sizes(), params[i].sizes()) << i;
    exp_avg_diff = std::max(exp_avg_diff, zero_test::max_rel_diff({s->at("exp_avg")}, {r->at("exp_avg")}));
  }
  EXPECT_LE(exp_avg_diff, 1e-4);
  gpt_steps(single, model, fopt, p, 10, 20);
  const double diff = max_rel_diff(module->state_dict(), w20);
  EXPECT_LE(diff, 1e-5);
  std::printf("[fsdp ckpt] %s into one process: exp_avg vs one-process run %.3g, after 10 more steps vs FSDP %.3g\n",
              what.c_str(), exp_avg_diff, diff);
}

struct ResumeRun {
  std::string dir;
  nn::StateDict w10, w20;
};

// FULL_SHARD GPT + AdamW on 2 ranks: 10 steps, save, 10 more (W20); a fresh model and optimizer
// (other weights, other lr) load the checkpoint and run the same 10 steps: W20 again. Plain values,
// a tensor and a string come back. Then one process loads it (consolidated first when sharded).
void expect_resumes(const std::string& state_dict_type) {
  const Problem p = make_problem("gpt");
  Fabric fab(fsdp_options(2, state_dict_type));
  std::vector<std::shared_ptr<nn::Module>> keep;  // FSDPStrategy knows its modules by address
  std::vector<std::unique_ptr<optim::Optimizer>> keep_opt;
  const ResumeRun run = fab.launch([&](Fabric& f) {
    ResumeRun o;
    o.dir = shared_dir(f, "fsdp_ckpt_" + state_dict_type);
    const Tensor extra = arange(0, 6, 1, DType::float32);
    {
      auto module = make_model("gpt", 7 + 100 * uint64_t(f.global_rank()));  // setup broadcasts rank 0's
      auto opt = make_optimizer("adamw", module->parameters());
      auto [model, fopt] = f.setup(module, *opt);
      gpt_steps(f, model, fopt, p, 0, 10);
      f.save(o.dir, {{"model", model}, {"optimizer", fopt}, {"step", int64_t(10)}, {"note", "ten"}, {"extra", extra}});
      o.w10 = gathered(f, *module);
      gpt_steps(f, model, fopt, p, 10, 20);
      o.w20 = gathered(f, *module);
      keep.push_back(module);
      keep_opt.push_back(std::move(opt));
    }
    {
      auto module = make_model("gpt", 99 + uint64_t(f.global_rank()));
      auto opt = other_adamw(module->parameters());
      auto [model, fopt] = f.setup(module, *opt);
      State st{{"model", model}, {"optimizer", fopt}, {"step", int64_t(0)}, {"note", ""}, {"extra", zeros({1})}};
      f.load(o.dir, st);
      EXPECT_EQ(st.at("step").get<int64_t>(), 10);
      EXPECT_EQ(st.at("note").get<std::string>(), "ten");
      EXPECT_EQ(st.at("extra").get<Tensor>().to_vector<float>(), extra.to_vector<float>());
      EXPECT_EQ(opt->lr(0), 1e-2);
      EXPECT_EQ(max_rel_diff(gathered(f, *module), o.w10), 0.0) << "rank " << f.global_rank();
      gpt_steps(f, model, fopt, p, 10, 20);
      const double diff = max_rel_diff(gathered(f, *module), o.w20);
      EXPECT_LE(diff, 1e-6) << "rank " << f.global_rank();
      std::printf("[fsdp ckpt] %s, 2 ranks resumed, rank %lld: max rel diff vs uninterrupted %.3g\n",
                  state_dict_type.c_str(), static_cast<long long>(f.global_rank()), diff);
      keep.push_back(module);
      keep_opt.push_back(std::move(opt));
    }
    return o;
  });
  if (fab.global_rank() != 0) return;
  const fs::path dir = run.dir;
  if (state_dict_type == "sharded") {
    // One file per rank, each about half of everything (parameters + AdamW's two moments): no rank
    // wrote (or had to hold) the whole model.
    ASSERT_TRUE(fs::exists(dir / "meta.json"));
    EXPECT_FALSE(fs::exists(dir / "state.json"));
    EXPECT_FALSE(fs::exists(dir / "model.safetensors"));
    const int64_t r0 = bytes_of(dir / "rank-0-of-2.safetensors"), r1 = bytes_of(dir / "rank-1-of-2.safetensors");
    int64_t params = 0;
    for (const auto& [k, t] : run.w10) params += t.nbytes();
    params -= run.w10.at("lm_head.weight").nbytes();  // tied to wte: stored once
    EXPECT_GT(r0 + r1, 3 * params);                  // weights, exp_avg, exp_avg_sq
    EXPECT_LT(r0 + r1, 3 * params + 64 * 1024);      // + headers and scalars
    for (int64_t r : {r0, r1}) {
      EXPECT_GT(double(r) / double(r0 + r1), 0.4);
      EXPECT_LT(double(r) / double(r0 + r1), 0.6);
    }
    std::printf("[fsdp ckpt] rank files %lld + %lld bytes (parameters alone %lld)\n", static_cast<long long>(r0),
                static_cast<long long>(r1), static_cast<long long>(params));
    std::ifstream in(dir / "meta.json");
    const nlohmann::json meta = nlohmann::json::parse(in);
    EXPECT_EQ(meta["world_size"], 2);
    EXPECT_EQ(meta["entries"]["model"]["aliases"]["lm_head.weight"], "transformer.wte.weight");
    std::set<int> ranks;
    for (const auto& piece : meta["entries"]["model"]["tensors"]["transformer.wte.weight"]["pieces"])
      ranks.insert(piece["rank"].get<int>());
    EXPECT_EQ(ranks, (std::set<int>{0, 1}));

    const std::string full = run.dir + "_consolidated";
    consolidate_checkpoint(run.dir, full);
    EXPECT_TRUE(fs::exists(full + "/state.json"));
    EXPECT_FALSE(fs::exists(full + "/meta.json"));
    // The full layout: the module's state_dict keys (both tied names), the optimizer flattened.
    const nn::StateDict consolidated = read_state(full + "/model.safetensors");
    EXPECT_EQ(consolidated.size(), run.w10.size());
    EXPECT_EQ(max_rel_diff(consolidated, run.w10), 0.0);
    EXPECT_EQ(load_safetensors(full + "/optimizer.safetensors").metadata.at("optimizer"), "AdamW");
    expect_loads_into_one_process(full, p, run.w10, run.w20, "consolidated");
    expect_loads_into_one_process(run.dir, p, run.w10, run.w20, "sharded");
    fs::remove_all(full);
  } else {
    EXPECT_TRUE(fs::exists(dir / "state.json"));
    EXPECT_FALSE(fs::exists(dir / "meta.json"));
    EXPECT_EQ(max_rel_diff(read_state(run.dir + "/model.safetensors"), run.w10), 0.0);
    expect_loads_into_one_process(run.dir, p, run.w10, run.w20, "full");
  }
  fs::remove_all(dir);
}

TEST(FSDPCheckpoint, ShardedSaveLoadResumesFullShardGPT) { expect_resumes("sharded"); }

TEST(FSDPCheckpoint, FullSaveLoadResumesFullShardGPT) { expect_resumes("full"); }

// ---- other world sizes ---------------------------------------------------------------------------

// Started by the tests below: FSDP on $FSDP_CKPT_WORLD ranks trains 10 steps, saves a sharded
// checkpoint to $FSDP_CKPT_DIR/sharded, trains 10 more and writes the gathered weights to
// $FSDP_CKPT_DIR/w20.safetensors.
TEST(FSDPCheckpointWorker, DISABLED_SaveAtStep10) {
  const char* dir = std::getenv("FSDP_CKPT_DIR");
  const char* world = std::getenv("FSDP_CKPT_WORLD");
  if (!dir || !world) GTEST_SKIP() << "started by the FSDPCheckpoint tests";
  const Problem p = make_problem("gpt");
  Fabric fab(fsdp_options(std::atoi(world)));
  fab.launch([&](Fabric& f) {
    auto module = make_model("gpt", 7);
    auto opt = make_optimizer("adamw", module->parameters());
    auto [model, fopt] = f.setup(module, *opt);
    gpt_steps(f, model, fopt, p, 0, 10);
    f.save(std::string(dir) + "/sharded", {{"model", model}, {"optimizer", fopt}, {"step", int64_t(10)}});
    gpt_steps(f, model, fopt, p, 10, 20);
    const nn::StateDict w20 = gathered(f, *module);
    if (f.global_rank() == 0) save_safetensors(std::string(dir) + "/w20.safetensors", {w20.begin(), w20.end()});
  });
}

// The directory of a checkpoint saved by `world` ranks (run once per test process).
std::string saved_by(int world) {
  struct Dirs {
    std::map<int, std::string> by_world;
    ~Dirs() {
      for (const auto& [w, d] : by_world) fs::remove_all(d);
    }
  };
  static Dirs dirs;
  if (auto it = dirs.by_world.find(world); it != dirs.by_world.end()) return it->second;
  const std::string dir = ::testing::TempDir() + "/fsdp_ckpt_by" + std::to_string(world) + "_" + std::to_string(::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  dirs.by_world[world] = dir;
  const auto r = dist_test::run_test_in_child("FSDPCheckpointWorker.DISABLED_SaveAtStep10",
                                              {{"FSDP_CKPT_DIR", dir}, {"FSDP_CKPT_WORLD", std::to_string(world)}},
                                              std::chrono::seconds(300));
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 0);
  return dir;
}

// Loads the checkpoint saved by `saved_world` ranks into this run's ranks and continues: equals the
// saving run's continuation (the global batch is the same; only the reduction order differs).
void expect_continues(Fabric& f, const std::string& dir, int saved_world) {
  const Problem p = make_problem("gpt");
  auto module = make_model("gpt", 99 + uint64_t(f.global_rank()));
  auto opt = other_adamw(module->parameters());
  auto [model, fopt] = f.setup(module, *opt);
  State st{{"model", model}, {"optimizer", fopt}, {"step", int64_t(0)}};
  f.load(dir + "/sharded", st);
  EXPECT_EQ(st.at("step").get<int64_t>(), 10);
  gpt_steps(f, model, fopt, p, 10, 20);
  const double diff = max_rel_diff(gathered(f, *module), read_state(dir + "/w20.safetensors"));
  EXPECT_LE(diff, 1e-5) << "rank " << f.global_rank();
  std::printf("[fsdp ckpt] saved by %d ranks, resumed on %lld, rank %lld: max rel diff vs uninterrupted %.3g\n",
              saved_world, static_cast<long long>(f.world_size()), static_cast<long long>(f.global_rank()), diff);
}

TEST(FSDPCheckpoint, TwoRankCheckpointLoadsIntoOneProcess) {
  const std::string dir = saved_by(2);
  ASSERT_TRUE(fs::exists(dir + "/w20.safetensors"));
  ASSERT_TRUE(fs::exists(dir + "/sharded/rank-1-of-2.safetensors"));
  Fabric fab(fsdp_options(1));  // plain single-process FSDP
  ASSERT_NE(fab.strategy_object().name(), "single_device");
  expect_continues(fab, dir, 2);
}

// Loading opens a rank file only when a range it reads lies there: the first parameter of block 0
// is on rank 0, the last one on rank 1; a range across the boundary is assembled from both.
TEST(FSDPCheckpoint, ReaderOpensOnlyTheRankFilesItNeeds) {
  const std::string dir = saved_by(2) + "/sharded";
  sharded_detail::ShardedReader reader(dir);
  EXPECT_EQ(reader.world_size(), 2);
  EXPECT_EQ(reader.files_opened(), 0u);
  EXPECT_EQ(reader.read("model", "transformer.h.0.ln_1.weight", 0, 32).numel(), 32);
  EXPECT_EQ(reader.files_opened(), 1u);
  EXPECT_EQ(reader.read("model", "transformer.h.0.mlp.c_proj.bias", 0, 32).numel(), 32);
  EXPECT_EQ(reader.files_opened(), 2u);
  // Some parameter of block 0 straddles the two shards: its whole value comes from both files.
  const nlohmann::json& tensors = reader.entries()["model"]["tensors"];
  int straddling = 0;
  for (const auto& [name, t] : tensors.items()) {
    if (t["pieces"].size() < 2) continue;
    ++straddling;
    const Tensor whole = reader.read_whole("model", name);
    EXPECT_EQ(whole.sizes(), sharded_detail::ShardedReader::shape_of(t)) << name;
    int64_t offset = 0;
    for (const auto& piece : t["pieces"]) {
      const int64_t n = piece["numel"].get<int64_t>();
      EXPECT_EQ(piece["offset"].get<int64_t>(), offset) << name;
      EXPECT_EQ(reader.read("model", name, offset, n).to_vector<float>(),
                whole.reshape({-1}).narrow(0, offset, n).to_vector<float>())
          << name;
      offset += n;
    }
  }
  EXPECT_GT(straddling, 0);
  EXPECT_EQ(reader.read("model", "no.such.weight", 0, 1).defined(), false);
  EXPECT_CONTAINS(thrown<ValueError>([&] { reader.read("model", "transformer.h.0.ln_1.weight", 30, 3); }),
                  "elements [30, 33) were asked for");
}

TEST(FSDPCheckpoint, TwoRankCheckpointLoadsIntoFourRanks) {
  std::string dir;
  if (!dist_test::is_launched_rank()) {
    dir = saved_by(2);
    ASSERT_TRUE(fs::exists(dir + "/w20.safetensors"));
  }
  Fabric fab(fsdp_options(4));
  fab.launch([&](Fabric& f) { expect_continues(f, f.broadcast(dir), 2); });
}

TEST(FSDPCheckpoint, FourRankCheckpointLoadsIntoTwoRanks) {
  std::string dir;
  if (!dist_test::is_launched_rank()) {
    dir = saved_by(4);
    ASSERT_TRUE(fs::exists(dir + "/sharded/rank-3-of-4.safetensors"));
  }
  Fabric fab(fsdp_options(2));
  fab.launch([&](Fabric& f) { expect_continues(f, f.broadcast(dir), 4); });
}

// NO_SHARD: every rank holds everything, so only rank 0 writes pieces (rank 1's file holds none);
// one process (FSDP on one device) resumes from it. A save rank 0 refuses fails on every rank.
TEST(FSDPCheckpoint, NoShardWritesFromRankZeroOnly) {
  const Problem p = make_problem("gpt");
  FabricOptions o = fsdp_options(2);
  o.fsdp.sharding_strategy = distributed::ShardingStrategy::no_shard;
  Fabric fab(o);
  std::vector<std::shared_ptr<nn::Module>> keep;
  std::vector<std::unique_ptr<optim::Optimizer>> keep_opt;
  const ResumeRun run = fab.launch([&](Fabric& f) {
    ResumeRun r;
    r.dir = shared_dir(f, "fsdp_ckpt_no_shard");
    auto module = make_model("gpt", 7);
    auto opt = make_optimizer("adamw", module->parameters());
    auto [model, fopt] = f.setup(module, *opt);
    // Every rank refuses the key itself, before any collective (none is left waiting in one).
    EXPECT_CONTAINS(thrown<ValueError>([&] {
                      f.save(r.dir, {{"a/b", int64_t(1)}, {"model", model}});
                    }),
                    "Fabric.save: state key 'a/b'");
    gpt_steps(f, model, fopt, p, 0, 10);
    f.save(r.dir, {{"model", model}, {"optimizer", fopt}, {"step", int64_t(10)}});
    gpt_steps(f, model, fopt, p, 10, 20);
    r.w20 = gathered(f, *module);
    keep.push_back(module);
    keep_opt.push_back(std::move(opt));
    return r;
  });
  if (fab.global_rank() != 0) return;
  EXPECT_TRUE(load_safetensors(run.dir + "/rank-1-of-2.safetensors").tensors.empty());
  EXPECT_FALSE(load_safetensors(run.dir + "/rank-0-of-2.safetensors").tensors.empty());
  Fabric one(fsdp_options(1));
  auto module = make_model("gpt", 99);
  auto opt = other_adamw(module->parameters());
  auto [model, fopt] = one.setup(module, *opt);
  one.load(run.dir, {{"model", model}, {"optimizer", fopt}});
  gpt_steps(one, model, fopt, p, 10, 20);
  const double diff = max_rel_diff(gathered(one, *module), run.w20);
  EXPECT_LE(diff, 1e-5);
  std::printf("[fsdp ckpt] NO_SHARD on 2 ranks, resumed in one process: max rel diff vs uninterrupted %.3g\n", diff);
  fs::remove_all(run.dir);
}

// The full layout numbers the optimizer state the way the optimizer held its parameters before
// sharding, whatever that order (here the module's parameters reversed: not its traversal order),
// so the checkpoint loads into the same optimizer in a run without FSDP and holds that run's state.
TEST(FSDPCheckpoint, FullOptimizerStateKeepsTheOptimizersOwnParameterOrder) {
  const std::string dir = ::testing::TempDir() + "/fsdp_ckpt_order_" + std::to_string(::getpid());
  fs::remove_all(dir);
  const Problem p = make_problem("gpt");
  auto reversed = [](std::vector<Tensor> v) {
    std::reverse(v.begin(), v.end());
    return v;
  };
  auto trained = [&](Fabric& f, std::shared_ptr<nn::Module> module, int64_t steps) {
    auto opt = make_optimizer("adamw", reversed(module->parameters()));
    auto [model, fopt] = f.setup(module, *opt);
    gpt_steps(f, model, fopt, p, 0, steps);
    return std::make_tuple(std::move(opt), model, fopt);
  };
  {
    Fabric fsdp(fsdp_options(1, "full"));
    auto [opt, model, fopt] = trained(fsdp, make_model("gpt", 7), 2);
    fsdp.save(dir, {{"optimizer", fopt}});
  }
  Fabric plain(FabricOptions{.accelerator = "cpu", .devices = 1});
  auto [reference, model_a, fopt_a] = trained(plain, make_model("gpt", 7), 2);
  Fabric other(FabricOptions{.accelerator = "cpu", .devices = 1});
  auto [loaded, model_b, fopt_b] = trained(other, make_model("gpt", 7), 0);
  other.load(dir, {{"optimizer", fopt_b}});
  const optim::OptimizerState want = reference->state_dict(), got = loaded->state_dict();
  ASSERT_EQ(got.state.size(), want.state.size());
  for (const auto& [index, st] : want.state) {
    ASSERT_TRUE(got.state.count(index)) << "no state for parameter " << index;
    for (const auto& [key, t] : st) {
      const Tensor& g = got.state.at(index).at(key);
      ASSERT_EQ(g.sizes(), t.sizes()) << "parameter " << index << " " << key;
      EXPECT_LE(zero_test::max_rel_diff(std::vector<Tensor>{g}, std::vector<Tensor>{t}), 1e-6) << "parameter " << index << " " << key;
    }
  }
  fs::remove_all(dir);
}

// ---- one process: resume, interrupted commit, errors -----------------------------------------------

class FSDPCheckpointOneProcess : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/fsdp_ckpt_one_" + std::to_string(::getpid()) + "_" +
           testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    p_ = make_problem("gpt");
    module_ = make_model("gpt", 7);
    opt_ = make_optimizer("adamw", module_->parameters());
    auto [model, fopt] = fab_.setup(module_, *opt_);
    gpt_steps(fab_, model, fopt, p_, 0, 3);
    fab_.save(dir_, {{"model", model}, {"optimizer", fopt}, {"step", int64_t(3)}});
    w3_ = gathered(fab_, *module_);
  }
  void TearDown() override {
    fs::remove_all(dir_);
    fs::remove_all(dir_ + ".old");
    fs::remove_all(dir_ + "_copy");
  }
  // A copy of the checkpoint whose meta.json `edit` changed.
  std::string edited(const std::function<void(nlohmann::json&)>& edit) {
    const std::string copy = dir_ + "_copy";
    fs::remove_all(copy);
    fs::copy(dir_, copy, fs::copy_options::recursive);
    nlohmann::json meta;
    {
      std::ifstream in(copy + "/meta.json");
      meta = nlohmann::json::parse(in);
    }
    edit(meta);
    std::ofstream(copy + "/meta.json") << meta.dump();
    return copy;
  }
  // Loads `dir` into a fresh FSDP GPT (another Fabric, so that module addresses never repeat).
  void load_into_fresh(const std::string& dir, const nn::GPTConfig& cfg = kGPT) {
    fresh_.push_back(std::make_unique<Fabric>(fsdp_options(1)));
    auto module = std::make_shared<nn::GPT>(cfg);
    modules_.push_back(module);
    auto opt = make_optimizer("adamw", module->parameters());
    auto [model, fopt] = fresh_.back()->setup(module, *opt);
    opts_.push_back(std::move(opt));
    fresh_.back()->load(dir, {{"model", model}, {"optimizer", fopt}});
    loaded_ = module;
  }

  Fabric fab_{fsdp_options(1)};
  std::string dir_;
  Problem p_;
  std::shared_ptr<nn::Module> module_, loaded_;
  std::unique_ptr<optim::Optimizer> opt_;
  nn::StateDict w3_;
  std::vector<std::unique_ptr<Fabric>> fresh_;
  std::vector<std::shared_ptr<nn::Module>> modules_;
  std::vector<std::unique_ptr<optim::Optimizer>> opts_;
};

TEST_F(FSDPCheckpointOneProcess, WritesOneRankFileAndLoads) {
  EXPECT_TRUE(fs::exists(dir_ + "/rank-0-of-1.safetensors"));
  EXPECT_TRUE(is_sharded_checkpoint(dir_));
  load_into_fresh(dir_);
  EXPECT_EQ(max_rel_diff(loaded_->state_dict(), w3_), 0.0);
}

// An interrupted commit on a file system without an atomic exchange leaves the previous checkpoint
// at DIR.old and nothing at DIR: load still finds it. A leftover temporary directory is ignored.
TEST_F(FSDPCheckpointOneProcess, InterruptedCommitLeavesThePreviousCheckpointLoadable) {
  fs::rename(dir_, dir_ + ".old");
  fs::create_directories(dir_ + ".tmp-12345");
  ASSERT_TRUE(is_sharded_checkpoint(dir_));
  load_into_fresh(dir_);
  EXPECT_EQ(max_rel_diff(loaded_->state_dict(), w3_), 0.0);
  fs::remove_all(dir_ + ".tmp-12345");
}

TEST_F(FSDPCheckpointOneProcess, MissingRankFileIsAnIOErrorNamingIt) {
  const std::string copy = edited([](nlohmann::json&) {});
  fs::remove(copy + "/rank-0-of-1.safetensors");
  const std::string msg = thrown<IOError>([&] { load_into_fresh(copy); });
  EXPECT_CONTAINS(msg, "rank-0-of-1.safetensors");
  EXPECT_CONTAINS(msg, "missing");
}

TEST_F(FSDPCheckpointOneProcess, ShapeMismatchIsAValueErrorNamingTheKey) {
  nn::GPTConfig wider = kGPT;
  wider.n_embd = 48;
  const std::string msg = thrown<ValueError>([&] { load_into_fresh(dir_, wider); });
  EXPECT_CONTAINS(msg, "size mismatch");
  EXPECT_CONTAINS(msg, "transformer.wte.weight: checkpoint (32, 32), model (32, 48)");
}

TEST_F(FSDPCheckpointOneProcess, MissingPieceIsAValueError) {
  const std::string copy = edited([](nlohmann::json& m) {
    m["entries"]["model"]["tensors"]["transformer.wpe.weight"]["pieces"] = nlohmann::json::array();
  });
  const std::string msg = thrown<ValueError>([&] { load_into_fresh(copy); });
  EXPECT_CONTAINS(msg, "transformer.wpe.weight");
  EXPECT_CONTAINS(msg, "cover 0 of elements [0, 512)");
}

// A damaged shape asks for 2^34 elements: the pieces' coverage is checked before anything is
// allocated (it used to report running out of memory, naming neither file nor tensor).
TEST_F(FSDPCheckpointOneProcess, AHugeDamagedShapeIsRefusedBeforeItIsAllocated) {
  const std::string copy = edited([](nlohmann::json& m) {
    m["entries"]["model"]["tensors"]["transformer.wpe.weight"]["shape"] = {int64_t{1} << 34};
  });
  const std::string msg = thrown<ValueError>([&] { consolidate_checkpoint(copy, dir_ + "_out"); });
  EXPECT_CONTAINS(msg, "transformer.wpe.weight");
  EXPECT_CONTAINS(msg, "cover 512 of elements [0, 17179869184)");
}

TEST_F(FSDPCheckpointOneProcess, PieceAbsentFromItsRankFileIsAnIOError) {
  const std::string copy = edited([](nlohmann::json& m) {
    m["entries"]["model"]["tensors"]["transformer.wpe.weight"]["pieces"][0]["rank"] = 0;
    m["entries"]["model"]["tensors"]["transformer.wpe.weight"]["pieces"][0]["offset"] = 7;
    m["entries"]["model"]["tensors"]["transformer.wpe.weight"]["pieces"][0]["numel"] = 505;
    m["entries"]["model"]["tensors"]["transformer.wpe.weight"]["pieces"].push_back(
        {{"rank", 0}, {"offset", 0}, {"numel", 7}});
  });
  const std::string msg = thrown<IOError>([&] { load_into_fresh(copy); });
  EXPECT_CONTAINS(msg, "rank-0-of-1.safetensors lacks the piece 'model/transformer.wpe.weight/7'");
}

TEST_F(FSDPCheckpointOneProcess, WrongFormatIsAnIOError) {
  const std::string copy = edited([](nlohmann::json& m) { m["format"] = "something-else"; });
  EXPECT_CONTAINS(thrown<IOError>([&] { load_into_fresh(copy); }), "not a sharded checkpoint description");
  EXPECT_CONTAINS(thrown<IOError>([&] { consolidate_checkpoint(copy, dir_ + "_out"); }), "meta.json");
  EXPECT_FALSE(fs::exists(dir_ + "_out"));
  EXPECT_CONTAINS(thrown<IOError>([&] { consolidate_checkpoint(dir_ + "_nothing", dir_ + "_out"); }), "no meta.json");
}

TEST_F(FSDPCheckpointOneProcess, StrictLoadOfAKeyNotSavedIsAKeyError) {
  fresh_.push_back(std::make_unique<Fabric>(fsdp_options(1)));
  auto module = make_model("gpt", 3);
  opts_.push_back(make_optimizer("adamw", module->parameters()));
  auto [model, fopt] = fresh_.back()->setup(module, *opts_.back());
  modules_.push_back(module);
  State st{{"model", model}, {"optimizer", fopt}, {"epoch", int64_t(0)}};
  EXPECT_CONTAINS(thrown<KeyError>([&] { fresh_.back()->load(dir_, st); }), "'epoch' is not in the checkpoint");
}

TEST_F(FSDPCheckpointOneProcess, BadKeyIsAValueErrorAndLeavesTheCheckpoint) {
  EXPECT_CONTAINS(thrown<ValueError>([&] { fab_.save(dir_, {{"a/b", int64_t(1)}, {"model", module_}}); }),
                  "not usable as a file name");
  load_into_fresh(dir_);
  EXPECT_EQ(max_rel_diff(loaded_->state_dict(), w3_), 0.0);
  for (const auto& e : fs::directory_iterator(fs::path(dir_).parent_path()))
    EXPECT_EQ(e.path().filename().string().find(fs::path(dir_).filename().string() + ".tmp-"), std::string::npos)
        << "left behind: " << e.path();
}

// Before the first step the optimizer has no state: its groups alone are saved and come back.
TEST_F(FSDPCheckpointOneProcess, SavesAnOptimizerWithoutStateYet) {
  Fabric f(fsdp_options(1));
  auto module = make_model("gpt", 5);
  auto opt = make_optimizer("adamw", module->parameters());
  auto [model, fopt] = f.setup(module, *opt);
  const std::string dir = dir_ + "_copy";
  f.save(dir, {{"model", model}, {"optimizer", fopt}});
  load_into_fresh(dir);
  EXPECT_EQ(opts_.back()->lr(0), 1e-2);
  EXPECT_EQ(max_rel_diff(loaded_->state_dict(), gathered(f, *module)), 0.0);
  const std::string full = dir_ + "_full";
  consolidate_checkpoint(dir, full);
  const SafetensorsFile opt_file = load_safetensors(full + "/optimizer.safetensors");
  EXPECT_TRUE(opt_file.tensors.count("param_groups.0.lr"));
  EXPECT_FALSE(opt_file.tensors.count("state.0.step"));
  fs::remove_all(full);
}

// A sharded 32-true checkpoint (no scaler state) into an FSDP 16-mixed run: the weights load, the
// scaler keeps its initial state, and a warning says so (the reference never fails here).
TEST_F(FSDPCheckpointOneProcess, SixteenMixedRunLoadsA32TrueCheckpointWithAWarning) {
  FabricOptions o = fsdp_options(1);
  o.precision = "16-mixed";
  Fabric f(o);
  auto module = make_model("gpt", 5);
  auto opt = make_optimizer("adamw", module->parameters());
  auto [model, fopt] = f.setup(module, *opt);
  f.load(dir_, {{"model", model}, {"optimizer", fopt}});
  EXPECT_EQ(max_rel_diff(gathered(f, *module), w3_), 0.0);
  ASSERT_FALSE(f.warnings().empty());
  EXPECT_CONTAINS(f.warnings().back(), "not restored");
}

// "dir/" names the directory dir: the temporary directory and the commit stay beside it.
TEST_F(FSDPCheckpointOneProcess, TrailingSeparatorNamesTheSameDirectory) {
  fab_.save(dir_ + "/", {{"model", module_}, {"optimizer", *opt_}, {"step", int64_t(4)}});
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << "left inside: " << e.path();
  EXPECT_FALSE(fs::exists(dir_ + "/.old"));
  EXPECT_TRUE(is_sharded_checkpoint(dir_ + "/"));
  load_into_fresh(dir_ + "/");
  EXPECT_EQ(max_rel_diff(loaded_->state_dict(), w3_), 0.0);
}

TEST_F(FSDPCheckpointOneProcess, ConsolidateRefusesToOverwriteItsInput) {
  EXPECT_CONTAINS(thrown<ValueError>([&] { consolidate_checkpoint(dir_, dir_ + "/"); }), "is the sharded checkpoint");
  EXPECT_TRUE(is_sharded_checkpoint(dir_));
}

}  // namespace
}  // namespace fabric
