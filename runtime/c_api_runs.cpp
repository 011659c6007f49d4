// The C API's runs (runtime/c_api.h): fabric-train fit, validate and resume, in this process.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "distributed/cluster_env.h"
#include "runtime/c_api_detail.h"
#include "runtime/connector.h"
#include "runtime/fabric_home.h"
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

// The connector's flags from the config's fabric and deepspeed sections, as Run passes them.
ConnectorFlags connector_flags(const TrainConfig& cfg) {
  ConnectorFlags flags{.accelerator = cfg.fabric.accelerator,
                       .strategy = cfg.fabric.strategy,
                       .devices = cfg.fabric.devices,
                       .num_nodes = cfg.fabric.num_nodes,
                       .precision = cfg.fabric.precision};
  if (!cfg.deepspeed.empty())
    flags.deepspeed = precision::DeepSpeedConfig::from_json_or_path(cfg.deepspeed);
  return flags;
}

// The processes fit would have to start itself: the config's devices per node x nodes, when they
// are more than one and no external launcher (torchrun, mpirun, SLURM) started them already, as
// the connector finds them; else 0. A config the connector refuses, or an environment that
// disagrees with it, gives 0 too: fit then says what is wrong, as fabric-train's would.
int64_t processes_to_start(const TrainConfig& cfg) {
  try {
    const Resolved r = resolve_connector(connector_flags(cfg));
    const int64_t n = int64_t(r.device_ids.size()) * r.num_nodes;
    if (n <= 1) return 0;
    const distributed::ClusterEnvironment env =
        distributed::detect_cluster_environment(int(r.device_ids.size()), int(r.num_nodes));
    return env.creates_processes_externally ? 0 : n;
  } catch (const std::exception&) {
    return 0;
  }
}

// A run whose other ranks this process would start is refused: the launcher starts them by
// executing this process's command line again (/proc/self/exe with /proc/self/cmdline), which in
// an app that embeds fabric is the app itself, with its own arguments: it would run the app's main
// once per rank instead of fabric-train's rank. Ranks an external launcher started (each one the
// app, calling the C API itself) train as fabric-train's do under it.
void refuse_relaunching(const TrainConfig& cfg, const char* function) {
  const int64_t n = processes_to_start(cfg);
  if (n == 0) return;
  bad_argument(function,
               "fabric.devices=" + cfg.fabric.devices + " with fabric.num_nodes=" +
                   std::to_string(cfg.fabric.num_nodes) + " is a run of " + std::to_string(n) +
                   " processes, whose launcher starts the other ranks by re-running this "
                   "program's command line: in an app that embeds fabric that is the app, not "
                   "fabric-train. The C API trains in the processes it is called in: set "
                   "fabric.devices=1 and fabric.num_nodes=1, start the app's processes with an "
                   "external launcher (torchrun, mpirun, srun), or run this config with "
                   "`fabric-train fit` (or `fabric-train resume`)");
}

void fill(fabric_run_result* result, const FitResult& r) {
  if (result == nullptr) return;
  result->step = r.step;
  result->last_loss = r.last_loss;
  result->last_val_loss = r.last_val_loss;
}

// Puts Lightning's LT_* variables back as they were when it was made, however the call it guards
// ends: validate's check removes them for its one-process resolve (as `fabric-train validate`,
// which then exits), but the app that called it goes on, and its next fabric_fit must fold in
// the same variables validate reported.
class LightningEnvironmentKept {
 public:
  LightningEnvironmentKept() : saved_(lightning_environment()) {}
  ~LightningEnvironmentKept() {
    clear_lightning_environment();
    for (const EnvironmentSetting& s : saved_)
      ::setenv(s.variable.c_str(), s.value.c_str(), /*overwrite=*/1);
  }
  LightningEnvironmentKept(const LightningEnvironmentKept&) = delete;
  LightningEnvironmentKept& operator=(const LightningEnvironmentKept&) = delete;

 private:
  std::vector<EnvironmentSetting> saved_;
};

TrainConfig load(const char* config_path, const char* const* sets, size_t n_sets,
                 const char* function) {
  require_argument(config_path, function, "config_path");
  return load_train_config(config_path, set_list(sets, n_sets, function), {fabric_home()},
                           lightning_environment());
}

// The config resume will run `run_dir`'s config.yaml with (its --set values as resume keeps them,
// the LT_* variables folded in), read without printing its warnings and the variables it took:
// resume prints them when it reads it, once, as `fabric-train resume` does.
TrainConfig resumed_config_quietly(const std::string& config, const std::string& run_dir,
                                   const std::vector<std::string>& overrides) {
  const ResumeOverrides o = split_resume_overrides(config, run_dir, overrides);
  std::ifstream in(config);
  std::stringstream text;
  text << in.rdbuf();
  return parse_train_config(text.str(), config, o.effective, {run_dir}, lightning_environment());
}

}  // namespace
}  // namespace fabric::c_api

using namespace fabric;
using namespace fabric::c_api;

extern "C" {

fabric_status fabric_fit(const char* config_path, const char* const* sets, size_t n_sets,
                         fabric_run_result* result) {
  return guarded([&] {
    const FileSizeLimitAsError file_size_limit;
    const TrainConfig cfg = load(config_path, sets, n_sets, "fabric_fit");
    refuse_relaunching(cfg, "fabric_fit");
    align_lightning_environment(cfg);
    fill(result, fabric::fit(cfg));
  });
}

fabric_status fabric_validate(const char* config_path, const char* const* sets, size_t n_sets,
                              char** resolved_yaml) {
  return guarded([&] {
    const TrainConfig cfg = load(config_path, sets, n_sets, "fabric_validate");
    // As `fabric-train validate`: the check runs on one cpu process, and the config now holds
    // the LT_* variables' values. They are the app's again when validate returns.
    const LightningEnvironmentKept kept;
    clear_lightning_environment();
    check_fit_config(cfg);
    if (resolved_yaml != nullptr) *resolved_yaml = malloc_copy(dump_train_config(cfg));
  });
}

fabric_status fabric_resume(const char* run_dir, const char* const* sets, size_t n_sets,
                            fabric_run_result* result) {
  return guarded([&] {
    const FileSizeLimitAsError file_size_limit;
    const char* fn = "fabric_resume";
    require_existing_path(run_dir, fn, "run_dir", "a run directory: the trainer.run_dir of a fit");
    const std::vector<std::string> overrides = set_list(sets, n_sets, fn);
    // The run's config as resume reads it, to refuse a run it would relaunch before resume
    // writes anything. (A directory without a readable config.yaml is left to resume, which
    // names it.)
    const std::string config = std::string(run_dir) + "/config.yaml";
    if (fs::is_regular_file(config))
      refuse_relaunching(resumed_config_quietly(config, run_dir, overrides), fn);
    fill(result, fabric::resume(run_dir, overrides));
  });
}

}  // extern "C"
