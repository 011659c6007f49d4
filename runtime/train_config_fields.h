// The fabric-train config's key table, private to runtime/: each Field binds one YAML key to a
// TrainConfig member with its type, bounds, choices and help. train_config.cpp parses, checks,
// dumps and documents through it; train_config_fields.cpp holds the table itself and the lookups
// that suggest a key for a misspelt one.
#pragma once
#include <yaml-cpp/yaml.h>

#include <array>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "runtime/train_config.h"

namespace fabric::train_config_detail {

// devices: a string, a count or a list of indices (stored as the connector's Devices spec).
enum class Kind { integer, number, boolean, string, int_list, number_list, string_list, devices };

const char* kind_name(Kind k);

// A number as YAML 1.1 readers (PyYAML) and ours read it back to the same double: the shortest
// round-trip decimal (std::to_chars), always with a '.', and a signed exponent when it has one:
// 0.1, 16.0, 3.0e-04, 1.0e-08. PyYAML reads 1e-08 (no '.') as a string, and yaml-cpp's own
// 17-digit output gives 0.10000000000000001.
std::string format_number(double x);
// format_number as a YAML scalar node.
YAML::Node number_node(double x);

// fabric.timeout's bounds in seconds: a millisecond (FabricOptions::timeout's resolution) to a
// year.
inline constexpr double kMinTimeoutSeconds = 0.001;
inline constexpr double kMaxTimeoutSeconds = 365.0 * 24 * 3600;

// A parsed value before it lands in the struct.
struct Value {
  int64_t i = 0;
  double d = 0;
  bool b = false;
  std::string s;
  std::vector<int64_t> il;
  std::vector<double> dl;
  std::vector<std::string> sl;
};

struct Field {
  std::string section;  // "" for top-level scalars (loss)
  std::string key;
  Kind kind;
  std::string help;
  std::function<void(TrainConfig&, const Value&)> set;
  std::function<YAML::Node(const TrainConfig&)> get;
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  std::vector<std::string> choices;  // strings only
  std::vector<std::string> models;   // model section: the models the key applies to (empty: all)
  std::string path() const { return section.empty() ? key : section + "." + key; }
};

// Every key of the sections parsed field by field (all but deepspeed), in schema order.
const std::vector<Field>& fields();
// fabric.strategy names as the connector reads them (case-insensitive): fsdp or fsdp_cpu_offload;
// deepspeed or any deepspeed_stage_* name.
bool is_fsdp_strategy(const std::string& strategy);
bool is_deepspeed_strategy(const std::string& strategy);

// A block of fabric keys that one precision plugin reads (fabric.scaler.init_scale): its name, the
// plugin, and the canonical precisions whose plugin takes it.
struct PluginBlock {
  std::string name;
  std::string plugin;
  std::vector<std::string> precisions;
};
const std::vector<PluginBlock>& plugin_blocks();
// Whether the config's plugin reads the block: its precision is one of the block's, and (scaler)
// the strategy is no deepspeed one, whose loss scaler is DeepSpeed's.
bool plugin_block_used(const PluginBlock& block, const TrainConfig& c);
// The block a fabric key ("scaler.init_scale") belongs to; nullptr for a plain key.
const PluginBlock* plugin_block_of(const std::string& key);
// The top-level sections, in dump order.
const std::vector<std::string>& sections();
// The `deepspeed:` section's keys for the schema table (parsed by DeepSpeedConfig, not by
// fields()): key, type, default, meaning.
const std::vector<std::array<std::string, 4>>& deepspeed_schema();

// The deepspeed section's keys as paths under `deepspeed.` (fp16.enabled), and the blocks that
// hold them (fp16, bf16, zero_optimization), from deepspeed_schema() and the keys DeepSpeedConfig
// acts on (precision/deepspeed_config_keys.h).
bool is_deepspeed_key(const std::string& path);
bool is_deepspeed_block(const std::string& path);
// A documented DeepSpeed key this runtime does not use, or a key under one (optimizer.params.lr):
// accepted whatever its value, and named in one warning.
bool is_deepspeed_ignored(const std::string& path);
// The names one level under `prefix` ("" = the section itself).
std::vector<std::string> deepspeed_children(const std::string& prefix);

// Why a value the key knows of is refused ("" when it is not): optimizer.name lbfgs.
std::string refused_choice(const std::string& path, const std::string& value);

// "; did you mean 'X'?" when a value is only a typo away from one of `candidates`, else "".
std::string suggestion(const std::string& key, const std::vector<std::string>& candidates);
// "; did you mean 'X'?" for an unknown key, always naming a real one: a typo's correction, a key
// that contains it or shares a word with it (epochs -> max_epochs), the PyTorch name's counterpart
// (learning_rate -> lr); else the same key in another section (`elsewhere`: full paths, trainer.lr
// -> optimizer.lr); else the nearest spelling followed by every candidate (`label`: "keys of
// trainer").
std::string did_you_mean(const std::string& key, const std::vector<std::string>& candidates,
                         const std::string& label, const std::vector<std::string>& elsewhere = {});
// "a, b, c"
std::string join(const std::vector<std::string>& v);

}  // namespace fabric::train_config_detail
