// fabric-train's sample and export of a finished checkpoint (a sharded one is consolidated first).
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <span>
#include <sstream>

#include "nn/gpt.h"
#include "precision/bitsandbytes_precision.h"
#include "precision/registry.h"
#include "runtime/checkpoint.h"
#include "runtime/prompt.h"
#include "runtime/run_directory.h"
#include "runtime/sample_stream.h"
#include "runtime/sharded_checkpoint.h"
#include "runtime/train_builders.h"
#include "runtime/trainer.h"
#include "tensor/factory.h"
#include "tensor/random.h"
#include "tensor/safetensors.h"

namespace fabric {
namespace fs = std::filesystem;

namespace {

data::CharVocab vocab_from_json(const std::string& text) { return data::CharVocab::from_json(text, "the checkpoint's vocab"); }

// The model and config a checkpoint directory describes, and the precision plugin the model was
// converted with (its forward context is where the model runs).
struct LoadedCheckpoint {
  TrainConfig cfg;
  std::shared_ptr<nn::Module> model;
  std::shared_ptr<precision::Precision> plugin;
  std::string vocab_json;
};

// The model of a run as fit's set-up builds it, on one CPU process: built under the precision
// plugin's init context, converted by the plugin (quantized or FP8 layers, a true dtype), LoRA
// adapters when the config has them, converted again as Fabric::setup does (which casts the
// adapters under a true precision and leaves converted layers alone). The weights are the
// checkpoint's, loaded next; the init ones only give the layers their shapes.
std::shared_ptr<nn::Module> build_model_as_fit_does(const TrainConfig& cfg, int64_t vocab_size,
                                                    precision::Precision& plugin) {
  std::shared_ptr<nn::Module> model;
  {
    precision::ContextGuard guard = plugin.module_init_context();
    model = build_model(cfg, vocab_size);
  }
  plugin.convert_module(*model);
  if (cfg.lora.rank > 0) add_lora(*model, cfg);
  plugin.convert_module(*model);
  return model;
}

// A sharded checkpoint (FSDP's default layout), consolidated into a temporary full one for the
// commands that read a single process's files; a full checkpoint is used where it is.
class FullCheckpoint {
 public:
  explicit FullCheckpoint(const std::string& dir) : dir_(dir) {
    if (!is_sharded_checkpoint(dir)) return;
    static int counter = 0;
    tmp_ = fs::temp_directory_path() /
           ("fabric-consolidated-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(tmp_);
    consolidate_checkpoint(dir, tmp_.string());
    dir_ = tmp_.string();
  }
  ~FullCheckpoint() {
    std::error_code ec;
    if (!tmp_.empty()) fs::remove_all(tmp_, ec);
  }
  FullCheckpoint(const FullCheckpoint&) = delete;
  FullCheckpoint& operator=(const FullCheckpoint&) = delete;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  fs::path tmp_;
};

// A GPT checkpoint trained on text, ready to sample from; anything else is refused with what it
// is instead.
LoadedCheckpoint load_for_sampling(const std::string& checkpoint_dir) {
  const FullCheckpoint full(checkpoint_dir);
  const std::string& dir = full.dir();
  if (!fs::exists(dir + "/state.json")) throw IOError(dir + ": not a checkpoint directory (no state.json)");
  // The config and vocabulary only: the precision plugin's state (a loss scale, FP8 recipe) is not
  // restored, nor warned about.
  State state{{"config", std::string()}};
  State rest = load_checkpoint(dir, state, /*precision=*/nullptr, /*strict=*/true);
  LoadedCheckpoint c;
  const std::string* config_entry = std::get_if<std::string>(&state.at("config").value());
  if (!config_entry) throw IOError(dir + ": the state's 'config' is not the text fabric-train saves there");
  const std::string config_text = *config_entry;
  // The data and init files need not exist any more: check the config without them.
  c.cfg = parse_train_config(config_text, dir + "/state.json:config",
                             {"data.path=" + dir + "/state.json", "data.labels=", "model.init="});
  if (auto it = rest.find("vocab"); it != rest.end()) {
    const std::string* vocab = std::get_if<std::string>(&it->second.value());
    if (!vocab) throw IOError(dir + ": the state's 'vocab' is not the text fabric-train saves there");
    c.vocab_json = *vocab;
  }
  // A checkpoint sample cannot read is a wrong command line (exit 2), like a prompt it cannot read.
  if (c.cfg.model.name != "gpt")
    throw ConfigError("sample: " + checkpoint_dir + " holds a " + c.cfg.model.name +
                     " model; sample generates text with a GPT trained on text data (data.kind: text)");
  if (c.vocab_json.empty())
    throw ConfigError("sample: " + checkpoint_dir + " holds a GPT trained on " + c.cfg.data.kind +
                     " data, whose token ids have no character vocabulary to read a prompt with or print the output "
                     "in; sample needs a GPT trained on text data (data.kind: text)");
  c.plugin = precision::make_precision(precision::canonical_precision(c.cfg.fabric.precision), DeviceType::cpu);
  c.model = build_model_as_fit_does(c.cfg, vocab_from_json(c.vocab_json).size(), *c.plugin);
  SafetensorsFile f = load_safetensors(dir + "/model.safetensors");
  nn::StateDict sd;
  for (auto& [k, t] : f.tensors) sd.insert(k, t);
  // Bitsandbytes' layers re-read their quant state from what was loaded (load_bnb_state_dict).
  precision::load_bnb_state_dict(*c.model, sd);
  return c;
}

}  // namespace

void stream_sample_checkpoint(std::ostream& out, const std::string& checkpoint_dir,
                              const std::string& prompt, int64_t tokens, double temperature,
                              int64_t top_k, uint64_t seed) {
  LoadedCheckpoint c = load_for_sampling(checkpoint_named_by(checkpoint_dir, "sample"));
  auto* gpt = dynamic_cast<nn::GPT*>(c.model.get());
  const data::CharVocab vocab = vocab_from_json(c.vocab_json);
  const std::vector<int64_t> ids = encode_prompt(vocab, prompt, "sample --prompt");
  gpt->eval();
  Generator gen(seed);
  // As the model ran in training: inside the plugin's forward context (an autocast region, the
  // compute dtype of quantized layers, FP8).
  precision::ContextGuard guard = c.plugin->forward_context();
  // model.vocab_size may exceed the text's characters: the ids past them name no character and
  // are never drawn.
  const int64_t chars = std::min<int64_t>(vocab.size(), gpt->config().vocab_size);
  // The vocabulary decodes id by id, so the pieces make the whole text's bytes.
  out << vocab.decode(std::span<const int64_t>(ids)) << std::flush;
  gpt->generate_each(from_vector(ids, {1, int64_t(ids.size())}), tokens, temperature,
                     top_k > 0 ? std::optional<int64_t>(top_k) : std::nullopt, &gen, chars,
                     [&](const std::vector<int64_t>& next) {
                       out << vocab.decode(std::span<const int64_t>(next)) << std::flush;
                     });
}

std::string sample_checkpoint(const std::string& checkpoint_dir, const std::string& prompt,
                              int64_t tokens, double temperature, int64_t top_k, uint64_t seed) {
  std::ostringstream text;
  stream_sample_checkpoint(text, checkpoint_dir, prompt, tokens, temperature, top_k, seed);
  return text.str();
}

void export_checkpoint(const std::string& checkpoint_dir, const std::string& out_file) {
  const FullCheckpoint full(checkpoint_named_by(checkpoint_dir, "export"));
  if (!fs::exists(full.dir() + "/model.safetensors"))
    throw IOError(checkpoint_dir + ": no model.safetensors (not a fabric-train checkpoint)");
  SafetensorsFile f = load_safetensors(full.dir() + "/model.safetensors");
  std::vector<std::pair<std::string, Tensor>> items(f.tensors.begin(), f.tensors.end());
  // OUT's folders are made as needed (as fit makes its run directory); one that is a file is an
  // IOError naming it.
  const fs::path parent = fs::path(out_file).parent_path();
  std::error_code ec;
  if (!parent.empty() && !fs::is_directory(parent) && !fs::create_directories(parent, ec))
    throw IOError("export: cannot create the folder '" + parent.string() + "' for " + out_file +
                  (ec ? ": " + ec.message() : std::string()));
  save_safetensors(out_file, items, {{"format", "pt"}});
}

}  // namespace fabric
