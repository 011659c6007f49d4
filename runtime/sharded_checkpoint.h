// Sharded checkpoints (FSDP's default state_dict_type "sharded"): every rank writes its own pieces
// of the sharded parameters and optimizer state at once, so no rank ever holds the whole model,
// and any world size (or fabric-train consolidate, in one process) can read them back.
//
// Layout of the directory `path`:
//   meta.json                      rank 0: {"format": "fabric-sharded", "version": 1,
//                                  "world_size": N, "entries": {...}} where entries are those of a
//                                  full checkpoint's state.json (kinds, plain values, the
//                                  precision plugin's state; plain values encoded as there)
//                                  plus, for each module and optimizer
//                                  entry, its tensors: name -> {shape, dtype, pieces: [{rank,
//                                  offset, numel}]} (offset/numel: elements of the tensor
//                                  flattened in row-major order), and for optimizers the
//                                  param_groups and scalar state of the single-process layout.
//                                  Optimizer tensors are named as OptimizerState::flatten names
//                                  them ("state.<index>.<key>", "element": true for those cut by
//                                  the shards), the optimizer's name is under "optimizer", and a
//                                  module's tied names stored once are under "aliases"
//                                  (name -> stored name).
//   rank-<r>-of-<N>.safetensors    rank r's pieces, keyed "<entry>/<tensor name>/<offset>".
//   tensors.safetensors            rank 0: plain tensors of the state.
// Entries the strategy does not shard (another module, an optimizer over it) are written whole by
// rank 0 as single pieces. Writing is atomic as for full checkpoints: into a temporary sibling
// directory that replaces `path` once every rank has finished.
#pragma once
#include <string>
#include <vector>

#include "distributed/strategy.h"
#include "runtime/checkpoint.h"

namespace fabric {

// Whether `state` holds a module that `strategy` shards (strategy.sharded_module(m) != null).
bool holds_sharded_module(const State& state, const distributed::Strategy& strategy);

// Collective: every rank of the strategy calls it with the same state.
// `filters` (check_save_filters) select tensors by name: each rank calls a filter with its own
// pieces of a tensor (1-D, this rank's elements), so a filter must decide alike on every rank —
// by the name, as a LoRA filter does. A tensor kept by some ranks only is a ValueError (nothing
// written). An optimizer's param_groups (in meta.json) are always kept.
void save_sharded_checkpoint(const std::string& path, const State& state,
                             const precision::Precision* precision, distributed::Strategy& strategy,
                             const SaveFilters& filters = {});

// Whether `path` is a directory holding a sharded checkpoint's meta.json.
bool is_sharded_checkpoint(const std::string& path);

// Collective. Like load_checkpoint: modules and optimizers restored in place (each rank reads only
// the pieces overlapping its shards, from whichever rank files hold them: the world size may
// differ from the one that saved), plain values written back, the remainder returned. Modules and
// optimizers the strategy does not shard are assembled whole and loaded as usual. The precision
// state as load_checkpoint restores it (warnings likewise).
State load_sharded_checkpoint(const std::string& path, State& state, precision::Precision* precision, bool strict,
                              distributed::Strategy& strategy, std::vector<std::string>* warnings = nullptr);

// fabric-train consolidate DIR OUT: one process turns the sharded checkpoint DIR into a full one at
// OUT (the layout Fabric.save writes for a single process, loadable by any run). OUT, when it
// exists, must be a previous checkpoint or an empty directory (ValueError otherwise, nothing
// changed): the atomic commit replaces it.
void consolidate_checkpoint(const std::string& sharded_dir, const std::string& out_dir);

// fabric-train consolidate DIR OUT.safetensors: the full state_dict of the checkpoint's module
// (its "model" entry, or its only module) as one safetensors file, written atomically — what a
// single-process model loads with load_state_dict. ValueError when OUT is a directory or the
// module is ambiguous.
void consolidate_model_weights(const std::string& sharded_dir, const std::string& out_file);

}  // namespace fabric
