// Fabric.save's filter, Fabric.load(path) without a state and Fabric.load_raw (fabric-api.md §2):
// what a filtered checkpoint holds on disk, the errors, loading a partial (LoRA) checkpoint, raw
// state-dict files, on one process and on 2 ranks (DDP, FSDP's sharded layout) over Gloo.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "nn/gpt.h"
#include "nn/linear.h"
#include "nn/lora.h"
#include "optim/optim.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/safetensors.h"
#include "tests/common/expect_error.h"
#include "tests/distributed/dist_test_util.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / (name + "_" + std::to_string(::getpid()))).string();
}

// Keys: proj.base_layer.{weight,bias} (6, 4), proj.lora_A.weight (2, 4), proj.lora_B.weight (6, 2),
// head.{weight,bias} (2, 6).
class LoraNet : public nn::Module {
 public:
  LoraNet() {
    register_module(
        "proj",
        std::make_shared<nn::LoRALinear>(
            std::make_shared<nn::Linear>(nn::LinearOptions{.in_features = 4, .out_features = 6}),
            nn::LoRALinearOptions{.in_features = 4, .out_features = 6, .rank = 2}));
    register_module<nn::Linear>("head", {.in_features = 6, .out_features = 2});
  }
  Tensor forward(const Tensor& x) override { return child("head")(child("proj")(x)); }
};

const std::set<std::string> kLoraNames = {"proj.lora_A.weight", "proj.lora_B.weight"};

bool is_lora(const std::string& name, const Tensor&) {
  return name.find("lora_") != std::string::npos;
}

// A LoraNet and its AdamW after one step (lora_B no longer zero, every parameter has state).
struct Trained {
  std::shared_ptr<LoraNet> net;
  std::unique_ptr<optim::AdamW> adamw;
};

Trained trained(Fabric& fab, uint64_t seed) {
  manual_seed(seed);
  Trained t{std::make_shared<LoraNet>(), nullptr};
  t.adamw = std::make_unique<optim::AdamW>(t.net->parameters(), optim::AdamWOptions{.lr = 1e-2});
  auto [model, opt] = fab.setup(t.net, *t.adamw);
  fab.backward(sum(model(ones({3, 4}))));
  opt.step();
  return t;
}

std::set<std::string> names_in(const std::string& file) {
  std::set<std::string> out;
  for (const auto& [k, t] : load_safetensors(file).tensors) out.insert(k);
  return out;
}

nlohmann::json entries_of(const std::string& dir) {
  std::ifstream in(dir + "/state.json");
  return nlohmann::json::parse(in)["entries"];
}

nn::StateDict copy_of(const nn::StateDict& sd) {
  nn::StateDict out;
  for (const auto& [k, t] : sd) out.insert(k, t.clone());
  return out;
}

// The names of `a` whose tensors equal those of `b` (same name, same values).
std::set<std::string> equal_names(const nn::StateDict& a, const nn::StateDict& b) {
  std::set<std::string> out;
  for (const auto& [k, t] : a)
    if (const Tensor* o = b.find(k);
        o && o->sizes() == t.sizes() && o->to_vector<float>() == t.to_vector<float>())
      out.insert(k);
  return out;
}

std::set<std::string> all_names_of(const nn::StateDict& sd) {
  std::set<std::string> out;
  for (const auto& [k, t] : sd) out.insert(k);
  return out;
}

std::set<std::string> all_names(const nn::Module& m) {
  std::set<std::string> out;
  for (const auto& [k, t] : m.state_dict()) out.insert(k);
  return out;
}

TEST(FabricSaveFilter, KeepsOnlyWhatThePredicateAcceptsOnDisk) {
  Fabric fab;
  Trained run = trained(fab, 0);
  std::set<std::string> adam_moments;  // param_groups.* and state.<i>.exp_avg
  auto moments = [](const std::string& n, const Tensor&) {
    return n.rfind("param_groups.", 0) == 0 ||
           (n.size() > 8 && n.compare(n.size() - 8, 8, ".exp_avg") == 0);
  };
  for (const auto& [n, t] : run.adamw->state_dict().flatten())
    if (moments(n, t)) adam_moments.insert(n);
  ASSERT_TRUE(adam_moments.count("state.0.exp_avg"));
  struct Case {
    const char* what;
    std::string key;
    SaveFilter filter;
    std::set<std::string> kept;  // empty: the entry is left out
  };
  const std::vector<Case> cases = {
      {"the LoRA weights of the model", "model", is_lora, kLoraNames},
      {"by value: tensors of more than 12 elements",
       "model",
       [](const std::string&, const Tensor& t) { return t.numel() > 12; },
       {"proj.base_layer.weight"}},
      {"the optimizer's groups and first moments", "optimizer", moments, adam_moments},
      {"nothing: the entry is left out",
       "model",
       [](const std::string&, const Tensor&) { return false; },
       {}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string dir = temp_path("fabric_filter");
    fab.save(dir, {{"model", run.net}, {"optimizer", *run.adamw}, {"step", 3}},
             {{c.key, c.filter}});
    const std::string other = c.key == "model" ? "optimizer" : "model";
    if (c.kept.empty()) {
      EXPECT_FALSE(fs::exists(dir + "/" + c.key + ".safetensors"));
      EXPECT_FALSE(entries_of(dir).contains(c.key));
    } else {
      EXPECT_EQ(names_in(dir + "/" + c.key + ".safetensors"), c.kept);
      EXPECT_EQ(entries_of(dir)[c.key]["kind"], c.key == "model" ? "module" : "optimizer");
    }
    // The other entries are written whole.
    const size_t whole =
        other == "model" ? run.net->state_dict().size() : run.adamw->state_dict().flatten().size();
    EXPECT_EQ(names_in(dir + "/" + other + ".safetensors").size(), whole);
    EXPECT_EQ(entries_of(dir)["step"]["value"], 3);
    fs::remove_all(dir);
  }
}

TEST(FabricSaveFilter, BadFiltersAreValueErrorsThatWriteNothing) {
  Fabric fab;
  Trained run = trained(fab, 0);
  struct Case {
    const char* what;
    SaveFilters filters;
    std::vector<std::string> message;
  };
  const std::vector<Case> cases = {
      {"a key not in the state",
       {{"lora", is_lora}},
       {"filter key 'lora' is not present in the state keys {model, optimizer, step}"}},
      {"an empty function",
       {{"model", SaveFilter()}},
       {"filter for key 'model' is an empty function"}},
      {"a plain value",
       {{"step", is_lora}},
       {"state['step'] is of kind int", "module or optimizer"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string dir = temp_path("fabric_filter_bad");
    const std::string msg = thrown<ValueError>([&] {
      fab.save(dir, {{"model", run.net}, {"optimizer", *run.adamw}, {"step", 3}}, c.filters);
    });
    for (const auto& part : c.message) EXPECT_CONTAINS(msg, part);
    EXPECT_FALSE(fs::exists(dir));
  }
}

TEST(FabricLoadWithoutState, ReturnsEveryEntryAndRestoresNothing) {
  const std::string dir = temp_path("fabric_load_all");
  Fabric fab({.precision = "16-mixed"});
  Trained run = trained(fab, 0);
  fab.save(dir, {{"model", run.net},
                 {"optimizer", *run.adamw},
                 {"step", 3},
                 {"lr", 0.5},
                 {"name", "run-a"},
                 {"extra", arange(0, 3, 1, DType::float32)}});
  Fabric reader;
  const Checkpoint all = reader.load(dir);
  std::set<std::string> keys;
  for (const auto& [k, e] : all) keys.insert(k);
  EXPECT_EQ(keys, (std::set<std::string>{"extra", "lr", "model", "name", "optimizer", "precision",
                                         "step"}));
  const CheckpointEntry& model = all.at("model");
  EXPECT_EQ(model.kind, "module");
  nn::StateDict saved;
  for (const auto& [k, t] : model.tensors) saved.insert(k, t);
  EXPECT_EQ(equal_names(run.net->state_dict(), saved), all_names(*run.net));
  const CheckpointEntry& opt = all.at("optimizer");
  EXPECT_EQ(opt.kind, "optimizer");
  EXPECT_EQ(opt.name, "AdamW");
  EXPECT_EQ(opt.tensors.size(), run.adamw->state_dict().flatten().size());
  const optim::OptimizerState state =
      optim::OptimizerState::unflatten({opt.tensors.begin(), opt.tensors.end()});
  EXPECT_EQ(state.state.size(), run.adamw->state_dict().state.size());
  EXPECT_EQ(state.param_groups.size(), 1u);
  EXPECT_EQ(all.at("step").value->get<int64_t>(), 3);
  EXPECT_EQ(all.at("lr").value->get<double>(), 0.5);
  EXPECT_EQ(all.at("name").value->get<std::string>(), "run-a");
  EXPECT_EQ(all.at("extra").value->get<Tensor>().to_vector<float>(), std::vector<float>({0, 1, 2}));
  const CheckpointEntry& precision = all.at("precision");
  EXPECT_EQ(precision.kind, "precision");
  EXPECT_EQ(precision.name, "16-mixed");
  EXPECT_TRUE(precision.precision_state.count("scale"));
  EXPECT_TRUE(reader.warnings().empty());  // nothing restored: no precision state to reconcile
  EXPECT_CONTAINS(thrown<IOError>([&] { reader.load(dir + "-absent"); }), "no state.json");
  fs::remove_all(dir);
}

TEST(FabricLoadWithoutState, FsdpAndDeepSpeedNeedAState) {
  for (const std::string strategy : {"fsdp", "deepspeed"}) {
    SCOPED_TRACE(strategy);
    Fabric fab({.accelerator = "cpu", .strategy = strategy, .devices = 1});
    const std::string msg = thrown<ValueError>([&] { fab.load(temp_path("fabric_no_state")); });
    EXPECT_CONTAINS(
        msg, "strategy '" + strategy + "' needs a state with at least a model instance to reload");
  }
}

// The reference's LoRA use case: a checkpoint of the adapters only resumes a model whose base
// weights come from elsewhere.
TEST(FabricFilteredCheckpoint, StrictLoadNamesTheMissingKeysNonStrictRestoresWhatIsThere) {
  const std::string dir = temp_path("fabric_lora_ckpt");
  Fabric fab;
  Trained run = trained(fab, 0);
  fab.save(dir, {{"model", run.net}, {"step", 1}}, {{"model", is_lora}});

  Fabric fab2;
  Trained fresh = trained(fab2, 1);
  const nn::StateDict before = copy_of(fresh.net->state_dict());
  State state{{"model", fresh.net}, {"step", 0}};
  const std::string msg = thrown<ValueError>([&] { fab2.load(dir, state); });
  EXPECT_CONTAINS(msg, "Missing key(s) in state_dict");
  EXPECT_CONTAINS(msg, "\"proj.base_layer.weight\"");
  EXPECT_EQ(equal_names(fresh.net->state_dict(), before), all_names(*fresh.net))
      << "a failed load changed the model";

  fab2.load(dir, state, /*strict=*/false);
  EXPECT_EQ(state.at("step").get<int64_t>(), 1);
  EXPECT_EQ(equal_names(fresh.net->state_dict(), run.net->state_dict()), kLoraNames);
  std::set<std::string> base = all_names(*fresh.net);
  for (const auto& n : kLoraNames) base.erase(n);
  EXPECT_EQ(equal_names(fresh.net->state_dict(), before), base);
  fs::remove_all(dir);
}

// A state-dict file as torch writes it (safetensors' save_file(model.state_dict())): the module's
// keys, no Fabric metadata.
void write_torch_style(const std::string& file, const nn::StateDict& sd,
                       const std::vector<std::string>& drop, const std::vector<std::string>& add) {
  std::vector<std::pair<std::string, Tensor>> items;
  for (const auto& [k, t] : sd)
    if (std::find(drop.begin(), drop.end(), k) == drop.end()) items.emplace_back(k, t.clone());
  for (const auto& k : add) items.emplace_back(k, ones({2}));
  save_safetensors(file, items);
}

TEST(FabricLoadRaw, ModuleFromATorchStyleStateDictFile) {
  const std::string file = temp_path("fabric_raw") + ".safetensors";
  Fabric fab;
  Trained source = trained(fab, 0);
  std::set<std::string> without_head_bias = all_names(*source.net);
  without_head_bias.erase("head.bias");
  struct Case {
    const char* what;
    std::vector<std::string> drop, add;
    bool strict;
    std::string error;               // empty: loads
    std::set<std::string> restored;  // the keys that take the file's values
  };
  const std::vector<Case> cases = {
      {"the same keys", {}, {}, true, "", all_names(*source.net)},
      {"a missing key, strict",
       {"head.bias"},
       {},
       true,
       "Missing key(s) in state_dict (1): \"head.bias\"",
       {}},
      {"an unexpected key, strict",
       {},
       {"extra.weight"},
       true,
       "Unexpected key(s) in state_dict (1): \"extra.weight\"",
       {}},
      {"both, not strict: the intersection",
       {"head.bias"},
       {"extra.weight"},
       false,
       "",
       without_head_bias},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    write_torch_style(file, source.net->state_dict(), c.drop, c.add);
    Fabric target_fab;
    Trained target = trained(target_fab, 1);
    const nn::StateDict before = copy_of(target.net->state_dict());
    if (c.error.empty()) {
      target_fab.load_raw(file, target.net, c.strict);
    } else {
      EXPECT_CONTAINS(thrown<ValueError>([&] { target_fab.load_raw(file, target.net, c.strict); }),
                      c.error);
    }
    EXPECT_EQ(equal_names(target.net->state_dict(), source.net->state_dict()), c.restored);
    for (const auto& n : all_names(*target.net))
      if (!c.restored.count(n))
        EXPECT_TRUE(equal_names(target.net->state_dict(), before).count(n)) << n;
  }
  fs::remove(file);
}

TEST(FabricLoadRaw, OptimizerFromACheckpointsOptimizerFileAndTheErrors) {
  const std::string dir = temp_path("fabric_raw_opt");
  Fabric fab;
  Trained source = trained(fab, 0);
  fab.save(dir, {{"model", source.net}, {"optimizer", *source.adamw}});
  Fabric fab2;
  Trained target = trained(fab2, 1);
  fab2.load_raw(dir + "/optimizer.safetensors", *target.adamw);
  const std::vector<Tensor> src = source.net->parameters(), dst = target.net->parameters();
  for (size_t i = 0; i < src.size(); ++i)
    EXPECT_EQ(target.adamw->state(dst[i])->at("exp_avg").to_vector<float>(),
              source.adamw->state(src[i])->at("exp_avg").to_vector<float>())
        << i;
  fab2.load_raw(dir + "/model.safetensors",
                target.net);  // a checkpoint's module file is a raw state dict
  EXPECT_EQ(equal_names(target.net->state_dict(), source.net->state_dict()),
            all_names(*target.net));

  optim::SGD sgd(target.net->parameters(), {.lr = 0.1});
  EXPECT_CONTAINS(thrown<ValueError>([&] { fab2.load_raw(dir + "/optimizer.safetensors", sgd); }),
                  "holds the state of a AdamW optimizer, but the optimizer passed is a SGD");
  EXPECT_CONTAINS(thrown<IOError>([&] { fab2.load_raw(dir, target.net); }), "is a directory");
  EXPECT_CONTAINS(thrown<IOError>([&] { fab2.load_raw(dir + "/absent.safetensors", target.net); }),
                  "no such state-dict file");
  EXPECT_CONTAINS(thrown<ValueError>([&] { fab2.load_raw(dir + "/model.safetensors", 3); }),
                  "loads into a module or an optimizer, not a int");
  fs::remove_all(dir);
}

TEST(FabricLoad, AnotherOptimizerTypesStateIsRefusedBeforeAnythingIsRestored) {
  const std::string dir = temp_path("fabric_load_opt_type");
  Fabric fab;
  Trained source = trained(fab, 0);
  fab.save(dir, {{"model", source.net}, {"optimizer", *source.adamw}});
  Fabric fab2;
  Trained target = trained(fab2, 1);
  const nn::StateDict before = target.net->state_dict();
  optim::SGD sgd(target.net->parameters(), {.lr = 0.1, .momentum = 0.9});
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    fab2.load(dir, {{"model", target.net}, {"optimizer", sgd}});
                  }),
                  "'optimizer' holds the state of a AdamW optimizer in " + dir +
                      ", but the optimizer passed is a SGD");
  EXPECT_EQ(equal_names(target.net->state_dict(), before), all_names(*target.net));
  fab2.load(dir, {{"model", target.net}, {"optimizer", *target.adamw}});  // the right type loads
  EXPECT_EQ(equal_names(target.net->state_dict(), source.net->state_dict()),
            all_names(*target.net));
  fs::remove_all(dir);
}

// ---- 2 ranks over Gloo (the launcher re-runs this test in a second process)
// ----------------------

FabricOptions two_ranks(const std::string& strategy,
                        const std::string& state_dict_type = "sharded") {
  FabricOptions o{.accelerator = "cpu",
                  .strategy = strategy,
                  .devices = 2,
                  .timeout = 120s,
                  .launch_argv = dist_test::self_argv()};
  o.fsdp.state_dict_type = state_dict_type;
  return o;
}

std::string shared_dir(Fabric& f, const std::string& name) {
  return ::testing::TempDir() + "/" + name + "_" + f.broadcast(std::to_string(::getpid()));
}

// Every rank loads a file rank 0 wrote into its DDP model: the weights on both ranks are the
// file's.
TEST(FabricLoadRaw, UnderDdpEveryRankLoadsTheFile) {
  Fabric fab(two_ranks("ddp"));
  fab.launch([&](Fabric& f) {
    const std::string file = shared_dir(f, "fabric_raw_ddp") + ".safetensors";
    manual_seed(0);
    const auto source = std::make_shared<LoraNet>();
    if (f.global_rank() == 0) write_torch_style(file, source->state_dict(), {}, {});
    f.barrier("written");
    Trained target = trained(f, 1);
    f.load_raw(file, target.net);
    EXPECT_EQ(equal_names(target.net->state_dict(), source->state_dict()), all_names(*source))
        << "rank " << f.global_rank();
    f.barrier("loaded");
    if (f.global_rank() == 0) fs::remove(file);
  });
}

nn::StateDict gathered(Fabric& f, nn::Module& m) {
  return copy_of(f.strategy_object().module_state_to_save(m));
}

// On 2 ranks of `strategy`, a LoRA filter writes only the adapters (gathered where sharded), with
// the trained values; the unfiltered optimizer is written whole. One process reads it back.
void expect_lora_filter_on_two_ranks(const std::string& strategy,
                                     const std::string& state_dict_type) {
  Fabric fab(two_ranks(strategy, state_dict_type));
  struct Saved {
    std::string dir;
    nn::StateDict w;
    size_t optimizer_tensors = 0;
  };
  const Saved saved = fab.launch([&](Fabric& f) {
    Saved out{shared_dir(f, "fabric_filter_" + strategy), {}, 0};
    Trained run = trained(f, 0);
    out.w = gathered(f, *run.net);
    out.optimizer_tensors =
        f.strategy_object().optimizer_state_to_save(*run.adamw).flatten().size();
    f.save(out.dir, {{"model", run.net}, {"optimizer", *run.adamw}}, {{"model", is_lora}});
    return out;
  });
  if (fab.global_rank() != 0) return;
  Fabric single;
  const Checkpoint all = single.load(saved.dir);
  nn::StateDict model;
  for (const auto& [k, t] : all.at("model").tensors) model.insert(k, t);
  EXPECT_EQ(all_names_of(model), kLoraNames);
  EXPECT_EQ(equal_names(model, saved.w), kLoraNames);
  EXPECT_EQ(all.at("optimizer").tensors.size(), saved.optimizer_tensors);
  fs::remove_all(saved.dir);
}

TEST(FabricSaveFilter, UnderDdp) { expect_lora_filter_on_two_ranks("ddp", "sharded"); }
TEST(FabricSaveFilter, UnderFsdpFullLayout) { expect_lora_filter_on_two_ranks("fsdp", "full"); }
TEST(FabricSaveFilter, UnderDeepSpeedZero2) {
  expect_lora_filter_on_two_ranks("deepspeed_stage_2", "sharded");
}
TEST(FabricSaveFilter, UnderDeepSpeedZero3) {
  expect_lora_filter_on_two_ranks("deepspeed_stage_3", "sharded");
}

// FSDP (sharded layout): a LoRA filter writes only the adapters' pieces; a filter that decides
// differently on the ranks is refused; the partial checkpoint loads non-strict only; load_raw puts
// a full state-dict file into the shards; an optimizer alone and load without state are refused.
TEST(FabricCheckpointFilter, UnderFsdpShardedLayout) {
  Fabric fab(two_ranks("fsdp"));
  const std::string dir = fab.launch([&](Fabric& f) {
    const std::string dir = shared_dir(f, "fabric_fsdp_filter");
    Trained run = trained(f, 0);
    const nn::StateDict w = gathered(f, *run.net);
    f.save(dir, {{"model", run.net}, {"optimizer", *run.adamw}, {"step", 1}},
           {{"model", is_lora}, {"optimizer", [](const std::string& n, const Tensor&) {
                                   return n.find(".0.") != n.npos;
                                 }}});
    const int rank = int(f.global_rank());
    EXPECT_CONTAINS(
        thrown<ValueError>([&] {
          f.save(dir + "-uneven", {{"model", run.net}},
                 {{"model", [rank](const std::string&, const Tensor&) { return rank == 0; }}});
        }),
        "must decide alike on every rank");
    EXPECT_FALSE(fs::exists(dir + "-uneven"));

    Trained fresh = trained(f, 1);
    const nn::StateDict before = gathered(f, *fresh.net);
    State state{{"model", fresh.net}, {"step", 0}};
    EXPECT_CONTAINS(thrown<ValueError>([&] { f.load(dir, state); }),
                    "missing keys: proj.base_layer.weight");
    f.load(dir, state, /*strict=*/false);
    const nn::StateDict after = gathered(f, *fresh.net);
    EXPECT_EQ(equal_names(after, w), kLoraNames) << "rank " << rank;
    EXPECT_EQ(equal_names(after, before).size(), all_names(*fresh.net).size() - kLoraNames.size());

    const std::string file = dir + "-raw.safetensors";
    if (rank == 0) write_torch_style(file, w, {}, {});
    f.barrier("written");
    f.load_raw(file, fresh.net);
    EXPECT_EQ(equal_names(gathered(f, *fresh.net), w), all_names(*fresh.net)) << "rank " << rank;
    EXPECT_CONTAINS(thrown<NotImplementedError>([&] { f.load_raw(file, *fresh.adamw); }),
                    "not supported yet with the FSDP strategy");
    EXPECT_CONTAINS(thrown<ValueError>([&] { f.load(dir); }), "needs a state");
    f.barrier("done");
    if (rank == 0) fs::remove(file);
    return dir;
  });
  if (fab.global_rank() != 0) return;
  // One process reads the sharded checkpoint whole: only the adapters and parameter 0's state.
  Fabric single;
  const Checkpoint all = single.load(dir);
  std::set<std::string> model_names, opt_names;
  for (const auto& [k, t] : all.at("model").tensors) model_names.insert(k);
  for (const auto& [k, t] : all.at("optimizer").tensors)
    if (k.rfind("state.", 0) == 0) opt_names.insert(k);
  EXPECT_EQ(model_names, kLoraNames);
  EXPECT_EQ(opt_names,
            (std::set<std::string>{"state.0.exp_avg", "state.0.exp_avg_sq", "state.0.step"}));
  EXPECT_EQ(all.at("step").value->get<int64_t>(), 1);
  fs::remove_all(dir);
}

// An optimizer's param groups are kept whatever its filter says (the sharded layout keeps them
// too): a checkpoint without them would load into no optimizer.
TEST(FabricSaveFilter, OptimizerParamGroupsAreAlwaysKept) {
  Fabric fab;
  Trained t = trained(fab, 5);
  const std::string dir = temp_path("filter_groups");
  fs::remove_all(dir);
  fab.save(dir, {{"model", t.net}, {"optimizer", *t.adamw}},
           {{"optimizer",
             [](const std::string& name, const Tensor&) { return name.starts_with("state."); }}});
  bool has_groups = false;
  for (const std::string& n : names_in(dir + "/optimizer.safetensors"))
    has_groups = has_groups || n.starts_with("param_groups.");
  EXPECT_TRUE(has_groups);
  Trained again = trained(fab, 6);
  fab.load(dir, {{"model", again.net}, {"optimizer", *again.adamw}});
  EXPECT_EQ(again.adamw->state_dict().flatten().size(), t.adamw->state_dict().flatten().size());
  fs::remove_all(dir);
}

// A raw pointer to a module or optimizer is saved as that object (it converted to bool `true`).
TEST(FabricSaveFilter, RawPointersAreTheObjects) {
  Fabric fab;
  Trained t = trained(fab, 7);
  const std::string dir = temp_path("filter_pointers");
  fs::remove_all(dir);
  nn::Module* raw = t.net.get();
  fab.save(dir, {{"model", raw}, {"optimizer", t.adamw.get()}});
  EXPECT_EQ(entries_of(dir)["model"]["kind"], "module");
  EXPECT_EQ(entries_of(dir)["optimizer"]["kind"], "optimizer");
  EXPECT_THROW((StateEntry(static_cast<nn::Module*>(nullptr))), ValueError);
  fs::remove_all(dir);
}

// The remainder is flat: an unrequested module comes back as "<key>.<name>" tensors, so a plain
// entry of such a name would be lost; that is an error naming the key, and requesting the module
// separates them.
TEST(FabricLoadWithoutState, RemainderKeysThatCollideAreAnError) {
  Fabric fab;
  Trained t = trained(fab, 8);
  const std::string dir = temp_path("remainder_collision");
  fs::remove_all(dir);
  fab.save(dir, {{"model", t.net}, {"model.head.bias", 5}});
  State none;
  EXPECT_CONTAINS(thrown<ValueError>([&] { fab.load(dir, none); }), "'model.head.bias'");
  Trained again = trained(fab, 9);
  State with_model{{"model", again.net}};
  const State rest = fab.load(dir, with_model);
  EXPECT_EQ(rest.at("model.head.bias").get<int64_t>(), 5);
  fs::remove_all(dir);
}

// FSDP's sharded layout stores a tied tensor under one of its names (GPT's lm_head.weight is
// transformer.wte.weight): a filter keeping the other name keeps it, as the full layout does.
TEST(FabricSaveFilter, ShardedLayoutKeepsATiedTensorByAnyOfItsNames) {
  const std::string dir = temp_path("filter_tied");
  fs::remove_all(dir);
  const nn::GPTConfig cfg{
      .vocab_size = 11, .block_size = 4, .n_layer = 1, .n_head = 1, .n_embd = 4};
  Fabric fab({.accelerator = "cpu", .strategy = "fsdp", .devices = 1});
  manual_seed(3);
  auto saved = std::make_shared<nn::GPT>(cfg);
  const std::vector<float> want = saved->get_parameter("lm_head.weight").to_vector<float>();
  auto model = fab.setup_module(saved);
  fab.save(
      dir, {{"model", model}},
      {{"model", [](const std::string& name, const Tensor&) { return name == "lm_head.weight"; }}});
  manual_seed(4);
  auto fresh = std::make_shared<nn::GPT>(cfg);
  auto loaded = fab.setup_module(fresh);
  fab.load(dir, {{"model", loaded}}, /*strict=*/false);
  EXPECT_EQ(fresh->get_parameter("lm_head.weight").to_vector<float>(), want);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace fabric
