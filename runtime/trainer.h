// fabric-train's work: fit a model from a TrainConfig through Fabric, with checkpoints, metrics and
// exact resume; sample from and export a checkpoint.
//
// A run directory holds:
//   config.yaml                the resolved configuration
//   metrics.csv                lr, step, train_loss (and val_loss when validating): CSVLogger's
//                              layout, columns sorted as Lightning's;
//                              the header is written when the run starts (max_steps 0 leaves only it)
//   vocab.json                 text data: the character vocabulary
//   tensorboard/               event files (logger.tensorboard)
//   checkpoints/step-N/        every trainer.checkpoint_every steps (keep_last newest kept)
//   checkpoints/last/          the latest state, the resume point: written at the end (also for
//                              max_steps 0) and before each step-N, so no kill leaves a complete
//                              step-N newer than it
// Nothing is written before the data, the model (init weights, precision conversion, LoRA), the
// optimizer and one example through model and loss have been set up: a config that fails there is
// a ConfigError (fabric-train exits 2) and leaves no run directory behind. A resume also reads its
// checkpoint first: one that does not fit the config is a ConfigError and leaves the run as it was.
// A checkpoint directory (Fabric::save) holds model.safetensors (the model's state_dict),
// optimizer.safetensors, tensors.safetensors (scheduler) and state.json (step, RNG and data
// loader positions, the scaler state, the config and the vocabulary).
#pragma once
#include <cstdint>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "runtime/train_config.h"

namespace fabric {

struct FitOptions {
  std::ostream* out = &std::cout;
  std::optional<bool> interactive;  // progress bar in place; default: stdout is a terminal
};

struct FitResult {
  int64_t step = 0;  // optimizer steps done in total
  double last_loss = 0;
  double last_val_loss = 0;  // NaN when no validation ran
  std::string run_dir;
  std::string last_checkpoint;  // run_dir/checkpoints/last
  std::string sample;           // generated text, when asked for
};

// Trains from scratch into cfg.trainer.run_dir (created). An earlier run's checkpoints there are
// named in a warning on stderr and kept (only those of the same names are replaced; keep_last
// prunes only this run's); its metrics.csv starts anew.
FitResult fit(const TrainConfig& cfg, const FitOptions& options = {});
// What fit checks before it writes anything (the data, the model with its init weights, the
// precision conversion, LoRA, the optimizer, one example through model and loss), on one CPU
// process: ConfigError on a problem. Writes nothing; `fabric-train validate` runs it.
void check_fit_config(const TrainConfig& cfg);
// Continues the run in `run_dir` from checkpoints/last with its config.yaml plus `overrides`
// (e.g. trainer.max_steps=N to extend it), appending to its metrics.csv. Resumed float32 runs on
// one process give bit-identical losses to an uninterrupted run. `last` is the newest complete
// checkpoint (saved before each step-N); when it is missing or incomplete (deleted, or left so by a
// fabric-train that saved step-N first), the newest complete checkpoints/step-N is used instead
// (said on stderr).
// An override of a key the checkpoint restores (the optimizer's, trainer.seed, model.init:
// resume_overrides.h) is left out, with a warning on stderr. IOError when run_dir holds no
// config.yaml.
FitResult resume(const std::string& run_dir, const std::vector<std::string>& overrides, const FitOptions& options = {});

// `checkpoint` (sample and export): a checkpoint directory, a run directory (its checkpoints/last)
// or a full checkpoint's model.safetensors (checkpoint_named_by in run_directory.h).
// A GPT checkpoint trained on text: `tokens` characters generated after `prompt`. The model is built
// as fit builds it (the config's precision plugin converts it, LoRA adapters when lora.rank > 0),
// on one CPU process, and generates under the plugin's forward context.
std::string sample_checkpoint(const std::string& checkpoint_dir, const std::string& prompt, int64_t tokens,
                              double temperature = 1.0, int64_t top_k = 0, uint64_t seed = 0);
// Writes the model weights alone (the model's state_dict, with the keys stored: quantized layouts,
// FP8 metas, LoRA adapters) to out_file.
void export_checkpoint(const std::string& checkpoint_dir, const std::string& out_file);

}  // namespace fabric
