// fabric-train's sample and export (as stored, or --dequantize'd) of a finished checkpoint (a
// sharded one is consolidated first).
#include <algorithm>
#include <filesystem>
#include <functional>
#include <iostream>
#include <optional>
#include <span>
#include <sstream>

#include "autograd/grad_mode.h"
#include "nn/gpt.h"
#include "runtime/checkpoint_detail.h"
#include "runtime/checkpoint_model.h"
#include "runtime/datasets.h"
#include "runtime/dequantized_export.h"
#include "runtime/prompt.h"
#include "runtime/run_directory.h"
#include "runtime/sample_stream.h"
#include "runtime/train_builders.h"
#include "runtime/trainer.h"
#include "tensor/factory.h"
#include "tensor/random.h"
#include "tensor/safetensors.h"

namespace fabric {
namespace fs = std::filesystem;

namespace {

data::CharVocab vocab_from_json(const std::string& text) { return data::CharVocab::from_json(text, "the checkpoint's vocab"); }

// A GPT checkpoint trained on text, ready to sample from; anything else is refused with what it
// is instead.
CheckpointModel load_for_sampling(const std::string& checkpoint_dir) {
  const FullCheckpoint full(checkpoint_dir);
  const std::string& dir = full.dir();
  CheckpointModel c = read_checkpoint_config(dir);
  // A checkpoint sample cannot read is a wrong command line (exit 2), like a prompt it cannot read.
  if (c.cfg.model.name != "gpt")
    throw ConfigError("sample: " + checkpoint_dir + " holds a " + c.cfg.model.name +
                     " model; sample generates text with a GPT trained on text data (data.kind: text)");
  if (c.vocab_json.empty())
    throw ConfigError("sample: " + checkpoint_dir + " holds a GPT trained on " + c.cfg.data.kind +
                     " data, whose token ids have no character vocabulary to read a prompt with or print the output "
                     "in; sample needs a GPT trained on text data (data.kind: text)");
  load_checkpoint_model(c, dir);
  return c;
}

// OUT's folders are made as needed (as fit makes its run directory); one that is a file is an
// IOError naming it.
void create_parent_folders(const std::string& out_file) {
  const fs::path parent = fs::path(out_file).parent_path();
  std::error_code ec;
  if (!parent.empty() && !fs::is_directory(parent) && !fs::create_directories(parent, ec))
    throw IOError("export: cannot create the folder '" + parent.string() + "' for " + out_file +
                  (ec ? ": " + ec.message() : std::string()));
}

// An OUT that names a folder, not a file (`a/b/`, `a/.`, `a/..`): a bad command line, refused
// before anything is made (create_parent_folders would make a/b, and the write then refuse it).
void refuse_folder_syntax(const std::string& out_file) {
  const fs::path name = fs::path(out_file).filename();
  if (out_file.empty() || (!name.empty() && name != "." && name != "..")) return;
  throw ConfigError("export: the output path '" + out_file + "' names a folder (it ends in " +
                    (name.empty() ? std::string("'/'") : "'" + name.string() + "'") +
                    "); expected the path of a file to write, such as " +
                    (fs::path(out_file) / "model.safetensors").lexically_normal().string());
}

// A checkpoint directory export reads: IOError when it holds no model.safetensors.
void require_model_file(const std::string& dir, const std::string& checkpoint_dir) {
  if (!fs::exists(dir + "/model.safetensors"))
    throw IOError(checkpoint_dir + ": no model.safetensors (not a fabric-train checkpoint)");
}

}  // namespace

void generate_text(const CheckpointModel& loaded, const std::string& prompt,
                   const char* prompt_name, int64_t tokens, double temperature, int64_t top_k,
                   uint64_t seed, const std::function<void(const std::string&)>& emit) {
  auto* gpt = dynamic_cast<nn::GPT*>(loaded.model.get());
  if (gpt == nullptr || loaded.vocab_json.empty())
    throw Error("generate_text: the checkpoint holds a " + loaded.cfg.model.name +
                " model trained on " + loaded.cfg.data.kind +
                " data; generating text needs a GPT trained on text data (data.kind: text)");
  const data::CharVocab vocab = vocab_from_json(loaded.vocab_json);
  const std::vector<int64_t> ids = encode_prompt(vocab, prompt, prompt_name);
  Generator gen(seed);
  // As the model ran in training: inside the plugin's forward context (an autocast region, the
  // compute dtype of quantized layers, FP8), without gradients from before the context opens: an
  // FP8 region closed with grad mode on is a training step's and updates the scales.
  NoGradGuard no_grad;
  precision::ContextGuard guard = loaded.plugin->forward_context();
  // model.vocab_size may exceed the text's characters: the ids past them name no character and
  // are never drawn.
  const int64_t chars = std::min<int64_t>(vocab.size(), gpt->config().vocab_size);
  // The vocabulary decodes id by id, so the pieces make the whole text's bytes.
  emit(vocab.decode(std::span<const int64_t>(ids)));
  gpt->generate_each(from_vector(ids, {1, int64_t(ids.size())}), tokens, temperature,
                     top_k > 0 ? std::optional<int64_t>(top_k) : std::nullopt, &gen, chars,
                     [&](const std::vector<int64_t>& next) {
                       emit(vocab.decode(std::span<const int64_t>(next)));
                     });
}

void stream_sample_checkpoint(std::ostream& out, const std::string& checkpoint_dir,
                              const std::string& prompt, int64_t tokens, double temperature,
                              int64_t top_k, uint64_t seed) {
  CheckpointModel c = load_for_sampling(checkpoint_named_by(checkpoint_dir, "sample"));
  c.model->eval();
  generate_text(c, prompt, "sample --prompt", tokens, temperature, top_k, seed,
                [&](const std::string& piece) { out << piece << std::flush; });
}

std::string sample_checkpoint(const std::string& checkpoint_dir, const std::string& prompt,
                              int64_t tokens, double temperature, int64_t top_k, uint64_t seed) {
  std::ostringstream text;
  stream_sample_checkpoint(text, checkpoint_dir, prompt, tokens, temperature, top_k, seed);
  return text.str();
}

void export_checkpoint(const std::string& checkpoint_dir, const std::string& out_file) {
  refuse_folder_syntax(out_file);
  checkpoint_detail::check_not_a_checkpoint_file(out_file, "export");
  const FullCheckpoint full(checkpoint_named_by(checkpoint_dir, "export"));
  require_model_file(full.dir(), checkpoint_dir);
  SafetensorsFile f = load_safetensors(full.dir() + "/model.safetensors");
  std::vector<std::pair<std::string, Tensor>> items(f.tensors.begin(), f.tensors.end());
  create_parent_folders(out_file);
  save_safetensors(out_file, items, {{"format", "pt"}});
}

void export_dequantized_checkpoint(const std::string& checkpoint_dir, const std::string& out_file,
                                   DType dtype) {
  refuse_folder_syntax(out_file);
  checkpoint_detail::check_not_a_checkpoint_file(out_file, "export");
  const FullCheckpoint full(checkpoint_named_by(checkpoint_dir, "export"));
  require_model_file(full.dir(), checkpoint_dir);
  CheckpointModel c = read_checkpoint_config(full.dir());
  load_checkpoint_model(c, full.dir());
  // The float model of the same config (32-true, no adapters: they are merged) gives the keys.
  const std::shared_ptr<nn::Module> plain = build_model(c.cfg, c.vocab_size);
  std::vector<UntiedPair> untied;
  const nn::StateDict sd = dequantized_state_dict(*c.model, *plain, dtype, &untied);
  for (const UntiedPair& p : untied)
    std::cerr << "fabric-train: warning: export --dequantize: '" << p.first << "' and '" << p.second
              << "' are one tied tensor in a float " << c.cfg.model.name
              << ", but under fabric.precision " << c.cfg.fabric.precision
              << " they hold different values (the precision converted one apart from "
              << "the other); both are written as the run computed with them, so model.init of a "
                 "32-true run "
                 "refuses the file, and a model that ties them cannot load it without changing "
                 "what it computes\n";
  std::vector<std::pair<std::string, Tensor>> items(sd.begin(), sd.end());
  create_parent_folders(out_file);
  save_safetensors(out_file, items, {{"format", "pt"}});
}

}  // namespace fabric
