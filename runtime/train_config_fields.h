// The fabric-train config's key table, private to runtime/: each Field binds one YAML key to a
// TrainConfig member with its type, bounds, choices and help. train_config.cpp parses, checks,
// dumps and documents through it; train_config_fields.cpp holds the table itself.
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

enum class Kind { integer, number, boolean, string, int_list, number_list, string_list };

const char* kind_name(Kind k);

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
// The top-level sections, in dump order.
const std::vector<std::string>& sections();
// The `deepspeed:` section's keys for the schema table (parsed by DeepSpeedConfig, not by
// fields()): key, type, default, meaning.
const std::vector<std::array<std::string, 4>>& deepspeed_schema();

}  // namespace fabric::train_config_detail
