// DelayedScaling: names, validation and parsing of the FP8 recipe (spec §8).
#include "precision/fp8_recipe.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <sstream>
#include <type_traits>
#include <variant>

#include "tensor/error.h"

namespace fabric::precision {

namespace {

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

std::string describe(const StateValue& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        std::ostringstream os;
        if constexpr (std::is_same_v<T, std::string>) {
          os << "string '" << x << "'";
        } else if constexpr (std::is_same_v<T, bool>) {
          os << "bool " << (x ? "true" : "false");
        } else if constexpr (std::is_same_v<T, int64_t>) {
          os << "integer " << x;
        } else {
          os << "number " << x;
        }
        return os.str();
      },
      v);
}

int64_t as_integer(const std::string& key, const StateValue& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) return *i;
  if (const auto* d = std::get_if<double>(&v)) {
    if (std::isfinite(*d) && std::floor(*d) == *d && std::fabs(*d) < 9.0e15)
      return static_cast<int64_t>(*d);
  }
  if (const auto* s = std::get_if<std::string>(&v)) {
    const std::string t = trim(*s);
    int64_t out = 0;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), out);
    if (ec == std::errc() && p == t.data() + t.size() && !t.empty()) return out;
  }
  throw ValueError(
      detail::cat("DelayedScaling: '", key, "' must be an integer, got ", describe(v)));
}

bool as_bool(const std::string& key, const StateValue& v) {
  if (const auto* b = std::get_if<bool>(&v)) return *b;
  if (const auto* i = std::get_if<int64_t>(&v); i && (*i == 0 || *i == 1)) return *i == 1;
  if (const auto* s = std::get_if<std::string>(&v)) {
    const std::string t = lower(trim(*s));
    if (t == "true" || t == "1" || t == "yes" || t == "on") return true;
    if (t == "false" || t == "0" || t == "no" || t == "off") return false;
  }
  throw ValueError(
      detail::cat("DelayedScaling: '", key, "' must be a bool (true/false), got ", describe(v)));
}

const std::string& as_string(const std::string& key, const StateValue& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  throw ValueError(detail::cat("DelayedScaling: '", key, "' must be a string, got ", describe(v)));
}

}  // namespace

std::string_view fp8_format_name(Fp8Format f) {
  switch (f) {
    case Fp8Format::E4M3:
      return "E4M3";
    case Fp8Format::E5M2:
      return "E5M2";
    case Fp8Format::HYBRID:
      return "HYBRID";
  }
  return "?";
}

Fp8Format fp8_format_from_name(std::string_view name) {
  std::string n = lower(trim(name));
  if (n.rfind("format.", 0) == 0) n = n.substr(7);
  if (n == "e4m3") return Fp8Format::E4M3;
  if (n == "e5m2") return Fp8Format::E5M2;
  if (n == "hybrid") return Fp8Format::HYBRID;
  throw ValueError(detail::cat("fp8_format: unknown format '", name,
                               "', expected one of E4M3, HYBRID (E5M2 is ",
                               "an element format only)"));
}

std::string_view amax_compute_algo_name(AmaxComputeAlgo a) {
  return a == AmaxComputeAlgo::max ? "max" : "most_recent";
}

AmaxComputeAlgo amax_compute_algo_from_name(std::string_view name) {
  const std::string n = lower(trim(name));
  if (n == "max") return AmaxComputeAlgo::max;
  if (n == "most_recent") return AmaxComputeAlgo::most_recent;
  throw ValueError(detail::cat("amax_compute_algo: unknown algorithm '", name,
                               "', expected 'max' or 'most_recent'"));
}

std::string_view fp8_direction_name(Fp8Direction d) {
  return d == Fp8Direction::forward ? "forward" : "backward";
}

float fp8_max(Fp8Format f) {
  switch (f) {
    case Fp8Format::E4M3:
      return 448.0f;
    case Fp8Format::E5M2:
      return 57344.0f;
    case Fp8Format::HYBRID:
      break;
  }
  throw ValueError("fp8_max: HYBRID is a recipe format, not an element format; pass E4M3 or E5M2");
}

DType fp8_dtype(Fp8Format f) {
  switch (f) {
    case Fp8Format::E4M3:
      return DType::float8_e4m3fn;
    case Fp8Format::E5M2:
      return DType::float8_e5m2;
    case Fp8Format::HYBRID:
      break;
  }
  throw ValueError(
      "fp8_dtype: HYBRID is a recipe format, not an element format; pass E4M3 or E5M2");
}

void DelayedScaling::validate() const {
  FABRIC_CHECK(
      fp8_format != Fp8Format::E5M2, ValueError,
      "DelayedScaling: fp8_format E5M2 is not supported (pure E5M2 training is rejected by the ",
      "reference); use E4M3 or HYBRID");
  FABRIC_CHECK(fp8_format == Fp8Format::E4M3 || fp8_format == Fp8Format::HYBRID, ValueError,
               "DelayedScaling: invalid fp8_format value ", static_cast<int>(fp8_format));
  FABRIC_CHECK(amax_history_len >= 1, ValueError,
               "DelayedScaling: amax_history_len must be >= 1, got ", amax_history_len);
  FABRIC_CHECK(margin >= -126 && margin <= 126, ValueError,
               "DelayedScaling: margin must be in [-126, 126], got ", margin);
  FABRIC_CHECK(amax_compute_algo == AmaxComputeAlgo::max ||
                   amax_compute_algo == AmaxComputeAlgo::most_recent,
               ValueError, "DelayedScaling: invalid amax_compute_algo value ",
               static_cast<int>(amax_compute_algo));
}

Fp8Format DelayedScaling::format_for(Fp8Direction d) const {
  if (fp8_format == Fp8Format::HYBRID)
    return d == Fp8Direction::forward ? Fp8Format::E4M3 : Fp8Format::E5M2;
  return fp8_format;
}

float DelayedScaling::scaled_max_for(Fp8Direction d) const {
  return static_cast<float>(static_cast<double>(fp8_max_for(d)) /
                            std::ldexp(1.0, static_cast<int>(margin)));
}

DelayedScaling DelayedScaling::from_map(const PrecisionState& kv) {
  DelayedScaling r;
  for (const auto& [key, v] : kv) {
    if (key == "margin") {
      r.margin = as_integer(key, v);
    } else if (key == "fp8_format") {
      r.fp8_format = fp8_format_from_name(as_string(key, v));
    } else if (key == "amax_history_len") {
      r.amax_history_len = as_integer(key, v);
    } else if (key == "amax_compute_algo") {
      r.amax_compute_algo = amax_compute_algo_from_name(as_string(key, v));
    } else if (key == "reduce_amax") {
      r.reduce_amax = as_bool(key, v);
    } else {
      throw ValueError(detail::cat("DelayedScaling: unknown key '", key,
                                   "', expected margin, fp8_format, ",
                                   "amax_history_len, amax_compute_algo or reduce_amax"));
    }
  }
  r.validate();
  return r;
}

DelayedScaling DelayedScaling::from_map(const std::map<std::string, std::string>& kv) {
  PrecisionState s;
  for (const auto& [k, v] : kv) s[k] = v;
  return from_map(s);
}

PrecisionState DelayedScaling::to_state() const {
  return {{"margin", margin},
          {"fp8_format", std::string(fp8_format_name(fp8_format))},
          {"amax_history_len", amax_history_len},
          {"amax_compute_algo", std::string(amax_compute_algo_name(amax_compute_algo))},
          {"reduce_amax", reduce_amax}};
}

std::string DelayedScaling::str() const {
  return detail::cat("margin=", margin, ", format=", fp8_format_name(fp8_format),
                     ", amax_history_len=", amax_history_len,
                     ", amax_compute_algo=", amax_compute_algo_name(amax_compute_algo),
                     ", reduce_amax=", reduce_amax ? "True" : "False");
}

}  // namespace fabric::precision
