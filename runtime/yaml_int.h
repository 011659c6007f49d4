// The integers of YAML 1.1, as PyYAML (the reader of Lightning's configs) resolves and constructs
// a plain scalar: yaml-cpp (YAML 1.2) leaves `010`, `0b11`, `1_000` and `1:30` to the caller, and
// strtoll reads them otherwise (10) or not at all.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace fabric {

// A YAML 1.1 integer's value.
struct Yaml11Int {
  bool fits = false;  // within int64 (PyYAML's ints have no limit)
  int64_t value = 0;  // the value, when it fits
  double approx = 0;  // the value as a double (the nearest one for decimal text), fits or not
};

// What PyYAML makes of `scalar` as a plain int, by its resolver's pattern
//   [-+]?0b[0-1_]+ | [-+]?0[0-7_]+ | [-+]?(0|[1-9][0-9_]*) | [-+]?0x[0-9a-fA-F_]+
//   | [-+]?[1-9][0-9_]*(:[0-5]?[0-9])+
// and its constructor: `_` ignored, 0b binary, 0x hexadecimal, a leading 0 octal (010 is 8),
// `:` base-60 digits (1:30 is 90). nullopt for text the pattern does not match, and for the
// digitless `0b_` and `0x_`, which PyYAML matches and then fails to construct.
std::optional<Yaml11Int> yaml11_int(const std::string& scalar);

}  // namespace fabric
