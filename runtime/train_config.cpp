// The fabric-train config: parsing (with file:line:col locations and "did you mean"), overrides,
// the cross-section checks, dumping and the schema text, all driven by the key table of
// train_config_fields.cpp.
#include "runtime/train_config.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include "precision/deepspeed_precision.h"
#include "precision/pyyaml_compat.h"
#include "precision/registry.h"
#include "runtime/connector.h"
#include "runtime/regular_file.h"
#include "runtime/train_config_fields.h"
#include "runtime/yaml_int.h"
#include "tensor/utf8.h"

namespace fabric {
namespace {
// "0xE9", for the message about a byte that is not UTF-8.
std::string hex_byte(char c) {
  static const char* digits = "0123456789ABCDEF";
  const auto b = static_cast<unsigned char>(c);
  return std::string("0x") + digits[b >> 4] + digits[b & 15];
}
}  // namespace
using namespace train_config_detail;

namespace {

std::string to_case(std::string s, int (*fn)(int)) {
  std::transform(s.begin(), s.end(), s.begin(), [fn](unsigned char ch) { return char(fn(ch)); });
  return s;
}

// Where a value came from: "file:line:col" or "--set key".
struct Located {
  YAML::Node node;
  std::string where;
  bool from_command_line() const { return where.rfind("--set ", 0) == 0; }
};

// `s` without its sign.
std::string unsigned_part(const std::string& s) {
  return s.substr(!s.empty() && (s[0] == '+' || s[0] == '-') ? 1 : 0);
}

// `08`, `-0_9`: digits after a leading 0 that are not all octal, which PyYAML (YAML 1.1) reads as a
// string (a leading 0 makes an integer octal) and strtoll or strtod as the decimal 8.
bool is_non_octal_with_leading_zero(const std::string& s) {
  const std::string u = unsigned_part(s);
  return u.size() > 1 && u[0] == '0' && u.find_first_not_of("0123456789_") == std::string::npos &&
         u.find_first_of("89") != std::string::npos;
}

std::string non_octal_message(const std::string& s, const std::string& expected) {
  return "'" + s + "' is a string to PyYAML (YAML 1.1), not " +
         (expected == "integer" ? "an " : "a ") + expected +
         ": a leading 0 makes an integer octal (digits 0-7; 010 is 8); write it without the "
         "leading 0";
}

// 0x or 0X after the sign: a hexadecimal integer PyYAML reads (0x10) or text strtod alone reads
// as a number (0x1p-3, 0x1.8, 0X10).
bool is_hexadecimal(const std::string& s) {
  const std::string u = unsigned_part(s);
  return u.size() > 1 && u[0] == '0' && (u[1] == 'x' || u[1] == 'X');
}

std::string hexadecimal_float_message(const std::string& s) {
  std::string decimal;
  char* end = nullptr;
  const double x = std::strtod(s.c_str(), &end);
  if (*end == '\0' && std::isfinite(x)) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, x);  // the shortest text of x
    decimal = " (" + std::string(buf, r.ptr) + ")";
  }
  return "'" + s +
         "' is a string to PyYAML (YAML 1.1), not a number: it reads hexadecimal only as an "
         "integer written with 0x (0x10), not as a float (0x1p-3) or with 0X; write it in "
         "decimal" +
         decimal;
}

class Parser {
 public:
  Parser(std::string name, std::vector<std::string> search_dirs)
      : name_(std::move(name)), search_dirs_(std::move(search_dirs)) {}

  // "where: key: what", the key left out where `where` already names it (a --set of that key:
  // "--set fabric.precision: what"); a file location, or a --set of another key (a block under
  // deepspeed, a key the check is about), keeps it.
  [[noreturn]] void fail(const std::string& where, const std::string& key, const std::string& what) const {
    const bool where_names_key = !key.empty() && where == "--set " + key;
    throw ConfigError(where + ": " + (key.empty() || where_names_key ? "" : key + ": ") + what);
  }
  std::string at(const YAML::Node& n) const {
    const YAML::Mark m = n.Mark();
    if (m.line < 0) return name_;
    return name_ + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
  }
  // A mapping key as text. YAML allows a list or a mapping as a key (`? [a, b]`, `{a: 1}: x`),
  // which no config key is: refused at the key (or at `where`, a --set) naming the mapping it is in
  // (`within`), rather than let yaml-cpp's conversion throw. A null key reads "null", as yaml-cpp
  // converts it.
  std::string key_text(const YAML::Node& key, const std::string& within, const std::string& where = "") const {
    if (key.IsScalar()) return key.Scalar();
    if (key.IsNull()) return "null";
    fail(where.empty() ? at(key) : where, within,
         std::string("a key must be a name, got a ") + (key.IsMap() ? "mapping" : "list"));
  }

  Value convert(const Field& f, const Located& v) const {
    const std::string key = f.path();
    auto type_error = [&](const std::string& got) {
      fail(v.where, key, std::string("expected ") + kind_name(f.kind) + ", got " + got);
    };
    auto scalar_text = [&](const YAML::Node& n) { return n.IsScalar() ? "'" + n.Scalar() + "'" : std::string("a ") + (n.IsMap() ? "mapping" : n.IsSequence() ? "list" : "null"); };
    auto as_int = [&](const YAML::Node& n) -> int64_t {
      if (!n.IsScalar()) type_error(scalar_text(n));
      const std::string s = n.Scalar();
      // As PyYAML (YAML 1.1) reads it: 010 is 8, 0x10 16, 0b11 3, 1_000 1000, 1:30 90.
      const std::optional<Yaml11Int> x = yaml11_int(s);
      if (!x) {
        if (is_non_octal_with_leading_zero(s)) fail(v.where, key, non_octal_message(s, "integer"));
        type_error(scalar_text(n));
      }
      if (!x->fits)
        fail(v.where, key,
             "'" + s + "' is past the range of a 64-bit integer; expected " + kind_name(f.kind) +
                 " from -9223372036854775808 to 9223372036854775807");
      return x->value;
    };
    auto past_double = [&](const std::string& s, double x) {
      fail(v.where, key,
           "'" + s + "' is " + (x == 0 ? "below the smallest" : "past the largest") +
               " magnitude a double holds (about " + (x == 0 ? "4.9e-324" : "1.8e308") +
               "); expected a finite number");
    };
    auto as_num = [&](const YAML::Node& n) -> double {
      if (!n.IsScalar()) type_error(scalar_text(n));
      const std::string s = n.Scalar();
      // An integer as PyYAML reads it first (010 is 8 there too), then the decimal forms strtod
      // reads (1e-3, which PyYAML leaves a string, is taken as the number it means).
      if (const std::optional<Yaml11Int> i = yaml11_int(s)) {
        if (std::isinf(i->approx)) past_double(s, i->approx);
        return i->fits ? double(i->value) : i->approx;
      }
      if (is_non_octal_with_leading_zero(s)) fail(v.where, key, non_octal_message(s, "number"));
      // strtod reads hexadecimal floats (0x1p-3), and 0X; PyYAML reads them as strings.
      if (is_hexadecimal(s)) fail(v.where, key, hexadecimal_float_message(s));
      char* end = nullptr;
      errno = 0;
      const double x = std::strtod(s.c_str(), &end);
      if (s.empty() || *end != '\0') type_error(scalar_text(n));
      // A number a double cannot hold: past its range it read as "not a number", and below its
      // smallest (1e-400) it read as 0, silently (an lr of 0 trains nothing).
      if (errno == ERANGE && (std::isinf(x) || x == 0)) past_double(s, x);
      if (!std::isfinite(x)) type_error(scalar_text(n));
      return x;
    };
    // Whole numbers in full (1048576, not 1.04858e+06); others as the stream writes them (0.9).
    auto num = [](double d) {
      std::ostringstream o;
      if (std::abs(d) < 9007199254740992.0 && d == std::floor(d)) o << int64_t(d);
      else o << d;
      return o.str();
    };
    // `got`: the value as the message shows it (an integer exactly, past 2^53 too).
    auto range = [&](double x, const std::string& got) {
      if (x < f.min || x > f.max) {
        std::ostringstream os;
        os << "must be ";
        if (std::isfinite(f.min) && std::isfinite(f.max)) os << "between " << num(f.min) << " and " << num(f.max);
        else if (std::isfinite(f.min)) os << ">= " << num(f.min);
        else os << "<= " << num(f.max);
        os << ", got " << got;
        fail(v.where, key, os.str());
      }
    };
    Value out;
    const YAML::Node& n = v.node;
    switch (f.kind) {
      case Kind::integer: out.i = as_int(n); range(double(out.i), std::to_string(out.i)); break;
      case Kind::number: out.d = as_num(n); range(out.d, num(out.d)); break;
      case Kind::boolean: {
        if (!n.IsScalar()) type_error(scalar_text(n));
        const std::optional<bool> b = precision::yaml11_bool(n.Scalar());
        if (!b) type_error(scalar_text(n));
        out.b = *b;
        break;
      }
      case Kind::string:
        if (!n.IsScalar()) type_error(scalar_text(n));
        out.s = n.Scalar();
        if (const std::string why = refused_choice(f.path(), out.s); !why.empty())
          fail(v.where, key, why);
        if (!f.choices.empty() && std::find(f.choices.begin(), f.choices.end(), out.s) == f.choices.end())
          fail(v.where, key, "'" + out.s + "' is not one of: " + join(f.choices) + suggestion(out.s, f.choices));
        break;
      case Kind::devices:
        // A list of indices, as FabricOptions' Devices takes it; the string forms as they are.
        if (n.IsSequence()) {
          std::vector<int> ids;
          for (const auto& e : n) {
            const int64_t id = as_int(e);
            if (id < 0 || id > std::numeric_limits<int>::max())
              fail(v.where, key, "'" + e.Scalar() + "' is not a device index (expected an integer >= 0)");
            ids.push_back(int(id));
          }
          if (ids.empty()) fail(v.where, key, "the list of device indices is empty");
          out.s = Devices(ids).spec;
        } else {
          if (!n.IsScalar()) type_error(scalar_text(n));
          out.s = n.Scalar();
        }
        break;
      case Kind::string_list:
        if (!n.IsSequence()) type_error(scalar_text(n));
        for (const auto& e : n) {
          if (!e.IsScalar()) type_error(scalar_text(e));
          out.sl.push_back(e.Scalar());
        }
        break;
      case Kind::int_list:
      case Kind::number_list:
        if (!n.IsSequence()) type_error(scalar_text(n));
        for (const auto& e : n) {
          if (f.kind == Kind::int_list) {
            out.il.push_back(as_int(e));
            range(double(out.il.back()), std::to_string(out.il.back()));
          } else {
            out.dl.push_back(as_num(e));
            range(out.dl.back(), num(out.dl.back()));
          }
        }
        break;
    }
    return out;
  }

  // The one YAML document of `text` (the file `file`, a config or a DeepSpeed file written as
  // `kind`). yaml-cpp's Load reads the first document only: a second one (after a `---`), whose
  // keys would be dropped without a word, is refused; an empty one (a trailing `---`) is nothing.
  static YAML::Node load_one_document(const std::string& text, const std::string& file,
                                      const std::string& kind) {
    const auto not_valid = [&](const YAML::Exception& e) {
      const std::string at =
          file + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
      // yaml-cpp's nesting guard says only "bad file".
      if (dynamic_cast<const YAML::DeepRecursion*>(&e))
        return ConfigError(
            at + ": not valid " + kind +
            ": lists and mappings nested too deeply for the YAML parser (a config needs a "
            "handful of levels)");
      return ConfigError(at + ": not valid " + kind + ": " + e.msg);
    };
    // Its text goes into every checkpoint's state.json, which holds UTF-8 only: refused here,
    // before a run trains and then cannot save.
    if (const size_t bad = utf8_invalid_at(text); bad < text.size()) {
      const size_t newline = bad == 0 ? std::string::npos : text.rfind('\n', bad - 1);
      const size_t line_start = newline == std::string::npos ? 0 : newline + 1;
      const auto line =
          1 + std::count(text.begin(), text.begin() + static_cast<ptrdiff_t>(bad), '\n');
      const size_t column = bad - line_start + 1;
      throw ConfigError(file + ":" + std::to_string(line) + ":" + std::to_string(column) +
                        ": not valid UTF-8 (byte " + hex_byte(text[bad]) + "); a " + kind +
                        " file is read as UTF-8 text");
    }
    std::vector<YAML::Node> docs;
    try {
      docs = YAML::LoadAll(text);
    } catch (const YAML::Exception& e) {
      throw not_valid(e);
    }
    for (size_t i = 1; i < docs.size(); ++i) {
      if (docs[i].IsNull()) continue;
      const YAML::Mark m = docs[i].Mark();
      throw ConfigError(
          file + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1) +
          ": a second YAML document (after a '---'); expected one document, the whole config (its "
          "keys would be ignored)");
    }
    if (docs.empty()) return YAML::Node();
    try {
      return precision::resolve_merge_keys(docs.front());  // `<<: *base`, as PyYAML reads it
    } catch (const YAML::Exception& e) {
      throw not_valid(e);
    }
  }

  // A key met a second time in the same mapping. YAML asks for unique keys; yaml-cpp keeps both
  // and the later one wins, as PyYAML's does (and configs rely on it: a repeated key overriding
  // one above it). It stays that way, said once per key, rather than silently.
  // `here`: where this occurrence is; `block`: the key holds a mapping, whose keys are merged.
  void note_duplicate(std::map<std::string, std::string>& seen, const std::string& name,
                      const std::string& here, const std::string& path, bool block) {
    const auto [it, fresh] = seen.emplace(name, here);
    if (fresh) return;
    duplicate_warnings_.push_back(
        here + ": " + path + " is given twice in the same mapping (first at " + it->second + "); " +
        (block ? "their keys are merged, a key in both taking the later value"
               : "the later value is used") +
        " (YAML expects each key once)");
  }

  TrainConfig parse(const std::string& text, const std::vector<std::string>& overrides,
                    const std::vector<EnvironmentSetting>& environment) {
    YAML::Node root = load_one_document(text, name_, "YAML");
    if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
    if (!root.IsMap()) fail(at(root), "", "the config must be a mapping of sections (fabric, model, data, ...)");
    // Collect every value with its location, then apply overrides on top. A null value stays in
    // `values` until its key is checked: it means "the default".
    std::map<std::string, Located> values;
    std::map<std::string, std::string> sections_seen;
    for (const auto& top : root) {
      const std::string sec = key_text(top.first, "");
      if (std::find(sections().begin(), sections().end(), sec) == sections().end())
        fail(at(top.first), sec, "unknown section" + did_you_mean(sec, sections(), "sections"));
      note_duplicate(sections_seen, sec, at(top.first), sec, top.second.IsMap());
      if (sec == "deepspeed") {
        deepspeed_where_ = at(top.first);
        if (top.second.IsNull()) continue;
        if (top.second.IsScalar()) {
          collect_deepspeed_file(top.second.Scalar(), at(top.second));
          continue;
        }
        if (!top.second.IsMap())
          fail(at(top.second), sec,
               "expected a mapping of keys, or the path of a DeepSpeed config file (.json or .yaml)");
        deepspeed_given_ = true;
        collect_deepspeed(top.second, "", "");
        continue;
      }
      if (sec == "loss") {
        values["loss"] = {top.second, at(top.second)};
        continue;
      }
      if (sec == "fsdp") fsdp_where_ = at(top.first);
      if (top.second.IsNull()) continue;
      if (!top.second.IsMap()) fail(at(top.second), sec, "expected a mapping of keys");
      std::map<std::string, std::string> keys_seen;
      for (const auto& kv : top.second) {
        const std::string name = key_text(kv.first, sec);
        const std::string path = sec + "." + name;
        // `scaler: {...}`; a dotted `scaler.init_scale: 8` is that key itself, as on a --set.
        const bool block = sec == "fabric" && name.find('.') == std::string::npos &&
                           plugin_block_of(name + ".") != nullptr;
        note_duplicate(keys_seen, path, at(kv.first), path, block && kv.second.IsMap());
        if (block)
          collect_plugin_block(values, path, kv.second, at(kv.first), "");
        else
          values[path] = {kv.second, at(kv.first)};
      }
    }
    for (const std::string& o : overrides) {
      const size_t eq = o.find('=');
      if (eq == std::string::npos || eq == 0)
        throw ConfigError("--set " + o + ": expected key.path=value, e.g. trainer.max_steps=10");
      FABRIC_CHECK(utf8_invalid_at(o) == o.size(), ConfigError, "--set ", o.substr(0, eq),
                   ": not valid UTF-8 (byte ", hex_byte(o[utf8_invalid_at(o)]),
                   "); values are UTF-8 text");
      const bool as_is = o[eq - 1] == ':';  // string_override's "key:=value"
      const std::string key = o.substr(0, as_is ? eq - 1 : eq), text_value = o.substr(eq + 1);
      YAML::Node v;
      try {
        // `key=` is an empty string; `key=null` (or ~) the default.
        v = as_is || text_value.empty() ? YAML::Node(text_value) : YAML::Load(text_value);
      } catch (const YAML::Exception& e) {
        throw ConfigError("--set " + key + ": the value is not valid YAML: " + e.msg);
      }
      if (key.rfind("deepspeed.", 0) == 0) {
        override_deepspeed(key.substr(10), v, "--set " + key);
        continue;
      }
      if (key.find('.') == std::string::npos && key != "loss")
        throw ConfigError("--set " + key + ": expected section.key (e.g. trainer.max_steps)");
      if (key.rfind("fabric.", 0) == 0 && key.find('.', 7) == std::string::npos &&
          plugin_block_of(key.substr(7) + ".") != nullptr) {
        collect_plugin_block(values, key, v, "--set " + key, "--set " + key);
        continue;
      }
      values[key] = {v, "--set " + key};
    }
    // Before anything is checked: every check that looks at the strategy (the fsdp and deepspeed
    // sections, the precision it takes) sees the one that runs.
    TrainConfig cfg;
    fold_environment(values, environment, cfg.from_environment);
    // The model's name decides which model keys apply.
    std::map<std::string, const Field*> by_path;
    for (const Field& f : fields()) by_path[f.path()] = &f;
    if (auto it = values.find("model.name"); it != values.end() && !it->second.node.IsNull())
      by_path["model.name"]->set(cfg, convert(*by_path["model.name"], it->second));
    for (const auto& [path, loc] : values) {
      auto it = by_path.find(path);
      const size_t dot = path.find('.');
      const std::string sec = dot == std::string::npos ? path : path.substr(0, dot);
      const std::string key = dot == std::string::npos ? path : path.substr(dot + 1);
      if (it == by_path.end() ||
          (!it->second->models.empty() &&
           std::find(it->second->models.begin(), it->second->models.end(), cfg.model.name) == it->second->models.end())) {
        // An explicit null is "the default", so it is no value for another model either: a bundled
        // mlp config turns into a gpt with --set model.name=gpt model.sizes=null.
        if (it != by_path.end() && loc.node.IsNull()) continue;
        if (it != by_path.end()) fail(loc.where, path, "does not apply to model '" + cfg.model.name + "'");
        if (std::find(sections().begin(), sections().end(), sec) == sections().end())
          fail(loc.where, path, "unknown section '" + sec + "'" + did_you_mean(sec, sections(), "sections"));
        std::vector<std::string> keys, elsewhere;
        for (const Field& f : fields()) {
          const bool applies = f.models.empty() || std::find(f.models.begin(), f.models.end(), cfg.model.name) != f.models.end();
          if (f.section == sec && applies) keys.push_back(f.key);
          else if (f.section != sec && applies) elsewhere.push_back(f.path());
        }
        fail(loc.where, path, "unknown key" + did_you_mean(key, keys, "keys of " + sec, elsewhere));
      }
      if (!loc.node.IsNull()) it->second->set(cfg, convert(*it->second, loc));
    }
    std::erase_if(values, [](const auto& kv) { return kv.second.node.IsNull(); });
    cfg.warnings.insert(cfg.warnings.end(), duplicate_warnings_.begin(), duplicate_warnings_.end());
    check(cfg, values);
    return cfg;
  }

  // A fabric key's value as the connector tells values apart: names in any case, a device list in
  // any of its spellings ([0, 1], '0,1'), a legacy precision as the value it stands for.
  static std::string comparable(const std::string& key, const Value& v) {
    if (key == "fabric.num_nodes") return std::to_string(v.i);
    if (key == "fabric.precision") {
      try {
        return precision::canonical_precision(v.s);
      } catch (const ValueError&) {
        return v.s;  // refused where the value is checked, at its key
      }
    }
    std::string s = to_case(v.s, ::tolower);
    if (key == "fabric.devices" && s.find_first_of(",[") != std::string::npos) {
      std::erase_if(s, [](char ch) { return ch == '[' || ch == ']' || ch == ' '; });
      if (s.ends_with(",")) s.pop_back();
      return "[" + s + "]";
    }
    return s;
  }

  // Lightning's LT_* variables (`fabric run`'s options) folded into `values` with the rule of its
  // connector for constructor arguments under the CLI: a variable replaces a key left at its
  // default; a key given another value that disagrees is an error. `from_environment`: the keys
  // set.
  void fold_environment(std::map<std::string, Located>& values,
                        const std::vector<EnvironmentSetting>& environment,
                        std::vector<std::string>& from_environment) const {
    // The variable, its key, and Lightning's default for the key (Fabric's constructor's) — a value
    // the config may hold besides the schema's own default (cpu, 1, 32-true) without choosing it.
    static const std::array<std::array<const char*, 3>, 5> keys = {
        {{"LT_ACCELERATOR", "fabric.accelerator", "auto"},
         {"LT_STRATEGY", "fabric.strategy", "auto"},
         {"LT_DEVICES", "fabric.devices", "auto"},
         {"LT_NUM_NODES", "fabric.num_nodes", "1"},
         {"LT_PRECISION", "fabric.precision", "32-true"}}};
    const TrainConfig defaults;
    for (const EnvironmentSetting& e : environment) {
      const auto row =
          std::find_if(keys.begin(), keys.end(), [&](const auto& k) { return e.variable == k[0]; });
      if (row == keys.end())
        throw ValueError("parse_train_config: environment variable '" + e.variable +
                         "' is none of LT_ACCELERATOR, LT_STRATEGY, LT_DEVICES, LT_NUM_NODES, "
                         "LT_PRECISION");
      const std::string key = (*row)[1];
      const Field& field = *std::find_if(fields().begin(), fields().end(),
                                         [&](const Field& f) { return f.path() == key; });
      const Located from_env{YAML::Node(e.value), e.variable + " (environment)"};
      // A value the key cannot take is refused here, at the variable.
      const std::string wanted = comparable(key, convert(field, from_env));
      const auto given = values.find(key);
      if (given != values.end() && !given->second.node.IsNull()) {
        const Value config_value = convert(field, given->second);
        const std::string value = comparable(key, config_value);
        if (value == wanted) continue;  // they agree: the config's own spelling stays
        const std::string schema_default =
            comparable(key, convert(field, {field.get(defaults), ""}));
        const std::string lightning_default =
            comparable(key, convert(field, {YAML::Node((*row)[2]), ""}));
        if (value != schema_default && value != lightning_default)
          fail(given->second.where, key,
               "the config has '" +
                   (key == "fabric.num_nodes" ? std::to_string(config_value.i) : config_value.s) +
                   "' but it conflicts with the value " + e.variable + "=" + e.value +
                   " set in the environment (as Lightning's `fabric run` CLI sets it). Remove it "
                   "either from the config (or the --set) or from the environment, or make them "
                   "agree");
      }
      values[key] = from_env;
      from_environment.push_back(key + "=" + e.value + " (" + e.variable + ")");
    }
  }

  // A precision plugin's block of fabric keys (`path`: fabric.scaler) given as a mapping, recorded
  // key by key (fabric.scaler.init_scale) with their locations (`where`: all of them at a --set, or
  // "" for each its own place in the file). A null block means its defaults: it drops the keys a
  // file gave before a --set of it.
  void collect_plugin_block(std::map<std::string, Located>& values, const std::string& path,
                            const YAML::Node& node, const std::string& block_where,
                            const std::string& where) {
    plugin_block_where_[path] = block_where;
    if (node.IsNull()) {
      std::erase_if(values, [&](const auto& kv) { return kv.first.rfind(path + ".", 0) == 0; });
      return;
    }
    if (!node.IsMap()) {
      std::vector<std::string> keys;
      for (const Field& f : fields())
        if (f.section == "fabric" && f.key.rfind(path.substr(7) + ".", 0) == 0)
          keys.push_back(f.key.substr(path.size() - 6));
      fail(block_where, path, "expected a mapping of the plugin's options (" + join(keys) + ")");
    }
    std::map<std::string, std::string> keys_seen;
    for (const auto& kv : node) {
      const std::string inner = path + "." + key_text(kv.first, path);
      const std::string here = where.empty() ? at(kv.first) : where;
      note_duplicate(keys_seen, inner, here, inner, false);
      values[inner] = {kv.second, here};
    }
  }

  // Records the deepspeed keys under `node` (a mapping at `prefix`) with their locations (`where`:
  // all of them at a --set, or "" for each its own place in the file). Nulls mean the default.
  // A plain scalar that PyYAML reads as an integer of another form (010, 0x10, 1_000, 1:30) as
  // its decimal value: the DeepSpeed section's reader takes decimal text only.
  static YAML::Node decimal_if_yaml11_int(const YAML::Node& n) {
    if (!n.IsScalar() || n.Tag() != "?") return n;
    const std::optional<Yaml11Int> x = yaml11_int(n.Scalar());
    return x && x->fits ? YAML::Node(x->value) : n;
  }

  void collect_deepspeed(const YAML::Node& node, const std::string& prefix, const std::string& where) {
    std::map<std::string, std::string> keys_seen;
    for (const auto& kv : node) {
      const std::string name = key_text(kv.first, prefix.empty() ? "deepspeed" : "deepspeed." + prefix, where);
      const std::string path = prefix.empty() ? name : prefix + "." + name;
      const std::string here = where.empty() ? at(kv.first) : where;
      note_duplicate(keys_seen, name, here, "deepspeed." + path,
                     is_deepspeed_block(path) && kv.second.IsMap());
      if (!is_deepspeed_key(path) && !is_deepspeed_block(path) && !is_deepspeed_ignored(path))
        fail(here, "deepspeed." + path,
             "unknown key" + did_you_mean(name, deepspeed_children(prefix),
                                          "keys of deepspeed" + (prefix.empty() ? "" : "." + prefix)));
      if (is_deepspeed_block(path) && kv.second.IsMap()) {
        collect_deepspeed(kv.second, path, where);
      } else if (!kv.second.IsNull()) {
        check_nested_keys(kv.second, "deepspeed." + path, where);
        deepspeed_values_[path] = {decimal_if_yaml11_int(kv.second), here};
      }
    }
  }

  // `deepspeed: ds_config.json`: a DeepSpeed config file (JSON or YAML), found as the other file
  // keys are (find_file), read as if its keys were written in the section; its errors name the
  // file.
  void collect_deepspeed_file(const std::string& path, const std::string& where) {
    const std::optional<std::string> found = find_file(path);
    if (!found) fail(where, "deepspeed", "no such file '" + path + "'" + looked_in(path));
    const std::string kind = non_regular_file_kind(*found);
    if (!kind.empty())
      fail(where, "deepspeed", "'" + *found + "' is " + kind + ", expected a regular file");
    std::ifstream in(*found);
    if (!in) fail(where, "deepspeed", "cannot read '" + *found + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    // A JSON file is YAML, but for the tabs JSON files are often indented with, which YAML refuses
    // there; a JSON string holds no raw tab, so they are all whitespace.
    const bool yaml = found->size() > 5 && (found->ends_with(".yaml") || found->ends_with(".yml"));
    if (!yaml) std::replace(text.begin(), text.end(), '\t', ' ');
    const YAML::Node root = load_one_document(text, *found, yaml ? "YAML" : "JSON");
    if (!root.IsMap())
      fail(where, "deepspeed", "'" + *found + "' holds no mapping of DeepSpeed keys");
    deepspeed_given_ = true;
    // Locations inside it are the file's own.
    const std::string config_name = std::exchange(name_, *found);
    try {
      collect_deepspeed(root, "", "");
    } catch (...) {
      name_ = config_name;
      throw;
    }
    name_ = config_name;
  }

  // The keys inside a deepspeed value (a mapping or list under a key, which DeepSpeedConfig reads
  // as JSON, whose keys are strings): names too, refused where they stand (or at `where`, a --set).
  void check_nested_keys(const YAML::Node& n, const std::string& path, const std::string& where) const {
    if (n.IsMap()) {
      for (const auto& kv : n) check_nested_keys(kv.second, path + "." + key_text(kv.first, path, where), where);
    } else if (n.IsSequence()) {
      for (const auto& e : n) check_nested_keys(e, path, where);
    }
  }

  // --set deepspeed.<path>=v: replaces that key (or block) of the file's section.
  void override_deepspeed(const std::string& path, const YAML::Node& v, const std::string& where) {
    // The first unknown component names the error.
    std::string prefix;
    for (size_t start = 0;;) {
      const size_t dot = path.find('.', start);
      const std::string name = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      const std::string here = prefix.empty() ? name : prefix + "." + name;
      if (is_deepspeed_ignored(here)) break;  // anything may be under it
      if (!is_deepspeed_key(here) && !is_deepspeed_block(here))
        fail(where, "deepspeed." + here,
             "unknown key" + did_you_mean(name, deepspeed_children(prefix),
                                          "keys of deepspeed" + (prefix.empty() ? "" : "." + prefix)));
      if (dot == std::string::npos) break;
      prefix = here;
      start = dot + 1;
    }
    // The key, what is under it, and a scalar given where a block of it belongs all go.
    std::erase_if(deepspeed_values_, [&](const auto& kv) {
      const std::string& p = kv.first;
      return p == path || p.rfind(path + ".", 0) == 0 || path.rfind(p + ".", 0) == 0;
    });
    if (v.IsNull()) return;
    deepspeed_given_ = true;
    if (deepspeed_where_.empty()) deepspeed_where_ = where;
    if (is_deepspeed_block(path) && v.IsMap()) {
      collect_deepspeed(v, path, where);
    } else {
      check_nested_keys(v, "deepspeed." + path, where);
      deepspeed_values_[path] = {v, where};
    }
  }

  void check(TrainConfig& c, const std::map<std::string, Located>& values) {
    auto where = [&](const std::string& path) {
      auto it = values.find(path);
      return it == values.end() ? name_ : it->second.where;
    };
    fill_named_defaults(c, values);
    try {
      // The legacy values (16, bf16) resolve with the reference's warning, said once at load.
      std::string warning;
      c.fabric.precision = precision::canonical_precision(c.fabric.precision, &warning);
      if (!warning.empty()) c.warnings.push_back(where("fabric.precision") + ": " + warning);
    } catch (const ValueError& e) {
      fail(where("fabric.precision"), "fabric.precision", e.what());
    }
    check_plugin_options(c, values, where);
    // The connector's own registry and devices parser, so that a bad name stops here (exit 2, at
    // the key) rather than when Fabric is built. How many devices exist is the connector's
    // business at run time: -1 passes here.
    const auto& strategies = known_strategies();
    if (std::find(strategies.begin(), strategies.end(), to_case(c.fabric.strategy, ::tolower)) == strategies.end())
      fail(where("fabric.strategy"), "fabric.strategy",
           "'" + c.fabric.strategy + "' is not a strategy name" +
               suggestion(to_case(c.fabric.strategy, ::tolower), strategies) + " (one of: " + join(strategies) + ")");
    // Lightning's names mps and tpu pass the field's choices, but this runtime has neither on any
    // machine: refused here, at the key, so that validate (which leaves the accelerator out of its
    // connector check: a cuda config validates without a GPU) refuses what fit refuses.
    if (const std::string acc = to_case(c.fabric.accelerator, ::tolower);
        acc == "mps" || acc == "tpu")
      fail(where("fabric.accelerator"), "fabric.accelerator",
           "`accelerator='" + acc + "'` is not available: this runtime supports 'cpu' and 'cuda'");
    try {
      (void)parse_devices(c.fabric.devices, 1, c.fabric.accelerator);
    } catch (const ValueError& e) {
      fail(where("fabric.devices"), "fabric.devices", e.what());
    }
    if (c.trainer.max_steps < 0 && c.trainer.max_epochs < 0) {
      // Lightning's Trainer: max_epochs not set (an explicit null is not set either) and no
      // max_steps train 1000 epochs, said once. An explicit -1 there means no epoch limit, which
      // a run of a known number of steps (the schedule's length, the progress) cannot take.
      const auto epochs = values.find("trainer.max_epochs");
      if (epochs != values.end() && !epochs->second.node.IsNull())
        fail(where("trainer.max_epochs"), "trainer.max_epochs",
             "-1 (no epoch limit) needs trainer.max_steps >= 0; leave max_epochs out for "
             "1000 epochs, as Lightning's Trainer");
      c.trainer.max_epochs = 1000;
      c.warnings.push_back(
          name_ +
          ": `trainer.max_epochs` was not set. Setting it to 1000 epochs. To train for a "
          "number of optimizer steps instead, set `trainer.max_steps`.");
    }
    if (c.data.path.empty()) fail(where("data.path"), "data.path", "the data file is required");
    for (auto [key, path] : {std::pair{"data.path", &c.data.path}, std::pair{"data.labels", &c.data.labels},
                             std::pair{"model.init", &c.model.init}}) {
      if (path->empty()) continue;
      const std::optional<std::string> found = find_file(*path);
      if (!found) fail(where(key), key, "no such file '" + *path + "'" + looked_in(*path));
      // Images data may be a directory of IDX files; nothing else reads a directory, and a FIFO or
      // device would block or never end when the data is read.
      const std::string kind = non_regular_file_kind(*found);
      if (!kind.empty() && !(key == std::string("data.path") && c.data.kind == "images" && kind == "a directory"))
        fail(where(key), key, "'" + *found + "' is " + kind + ", expected a regular file");
      *path = *found;
    }
    if (c.model.name == "mlp" && c.model.sizes.size() < 2)
      fail(where("model.sizes"), "model.sizes", "needs at least 2 entries {in, out}");
    if (c.model.name == "gpt" && c.model.n_embd % c.model.n_head != 0)
      fail(where("model.n_embd"), "model.n_embd", "must be a multiple of model.n_head (" + std::to_string(c.model.n_head) + ")");
    if (c.model.name == "cnn" && c.model.image_size % 4 != 0)
      fail(where("model.image_size"), "model.image_size", "must be divisible by 4");
    if (c.optimizer.betas.size() != 2) fail(where("optimizer.betas"), "optimizer.betas", "expected two numbers [beta1, beta2]");
    for (double b : c.optimizer.betas)  // the key table's range is closed; Adam's is [0, 1)
      if (b >= 1)
        fail(where("optimizer.betas"), "optimizer.betas",
             "each beta must be in [0, 1) (1 would never forget the first gradient), got " + format_number(b));
    check_rprop(c, where);
    check_half_eps(c, where);
    if (c.optimizer.name == "sgd" && c.optimizer.nesterov && (c.optimizer.momentum <= 0 || c.optimizer.dampening != 0))
      fail(where("optimizer.nesterov"), "optimizer.nesterov",
           "Nesterov momentum needs optimizer.momentum > 0 and optimizer.dampening 0, got momentum " +
               format_number(c.optimizer.momentum) + " and dampening " + format_number(c.optimizer.dampening));
    // An empty run directory would put config.yaml and checkpoints/ at the filesystem root.
    if (c.trainer.run_dir.empty())
      fail(where("trainer.run_dir"), "trainer.run_dir", "must not be empty (a directory for config.yaml, metrics.csv and checkpoints/)");
    if (c.trainer.clip_grad_norm > 0 && c.trainer.clip_grad_val > 0)
      fail(where("trainer.clip_grad_val"), "trainer.clip_grad_val", "set at most one of clip_grad_norm and clip_grad_val");
    if (c.model.name == "gpt" && (c.data.kind == "images"))
      fail(where("data.kind"), "data.kind", "the gpt model needs text, tokens or tensors data");
    if (c.model.name == "cnn" && c.data.kind != "images" && c.data.kind != "tensors")
      fail(where("data.kind"), "data.kind", "the cnn model needs images or tensors data");
    // A GPT and text/tokens data train on token ids, class indices that only cross_entropy takes;
    // the element-wise losses would fail (or broadcast) on the first batch instead.
    if (c.loss != "cross_entropy" &&
        (c.model.name == "gpt" || c.data.kind == "text" || c.data.kind == "tokens")) {
      const std::string why = c.model.name == "gpt" ? "model.name gpt" : "data.kind " + c.data.kind;
      fail(where("loss"), "loss",
           c.loss + " needs float targets shaped like the model's output, but " + why +
               " trains on token ids (class indices): use loss: cross_entropy");
    }
    check_plateau_validates(c, where);  // before the check below: says why validation is needed
    if (c.trainer.val_every > 0 && c.data.val_fraction <= 0)
      fail(where("trainer.val_every"), "trainer.val_every", "needs data.val_fraction > 0");
    check_scheduler(c, where);
    warn_of_an_unused_warmup(c, values);
    warn_of_an_unused_sample(c, values);
    resolve_stage(c, values);
    check_deepspeed(c, values);
    check_fsdp(c, values);
  }

  // scheduler.warmup_steps is cosine's and constant's: given to another schedule (plateau, whose
  // reductions a warm-up setting the base lr each step would undo, or a torch schedule), it is
  // said and left out.
  static void warn_of_an_unused_warmup(TrainConfig& c,
                                       const std::map<std::string, Located>& values) {
    const auto& s = c.scheduler;
    const auto it = values.find("scheduler.warmup_steps");
    if (it == values.end() || s.warmup_steps <= 0 || s.name == "cosine" || s.name == "constant")
      return;
    c.warnings.push_back(it->second.where + ": scheduler.warmup_steps is ignored: scheduler.name " +
                         s.name + " has no warm-up (cosine and constant have one)");
  }

  // trainer.sample_tokens (or sample_prompt) given for a run that generates no text: said, as an
  // unused warm-up is, rather than silently dropped.
  static void warn_of_an_unused_sample(TrainConfig& c,
                                       const std::map<std::string, Located>& values) {
    const auto it = values.find("trainer.sample_tokens");
    if (it == values.end() || c.trainer.sample_tokens <= 0 ||
        (c.model.name == "gpt" && c.data.kind == "text"))
      return;
    c.warnings.push_back(
        it->second.where +
        ": trainer.sample_tokens is ignored: a run generates text at its end only " +
        "for a gpt on text data (data.kind: text); this one is a " + c.model.name + " on " +
        c.data.kind + " data");
  }

  // A key several optimizers or schedulers share, not given, takes the named one's PyTorch default
  // where that differs from the key's (RMSprop's alpha 0.99, ASGD's 0.75): the resolved value is
  // what config.yaml writes, so a resume reads the same.
  static void fill_named_defaults(TrainConfig& c, const std::map<std::string, Located>& values) {
    auto given = [&](const char* path) { return values.count(path) > 0; };
    if (c.optimizer.name == "asgd" && !given("optimizer.alpha")) c.optimizer.alpha = 0.75;
    if (c.scheduler.name == "cyclic") {
      if (!given("scheduler.mode")) c.scheduler.mode = "triangular";
      if (!given("scheduler.gamma")) c.scheduler.gamma = 1.0;
      if (!given("scheduler.base_momentum")) c.scheduler.base_momentum = 0.8;
      if (!given("scheduler.max_momentum")) c.scheduler.max_momentum = 0.9;
    }
  }

  // The precision plugin's blocks (fabric.scaler, ...). A block given for a precision whose plugin
  // does not read it is said once and dropped (so that a resume under another precision still
  // reads its run's config); the plugins' own bounds are checked here, at the key.
  template <class Where>
  void check_plugin_options(TrainConfig& c, const std::map<std::string, Located>& values,
                            const Where& where) {
    const TrainConfig defaults;
    for (const PluginBlock& b : plugin_blocks()) {
      std::vector<std::string> given;
      for (const auto& [path, loc] : values)
        if (path.rfind("fabric." + b.name + ".", 0) == 0) given.push_back(path);
      if (given.empty()) continue;
      // Where the block was given (its key, or the --set of one of its keys).
      const std::string path = "fabric." + b.name;
      const auto block_at = plugin_block_where_.find(path);
      const std::string here =
          block_at != plugin_block_where_.end() ? block_at->second : where(given.front());
      const bool used = std::find(b.precisions.begin(), b.precisions.end(), c.fabric.precision) !=
                        b.precisions.end();
      if (!used) {
        c.warnings.push_back(here + ": fabric." + b.name + " is not used: it configures " +
                             b.plugin + " (fabric.precision " + join(b.precisions) +
                             "), and fabric.precision is " + c.fabric.precision);
        if (b.name == "scaler") c.fabric.scaler = defaults.fabric.scaler;
        if (b.name == "transformer_engine")
          c.fabric.transformer_engine = defaults.fabric.transformer_engine;
        if (b.name == "bitsandbytes") c.fabric.bitsandbytes = defaults.fabric.bitsandbytes;
        continue;
      }
      // A block at its defaults asks for nothing (fabric-train writes one for every 16-mixed run:
      // a resume of it under deepspeed must not trip here).
      if (b.name == "scaler" && c.fabric.scaler != defaults.fabric.scaler &&
          is_deepspeed_strategy(c.fabric.strategy))
        fail(here, path,
             "under fabric.strategy " + c.fabric.strategy +
                 " the loss scaler is DeepSpeed's: set deepspeed.fp16.initial_scale_power, "
                 "loss_scale_window, "
                 "hysteresis and min_loss_scale instead");
    }
    const auto& s = c.fabric.scaler;
    // The scale is a float32, as torch's: a value that rounds to 0 or inf there is no scale.
    const float init_scale = static_cast<float>(s.init_scale);
    if (!(init_scale > 0) || !std::isfinite(init_scale))
      fail(where("fabric.scaler.init_scale"), "fabric.scaler.init_scale",
           "must be > 0 and within float32's range (the first loss scale, a float32), got " +
               format_number(s.init_scale));
    if (s.growth_factor <= 1)
      fail(where("fabric.scaler.growth_factor"), "fabric.scaler.growth_factor",
           "must be > 1 (the scale grows by it), got " + format_number(s.growth_factor));
    if (!(s.backoff_factor > 0 && s.backoff_factor < 1))
      fail(where("fabric.scaler.backoff_factor"), "fabric.scaler.backoff_factor",
           "must be in (0, 1) (the scale shrinks by it), got " + format_number(s.backoff_factor));
    const std::string& dtype = c.fabric.bitsandbytes.dtype;
    if (c.fabric.precision.rfind("int8", 0) == 0 && !dtype.empty() && dtype != "float16")
      fail(where("fabric.bitsandbytes.dtype"), "fabric.bitsandbytes.dtype",
           c.fabric.precision + " computes in float16 only (as bitsandbytes' int8 matmul), got " +
               dtype);
  }

  // Under 16-true the parameters are float16, and the optimizers whose half step is torch's tensor
  // ops (optim/cpu_param_loop.h) add eps in that dtype: an eps below float16's smallest subnormal
  // (2^-24; up to 2^-25 rounds to 0) is 0 there, and a parameter whose gradient is 0 gets 0/0 =
  // NaN at its first step, as in torch. Refused naming the key rather than training into NaN.
  template <class Where>
  void check_half_eps(const TrainConfig& c, const Where& where) {
    const std::string& name = c.optimizer.name;
    if (c.fabric.precision != "16-true") return;
    if (name != "nadam" && name != "radam" && name != "adamax" && name != "adadelta") return;
    const double eps = c.optimizer.eps.value_or(name == "adadelta" ? 1e-6 : 1e-8);
    if (eps > std::ldexp(1.0, -25)) return;
    fail(
        where("optimizer.eps"), "optimizer.eps",
        format_number(eps) + (c.optimizer.eps ? "" : " (" + name + "'s default)") +
            " is 0 in float16, the parameters' dtype under fabric.precision 16-true; " + name +
            "'s step adds eps in that dtype (as torch's), so a parameter whose gradient is 0 would "
            "get 0/0 = NaN. Set optimizer.eps to 6e-8 or more (1e-4 is usual in half precision), "
            "or "
            "train under bf16-true or 16-mixed");
  }

  // Rprop's pairs, as torch.optim.Rprop checks them (the key table's ranges say >= 0 only).
  template <class Where>
  void check_rprop(const TrainConfig& c, const Where& where) {
    const auto& o = c.optimizer;
    for (const char* key : {"optimizer.etas", "optimizer.step_sizes"})
      if ((key == std::string("optimizer.etas") ? o.etas : o.step_sizes).size() != 2)
        fail(where(key), key,
             std::string("expected two numbers ") +
                 (key == std::string("optimizer.etas") ? "[etaminus, etaplus]" : "[min, max]"));
    if (!(o.etas[0] > 0 && o.etas[0] < 1 && o.etas[1] > 1))
      fail(where("optimizer.etas"), "optimizer.etas",
           "expected 0 < etaminus < 1 < etaplus (the step shrinks when the gradient's sign flips "
           "and grows while it keeps), got [" +
               format_number(o.etas[0]) + ", " + format_number(o.etas[1]) + "]");
    if (o.step_sizes[0] > o.step_sizes[1])
      fail(where("optimizer.step_sizes"), "optimizer.step_sizes",
           "expected min <= max, got [" + format_number(o.step_sizes[0]) + ", " +
               format_number(o.step_sizes[1]) + "]");
  }

  // What the scheduler keys' ranges cannot say: open bounds, ordered milestones, and the keys a
  // name needs. (OneCycleLR's phases depend on the run's length: build_scheduler checks them.)
  template <class Where>
  void check_scheduler(const TrainConfig& c, const Where& where) {
    const auto& s = c.scheduler;
    if (s.start_factor <= 0)
      fail(where("scheduler.start_factor"), "scheduler.start_factor",
           "must be in (0, 1] (the lr factor at step 0; 0 would never let the lr grow), got " +
               format_number(s.start_factor));
    for (const auto& [key, value] : {std::pair{"scheduler.div_factor", s.div_factor},
                                     std::pair{"scheduler.final_div_factor", s.final_div_factor}})
      if (value <= 0)
        fail(where(key), key, "must be > 0 (a divisor of the lr), got " + format_number(value));
    if (!std::is_sorted(s.milestones.begin(), s.milestones.end()))
      fail(where("scheduler.milestones"), "scheduler.milestones", "must be non-decreasing steps");
    if (s.name == "multistep" && s.milestones.empty())
      fail(where("scheduler.milestones"), "scheduler.milestones",
           "scheduler.name multistep needs the steps at which the lr decays, e.g. [100, 200]");
    if (s.name == "multiplicative") {
      if (s.factor <= 0)
        fail(where("scheduler.factor"), "scheduler.factor",
             "must be > 0 (multiplicative: the lr's multiplier at every step), got " +
                 format_number(s.factor));
    } else if (s.factor >= 1) {
      fail(where("scheduler.factor"), "scheduler.factor",
           "must be in [0, 1) (the lr's multiplier at a plateau), got " + format_number(s.factor));
    }
    // scheduler.mode is plateau's and cyclic's, with choices of their own.
    const bool plateau_mode = s.mode == "min" || s.mode == "max";
    if ((s.name == "plateau" && !plateau_mode) || (s.name == "cyclic" && plateau_mode))
      fail(where("scheduler.mode"), "scheduler.mode",
           "'" + s.mode + "' is not a mode of " + s.name + " (" +
               (s.name == "plateau" ? "min or max" : "triangular, triangular2 or exp_range") + ")");
    if (s.name == "cyclic" && s.max_lr <= 0)
      fail(where("scheduler.max_lr"), "scheduler.max_lr",
           "scheduler.name cyclic needs the cycle's upper bound, e.g. max_lr: 0.1 (CyclicLR's "
           "max_lr has no default)");
  }

  // ReduceLROnPlateau steps on each validation's val_loss (Lightning's monitor: val_loss): a run
  // that never validates would never change its lr.
  template <class Where>
  void check_plateau_validates(const TrainConfig& c, const Where& where) {
    if (c.scheduler.name != "plateau" || (c.trainer.val_every > 0 && c.data.val_fraction > 0))
      return;
    const std::string off = c.trainer.val_every <= 0 ? "trainer.val_every" : "data.val_fraction";
    fail(where("scheduler.name"), "scheduler.name",
         "plateau reduces the lr when val_loss stops improving, but validation is off (" + off +
             " is 0): set trainer.val_every > 0 and data.val_fraction > 0");
  }

  // fabric.stage and deepspeed.stage (Lightning's DeepSpeedStrategy(stage=...)): 1, 2 or 3, with a
  // deepspeed* strategy only. The stage becomes the deepspeed section's zero_optimization.stage,
  // which the strategy reads; every other place that names a stage must agree with it.
  void resolve_stage(TrainConfig& c, const std::map<std::string, Located>& values) {
    const auto fabric_it = values.find("fabric.stage");
    const auto ds_it = deepspeed_values_.find("stage");
    if (fabric_it == values.end() && ds_it == deepspeed_values_.end()) return;
    const std::string strategy = to_case(c.fabric.strategy, ::tolower);
    if (!is_deepspeed_strategy(strategy)) {
      if (fabric_it == values.end()) return;  // deepspeed.stage: check_deepspeed refuses (or drops) the section
      // As a strategy section: a file's stage gives way to a strategy set on the command line.
      const auto s = values.find("fabric.strategy");
      if (s != values.end() && s->second.from_command_line() && !fabric_it->second.from_command_line()) {
        c.warnings.push_back(fabric_it->second.where + ": fabric.stage is ignored: fabric.strategy '" +
                             c.fabric.strategy + "' (from the command line) does not use it");
        c.fabric.stage = 0;
        return;
      }
      fail(fabric_it->second.where, "fabric.stage",
           "the ZeRO stage needs fabric.strategy deepspeed or deepspeed_stage_N, got '" + c.fabric.strategy + "'");
    }
    // deepspeed.stage's value: DeepSpeedConfig does not know the key.
    std::optional<int64_t> ds_stage;
    if (ds_it != deepspeed_values_.end()) {
      const YAML::Node& n = ds_it->second.node;
      const std::string text = n.IsScalar() ? n.Scalar() : std::string();
      // As PyYAML reads an integer (03 is 3, 0b11 3).
      const std::optional<Yaml11Int> x = n.IsScalar() ? yaml11_int(text) : std::nullopt;
      if (!x) {
        const std::string got = n.IsScalar() ? "'" + text + "'" : n.IsMap() ? "a mapping" : "a list";
        fail(ds_it->second.where, "deepspeed.stage", "expected integer, got " + got);
      }
      if (!x->fits || x->value < 1 || x->value > 3)
        fail(ds_it->second.where, "deepspeed.stage",
             "must be between 1 and 3, got " + (x->fits ? std::to_string(x->value) : text));
      ds_stage = x->value;
    }
    // The places that name a stage, as the user wrote them, with the stage they name.
    struct Named {
      std::string key;
      int64_t stage;
      std::string where;
    };
    std::vector<Named> given;
    if (fabric_it != values.end()) given.push_back({"fabric.stage", c.fabric.stage, fabric_it->second.where});
    if (ds_stage) given.push_back({"deepspeed.stage", *ds_stage, ds_it->second.where});
    std::vector<Named> others;
    if (const auto z = deepspeed_values_.find("zero_optimization.stage"); z != deepspeed_values_.end()) {
      try {
        others.push_back({"deepspeed.zero_optimization.stage", z->second.node.as<int64_t>(), z->second.where});
      } catch (const YAML::Exception&) {  // not an integer: check_deepspeed says so at the key
      }
    }
    if (const size_t at = strategy.find("_stage_"); at != std::string::npos)
      others.push_back({"fabric.strategy '" + c.fabric.strategy + "'", strategy[at + 7] - '0', ""});
    std::vector<Named> all = given;
    all.insert(all.end(), others.begin(), others.end());
    for (size_t i = 0; i < given.size(); ++i)
      for (size_t j = i + 1; j < all.size(); ++j)
        if (all[j].stage != given[i].stage)
          fail(given[i].where, given[i].key,
               std::to_string(given[i].stage) + " disagrees with " + all[j].key + " (stage " +
                   std::to_string(all[j].stage) + "); give one of them, or the same stage");
    const Named& chosen = given.front();
    c.fabric.stage = chosen.stage;
    deepspeed_values_.erase("stage");
    deepspeed_values_["zero_optimization.stage"] = {YAML::Node(chosen.stage), chosen.where};
    deepspeed_given_ = true;
    if (deepspeed_where_.empty()) deepspeed_where_ = chosen.where;
  }

  // A relative path as it is when it exists from the current directory (the first rule, so that
  // what worked keeps working), else joined to the first search directory (the config file's own,
  // then fabric's home) that has it.
  std::optional<std::string> find_file(const std::string& path) const {
    namespace fs = std::filesystem;
    if (fs::exists(path)) return path;
    if (fs::path(path).is_absolute()) return std::nullopt;
    for (const auto& dir : search_dirs_) {
      const fs::path p = fs::path(dir) / path;
      if (fs::exists(p)) return p.lexically_normal().string();
    }
    return std::nullopt;
  }
  std::string looked_in(const std::string& path) const {
    if (std::filesystem::path(path).is_absolute() || search_dirs_.empty()) return "";
    return " (relative paths are looked up in the current directory, then in " + join(search_dirs_) + ")";
  }

  // A strategy section the file has but the command line's fabric.strategy cannot use (resuming an
  // FSDP run under ddp, say): dropped with a warning rather than refused, because the command line
  // is the newer word. Keys of that section given on the command line as well stay an error.
  bool drop_for_command_line_strategy(TrainConfig& c, const std::map<std::string, Located>& values,
                                      const std::string& section, const std::string& section_at,
                                      bool section_on_command_line) const {
    auto it = values.find("fabric.strategy");
    if (it == values.end() || !it->second.from_command_line() || section_on_command_line) return false;
    c.warnings.push_back(section_at + ": the " + section + " section is ignored: fabric.strategy '" + c.fabric.strategy +
                         "' (from the command line) does not use it");
    return true;
  }

  void check_fsdp(TrainConfig& c, const std::map<std::string, Located>& values) const {
    auto where = [&](const std::string& path) {
      auto it = values.find(path);
      return it == values.end() ? name_ : it->second.where;
    };
    std::string given_at = fsdp_where_;
    bool on_command_line = false;
    for (const auto& [path, loc] : values) {
      if (path.rfind("fsdp.", 0) != 0) continue;
      if (given_at.empty()) given_at = loc.where;
      on_command_line = on_command_line || loc.from_command_line();
    }
    if (!is_fsdp_strategy(c.fabric.strategy)) {
      if (given_at.empty()) return;
      if (drop_for_command_line_strategy(c, values, "fsdp", given_at, on_command_line)) {
        c.fsdp = TrainConfig::Fsdp{};
        return;
      }
      fail(given_at, "fsdp", "an fsdp section needs fabric.strategy fsdp or fsdp_cpu_offload, got '" +
                                 c.fabric.strategy + "'");
    }
    TrainConfig::Fsdp& f = c.fsdp;
    static const std::vector<std::string> strategies = {"FULL_SHARD", "SHARD_GRAD_OP", "NO_SHARD", "HYBRID_SHARD"};
    const std::string upper = to_case(f.sharding_strategy, ::toupper);
    if (std::find(strategies.begin(), strategies.end(), upper) == strategies.end())
      fail(where("fsdp.sharding_strategy"), "fsdp.sharding_strategy",
           "'" + f.sharding_strategy + "' is not one of: FULL_SHARD, SHARD_GRAD_OP, NO_SHARD, HYBRID_SHARD" +
               suggestion(upper, strategies));
    f.sharding_strategy = upper;
    // The GPT's transformer blocks are its natural units (each gathers only its own weights).
    if (c.model.name == "gpt" && !values.count("fsdp.auto_wrap_policy")) f.auto_wrap_policy = {"Block"};
    for (const auto& [path, names] : {std::pair{"fsdp.auto_wrap_policy", &f.auto_wrap_policy},
                                      std::pair{"fsdp.activation_checkpointing_policy", &f.activation_checkpointing_policy}}) {
      std::set<std::string> seen;
      for (const auto& n : *names) {
        if (n.empty()) fail(where(path), path, "a module type name is empty");
        if (!seen.insert(n).second) fail(where(path), path, "'" + n + "' is listed twice");
      }
    }
    if (f.sharding_strategy == "HYBRID_SHARD" && f.auto_wrap_policy.empty())
      fail(where("fsdp.auto_wrap_policy"), "fsdp.auto_wrap_policy",
           "HYBRID_SHARD needs the module types that become units (e.g. [Block]); the list is empty");
    if (to_case(c.fabric.strategy, ::tolower) == "fsdp_cpu_offload") {
      if (values.count("fsdp.cpu_offload") && !f.cpu_offload)
        fail(where("fsdp.cpu_offload"), "fsdp.cpu_offload",
             "false disagrees with fabric.strategy fsdp_cpu_offload; use fabric.strategy fsdp, or drop the key");
      f.cpu_offload = true;
    }
  }

  void check_deepspeed(TrainConfig& c, const std::map<std::string, Located>& values) const {
    if (!deepspeed_given_) return;
    if (!is_deepspeed_strategy(c.fabric.strategy)) {
      const bool on_command_line = std::any_of(deepspeed_values_.begin(), deepspeed_values_.end(),
                                               [](const auto& kv) { return kv.second.from_command_line(); });
      if (drop_for_command_line_strategy(c, values, "deepspeed", deepspeed_where_, on_command_line)) return;
      fail(deepspeed_where_, "deepspeed", "a deepspeed section needs fabric.strategy deepspeed or deepspeed_stage_N, got '" +
                                              c.fabric.strategy + "'");
    }
    // Each key on its own first (DeepSpeedConfig's checks), so that a bad value is reported where
    // it was written; then the whole section for what involves several keys.
    YAML::Node all(YAML::NodeType::Map);
    for (const auto& [path, loc] : deepspeed_values_) {
      YAML::Node one(YAML::NodeType::Map);
      set_path(one, path, loc.node);
      set_path(all, path, loc.node);
      try {
        const precision::DeepSpeedConfig d = precision::DeepSpeedConfig::from_yaml(one);
        // DeepSpeed's stage 0 (no sharding) has no strategy here: make_strategy runs ZeroStrategy
        // for 1 and 2 and FSDPStrategy for 3.
        if (d.stage && *d.stage == 0)
          fail(loc.where, "deepspeed." + path,
               "stage 0 (no sharding) is not supported; use 1 (optimizer state), 2 (and gradients) or 3 (and "
               "parameters), or fabric.strategy ddp for plain data parallelism");
      } catch (const ValueError& e) {
        if (dynamic_cast<const ConfigError*>(&e)) throw;
        fail(loc.where, "deepspeed." + path, e.what());
      }
    }
    std::optional<precision::DeepSpeedConfig> parsed;
    try {
      parsed = precision::DeepSpeedConfig::from_yaml(all);
    } catch (const ValueError& e) {
      fail(deepspeed_where_, "deepspeed", e.what());
    }
    precision::DeepSpeedConfig& d = *parsed;
    if (!d.ignored.empty()) c.warnings.push_back(deepspeed_where_ + ": " + d.ignored_warning());
    if (const auto p = d.precision()) {
      if (!values.count("fabric.precision")) {
        c.fabric.precision = *p;
      } else if (c.fabric.precision != *p) {
        fail(values.at("fabric.precision").where, "fabric.precision",
             "'" + c.fabric.precision + "' disagrees with the deepspeed section, which selects '" + *p + "'");
      }
    }
    auto match = [&](const std::optional<int64_t>& ds, const char* ds_key, const std::string& trainer_key,
                     int64_t& member) {
      if (!ds) return;
      if (!values.count(trainer_key)) {
        member = *ds;
      } else if (member != *ds) {
        fail(values.at(trainer_key).where, trainer_key,
             std::to_string(member) + " differs from deepspeed." + ds_key + " (" + std::to_string(*ds) +
                 "); give one of them, or equal values");
      }
    };
    match(d.train_micro_batch_size_per_gpu, "train_micro_batch_size_per_gpu", "trainer.batch_size", c.trainer.batch_size);
    match(d.gradient_accumulation_steps, "gradient_accumulation_steps", "trainer.accumulate_grad_batches",
          c.trainer.accumulate_grad_batches);
    if (d.train_batch_size) check_train_batch_size(c, values, d);
    // DeepSpeed's gradient_clipping clips in the step (fused into unscaling); a trainer clip as
    // well would clip the same gradients twice.
    if (d.gradient_clipping > 0) {
      for (const char* key : {"trainer.clip_grad_norm", "trainer.clip_grad_val"}) {
        const double v = key == std::string("trainer.clip_grad_norm") ? c.trainer.clip_grad_norm
                                                                      : c.trainer.clip_grad_val;
        if (v > 0 && values.count(key))
          fail(values.at(key).where, key,
               "deepspeed.gradient_clipping (" + format_number(d.gradient_clipping) +
                   ") clips these gradients already; give one of them");
      }
    }
    // An fp16 block that is not enabled (enabled false or not given, as DeepSpeed reads it) leaves
    // a float16 run on the default scaler: its loss-scale keys would be dropped without a word.
    if (const auto& f = d.fp16;
        f && (c.fabric.precision == "16-mixed" || c.fabric.precision == "16-true") &&
        !d.fp16_enabled_auto && !d.fp16_for(c.fabric.precision) &&
        (f->loss_scale || f->initial_scale_power || f->loss_scale_window || f->hysteresis ||
         f->consecutive_hysteresis || f->min_loss_scale))
      fail(deepspeed_values_.count("fp16.enabled") ? deepspeed_values_.at("fp16.enabled").where
                                                   : deepspeed_where_,
           "deepspeed.fp16.enabled",
           "the fp16 block's loss-scale keys apply only when it is enabled, and it is not (enabled "
           "false or not "
           "given) while fabric.precision is " +
               c.fabric.precision +
               ": set deepspeed.fp16.enabled to true (or \"auto\") to use them, or leave them out");
    c.deepspeed = d.to_json_text();
  }

  // deepspeed.train_batch_size against trainer.batch_size x accumulate_grad_batches x world size,
  // as DeepSpeed checks it; a trainer value not given is derived from it. Once the world size is
  // known (devices a count or a list; 'auto' on the cpu: one), here, at the key; else the
  // connector checks it when the run starts.
  void check_train_batch_size(TrainConfig& c, const std::map<std::string, Located>& values,
                              precision::DeepSpeedConfig& d) const {
    const std::string where = deepspeed_values_.at("train_batch_size").where;
    precision::DeepSpeedConfig given = d;
    if (values.count("trainer.batch_size"))
      given.train_micro_batch_size_per_gpu = c.trainer.batch_size;
    if (values.count("trainer.accumulate_grad_batches"))
      given.gradient_accumulation_steps = c.trainer.accumulate_grad_batches;
    std::optional<int64_t> devices;
    const std::string spec = to_case(c.fabric.devices, ::tolower);
    if (spec == "auto") {
      if (to_case(c.fabric.accelerator, ::tolower) == "cpu") devices = 1;
    } else if (spec != "-1") {
      const auto ids = parse_devices(c.fabric.devices, 1, c.fabric.accelerator);
      devices = static_cast<int64_t>(ids.size());
    }
    if (!devices) {
      if (!given.train_micro_batch_size_per_gpu || !given.gradient_accumulation_steps)
        fail(where, "deepspeed.train_batch_size",
             "deriving trainer.batch_size or trainer.accumulate_grad_batches from it needs the "
             "world size, but fabric.devices is '" + c.fabric.devices +
                 "'; give fabric.devices as a number, or give both trainer keys");
    } else {
      const int64_t world = *devices * c.fabric.num_nodes;
      try {
        const auto b = given.batch_sizes(world);
        given.train_micro_batch_size_per_gpu = b.micro_batch_size;
        given.gradient_accumulation_steps = b.accumulation_steps;
      } catch (const ValueError& e) {
        fail(where, "deepspeed.train_batch_size",
             std::string(e.what()) +
                 " (trainer.batch_size is the micro batch, trainer.accumulate_grad_batches the "
                 "accumulation steps; world size " + std::to_string(world) +
                 " = fabric.devices x fabric.num_nodes)");
      }
    }
    c.trainer.batch_size = *given.train_micro_batch_size_per_gpu;
    c.trainer.accumulate_grad_batches = *given.gradient_accumulation_steps;
    // What runs, so that the connector's check (the same rule) agrees.
    d.train_micro_batch_size_per_gpu = c.trainer.batch_size;
    d.gradient_accumulation_steps = c.trainer.accumulate_grad_batches;
  }

  // node[a][b][c] = value for path "a.b.c".
  static void set_path(YAML::Node node, const std::string& path, const YAML::Node& value) {
    const size_t dot = path.find('.');
    if (dot == std::string::npos) {
      node[path] = value;
      return;
    }
    const std::string head = path.substr(0, dot);
    if (!node[head].IsMap()) node[head] = YAML::Node(YAML::NodeType::Map);
    set_path(node[head], path.substr(dot + 1), value);
  }

 private:
  std::string name_;
  std::vector<std::string> search_dirs_;  // where relative paths are looked up after the current directory
  bool deepspeed_given_ = false;  // a non-null section in the file, or a --set deepspeed.* value
  std::map<std::string, Located> deepspeed_values_;  // by path under deepspeed. (fp16.enabled)
  std::string deepspeed_where_;  // the section's start in the file, or its first --set
  std::vector<std::string> duplicate_warnings_;  // keys given twice in one mapping (note_duplicate)
  std::string fsdp_where_;       // where the fsdp: section starts; empty when the file has none
  std::map<std::string, std::string>
      plugin_block_where_;  // fabric.scaler, ...: where the block was given
};

// The deepspeed section (JSON text) as YAML, its numbers written as format_number writes the
// other sections' (nlohmann writes 1e-08, which PyYAML reads as a string).
YAML::Node deepspeed_yaml(const YAML::Node& n) {
  if (n.IsMap()) {
    YAML::Node out(YAML::NodeType::Map);
    // to_json_text's keys are strings; Scalar() cannot throw for a TrainConfig built in code either.
    for (const auto& kv : n) out[kv.first.Scalar()] = deepspeed_yaml(kv.second);
    return out;
  }
  if (!n.IsScalar()) return n;
  const std::string s = n.Scalar();
  char* end = nullptr;
  const double x = std::strtod(s.c_str(), &end);
  const bool is_float = !s.empty() && *end == '\0' && s.find_first_of(".eE") != std::string::npos;
  return is_float ? number_node(x) : n;
}

}  // namespace

TrainConfig parse_train_config(const std::string& yaml, const std::string& name,
                               const std::vector<std::string>& overrides,
                               const std::vector<std::string>& search_dirs,
                               const std::vector<EnvironmentSetting>& environment) {
  return Parser(name, search_dirs).parse(yaml, overrides, environment);
}

TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides,
                              const std::vector<std::string>& search_dirs,
                              const std::vector<EnvironmentSetting>& environment) {
  // Before opening: a FIFO would block here, /dev/zero read forever, a directory read as empty.
  if (const std::string kind = non_regular_file_kind(path); !kind.empty())
    throw ConfigError(path + ": cannot read the config file: it is " + kind + ", expected a regular file");
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot read the config file (missing or not readable)");
  std::stringstream ss;
  ss << in.rdbuf();
  // The config file's own directory comes first: a bundled config finds the files beside it.
  std::vector<std::string> dirs;
  const std::string own = std::filesystem::path(path).parent_path().string();
  if (!own.empty() && own != ".") dirs.push_back(own);
  dirs.insert(dirs.end(), search_dirs.begin(), search_dirs.end());
  TrainConfig c = parse_train_config(ss.str(), path, overrides, dirs, environment);
  // Once per node: the ranks the launcher starts re-read the config with LOCAL_RANK >= 1.
  const char* local_rank = std::getenv("LOCAL_RANK");
  if (!local_rank || std::string(local_rank) == "0") {
    if (!c.from_environment.empty())
      std::cerr << "fabric-train: from the environment: " << join(c.from_environment) << "\n";
    for (const auto& w : c.warnings) std::cerr << "fabric-train: warning: " << w << "\n";
  }
  return c;
}

std::string string_override(const std::string& key, const std::string& value) {
  return key + ":=" + value;
}

std::string dump_train_config(const TrainConfig& c) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  for (const std::string& sec : sections()) {
    if (sec == "loss") {
      out << YAML::Key << "loss" << YAML::Value << c.loss;
      continue;
    }
    // The fsdp section is read only with an fsdp strategy.
    if (sec == "fsdp" && !is_fsdp_strategy(c.fabric.strategy)) continue;
    if (sec == "deepspeed") {
      // JSON is YAML: the section reads back as written.
      if (!c.deepspeed.empty()) out << YAML::Key << "deepspeed" << YAML::Value << deepspeed_yaml(YAML::Load(c.deepspeed));
      continue;
    }
    out << YAML::Key << sec << YAML::Value << YAML::BeginMap;
    const PluginBlock* open_block =
        nullptr;  // the plugin block being written (its keys are adjacent)
    for (const Field& f : fields()) {
      if (f.section != sec) continue;
      if (!f.models.empty() && std::find(f.models.begin(), f.models.end(), c.model.name) == f.models.end()) continue;
      // A plugin's block only under a precision whose plugin reads it, nested as it was given.
      const PluginBlock* block = sec == "fabric" ? plugin_block_of(f.key) : nullptr;
      if (block && !plugin_block_used(*block, c)) continue;
      if (open_block && block != open_block) out << YAML::EndMap;
      if (block && block != open_block)
        out << YAML::Key << block->name << YAML::Value << YAML::BeginMap;
      open_block = block;
      const YAML::Node v = f.get(c);
      if (v.IsNull()) continue;  // a key that was not given and has no default value (fabric.stage)
      out << YAML::Key << (block ? f.key.substr(block->name.size() + 1) : f.key) << YAML::Value;
      if (f.kind == Kind::string && v.IsScalar()) {
        precision::emit_pyyaml_string(out, v.Scalar());
      } else if (f.kind == Kind::string_list && v.IsSequence()) {
        // Each name as PyYAML reads it back as a string (a module named "0" or "true").
        out << YAML::Flow << YAML::BeginSeq;
        for (const auto& e : v) precision::emit_pyyaml_string(out, e.Scalar());
        out << YAML::EndSeq;
      } else {
        out << v;
      }
    }
    if (open_block) out << YAML::EndMap;
    out << YAML::EndMap;
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::string train_config_schema() {
  const TrainConfig defaults;
  std::ostringstream os;
  os << "| key | type | default | meaning |\n|---|---|---|---|\n";
  for (const Field& f : fields()) {
    YAML::Emitter e;
    e << YAML::Flow << f.get(defaults);
    std::string def = e.c_str();
    if (def.empty() || def == "\"\"" || def == "~") def = "(none)";
    if (f.key == "sample_prompt") def = "\"\\n\"";
    if (f.path() == "fabric.stage") def = "(strategy's)";
    if (f.path() == "fabric.timeout") def = "(1800 s)";
    if (f.path() == "optimizer.eps") def = "(optimizer's)";
    os << "| `" << f.path() << "` | " << kind_name(f.kind) << " | `" << def << "` | " << f.help;
    if (!f.models.empty()) {
      // already says which model in the help text
    }
    os << " |\n";
  }
  for (const auto& [key, kind, def, help] : deepspeed_schema())
    os << "| `deepspeed." << key << "` | " << kind << " | `" << def << "` | " << help << " (fabric.strategy deepspeed*) |\n";
  return os.str();
}

}  // namespace fabric
