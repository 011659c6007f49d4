#include "precision/pyyaml_compat.h"

#include <cstdlib>
#include <regex>
#include <set>
#include <vector>

namespace fabric::precision {

std::optional<bool> yaml11_bool(const std::string& s) {
  static const std::set<std::string> yes = {"true", "True", "TRUE", "yes", "Yes",
                                            "YES",  "on",   "On",   "ON"};
  static const std::set<std::string> no = {"false", "False", "FALSE", "no", "No",
                                           "NO",    "off",   "Off",   "OFF"};
  if (yes.count(s)) return true;
  if (no.count(s)) return false;
  return std::nullopt;
}

namespace {

// A plain `<<` key (a quoted "<<" is an ordinary string key, as in PyYAML).
bool is_merge_key(const YAML::Node& key) {
  return key.IsScalar() && key.Scalar() == "<<" && key.Tag() != "!";
}

}  // namespace

YAML::Node resolve_merge_keys(const YAML::Node& node) {
  if (node.IsSequence()) {
    std::vector<YAML::Node> items;
    bool changed = false;
    for (const auto& e : node) {
      items.push_back(resolve_merge_keys(e));
      changed = changed || !items.back().is(e);
    }
    if (!changed) return node;
    YAML::Node out(YAML::NodeType::Sequence);
    for (const auto& e : items) out.push_back(e);
    return out;
  }
  if (!node.IsMap()) return node;
  std::vector<std::pair<YAML::Node, YAML::Node>> own, merged;
  bool changed = false;
  for (const auto& kv : node) {
    if (!is_merge_key(kv.first)) {
      own.emplace_back(kv.first, resolve_merge_keys(kv.second));
      changed = changed || !own.back().second.is(kv.second);
      continue;
    }
    changed = true;
    std::vector<YAML::Node> sources;
    if (kv.second.IsMap())
      sources.push_back(kv.second);
    else if (kv.second.IsSequence())
      for (const auto& e : kv.second) sources.push_back(e);
    for (const auto& src : sources)
      if (!src.IsMap())
        throw YAML::ParserException(src.Mark(),
                                    "a merge key (<<) takes a mapping or a list of mappings");
    if (sources.empty())
      throw YAML::ParserException(kv.second.Mark(),
                                  "a merge key (<<) takes a mapping or a list of mappings");
    for (const auto& src : sources) {
      const YAML::Node resolved = resolve_merge_keys(src);
      for (const auto& m : resolved) merged.emplace_back(m.first, m.second);
    }
  }
  if (!changed) return node;
  std::set<std::string> taken;
  for (const auto& [k, v] : own)
    if (k.IsScalar()) taken.insert(k.Scalar());
  YAML::Node out(YAML::NodeType::Map);
  for (const auto& [k, v] : merged) {
    if (k.IsScalar() && !taken.insert(k.Scalar()).second) continue;  // an own or earlier key wins
    out.force_insert(k, v);
  }
  for (const auto& [k, v] : own) out.force_insert(k, v);
  return out;
}

bool yaml11_reads_as_non_string(const std::string& s) {
  // PyYAML's implicit resolvers (yaml/resolver.py), written as ECMAScript regexes.
  static const std::regex pyyaml_non_string(
      // bool, null (the empty text included)
      "yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|y|Y|n|N|"
      "~|null|Null|NULL|"
      // float: 1.5, 1_000.5, .5, 1:30.5 (sexagesimal), .inf, .nan
      "[-+]?[0-9][0-9_]*\\.[0-9_]*([eE][-+][0-9]+)?|\\.[0-9][0-9_]*([eE][-+][0-9]+)?|"
      "[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\\.[0-9_]*|[-+]?\\.(inf|Inf|INF)|\\.(nan|NaN|NAN)|"
      // int: 0b1, 010 (octal), 1_000, 0x1F, 1:30 (sexagesimal)
      "[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|"
      "[-+]?[1-9][0-9_]*(:[0-5]?[0-9])+|"
      // timestamp
      "[0-9]{4}-[0-9]{2}-[0-9]{2}|"
      "[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt]|[ \\t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(\\.[0-9]*)?"
      "([ \\t]*(Z|[-+][0-9]{1,2}(:[0-9]{2})?))?|"
      // merge and value indicators
      "<<|=");
  if (s.empty() || std::regex_match(s, pyyaml_non_string)) return true;
  char* end = nullptr;
  (void)std::strtod(s.c_str(), &end);
  return *end == '\0';  // any other number strtod reads (1e5, inf): quoted too, harmlessly
}

namespace {
// A character YAML does not allow raw in a scalar: C0 controls but tab and line feed, DEL, the
// C1 controls (U+0080..U+009F, U+0085 a line break to YAML 1.1), U+2028/U+2029 and a BOM.
bool needs_escapes(const std::string& s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if ((b < 0x20 && b != '\t' && b != '\n') || b == 0x7f) return true;
    const auto next = [&](size_t k) {
      return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0;
    };
    if (b == 0xc2 && next(1) >= 0x80 && next(1) <= 0x9f) return true;
    if (b == 0xe2 && next(1) == 0x80 && (next(2) == 0xa8 || next(2) == 0xa9)) return true;
    if (b == 0xef && next(1) == 0xbb && next(2) == 0xbf) return true;
  }
  return false;
}
}  // namespace

void emit_pyyaml_string(YAML::Emitter& out, const std::string& s) {
  if (needs_escapes(s))
    out << YAML::DoubleQuoted << YAML::EscapeNonAscii << s;
  else if (yaml11_reads_as_non_string(s))
    out << YAML::DoubleQuoted << s;
  else
    out << s;
}

}  // namespace fabric::precision
