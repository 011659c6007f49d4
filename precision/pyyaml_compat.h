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

// Whether PyYAML would read this text, written plain, as something other than that string: a
// bool, null, a number of any YAML 1.1 form (1_000, 1:30, .inf, 0x1F, 010), a timestamp
// (2024-06-01), or the value and merge indicators `=` and `<<` (which it refuses).
bool yaml11_reads_as_non_string(const std::string& s);

// Writes `s` as a string scalar PyYAML reads back unchanged: plain where that is safe, double
// quoted where it would be read as another type, and with escapes (\x7f, \u2028) where it holds
// a character YAML does not allow raw (controls, DEL, C1 controls, the Unicode line separators).
void emit_pyyaml_string(YAML::Emitter& out, const std::string& s);

}  // namespace fabric::precision
