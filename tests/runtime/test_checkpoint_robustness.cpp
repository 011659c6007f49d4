// Checkpoints on values JSON cannot hold and on damaged files: non-finite floats round-trip (full
// and sharded layouts, plain entries and precision state), a string that is not UTF-8 is refused
// before anything is written, and a malformed state.json / meta.json is an IOError naming the
// checkpoint, never a JSON library error.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "autograd/grad_mode.h"
#include "nn/mlp.h"
#include "optim/optim.h"
#include "runtime/fabric.h"
#include "runtime/run_directory.h"
#include "runtime/sharded_checkpoint.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/write_target.h"
#include "tests/common/capture_warnings.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A plugin whose state is whatever the test puts there (a loss scaler that overflowed to inf).
class StatePlugin : public precision::Precision {
 public:
  explicit StatePlugin(precision::PrecisionState s = {}) : state_(std::move(s)) {}
  std::string name() const override { return "state-plugin"; }
  precision::PrecisionState state_dict() const override { return state_; }
  void load_state_dict(const precision::PrecisionState& s) override { state_ = s; }
  precision::PrecisionState state_;
};

precision::PrecisionState non_finite_state() {
  return {{"scale", kInf},
          {"floor", -kInf},
          {"last", kNaN},
          {"text", std::string("inf")},
          {"n", int64_t(3)}};
}

// The saved plugin state, back in a plugin whose state has the same keys (so it loads as saved).
void expect_non_finite_state(const precision::PrecisionState& s) {
  ASSERT_EQ(s.size(), 5u);
  EXPECT_EQ(std::get<double>(s.at("scale")), kInf);
  EXPECT_EQ(std::get<double>(s.at("floor")), -kInf);
  EXPECT_TRUE(std::isnan(std::get<double>(s.at("last"))));
  EXPECT_EQ(std::get<std::string>(s.at("text")), "inf");  // a string stays a string
  EXPECT_EQ(std::get<int64_t>(s.at("n")), 3);
}

precision::PrecisionState zeroed_state() {
  return {
      {"scale", 0.0}, {"floor", 0.0}, {"last", 0.0}, {"text", std::string()}, {"n", int64_t(0)}};
}

json read_json(const std::string& file) {
  std::ifstream in(file);
  return json::parse(in);
}

class CheckpointRobustness : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() /
            ("fabric_ckpt_robust_" + std::to_string(::getpid()) + "_" +
             testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(dir_);
  }
  void TearDown() override {
    fs::remove_all(dir_);
    fs::remove_all(dir_ + "_copy");
  }
  // The names next to dir_ that start with its name (the checkpoint and any leftovers).
  std::vector<std::string> siblings() const {
    std::vector<std::string> out;
    const std::string stem = fs::path(dir_).filename().string();
    for (const auto& e : fs::directory_iterator(fs::path(dir_).parent_path()))
      if (e.path().filename().string().rfind(stem, 0) == 0)
        out.push_back(e.path().filename().string());
    return out;
  }
  // A copy of the checkpoint whose `file` (state.json, meta.json) `edit` changed.
  std::string edited(const std::string& file, const std::function<void(json&)>& edit) {
    const std::string copy = dir_ + "_copy";
    fs::remove_all(copy);
    fs::copy(dir_, copy, fs::copy_options::recursive);
    json meta = read_json(copy + "/" + file);
    edit(meta);
    std::ofstream(copy + "/" + file) << meta.dump();
    return copy;
  }
  std::string dir_;
};

// ---- 1. non-finite floats
// ---------------------------------------------------------------------------

TEST_F(CheckpointRobustness, NonFiniteFloatsRoundTripInPlainEntriesAndPrecisionState) {
  Fabric fab({.plugins = {std::make_shared<StatePlugin>(non_finite_state())}});
  fab.save(dir_,
           {{"inf", kInf}, {"neg", -kInf}, {"nan", kNaN}, {"finite", 0.1}, {"rest_inf", -kInf}});
  // JSON has no inf/nan: a tagged object (finite values stay plain numbers).
  const json entries = read_json(dir_ + "/state.json")["entries"];
  EXPECT_EQ(entries["inf"]["value"], json({{"float", "inf"}}));
  EXPECT_EQ(entries["neg"]["value"], json({{"float", "-inf"}}));
  EXPECT_EQ(entries["nan"]["value"], json({{"float", "nan"}}));
  EXPECT_EQ(entries["finite"]["value"], json(0.1));
  EXPECT_EQ(entries["precision"]["state"]["scale"], json({{"float", "inf"}}));

  auto plugin = std::make_shared<StatePlugin>(zeroed_state());
  Fabric fab2({.plugins = {plugin}});
  State state{{"inf", 0.0}, {"neg", 0.0}, {"nan", 0.0}, {"finite", 0.0}};
  const State rest = fab2.load(dir_, state);
  EXPECT_EQ(state.at("inf").get<double>(), kInf);
  EXPECT_EQ(state.at("neg").get<double>(), -kInf);
  EXPECT_TRUE(std::isnan(state.at("nan").get<double>()));
  EXPECT_EQ(state.at("finite").get<double>(), 0.1);
  ASSERT_TRUE(rest.count("rest_inf"));  // an entry not asked for comes back as a float too
  EXPECT_EQ(rest.at("rest_inf").get<double>(), -kInf);
  expect_non_finite_state(plugin->state_);
}

// Checkpoints from before the encoding hold finite numbers only: they read as they did.
TEST_F(CheckpointRobustness, EarlierCheckpointsWithFiniteNumbersStillLoad) {
  fs::create_directories(dir_);
  std::ofstream(dir_ + "/state.json")
      << R"({"format": "fabric-checkpoint", "version": 1, "entries": {
    "lr": {"kind": "float", "value": 0.25}, "whole": {"kind": "float", "value": 2}, "step": {"kind": "int", "value": 7},
    "precision": {"kind": "precision", "name": "state-plugin", "state": {"scale": 65536.0, "floor": 1.0,
                  "last": 0.5, "text": "x", "n": 1}}}})";
  auto plugin = std::make_shared<StatePlugin>(zeroed_state());
  Fabric fab({.plugins = {plugin}});
  State state{{"lr", 0.0}, {"whole", 0.0}, {"step", int64_t(0)}};
  fab.load(dir_, state);
  EXPECT_EQ(state.at("lr").get<double>(), 0.25);
  EXPECT_EQ(state.at("whole").get<double>(), 2.0);
  EXPECT_EQ(state.at("step").get<int64_t>(), 7);
  EXPECT_EQ(std::get<double>(plugin->state_.at("scale")), 65536.0);
}

FabricOptions fsdp_one_process() {
  FabricOptions o{.accelerator = "cpu", .strategy = "fsdp", .devices = 1};
  o.fsdp.state_dict_type = "sharded";
  return o;
}

TEST_F(CheckpointRobustness, NonFiniteFloatsRoundTripInAShardedCheckpoint) {
  Fabric fab(fsdp_one_process());
  auto mlp = nn::make<nn::MLP>({.sizes = {4, 8, 2}});
  optim::AdamW adamw(mlp->parameters(), {.lr = 1e-2});
  auto [model, opt] = fab.setup(mlp, adamw);
  StatePlugin saved(non_finite_state());
  fab.save(dir_,
           {{"model", model}, {"optimizer", opt}, {"inf", kInf}, {"nan", kNaN}, {"scaler", saved}});
  ASSERT_TRUE(is_sharded_checkpoint(dir_));

  StatePlugin loaded(zeroed_state());
  State state{{"model", model}, {"optimizer", opt}, {"inf", 0.0}, {"nan", 0.0}, {"scaler", loaded}};
  fab.load(dir_, state);
  EXPECT_EQ(state.at("inf").get<double>(), kInf);
  EXPECT_TRUE(std::isnan(state.at("nan").get<double>()));
  expect_non_finite_state(loaded.state_);

  // Consolidated into the full layout, the values come through as well.
  consolidate_checkpoint(dir_, dir_ + "_copy");
  Fabric one;
  StatePlugin consolidated(zeroed_state());
  State full{{"inf", 0.0}, {"nan", 0.0}, {"scaler", consolidated}};
  one.load(dir_ + "_copy", full);
  EXPECT_EQ(full.at("inf").get<double>(), kInf);
  EXPECT_TRUE(std::isnan(full.at("nan").get<double>()));
  expect_non_finite_state(consolidated.state_);
}

// ---- 2. strings that are not UTF-8
// ---------------------------------------------------------------

TEST_F(CheckpointRobustness, StringThatIsNotUtf8IsAValueErrorAndWritesNothing) {
  Fabric fab;
  fab.save(dir_, {{"step", int64_t(5)}, {"name", "run-a"}});
  const std::vector<std::string> before = siblings();
  const std::string bad = std::string("run-\xff\xfe");

  const std::string value_msg = thrown<ValueError>([&] {
    fab.save(dir_, {{"step", int64_t(6)}, {"name", bad}});
  });
  EXPECT_CONTAINS(value_msg, "state['name']");
  EXPECT_CONTAINS(value_msg, "is not valid UTF-8");
  const std::string key_msg = thrown<ValueError>([&] {
    fab.save(dir_, {{"step", int64_t(6)}, {"k\xff", 1}});
  });
  EXPECT_CONTAINS(key_msg, "state key 'k\\xff'");
  EXPECT_CONTAINS(key_msg, "is not valid UTF-8");
  // A NUL ends the name the file system sees: "m\0a" and "m\0b" would both be m.safetensors.
  const std::string nul_msg = thrown<ValueError>([&] {
    fab.save(dir_, {{std::string("m\0a", 3), int64_t(1)}, {std::string("m\0b", 3), int64_t(2)}});
  });
  EXPECT_CONTAINS(nul_msg, "is not usable as a file name");
  StatePlugin plugin({{"note", bad}});
  const std::string plugin_msg = thrown<ValueError>([&] { fab.save(dir_, {{"scaler", plugin}}); });
  EXPECT_CONTAINS(plugin_msg, "state['scaler']");
  EXPECT_CONTAINS(plugin_msg, "'note'");
  EXPECT_CONTAINS(plugin_msg, "is not valid UTF-8");

  // Nothing written: no temporary directory left, the previous checkpoint as it was.
  EXPECT_EQ(siblings(), before);
  State state{{"step", int64_t(0)}, {"name", std::string()}};
  fab.load(dir_, state);
  EXPECT_EQ(state.at("step").get<int64_t>(), 5);
  EXPECT_EQ(state.at("name").get<std::string>(), "run-a");
}

TEST_F(CheckpointRobustness, StringThatIsNotUtf8IsAValueErrorInAShardedSaveToo) {
  Fabric fab(fsdp_one_process());
  auto mlp = nn::make<nn::MLP>({.sizes = {4, 8, 2}});
  optim::AdamW adamw(mlp->parameters(), {.lr = 1e-2});
  auto [model, opt] = fab.setup(mlp, adamw);
  fab.save(dir_, {{"model", model}, {"name", "run-a"}});
  const std::vector<std::string> before = siblings();
  const std::string msg = thrown<ValueError>([&] {
    fab.save(dir_, {{"model", model}, {"name", std::string("\xc3\x28")}});
  });
  EXPECT_CONTAINS(msg, "state['name'] is not valid UTF-8");
  EXPECT_EQ(siblings(), before);
  State state{{"model", model}, {"name", std::string()}};
  fab.load(dir_, state);
  EXPECT_EQ(state.at("name").get<std::string>(), "run-a");
}

// ---- 3. malformed descriptions
// -------------------------------------------------------------------

TEST_F(CheckpointRobustness, MalformedStateJsonIsAnIOErrorNamingTheCheckpoint) {
  Fabric fab;
  fab.save(dir_, {{"step", int64_t(3)}, {"lr", 0.5}, {"name", "a"}, {"t", ones({2})}});
  struct Case {
    const char* what;
    std::function<void(json&)> edit;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"top-level array",
       [](json& m) {
         m = json::array({1, 2});
       },
       "not a fabric checkpoint description"},
      {"format not a string", [](json& m) { m["format"] = 1; },
       "not a fabric checkpoint description"},
      {"entry not an object", [](json& m) { m["entries"]["step"] = 5; },
       "entry 'step' is not an object"},
      {"remainder entry not an object", [](json& m) { m["entries"]["name"] = json::array(); },
       "entry 'name' is not an object"},
      {"value of the wrong type", [](json& m) { m["entries"]["step"]["value"] = "abc"; },
       "entry 'step' (kind int) holds \"abc\", which is not an int"},
      {"float value of the wrong type",
       [](json& m) { m["entries"]["lr"]["value"] = json::array(); },
       "entry 'lr' holds [], which is not a number, flag or string"},
      {"remainder value of the wrong type", [](json& m) { m["entries"]["name"]["value"] = 2; },
       "entry 'name' (kind string) holds 2, which is not a string"},
      {"missing value", [](json& m) { m["entries"]["step"].erase("value"); },
       "entry 'step' (kind int) has no \"value\""},
      {"kind not a string", [](json& m) { m["entries"]["step"]["kind"] = 3; },
       "entry 'step' has no \"kind\" string"},
      {"unknown kind", [](json& m) { m["entries"]["name"]["kind"] = "blob"; },
       "unknown kind 'blob'"},
      {"bad non-finite tag",
       [](json& m) {
         m["entries"]["lr"]["value"] = {{"float", "huge"}};
       },
       "{\"float\": \"inf\"}"},
      {"tensor missing from tensors.safetensors",
       [](json& m) {
         m["entries"]["ghost"] = {{"kind", "tensor"}};
       },
       "tensors.safetensors lacks 'ghost'"},
      {"precision state not an object",
       [](json& m) {
         m["entries"]["precision"] = {{"kind", "precision"}, {"name", 1}, {"state", 2}};
       },
       "\"state\" is not an object"},
  };
  for (const Case& c : cases) {
    const std::string copy = edited("state.json", c.edit);
    // step and lr into the caller's state; name, t and anything else into the remainder.
    Fabric loader({.plugins = {std::make_shared<StatePlugin>()}});
    State state{{"step", int64_t(0)}, {"lr", 0.0}};
    const std::string msg = thrown<IOError>([&] { loader.load(copy, state); });
    EXPECT_CONTAINS(msg, "checkpoint " + copy + ": ") << c.what;
    EXPECT_CONTAINS(msg, c.message) << c.what;
  }
}

// The precision state is restored before the model and optimizer: a scaler state its plugin
// refuses (a negative scale, hand-edited) leaves the model's weights as they were.
TEST_F(CheckpointRobustness, ARefusedScalerStateLeavesTheModelUntouched) {
  Fabric fab({.precision = "16-mixed"});
  auto mlp = nn::make<nn::MLP>({.sizes = {4, 8, 2}});
  optim::SGD sgd(mlp->parameters(), {.lr = 0.1});
  auto [model, opt] = fab.setup(mlp, sgd);
  fab.save(dir_, {{"model", model}, {"optimizer", opt}});
  const std::string bad = edited("state.json", [](json& m) { m["entries"]["precision"]["state"]["scale"] = -1.0; });
  {
    NoGradGuard no_grad;
    for (Tensor& p : mlp->parameters()) p.fill_(3.0);
  }
  State state{{"model", model}, {"optimizer", opt}};
  EXPECT_CONTAINS(thrown<ValueError>([&] { fab.load(bad, state); }), "scale");
  for (const Tensor& p : mlp->parameters())
    EXPECT_EQ(max(p.to(DType::float64)).item<double>(), 3.0) << "the failed load changed the weights";
  fab.load(dir_, state);  // the good checkpoint loads
  EXPECT_NE(max(mlp->parameters()[0].to(DType::float64)).item<double>(), 3.0);
}

// A kind that does not match (a string asked for an int) is found before anything is restored:
// the model listed before it keeps its weights.
TEST_F(CheckpointRobustness, AKindMismatchLeavesTheModelUntouched) {
  Fabric fab;
  auto mlp = nn::make<nn::MLP>({.sizes = {4, 8, 2}});
  auto model = fab.setup_module(mlp);
  fab.save(dir_, {{"a", model}, {"z", int64_t(1)}});
  {
    NoGradGuard no_grad;
    for (Tensor& p : mlp->parameters()) p.fill_(3.0);
  }
  State state{{"a", model}, {"z", std::string("x")}};
  EXPECT_CONTAINS(thrown<ValueError>([&] { fab.load(dir_, state); }), "'z' is a int");
  for (const Tensor& p : mlp->parameters())
    EXPECT_EQ(max(p.to(DType::float64)).item<double>(), 3.0)
        << "the failed load changed the weights";
}

// Saving replaces what is at the path whole: an earlier checkpoint or an empty folder, never a
// folder of the user's own files (they were deleted) nor a file.
TEST_F(CheckpointRobustness, SaveReplacesOnlyAnEarlierCheckpointOrAnEmptyFolder) {
  Fabric fab;
  const fs::path project = dir_ + "_project";
  fs::create_directories(project / "run");
  std::ofstream(project / "train.py") << "code";
  EXPECT_CONTAINS(thrown<IOError>([&] {
                    fab.save(project.string(), {{"step", 1}});
                  }),
                  "holds something other than a checkpoint");
  EXPECT_TRUE(fs::exists(project / "train.py") && fs::exists(project / "run"));
  EXPECT_CONTAINS(thrown<IOError>([&] {
                    fab.save((project / "train.py").string(), {{"step", 1}});
                  }),
                  "exists and is not a directory");
  for (const auto& e : fs::directory_iterator(project))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
  // A folder that merely holds files named as a checkpoint's (a dataset's meta.json, another
  // tool's state.json) is the user's too.
  const fs::path data = project / "dataset";
  fs::create_directories(data / "images");
  std::ofstream(data / "meta.json") << R"({"classes": 10})";
  std::ofstream(data / "state.json") << "not json";
  EXPECT_CONTAINS(thrown<IOError>([&] {
                    fab.save(data.string(), {{"step", 1}});
                  }),
                  "holds something other than a checkpoint");
  EXPECT_TRUE(fs::exists(data / "images") && fs::exists(data / "meta.json"));
  fab.save((project / "run").string(), {{"step", 1}});  // an empty folder
  fab.save((project / "run").string(), {{"step", 2}});  // an earlier checkpoint
  State state{{"step", int64_t(0)}};
  fab.load((project / "run").string(), state);
  EXPECT_EQ(state.at("step").get<int64_t>(), 2);
  fs::remove_all(project);
}

// A checkpoint name at the file system's limit (255 bytes) is saved and replaced: its temporary
// sibling gives up the name's end, not the save. "ckpt/." names the folder ckpt.
TEST_F(CheckpointRobustness, NamesAtTheLengthLimitAndADotComponentSave) {
  Fabric fab;
  fs::create_directories(dir_);
  for (const size_t length : {244u, 250u, 255u}) {
    SCOPED_TRACE(length);
    const std::string ckpt = dir_ + "/" + std::string(length, 'c');
    fab.save(ckpt, {{"step", 1}});
    fab.save(ckpt, {{"step", 2}});
    State state{{"step", int64_t(0)}};
    fab.load(ckpt, state);
    EXPECT_EQ(state.at("step").get<int64_t>(), 2);
    fs::remove_all(ckpt);
  }
  for (const std::string suffix : {"/.", "/./", "/"}) {
    SCOPED_TRACE(suffix);
    fab.save(dir_ + "/dotted" + suffix, {{"step", 3}});
    EXPECT_TRUE(fs::exists(dir_ + "/dotted/state.json"));
    State state{{"step", int64_t(0)}};
    fab.load(dir_ + "/dotted" + suffix, state);
    EXPECT_EQ(state.at("step").get<int64_t>(), 3);
  }
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  // An interrupted commit's previous copy of such a name is found by every reader.
  const std::string cut = dir_ + "/" + std::string(253, 's');
  fs::create_directories(sibling_named(cut, ".old"));
  std::ofstream(sibling_named(cut, ".old") + "/meta.json") << "{}";
  EXPECT_TRUE(is_sharded_checkpoint(cut));
  EXPECT_TRUE(complete_checkpoint(cut));
}

// Sets or clears a file's immutable flag (chattr +i); false where the filesystem has none.
bool set_immutable(const std::string& path, bool on) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  int flags = 0;
  bool ok = ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
  flags = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
  ok = ok && ::ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
  ::close(fd);
  return ok;
}

// A previous checkpoint that cannot be removed (an immutable file; a file held open on NFS) once
// the new one is in place: the save succeeds with a warning, the leftover is moved out of the
// temporary's name, and the next saves succeed too (they wrote into the leftover before).
TEST_F(CheckpointRobustness, APreviousCopyThatCannotBeRemovedIsAWarning) {
  Fabric fab;
  fab.save(dir_, {{"step", 1}});
  const std::string stuck = dir_ + "/state.json";
  if (!set_immutable(stuck, true)) GTEST_SKIP() << "no immutable flag on this filesystem";
  std::string leftover;
  {
    test::CapturedWarnings warnings;
    fab.save(dir_, {{"step", 2}});
    fab.save(dir_, {{"step", 3}});
    ASSERT_FALSE(warnings.messages().empty());
    EXPECT_CONTAINS(warnings.messages()[0], "could not be removed");
    for (const std::string& name : siblings())
      if (name.find(".unremovable-") != std::string::npos)
        leftover = (fs::path(dir_).parent_path() / name).string();
  }
  State state{{"step", int64_t(0)}};
  fab.load(dir_, state);
  EXPECT_EQ(state.at("step").get<int64_t>(), 3);
  ASSERT_FALSE(leftover.empty());
  for (const std::string& name : siblings())
    EXPECT_EQ(name.find(".tmp-"), std::string::npos) << name;
  set_immutable(leftover + "/state.json", false);
  fs::remove_all(leftover);
}

// The wrappers keep the Fabric's context, but its strategy goes with the Fabric: stepping after
// the Fabric is gone is an error naming that, not a crash.
TEST_F(CheckpointRobustness, AnOptimizerStepAfterItsFabricIsGoneIsAnError) {
  auto mlp = nn::make<nn::MLP>({.sizes = {4, 8, 2}});
  optim::SGD sgd(mlp->parameters(), {.lr = 0.1});
  auto fab = std::make_unique<Fabric>(FabricOptions{.precision = "16-mixed"});
  auto [model, opt] = fab->setup(mlp, sgd);
  fab.reset();
  EXPECT_CONTAINS(thrown<ValueError>([&] { opt.step(); }), "has been destroyed");
  EXPECT_CONTAINS(thrown<ValueError>([&] { opt.zero_grad(); }), "has been destroyed");
}

TEST_F(CheckpointRobustness, MalformedShardedMetaJsonIsAnIOError) {
  Fabric fab(fsdp_one_process());
  auto mlp = nn::make<nn::MLP>({.sizes = {4, 8, 2}});
  optim::AdamW adamw(mlp->parameters(), {.lr = 1e-2});
  auto [model, opt] = fab.setup(mlp, adamw);
  fab.save(dir_, {{"model", model}, {"step", int64_t(2)}});
  ASSERT_TRUE(is_sharded_checkpoint(dir_));
  auto first_piece = [](json& m) -> json& {
    json& tensors = m["entries"]["model"]["tensors"];
    return tensors.begin().value()["pieces"][0];
  };
  struct Case {
    const char* what;
    std::function<void(json&)> edit;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"top-level array", [](json& m) { m = json::array(); },
       "not a sharded checkpoint description"},
      {"format not a string", [](json& m) { m["format"] = json::object(); },
       "not a sharded checkpoint description"},
      {"version not a number", [](json& m) { m["version"] = "one"; }, "version \"one\""},
      {"entry not an object", [](json& m) { m["entries"]["step"] = 1; },
       "entry 'step' is not an object"},
      {"value of the wrong type", [](json& m) { m["entries"]["step"]["value"] = 2.5; },
       "entry 'step' (kind int) holds 2.5, which is not an int"},
      // Past the targeted checks: the catch at the reader's boundary.
      {"piece rank not a number", [&](json& m) { first_piece(m)["rank"] = "zero"; },
       "meta.json is malformed"},
  };
  for (const Case& c : cases) {
    const std::string copy = edited("meta.json", c.edit);
    State state{{"model", model}, {"step", int64_t(0)}};
    const std::string msg = thrown<IOError>([&] { fab.load(copy, state); });
    EXPECT_CONTAINS(msg, copy) << c.what;
    EXPECT_CONTAINS(msg, c.message) << c.what;
  }
  const std::string copy =
      edited("meta.json", [&](json& m) { first_piece(m)["offset"] = json::array(); });
  EXPECT_CONTAINS(thrown<IOError>([&] { consolidate_checkpoint(copy, dir_ + "_out"); }),
                  "meta.json is malformed");
  EXPECT_CONTAINS(
      thrown<IOError>([&] { consolidate_model_weights(copy, dir_ + "_out.safetensors"); }),
      "meta.json is malformed");
  EXPECT_FALSE(fs::exists(dir_ + "_out"));
  EXPECT_FALSE(fs::exists(dir_ + "_out.safetensors"));
}

}  // namespace
}  // namespace fabric
