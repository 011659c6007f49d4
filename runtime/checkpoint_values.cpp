// The plain values of a checkpoint description (state.json, a sharded meta.json): how a number,
// flag or string is written as JSON and read back, and the checks that keep a bad value from
// escaping as a JSON library error (encoding in checkpoint.h).
#include <cmath>
#include <limits>

#include "runtime/checkpoint_detail.h"
#include "tensor/error.h"

namespace fabric::checkpoint_detail {
namespace {

constexpr const char* kNonFiniteTag = "float";

// At most `n` characters of `j` as JSON, for messages (a malformed entry may be large).
std::string excerpt(const json& j, size_t n = 60) {
  std::string s = j.dump();
  if (s.size() > n) s = s.substr(0, n) + "...";
  return s;
}

}  // namespace

std::string printable(const std::string& s) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f) {
      out += char(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

void check_utf8(const std::string& s, const std::string& what) {
  // nlohmann's own check, so that exactly what its dump() would refuse is refused here, before
  // anything is written.
  try {
    (void)json(s).dump();
  } catch (const json::type_error& e) {
    std::string why = e.what();
    if (const size_t at = why.find("] "); at != std::string::npos) why = why.substr(at + 2);
    throw ValueError("Fabric.save: " + what + " is not valid UTF-8 (" + why +
                     "); state.json holds text as UTF-8 only (keep raw bytes in a uint8 tensor)");
  }
}

json float_to_json(double v) {
  if (std::isfinite(v)) return v;
  return json{{kNonFiniteTag, std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf")}};
}

json value_to_json(const precision::StateValue& v, const std::string& what) {
  if (const double* d = std::get_if<double>(&v)) return float_to_json(*d);
  if (const std::string* s = std::get_if<std::string>(&v)) check_utf8(*s, what);
  return std::visit([](const auto& x) { return json(x); }, v);
}

precision::StateValue value_from_json(const json& j, const std::string& what,
                                      const std::string& path) {
  if (j.is_boolean()) return j.get<bool>();
  if (j.is_number_unsigned()) {
    if (j.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
      io_fail(path, what + " holds " + j.dump() + ", past the largest int64");
    return int64_t(j.get<uint64_t>());
  }
  if (j.is_number_integer()) return j.get<int64_t>();
  if (j.is_number_float()) return j.get<double>();
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.size() == 1 && j.contains(kNonFiniteTag)) {
    const json& tag = j[kNonFiniteTag];
    if (tag == "inf") return std::numeric_limits<double>::infinity();
    if (tag == "-inf") return -std::numeric_limits<double>::infinity();
    if (tag == "nan") return std::numeric_limits<double>::quiet_NaN();
    io_fail(path, what + " holds " + excerpt(j) +
                      " (a non-finite float is {\"float\": \"inf\"}, \"-inf\" or \"nan\")");
  }
  io_fail(path, what + " holds " + excerpt(j) + ", which is not a number, flag or string");
}

std::string entry_kind(const json& e, const std::string& key, const std::string& path) {
  if (!e.is_object())
    io_fail(path, "entry '" + key + "' is not an object (found " + excerpt(e) + ")");
  auto k = e.find("kind");
  if (k == e.end() || !k->is_string()) io_fail(path, "entry '" + key + "' has no \"kind\" string");
  const std::string kind = k->get<std::string>();
  for (const char* known :
       {"module", "optimizer", "precision", "tensor", "int", "float", "bool", "string"})
    if (kind == known) return kind;
  io_fail(path,
          "entry '" + key + "' has the unknown kind '" + printable(kind) +
              "' (expected module, optimizer, precision, tensor, int, float, bool or string)");
}

precision::StateValue plain_value(const json& e, const std::string& key, const std::string& kind,
                                  const std::string& path) {
  auto j = e.find("value");
  if (j == e.end()) io_fail(path, "entry '" + key + "' (kind " + kind + ") has no \"value\"");
  const precision::StateValue v = value_from_json(*j, "entry '" + key + "'", path);
  // The kind says what was saved; a value of another type is a corrupt (or hand-edited) file. An
  // integral number is a float's value too (JSON writers may drop the ".0").
  const bool fits = kind == "int" ? std::holds_alternative<int64_t>(v)
                    : kind == "float"
                        ? std::holds_alternative<double>(v) || std::holds_alternative<int64_t>(v)
                    : kind == "bool"   ? std::holds_alternative<bool>(v)
                    : kind == "string" ? std::holds_alternative<std::string>(v)
                                       : false;
  if (!fits)
    io_fail(path, "entry '" + key + "' (kind " + kind + ") holds " + excerpt(*j) +
                      ", which is not " + (kind == "int" ? "an " : "a ") + kind);
  if (kind == "float" && std::holds_alternative<int64_t>(v)) return double(std::get<int64_t>(v));
  return v;
}

}  // namespace fabric::checkpoint_detail
