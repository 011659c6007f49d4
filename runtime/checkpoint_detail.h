// What the full (checkpoint.cpp) and sharded (sharded_checkpoint*.cpp) checkpoint writers share:
// key checks, the state.json description of a state, plain values, fsync and the atomic commit.
// Internal to runtime/: it exposes nlohmann::json.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/checkpoint.h"
#include "tensor/safetensors.h"

namespace fabric::checkpoint_detail {

using nlohmann::json;

inline constexpr const char* kFormat = "fabric-checkpoint";
inline constexpr int kVersion = 1;

// IOError "checkpoint <path>: <what>".
[[noreturn]] void io_fail(const std::string& path, const std::string& what);
void fsync_path(const std::string& path, bool directory);
// ValueError for keys that are empty, '.', '..', hold '/', or name a reserved file.
void check_key(const std::string& key);

// state.json's "entries": per key its kind, plain values and precision state; `tensors` receives
// the plain tensors (for tensors.safetensors). `precision` is added under "precision" unless the
// state holds a plugin already or holds that key. Checks every key.
json describe_entries(const State& state, const precision::Precision* precision,
                      std::vector<std::pair<std::string, Tensor>>& tensors);
// The precision plugin's state of a checkpoint entry; IOError naming `path` when it is malformed.
precision::PrecisionState precision_state_from(const json& entry, const std::string& path);
// Restores the checkpoint's precision entry into `target` (checkpoint_precision.cpp): as saved when
// it is the same kind of state; a loss scale translated between GradScaler ("scale") and DeepSpeed's
// scaler ("cur_scale"); otherwise (another kind, or none saved) nothing, with a warning naming
// `path` appended to `warnings` (when set) for every case but the first.
void restore_precision_state(precision::Precision& target, const json& entry, const std::string& path,
                             std::vector<std::string>* warnings);
// `path` without trailing separators or "/." ("ckpt/" and "ckpt/." name the directory "ckpt"; "/"
// stays).
std::string without_trailing_separators(const std::string& path);

// A full checkpoint's state.json, validated: the object holding "format" and "entries". Reads
// `path`.old when an interrupted commit left only the previous checkpoint there; `dir` receives the
// directory actually read. IOError naming `path` when it is missing or malformed.
json read_description(const std::string& path, std::string& dir);

// The items of `key`'s entry that its filter keeps (all of them when `filters` has no such key).
std::vector<std::pair<std::string, Tensor>> apply_save_filter(
    const std::string& key, std::vector<std::pair<std::string, Tensor>> items,
    const SaveFilters& filters);

// With strict, KeyError for a key of `state` (other than a precision plugin) not in `entries`.
void check_strict_keys(const State& state, const json& entries, bool strict, const std::string& path);
// ValueError when the checkpoint's `kind` for `key` does not fit `target` (an int loads into a float).
void check_kind(const StateEntry& target, const std::string& key, const std::string& kind);
// Restores a plain entry (tensor, number, flag, string) or a precision plugin into `target`.
void restore_plain(StateEntry& target, const std::string& key, const json& entry, const SafetensorsFile& tensors,
                   const std::string& path, std::vector<std::string>* warnings = nullptr);
// Adds a plain entry the caller did not ask for (tensor or value) to `remainder`.
void add_plain_remainder(State& remainder, const std::string& key, const json& entry,
                         const SafetensorsFile& tensors, const std::string& path);

// ---- plain values (checkpoint_values.cpp; the encoding is described in checkpoint.h) ----------
// `s` with bytes outside printable ASCII as \xNN (for messages about keys that may not be text).
std::string printable(const std::string& s);
// ValueError "Fabric.save: <what> is not valid UTF-8 ..." when JSON cannot hold `s`.
void check_utf8(const std::string& s, const std::string& what);
// A float as JSON: a number, or {"float": "inf" | "-inf" | "nan"}.
json float_to_json(double v);
// A plain value as JSON (floats as float_to_json); check_utf8 on strings, naming `what`.
json value_to_json(const precision::StateValue& v, const std::string& what);
// Back from JSON: a flag, int64, float (numbers and the non-finite form) or string; IOError
// "checkpoint <path>: <what> holds ..." for anything else.
precision::StateValue value_from_json(const json& j, const std::string& what, const std::string& path);
// The "kind" of entry `key`; IOError when the entry is not an object or its kind is missing, not a
// string or unknown.
std::string entry_kind(const json& entry, const std::string& key, const std::string& path);
// The "value" of a plain entry of `kind` (int, float, bool, string), of that type (a float's may be
// saved as an integral number; it comes back as a double); IOError when missing or of another type.
precision::StateValue plain_value(const json& entry, const std::string& key, const std::string& kind,
                                  const std::string& path);

// IOError unless `path` is absent, an empty directory or a checkpoint (state.json or meta.json):
// a commit replaces it whole, so the user's own files there would be deleted.
void check_replaceable(const std::string& path);
// ValueError when the file `out_file` (the weights export and consolidate write) is inside a
// checkpoint (its folder holds state.json or meta.json): writing over one of its files would
// damage that checkpoint, as the export of `last` over its own optimizer.safetensors did, and a
// new file there goes with the folder at the checkpoint's next save. `command` begins it.
void check_not_a_checkpoint_file(const std::string& out_file, const std::string& command);
// Replaces `path` by the complete directory `tmp` in one step where the file system allows it
// (else through `path`.old, which load falls back to); check_replaceable first.
void commit_directory(const std::string& tmp, const std::string& path);
// The last step of every checkpoint write: `meta` as tmp/<file> (indented by `indent`), synced
// with the directory, then tmp committed as `path` (commit_directory). IOError names `path`.
void finish_directory(const std::string& tmp, const std::string& file, const json& meta, int indent,
                      const std::string& path);

}  // namespace fabric::checkpoint_detail
