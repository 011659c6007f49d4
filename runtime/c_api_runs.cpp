// The C API's runs (runtime/c_api.h): fabric-train fit, validate and resume, in this process.
#include <dlfcn.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "runtime/c_api_detail.h"
#include "runtime/connector.h"
#include "runtime/resume_overrides.h"
#include "runtime/trainer.h"

namespace fabric::c_api {
namespace fs = std::filesystem;
namespace {

std::vector<std::string> set_list(const char* const* sets, size_t n_sets, const char* function) {
  if (n_sets > 0) require_argument(sets, function, "sets");
  std::vector<std::string> list;
  for (size_t i = 0; i < n_sets; ++i) {
    if (sets[i] == nullptr)
      bad_argument(function, "sets[" + std::to_string(i) + "] is NULL (expected \"key=value\")");
    list.emplace_back(sets[i]);
  }
  return list;
}

// Where the bundled configs and data live, as fabric-train looks for them: $FABRIC_HOME, the
// source tree this library was built from, or <prefix>/share/fabric beside the installed library
// (fabric-train goes from its executable; here the executable is the embedding app).
std::string fabric_home() {
  if (const char* h = std::getenv("FABRIC_HOME")) return h;
#ifdef FABRIC_SOURCE_DIR
  if (fs::exists(fs::path(FABRIC_SOURCE_DIR) / "tools/configs")) return FABRIC_SOURCE_DIR;
#endif
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&fabric_fit), &info) != 0 && info.dli_fname != nullptr)
    return (fs::path(info.dli_fname).parent_path().parent_path() / "share/fabric").string();
  return "";
}

// The processes the config's run would have: devices per node x nodes. A config the connector
// refuses counts as one: fit then says what is wrong with it, as fabric-train's would.
int64_t processes_of(const TrainConfig& cfg) {
  try {
    ConnectorFlags flags{.accelerator = cfg.fabric.accelerator,
                         .strategy = cfg.fabric.strategy,
                         .devices = cfg.fabric.devices,
                         .num_nodes = cfg.fabric.num_nodes,
                         .precision = cfg.fabric.precision};
    if (!cfg.deepspeed.empty())
      flags.deepspeed = precision::DeepSpeedConfig::from_json_or_path(cfg.deepspeed);
    const Resolved r = resolve_connector(flags);
    return int64_t(r.device_ids.size()) * r.num_nodes;
  } catch (const std::exception&) {
    return 1;
  }
}

// A run of several processes is refused: the launcher starts the other ranks by executing this
// process's command line again (/proc/self/exe with /proc/self/cmdline), which in an app that
// embeds fabric is the app itself, with its own arguments: it would run the app's main once per
// rank instead of fabric-train's rank.
void refuse_several_processes(const TrainConfig& cfg, const char* function) {
  const int64_t n = processes_of(cfg);
  if (n <= 1) return;
  bad_argument(function,
               "fabric.devices=" + cfg.fabric.devices + " with fabric.num_nodes=" +
                   std::to_string(cfg.fabric.num_nodes) + " is a run of " + std::to_string(n) +
                   " processes, whose launcher starts the other ranks by re-running this "
                   "program's command line: in an app that embeds fabric that is the app, not "
                   "fabric-train. The C API trains in this process only: set fabric.devices=1 "
                   "and fabric.num_nodes=1, or run this config with `fabric-train fit` (or "
                   "`fabric-train resume`)");
}

void fill(fabric_run_result* result, const FitResult& r) {
  if (result == nullptr) return;
  result->step = r.step;
  result->last_loss = r.last_loss;
  result->last_val_loss = r.last_val_loss;
}

TrainConfig load(const char* config_path, const char* const* sets, size_t n_sets,
                 const char* function) {
  require_argument(config_path, function, "config_path");
  return load_train_config(config_path, set_list(sets, n_sets, function), {fabric_home()},
                           lightning_environment());
}

}  // namespace
}  // namespace fabric::c_api

using namespace fabric;
using namespace fabric::c_api;

extern "C" {

fabric_status fabric_fit(const char* config_path, const char* const* sets, size_t n_sets,
                         fabric_run_result* result) {
  return guarded([&] {
    const TrainConfig cfg = load(config_path, sets, n_sets, "fabric_fit");
    refuse_several_processes(cfg, "fabric_fit");
    align_lightning_environment(cfg);
    fill(result, fabric::fit(cfg));
  });
}

fabric_status fabric_validate(const char* config_path, const char* const* sets, size_t n_sets,
                              char** resolved_yaml) {
  return guarded([&] {
    const TrainConfig cfg = load(config_path, sets, n_sets, "fabric_validate");
    // As `fabric-train validate`: the check runs on one cpu process, and the config now holds
    // the LT_* variables' values.
    clear_lightning_environment();
    check_fit_config(cfg);
    if (resolved_yaml != nullptr) *resolved_yaml = malloc_copy(dump_train_config(cfg));
  });
}

fabric_status fabric_resume(const char* run_dir, const char* const* sets, size_t n_sets,
                            fabric_run_result* result) {
  return guarded([&] {
    const char* fn = "fabric_resume";
    require_existing_path(run_dir, fn, "run_dir", "a run directory: the trainer.run_dir of a fit");
    const std::vector<std::string> overrides = set_list(sets, n_sets, fn);
    // The run's config as resume reads it, to refuse a run of several processes before resume
    // writes anything. (A directory without config.yaml is left to resume, which names it.)
    const std::string config = std::string(run_dir) + "/config.yaml";
    if (fs::exists(config)) {
      const ResumeOverrides o = split_resume_overrides(config, run_dir, overrides);
      refuse_several_processes(load_train_config(config, o.effective, {}, lightning_environment()),
                               fn);
    }
    fill(result, fabric::resume(run_dir, overrides));
  });
}

}  // extern "C"
