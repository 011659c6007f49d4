// A finished checkpoint's model, built and loaded as fit built it: what `sample` and
// `export --dequantize` read (one CPU process; a sharded checkpoint is consolidated first).
#pragma once
#include <filesystem>
#include <memory>
#include <string>

#include "nn/module.h"
#include "precision/precision.h"
#include "runtime/train_config.h"

namespace fabric {

// A sharded checkpoint (FSDP's default layout), consolidated into a temporary full one for the
// commands that read a single process's files (removed with this object); a full checkpoint is
// used where it is.
class FullCheckpoint {
 public:
  explicit FullCheckpoint(const std::string& dir);
  ~FullCheckpoint();
  FullCheckpoint(const FullCheckpoint&) = delete;
  FullCheckpoint& operator=(const FullCheckpoint&) = delete;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::filesystem::path tmp_;
};

// A checkpoint's config and vocabulary, and (after load_checkpoint_model) its model and the
// precision plugin the model was converted with (its forward context is where the model runs).
struct CheckpointModel {
  TrainConfig cfg;
  std::string vocab_json;  // "" for data other than text
  int64_t vocab_size = 0;  // what the model was built with (checkpoint_vocab_size)
  std::shared_ptr<nn::Module> model;
  std::shared_ptr<precision::Precision> plugin;
};

// The config and vocabulary of the full checkpoint directory `dir` (no model yet). The data and
// init files the config names need not exist any more. IOError when `dir` holds no checkpoint or
// its state is not what fabric-train saves.
CheckpointModel read_checkpoint_config(const std::string& dir);

// The model of a run as fit's set-up builds it, on one CPU process: built under the precision
// plugin's init context, converted by the plugin (quantized or FP8 layers, a true dtype), LoRA
// adapters when the config has them, converted again as Fabric::setup does (which casts the
// adapters under a true precision and leaves converted layers alone). The init weights only give
// the layers their shapes.
std::shared_ptr<nn::Module> build_model_as_fit_does(const TrainConfig& cfg, int64_t vocab_size,
                                                    precision::Precision& plugin);

// The vocabulary size the run's model was built with: the config's model.vocab_size, else the
// text vocabulary's, else (token data, vocab_size 0: the data's largest id + 1) the rows of the
// stored embedding `transformer.wte.weight`. 0 for models without a vocabulary.
int64_t checkpoint_vocab_size(const CheckpointModel& c, const nn::StateDict& stored);

// Fills c.plugin, c.vocab_size and c.model from c.cfg and `dir`/model.safetensors, loaded into the
// converted model (bitsandbytes' layers re-read their quant state from it).
void load_checkpoint_model(CheckpointModel& c, const std::string& dir);

}  // namespace fabric
