// What a --set means on `fabric-train resume`. Most keys take effect from the resumed step on
// (trainer.max_steps lengthens the run); a few are restored from the checkpoint instead, as
// PyTorch's Optimizer.load_state_dict and Lightning's resume restore them, and a --set of one of
// them would change config.yaml but not the run: those are left out, and said.
#pragma once
#include <string>
#include <vector>

namespace fabric {

// The keys a resume takes from its checkpoint, each with why: the optimizer's name and
// hyper-parameters (its param_groups), the plateau scheduler's arguments (a plateau run's only),
// the precision plugin's state (the GradScaler's scale and factors, the FP8 recipe),
// trainer.seed (the RNG and data order continue), model.init (the weights are the checkpoint's)
// and trainer.run_dir (resume's own argument).
struct RestoredKey {
  std::string key;
  std::string why;
  // Restored only when the resumed run's scheduler.name is this ("": always). scheduler.min_lr is
  // plateau's floor, restored with its state, and also cosine's final lr, which a --set changes.
  std::string scheduler = "";
  // Restored only when the run resumes under the precision it was trained with, whose plugin state
  // the checkpoint holds (fabric.scaler.*, the FP8 recipe); under another precision it takes
  // effect.
  bool plugin_state = false;
};
const std::vector<RestoredKey>& keys_restored_on_resume();

// A --set of a restored key that differs from the run's value.
struct IgnoredSetting {
  std::string setting;    // as given: optimizer.lr=0.5
  std::string in_effect;  // the run's value, as config.yaml writes it: 0.1
  const RestoredKey* key;
};

struct ResumeOverrides {
  std::vector<std::string> effective;  // the --set values the resumed run uses
  // The --set values that would change nothing but config.yaml. One that repeats the run's value
  // is dropped without a word.
  std::vector<IgnoredSetting> ignored;
  // fabric.precision as the run was trained (config.yaml's, canonical; "" when it holds none): a
  // --set of another one whose weight layout differs (nf4's packed weights, FP8 layers' state)
  // cannot load the checkpoint, and the resume's error says so.
  std::string trained_precision;
  // config.yaml's model.init (absolute, as fit resolved it; "" when none): a resume keeps naming
  // it without looking for the file, which may be gone (the weights are the checkpoint's).
  std::string model_init;
  // One warning naming each ignored setting, the value in effect and why ("" when none).
  std::string warning(const std::string& run_dir) const;
};

// Splits the `overrides` of a resume of `run_dir` (whose config.yaml is `config_path`). A value a
// key cannot take is a ConfigError, as on any other command line.
ResumeOverrides split_resume_overrides(const std::string& config_path, const std::string& run_dir,
                                       const std::vector<std::string>& overrides);

// A warning when `config_path` (RUN_DIR/config.yaml, before this resume's --set values) differs
// from the config the checkpoint to resume was saved with, naming each key with both values: a
// hand-edited config.yaml, or a fit into the run directory that ended before its first save (its
// config with the earlier run's checkpoint), would otherwise go on silently. "" when they agree,
// or when either cannot be read (the resume itself reports that). trainer.run_dir is not compared.
std::string config_drift_warning(const std::string& config_path, const std::string& run_dir);

}  // namespace fabric
