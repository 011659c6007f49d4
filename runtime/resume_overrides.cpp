// The --set values of a resume: those that take effect, and those a checkpoint overrules.
#include "runtime/resume_overrides.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "precision/registry.h"
#include "runtime/checkpoint.h"
#include "runtime/run_directory.h"
#include "runtime/train_config.h"
#include "runtime/train_config_fields.h"

namespace fabric {

namespace {

// The checkpoint a resume of `run_dir` reads (its `last` when there is none to read: the advice
// that names it is for a resume that fails anyway).
std::string checkpoint_or_last(const std::string& run_dir) {
  try {
    return checkpoint_to_resume(run_dir, /*say=*/false);
  } catch (const Error&) {
    return run_dir + "/checkpoints/last";
  }
}

}  // namespace

const std::vector<RestoredKey>& keys_restored_on_resume() {
  // The optimizer's param_groups hold these under PyTorch's names; load_state_dict puts them back
  // (and the scheduler's base lrs come from the checkpoint too). Its kind goes with its state:
  // SGD's momentum buffers are no Adam state (a resume under another name failed at its first
  // step, after config.yaml had been rewritten).
  static const std::string optimizer =
      "the optimizer, its state and its hyper-parameters are restored from the checkpoint, as by "
      "PyTorch's Optimizer.load_state_dict";
  static const std::string plateau =
      "the plateau scheduler's arguments are restored from the checkpoint with its counts, as by "
      "PyTorch's ReduceLROnPlateau.load_state_dict";
  static const std::string scaler =
      "the GradScaler's scale, factors and growth interval are restored from the checkpoint, as by "
      "PyTorch's GradScaler.load_state_dict";
  static const std::string recipe =
      "the FP8 recipe is restored from the checkpoint with the amax histories it shapes";
  static const std::string deepspeed_scaler =
      "DeepSpeed's loss scaler (its scale, window, hysteresis and floor) is restored from the "
      "checkpoint, as DeepSpeed's load_checkpoint restores it";
  static const std::vector<RestoredKey> keys = {
      {"optimizer.name", optimizer},
      {"optimizer.lr", optimizer},
      {"optimizer.momentum", optimizer},
      {"optimizer.dampening", optimizer},
      {"optimizer.nesterov", optimizer},
      {"optimizer.weight_decay", optimizer},
      {"optimizer.betas", optimizer},
      {"optimizer.eps", optimizer},
      {"optimizer.alpha", optimizer},
      {"optimizer.centered", optimizer},
      {"optimizer.lr_decay", optimizer},
      {"optimizer.initial_accumulator_value", optimizer},
      {"optimizer.momentum_decay", optimizer},
      {"optimizer.rho", optimizer},
      {"optimizer.etas", optimizer},
      {"optimizer.step_sizes", optimizer},
      {"optimizer.lambd", optimizer},
      {"optimizer.t0", optimizer},
      // ReduceLROnPlateau's state holds these; other schedulers read some of them from the config
      // (cosine's min_lr, cyclic's mode, multiplicative's factor), where a --set takes effect.
      {"scheduler.mode", plateau, "plateau"},
      {"scheduler.factor", plateau, "plateau"},
      {"scheduler.patience", plateau, "plateau"},
      {"scheduler.threshold", plateau, "plateau"},
      {"scheduler.threshold_mode", plateau, "plateau"},
      {"scheduler.cooldown", plateau, "plateau"},
      {"scheduler.min_lr", plateau, "plateau"},
      {"fabric.scaler.init_scale", scaler, "", true},
      {"fabric.scaler.growth_factor", scaler, "", true},
      {"fabric.scaler.backoff_factor", scaler, "", true},
      {"fabric.scaler.growth_interval", scaler, "", true},
      {"fabric.transformer_engine.fp8_format", recipe, "", true},
      {"fabric.transformer_engine.margin", recipe, "", true},
      {"fabric.transformer_engine.amax_history_len", recipe, "", true},
      {"fabric.transformer_engine.amax_compute_algo", recipe, "", true},
      {"deepspeed.fp16.loss_scale", deepspeed_scaler, "", true},
      {"deepspeed.fp16.initial_scale_power", deepspeed_scaler, "", true},
      {"deepspeed.fp16.loss_scale_window", deepspeed_scaler, "", true},
      {"deepspeed.fp16.hysteresis", deepspeed_scaler, "", true},
      {"deepspeed.fp16.consecutive_hysteresis", deepspeed_scaler, "", true},
      {"deepspeed.fp16.min_loss_scale", deepspeed_scaler, "", true},
      {"trainer.seed", "the RNG and the data order continue from the checkpoint"},
      {"model.init", "the weights are the checkpoint's"},
      {"trainer.run_dir", "a resume writes to its RUN_DIR argument"},
  };
  return keys;
}

namespace {

const RestoredKey* restored(const std::string& key) {
  const auto& keys = keys_restored_on_resume();
  auto it =
      std::find_if(keys.begin(), keys.end(), [&](const RestoredKey& k) { return k.key == key; });
  return it == keys.end() ? nullptr : &*it;
}

// A key's value in the resolved config, as config.yaml writes it.
std::string value_text(const TrainConfig& c, const std::string& key) {
  // Down the dotted path: a plugin's block nests one level more (fabric.scaler.growth_interval).
  YAML::Node value = YAML::Load(dump_train_config(c));
  for (size_t from = 0; value.IsDefined() && from <= key.size();) {
    const size_t dot = std::min(key.find('.', from), key.size());
    value = value.IsMap() ? YAML::Node(value[key.substr(from, dot - from)]) : YAML::Node();
    from = dot + 1;
  }
  // model.init not set, as the schema says it.
  if (!value.IsDefined() || value.IsNull() || (value.IsScalar() && value.Scalar().empty()))
    return "(none)";
  YAML::Emitter out;
  out << YAML::Flow << value;
  return out.c_str();
}

// config.yaml's value at a path (scheduler, name; fabric, scaler, enabled) as written; "" when it
// is not a scalar there or the file cannot be read (the resume's own parse of the file reports
// that).
std::string recorded_at(const std::string& config_path, std::initializer_list<const char*> path) {
  try {
    YAML::Node value = YAML::LoadFile(config_path);
    for (const char* key : path) value = value.IsMap() ? YAML::Node(value[key]) : YAML::Node();
    return value.IsScalar() ? value.Scalar() : std::string();
  } catch (const std::exception&) {
    return "";
  }
}

std::string recorded_scalar(const std::string& config_path, const char* section, const char* key) {
  return recorded_at(config_path, {section, key});
}

// config.yaml's fabric.precision, canonical; "" when it holds none.
std::string trained_precision(const std::string& config_path) {
  const std::string precision = recorded_scalar(config_path, "fabric", "precision");
  if (precision.empty()) return "";
  try {
    return precision::canonical_precision(precision);
  } catch (const std::exception&) {
    return "";
  }
}

// A key that decides what function the model computes from its weights, or which of its layers
// are quantized: every model.* and lora.* key but the dropouts (which take effect), model.init
// (restored) and model.vocab_size (0 means the data's; a mismatch is a shape the load refuses),
// and the plugin keys that choose the converted layers. A changed n_head, gelu, activation or
// LoRA alpha would load the same tensors into another model.
bool shapes_the_model(const std::string& key) {
  if (key == "model.dropout" || key == "model.init" || key == "model.vocab_size" ||
      key == "lora.dropout")
    return false;
  // Which Linear layers hold quantized or FP8 weights.
  if (key == "fabric.bitsandbytes.ignore_modules" ||
      key == "fabric.transformer_engine.replace_layers")
    return true;
  return key.rfind("model.", 0) == 0 || key.rfind("lora.", 0) == 0;
}

// ConfigError for a --set of a key that shapes the model to another value than the run's.
void refuse_model_changes(const std::string& config_path, const std::string& run_dir,
                          const std::vector<std::string>& overrides) {
  std::vector<std::string> changes;
  for (const std::string& o : overrides)
    if (shapes_the_model(o.substr(0, o.find('=')))) changes.push_back(o);
  if (changes.empty()) return;
  std::ifstream in(config_path);
  std::stringstream text;
  text << in.rdbuf();
  const std::string dir = std::filesystem::path(config_path).parent_path().string();
  const std::vector<std::string> base = {string_override("trainer.run_dir", run_dir),
                                         "model.init="};
  // Another model is named before the config is parsed with it (its keys would not apply).
  for (const std::string& o : changes) {
    if (o.rfind("model.name=", 0) != 0) continue;
    const std::string trained = recorded_scalar(config_path, "model", "name");
    if (!trained.empty() && o.substr(o.find('=') + 1) != trained)
      throw ConfigError("resume: --set " + o + ": the run's model is a " + trained +
                        "; a resume continues the model its checkpoint holds. To train a " +
                        o.substr(o.find('=') + 1) + ", fit a new run");
  }
  const TrainConfig run = parse_train_config(text.str(), config_path, base, {dir});
  for (const std::string& o : changes) {
    const std::string key = o.substr(0, o.find('='));
    std::vector<std::string> with = base;
    with.push_back(o);
    const std::string trained = value_text(run, key);
    if (value_text(parse_train_config(text.str(), config_path, with, {dir}), key) == trained)
      continue;
    // Lists of layer names match layers, in any order.
    if (key == "lora.target" || key == "fabric.bitsandbytes.ignore_modules") {
      const TrainConfig changed = parse_train_config(text.str(), config_path, with, {dir});
      auto names = [&](const TrainConfig& c) {
        std::vector<std::string> v =
            key == "lora.target" ? c.lora.target : c.fabric.bitsandbytes.ignore_modules;
        std::sort(v.begin(), v.end());
        return v;
      };
      if (names(changed) == names(run)) continue;
    }
    throw ConfigError(
        "resume: --set " + o + ": the run's model was trained with " + key + " " + trained +
        "; keys that shape the model (model.* and lora.* but model.dropout and lora.dropout, "
        "fabric.bitsandbytes.ignore_modules, fabric.transformer_engine.replace_layers) "
        "must match the checkpoint, whose weights would otherwise load into another model. "
        "To train another model from these weights, start a new run: " +
        fit_from_weights_advice(run_dir, checkpoint_or_last(run_dir)) + " ...");
  }
}

}  // namespace

// A --set of a whole plugin block (fabric.scaler={growth_interval: 1}, fabric.scaler=null,
// deepspeed.fp16={...}) as the --set of each of its keys, so that the rules for restored and
// model-shaping keys see them: a mapping merges its keys over the file's, null puts each of a
// fabric block's keys back to its default.
std::vector<std::string> per_key(const std::vector<std::string>& overrides) {
  std::vector<std::string> out;
  for (const std::string& o : overrides) {
    const size_t eq = o.find('=');
    const std::string key = o.substr(0, eq);
    const bool block = key == "deepspeed.fp16" ||
                       (key.rfind("fabric.", 0) == 0 && key.find('.', 7) == std::string::npos &&
                        train_config_detail::plugin_block_of(key.substr(7) + ".") != nullptr);
    YAML::Node value;
    try {
      if (block && eq != std::string::npos && eq + 1 < o.size())
        value = YAML::Load(o.substr(eq + 1));
    } catch (const YAML::Exception&) {  // refused where the config is parsed
    }
    if (block && value.IsMap()) {
      for (const auto& kv : value) {
        YAML::Emitter e;
        e << YAML::Flow << kv.second;
        out.push_back(key + "." + kv.first.Scalar() + "=" + e.c_str());
      }
    } else if (block && value.IsNull() && key.rfind("fabric.", 0) == 0) {
      const std::string name = key.substr(7) + ".";
      for (const train_config_detail::Field& f : train_config_detail::fields())
        if (f.section == "fabric" && f.key.rfind(name, 0) == 0)
          out.push_back("fabric." + f.key + "=null");
    } else {
      out.push_back(o);
    }
  }
  return out;
}

ResumeOverrides split_resume_overrides(const std::string& config_path, const std::string& run_dir,
                                       const std::vector<std::string>& given) {
  const std::vector<std::string> overrides = per_key(given);
  refuse_model_changes(config_path, run_dir, overrides);
  ResumeOverrides r;
  r.trained_precision = trained_precision(config_path);
  r.model_init = recorded_scalar(config_path, "model", "init");
  std::vector<std::pair<std::string, const RestoredKey*>> candidates;
  for (const std::string& o : overrides) {
    if (const RestoredKey* k = restored(o.substr(0, o.find('='))))
      candidates.emplace_back(o, k);
    else
      r.effective.push_back(o);
  }
  if (candidates.empty()) return r;
  // The scheduler the run resumes with (a --set of scheduler.name, else config.yaml's): a
  // scheduler's keys are restored only when the run trained with it and resumes with it (plateau's
  // state is in the checkpoint then); otherwise they take effect, and must be in the parse below,
  // whose scheduler checks them (cyclic's mode, plateau's mode on a switch to it).
  const std::string trained_scheduler = recorded_scalar(config_path, "scheduler", "name");
  std::string scheduler = trained_scheduler;
  for (const std::string& o : r.effective)
    if (o.rfind("scheduler.name=", 0) == 0) scheduler = o.substr(o.find('=') + 1);
  // The precision and strategy the run resumes with: a --set, else Lightning's LT_* variable (which
  // the config folds in as fit does), else the run's.
  auto resumed = [&](const char* key, const char* variable, const std::string& run_value) {
    std::string value = run_value;
    if (const char* v = std::getenv(variable)) value = v;
    for (const std::string& o : r.effective)
      if (o.rfind(std::string(key) + "=", 0) == 0) value = o.substr(o.find('=') + 1);
    return value;
  };
  std::string precision;
  try {
    precision = precision::canonical_precision(
        resumed("fabric.precision", "LT_PRECISION", r.trained_precision));
  } catch (const std::exception&) {  // refused where the config is parsed
  }
  const std::string trained_strategy = recorded_scalar(config_path, "fabric", "strategy");
  const bool deepspeed_both = train_config_detail::is_deepspeed_strategy(trained_strategy) &&
                              train_config_detail::is_deepspeed_strategy(
                                  resumed("fabric.strategy", "LT_STRATEGY", trained_strategy));
  const auto starts = [](const std::string& s, const char* prefix) {
    return s.rfind(prefix, 0) == 0;
  };
  // Whether the checkpoint holds the plugin state that restores `key`: the same plugin before and
  // after (either FP8 precision for the recipe), a scaler that was enabled, DeepSpeed's both times.
  // (Elsewhere the keys take effect, or the parse says their block is not used.)
  const bool deepspeed_either = train_config_detail::is_deepspeed_strategy(trained_strategy) ||
                                train_config_detail::is_deepspeed_strategy(
                                    resumed("fabric.strategy", "LT_STRATEGY", trained_strategy));
  auto state_restored = [&](const std::string& key) {
    if (starts(key, "fabric.transformer_engine."))
      return starts(precision, "transformer-engine") &&
             starts(r.trained_precision, "transformer-engine");
    const bool mixed16 = precision == "16-mixed" && r.trained_precision == "16-mixed";
    if (starts(key, "fabric.scaler."))
      return mixed16 && !deepspeed_either &&
             recorded_at(config_path, {"fabric", "scaler", "enabled"}) != "false";
    if (starts(key, "deepspeed.")) return mixed16 && deepspeed_both;
    return precision == r.trained_precision;
  };
  std::erase_if(candidates, [&](const auto& c) {
    const std::string key = c.first.substr(0, c.first.find('='));
    const std::string& own = c.second->scheduler;
    const bool takes_effect = (!own.empty() && (own != scheduler || own != trained_scheduler)) ||
                              (c.second->plugin_state && !state_restored(key));
    if (takes_effect) r.effective.push_back(c.first);
    return takes_effect;
  });
  if (candidates.empty()) return r;
  std::ifstream in(config_path);
  std::stringstream text;
  text << in.rdbuf();
  const std::string dir = std::filesystem::path(config_path).parent_path().string();
  // The run as it resumes (without the candidates), and with each candidate on top of it.
  std::vector<std::string> base = r.effective;
  base.push_back(string_override("trainer.run_dir", run_dir));
  base.push_back("model.init=");  // not looked for: see model_init
  const TrainConfig run = parse_train_config(text.str(), config_path, base, {dir});
  for (const auto& [o, k] : candidates) {
    if (k->key == "model.init") {  // compared as written: the file it names need not exist
      const std::string value = o.substr(o.find('=') + 1);
      const bool none = value.empty() || value == "null" || value == "~";
      if (none ? r.model_init.empty() : value == r.model_init) continue;
      r.ignored.push_back({o, r.model_init.empty() ? "(none)" : r.model_init, k});
      continue;
    }
    if (!k->scheduler.empty() && run.scheduler.name != k->scheduler) {
      r.effective.push_back(o);  // not restored by this run's scheduler: it takes effect
      continue;
    }
    std::vector<std::string> with = base;
    with.push_back(o);
    const std::string in_effect = value_text(run, k->key);
    if (value_text(parse_train_config(text.str(), config_path, with, {dir}), k->key) == in_effect)
      continue;
    r.ignored.push_back({o, in_effect, k});
  }
  return r;
}

namespace {

// section.key -> its value as one line of flow YAML, for every key of a config's two-level map.
std::map<std::string, std::string> flat_config(const YAML::Node& root) {
  std::map<std::string, std::string> flat;
  if (!root.IsMap()) return flat;
  for (const auto& section : root) {
    const std::string name = section.first.as<std::string>();
    if (!section.second.IsMap()) {
      YAML::Emitter out;
      out << YAML::Flow << section.second;
      flat[name] = out.c_str();
      continue;
    }
    for (const auto& entry : section.second) {
      YAML::Emitter out;
      out << YAML::Flow << entry.second;
      flat[name + "." + entry.first.as<std::string>()] = out.c_str();
    }
  }
  return flat;
}

}  // namespace

std::string config_drift_warning(const std::string& config_path, const std::string& run_dir) {
  std::map<std::string, std::string> file, saved;
  std::string checkpoint;
  try {
    checkpoint = checkpoint_to_resume(run_dir, /*say=*/false);
    const std::optional<StateEntry> entry = read_checkpoint_value(checkpoint, "config");
    const std::string* text = entry ? std::get_if<std::string>(&entry->value()) : nullptr;
    if (!text) return "";
    saved = flat_config(YAML::Load(*text));
    file = flat_config(YAML::LoadFile(config_path));
  } catch (const std::exception&) {
    return "";
  }
  std::string keys;
  std::set<std::string> names;
  for (const auto& [k, v] : file) names.insert(k);
  for (const auto& [k, v] : saved) names.insert(k);
  for (const std::string& k : names) {
    if (k == "trainer.run_dir") continue;
    const auto f = file.find(k), c = saved.find(k);
    const std::string in_file = f == file.end() ? "(none)" : f->second;
    const std::string in_checkpoint = c == saved.end() ? "(none)" : c->second;
    if (in_file != in_checkpoint)
      keys += (keys.empty() ? "" : ", ") + k + " (config.yaml: " + in_file +
              ", checkpoint: " + in_checkpoint + ")";
  }
  if (keys.empty()) return "";
  return "resume: " + config_path + " differs from the config " + checkpoint +
         " was saved with: " + keys +
         ". The run goes on with config.yaml's values (keys a checkpoint restores, the "
         "optimizer's, still come "
         "from it); if config.yaml was written by a fit that ended before its first save, this "
         "checkpoint is an "
         "earlier run's.";
}

std::string ResumeOverrides::warning(const std::string& run_dir) const {
  if (ignored.empty()) return "";
  // Grouped by reason, in the order of keys_restored_on_resume().
  std::string text;
  std::string why;
  for (const RestoredKey& k : keys_restored_on_resume()) {
    if (k.why == why) continue;
    why = k.why;
    std::string settings;
    for (const IgnoredSetting& i : ignored)
      if (i.key->why == why)
        settings +=
            (settings.empty() ? "" : ", ") + i.setting + " (in effect: " + i.in_effect + ")";
    if (!settings.empty()) text += (text.empty() ? "" : "; ") + settings + ": " + why;
  }
  return "resume: --set " + text +
         ". These have no effect on a resume and are left out of config.yaml, which keeps the "
         "values in effect. "
         "To train with other values, start a new run from the weights: " +
         fit_from_weights_advice(run_dir, checkpoint_or_last(run_dir)) + " ...";
}

}  // namespace fabric
