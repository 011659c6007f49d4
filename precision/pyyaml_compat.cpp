#include "precision/pyyaml_compat.h"

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

}  // namespace fabric::precision
