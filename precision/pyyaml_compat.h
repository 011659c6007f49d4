#pragma once
// What PyYAML (YAML 1.1, the reader of Lightning's and DeepSpeed's configs) makes of a document
// that yaml-cpp (YAML 1.2) leaves as plain text: the bool words and the `<<` merge key. Configs
// written for the Python tools rely on both.

#include <yaml-cpp/yaml.h>

#include <optional>
#include <string>

namespace fabric::precision {

// The bool a YAML 1.1 reader takes a plain scalar for: true/false, yes/no, on/off, each in lower,
// Capitalised or UPPER case (PyYAML's resolver); nullopt for anything else.
std::optional<bool> yaml11_bool(const std::string& scalar);

// `node` with every mapping's merge keys (`<<: *base`, `<<: [*a, *b]`) resolved as YAML 1.1 says:
// the merged mappings' keys come first, a key of an earlier mapping in a list wins over a later
// one's, and the mapping's own keys win over all of them. Nodes without merge keys are returned as
// they are (their marks kept); a mapping that had one is a new mapping of the same key and value
// nodes. A merge value that is not a mapping (or a list of them) throws YAML::ParserException at
// its mark, as PyYAML refuses it.
YAML::Node resolve_merge_keys(const YAML::Node& node);

}  // namespace fabric::precision
