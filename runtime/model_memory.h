// A model too large for this machine's memory, refused from its config before it is built.
#pragma once

#include <cstdint>

#include "runtime/train_config.h"

namespace fabric {

// A lower bound on the model's parameter count (the largest weight matrices only), in double so
// that no config overflows it. `vocab_size`: the gpt's, resolved from the data when the config
// gives 0.
double model_parameter_lower_bound(const TrainConfig::Model& model, int64_t vocab_size);

// Throws ConfigError, naming the keys that size the model, when even that lower bound as float32
// (build_model creates every parameter in float32 before any precision converts it) exceeds
// `memory_bytes`: building it would run the machine out of memory one layer at a time (the OOM
// killer, or std::bad_alloc deep inside construction) after minutes, instead of a message now.
void check_model_fits_memory(const TrainConfig::Model& model, int64_t vocab_size,
                             double memory_bytes);

// What this process may use at most: RAM plus swap, or less under an address-space limit
// (ulimit -v).
double usable_memory_bytes();

}  // namespace fabric
