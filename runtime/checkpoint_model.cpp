// A finished checkpoint's config, vocabulary and model, as sample and export --dequantize read
// them.
#include "runtime/checkpoint_model.h"

#include <unistd.h>

#include "precision/bitsandbytes_precision.h"
#include "precision/registry.h"
#include "runtime/checkpoint.h"
#include "runtime/datasets.h"
#include "runtime/sharded_checkpoint.h"
#include "runtime/train_builders.h"
#include "runtime/train_precision_plugin.h"
#include "tensor/safetensors.h"

namespace fabric {
namespace fs = std::filesystem;

FullCheckpoint::FullCheckpoint(const std::string& dir) : dir_(dir) {
  if (!is_sharded_checkpoint(dir)) return;
  static int counter = 0;
  tmp_ = fs::temp_directory_path() /
         ("fabric-consolidated-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  fs::remove_all(tmp_);
  consolidate_checkpoint(dir, tmp_.string());
  dir_ = tmp_.string();
}

FullCheckpoint::~FullCheckpoint() {
  std::error_code ec;
  if (!tmp_.empty()) fs::remove_all(tmp_, ec);
}

CheckpointModel read_checkpoint_config(const std::string& dir) {
  if (!fs::exists(dir + "/state.json"))
    throw IOError(dir + ": not a checkpoint directory (no state.json)");
  // The config and vocabulary only, read from the description alone: the model and optimizer
  // files are not opened (sample and export need no optimizer.safetensors), and the precision
  // plugin's state (a loss scale, FP8 recipe) is not restored, nor warned about.
  const std::optional<StateEntry> config_entry = read_checkpoint_value(dir, "config");
  if (!config_entry)
    throw IOError(dir + ": the checkpoint holds no 'config', which fabric-train saves there");
  const std::string* config_text = std::get_if<std::string>(&config_entry->value());
  if (!config_text)
    throw IOError(dir + ": the state's 'config' is not the text fabric-train saves there");
  CheckpointModel c;
  // The data and init files need not exist any more: check the config without them.
  c.cfg = parse_train_config(
      *config_text, dir + "/state.json:config",
      {string_override("data.path", dir + "/state.json"), "data.labels=", "model.init="});
  if (const std::optional<StateEntry> vocab = read_checkpoint_value(dir, "vocab")) {
    const std::string* text = std::get_if<std::string>(&vocab->value());
    if (!text)
      throw IOError(dir + ": the state's 'vocab' is not the text fabric-train saves there");
    c.vocab_json = *text;
  }
  return c;
}

std::shared_ptr<nn::Module> build_model_as_fit_does(const TrainConfig& cfg, int64_t vocab_size,
                                                    precision::Precision& plugin) {
  std::shared_ptr<nn::Module> model;
  {
    // As fit builds it: the tensor context under bitsandbytes' ignore_modules, which refuses the
    // module one.
    precision::ContextGuard guard = cfg.fabric.bitsandbytes.ignore_modules.empty()
                                        ? plugin.module_init_context()
                                        : plugin.tensor_init_context();
    model = build_model(cfg, vocab_size);
  }
  plugin.convert_module(*model);
  if (cfg.lora.rank > 0) add_lora(*model, cfg);
  plugin.convert_module(*model);
  return model;
}

int64_t checkpoint_vocab_size(const CheckpointModel& c, const nn::StateDict& stored) {
  if (c.cfg.model.vocab_size > 0) return c.cfg.model.vocab_size;
  if (!c.vocab_json.empty())
    return data::CharVocab::from_json(c.vocab_json, "the checkpoint's vocab").size();
  if (const Tensor* wte = stored.find("transformer.wte.weight"); wte != nullptr && wte->dim() == 2)
    return wte->size(0);
  return 0;
}

void load_checkpoint_model(CheckpointModel& c, const std::string& dir) {
  SafetensorsFile f = load_safetensors(dir + "/model.safetensors");
  nn::StateDict sd;
  for (auto& [k, t] : f.tensors) sd.insert(k, t);
  // The run's plugin options too: ignore_modules and replace_layers decide which layers hold
  // quantized or FP8 weights.
  c.plugin = precision_plugin_for(c.cfg, DeviceType::cpu);
  if (!c.plugin)
    c.plugin = precision::make_precision(precision::canonical_precision(c.cfg.fabric.precision),
                                         DeviceType::cpu);
  c.vocab_size = checkpoint_vocab_size(c, sd);
  c.model = build_model_as_fit_does(c.cfg, c.vocab_size, *c.plugin);
  // Bitsandbytes' layers re-read their quant state from what was loaded (load_bnb_state_dict).
  precision::load_bnb_state_dict(*c.model, sd);
}

}  // namespace fabric
