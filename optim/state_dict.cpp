// Flattening of OptimizerState to named tensors and back, and typed hyper-parameter reads.
#include "optim/state_dict.h"

#include <charconv>
#include <cmath>
#include <limits>

#include "tensor/factory.h"
#include "tensor/safetensors.h"

namespace fabric::optim {
namespace {

const char* kind_name(const HyperParam& v) {
  return std::holds_alternative<double>(v) ? "a number" : std::holds_alternative<bool>(v) ? "a flag" : "a tuple";
}

Tensor hyper_to_tensor(const HyperParam& v) {
  if (const double* d = std::get_if<double>(&v)) return scalar_tensor(*d, {.dtype = DType::float64});
  if (const bool* b = std::get_if<bool>(&v)) return scalar_tensor(*b, {.dtype = DType::bool_});
  const auto& vec = std::get<std::vector<double>>(v);
  return from_vector<double>(vec, {static_cast<int64_t>(vec.size())});
}

// A double holds every integer up to 2^53 exactly; past it, neighbouring integers share one double.
constexpr int64_t kLargestExactInteger = int64_t{1} << 53;

// The value of `t` (0-dim: a number or a flag; 1-D: a tuple) by value whatever its dtype, and how
// it was stored (StoredHyperParam::inexact names the first int64 beyond +-2^53).
HyperParam hyper_from_tensor(const Tensor& t, const std::string& key, StoredHyperParam& stored) {
  FABRIC_CHECK(t.defined(), ValueError, "OptimizerState::unflatten: '", key, "' holds an undefined tensor");
  FABRIC_CHECK(t.dim() <= 1, ValueError, "OptimizerState::unflatten: '", key,
               "' must be a 0-dim (number or flag) or 1-D (tuple) tensor, got shape ",
               shape_str(t.sizes()));
  stored = {key, t.dtype(), ""};
  if (t.dtype() == DType::int64) {
    for (int64_t v : t.to_vector<int64_t>()) {
      if (v > kLargestExactInteger || v < -kLargestExactInteger) {
        stored.inexact = std::to_string(v);
        break;
      }
    }
  }
  if (t.dim() == 0) {
    if (t.dtype() == DType::bool_) return t.item<bool>();
    return t.item<double>();
  }
  return t.to_vector<double>();
}

// " (stored as I64 under 'param_groups.0.lr')" for a value read from a file, "" for one set in
// memory.
std::string stored_as(const HyperParams& h, const std::string& key) {
  auto it = h.stored.find(key);
  if (it == h.stored.end()) return "";
  return detail::cat(" (stored as ", safetensors_dtype_name(it->second.dtype), " under '",
                     it->second.key, "')");
}

// IOError for a file's int64 that a double cannot hold exactly: the file is damaged (or was
// edited), whatever optimizer reads it.
void check_exact(const HyperParams& h, const std::string& key, const char* who) {
  auto it = h.stored.find(key);
  if (it == h.stored.end() || it->second.inexact.empty()) return;
  throw IOError(detail::cat(
      who, ": hyper-parameter '", key, "' holds ", it->second.inexact, stored_as(h, key),
      ", an integer a float64 cannot hold exactly (expected a number: a float, or an "
      "integer within +-2^53; was the dtype of a float64 edited without its bytes?)"));
}

// Parses "<index>.<rest>" after a section prefix; false when malformed.
bool parse_index(std::string_view s, int64_t& index, std::string& rest) {
  const size_t dot = s.find('.');
  if (dot == 0 || dot == std::string_view::npos || dot + 1 == s.size()) return false;
  const char* b = s.data();
  const auto [end, ec] = std::from_chars(b, b + dot, index);
  if (ec != std::errc() || end != b + dot || index < 0) return false;
  rest = std::string(s.substr(dot + 1));
  return true;
}

}  // namespace

void read_hyper_param(const HyperParams& h, const std::string& key, double& value, const char* who) {
  auto it = h.find(key);
  if (it == h.end()) return;
  check_exact(h, key, who);
  const bool from_file = h.stored.count(key) != 0;
  if (const double* d = std::get_if<double>(&it->second)) {
    // Every optimizer refuses a non-finite lr (GroupedOptimizer::validate_changed_options); a
    // file's is refused here, as a damaged file (IOError), where its dtype can be named (an F16
    // overflows to inf past 65504).
    FABRIC_CHECK(!from_file || key != "lr" || std::isfinite(*d), IOError, who,
                 ": hyper-parameter 'lr' holds ", *d, stored_as(h, key),
                 " (expected a finite number)");
    value = *d;
  } else if (const bool* b = std::get_if<bool>(&it->second); b && from_file) {
    value = *b ? 1.0 : 0.0;  // a number written as BOOL by another tool, as Python's True == 1
  } else {
    throw ValueError(detail::cat(who, ": hyper-parameter '", key, "' must be a number, got ",
                                 kind_name(it->second), stored_as(h, key)));
  }
}

void read_hyper_param(const HyperParams& h, const std::string& key, bool& value, const char* who) {
  auto it = h.find(key);
  if (it == h.end()) return;
  check_exact(h, key, who);
  if (const bool* b = std::get_if<bool>(&it->second)) {
    value = *b;
  } else if (const double* d = std::get_if<double>(&it->second); d && (*d == 0 || *d == 1)) {
    value = *d != 0;  // a flag written as 0/1 by another tool
  } else {
    throw ValueError(detail::cat(who, ": hyper-parameter '", key, "' must be a flag, got ",
                                 kind_name(it->second), d ? detail::cat(" ", *d) : std::string(),
                                 stored_as(h, key)));
  }
}

void read_hyper_param(const HyperParams& h, const std::string& key, std::vector<double>& value, size_t size,
                      const char* who) {
  auto it = h.find(key);
  if (it == h.end()) return;
  check_exact(h, key, who);
  const auto* v = std::get_if<std::vector<double>>(&it->second);
  FABRIC_CHECK(v && v->size() == size, ValueError, who, ": hyper-parameter '", key,
               "' must be a tuple of ", size, " numbers, got ",
               v ? detail::cat("a tuple of ", v->size()) : std::string(kind_name(it->second)),
               stored_as(h, key));
  value = *v;
}

std::vector<std::pair<std::string, Tensor>> OptimizerState::flatten(const std::string& prefix) const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [index, st] : state) {
    for (const auto& [name, t] : st) out.emplace_back(detail::cat(prefix, "state.", index, ".", name), t);
  }
  for (size_t g = 0; g < param_groups.size(); ++g) {
    const GroupState& gs = param_groups[g];
    const std::string head = detail::cat(prefix, "param_groups.", g, ".");
    for (const auto& [name, v] : gs.options) out.emplace_back(head + name, hyper_to_tensor(v));
    out.emplace_back(head + "params",
                     from_vector<int64_t>(gs.params, {static_cast<int64_t>(gs.params.size())}));
  }
  return out;
}

OptimizerState OptimizerState::unflatten(const std::vector<std::pair<std::string, Tensor>>& items,
                                         const std::string& prefix) {
  OptimizerState s;
  std::map<int64_t, GroupState> groups;
  std::map<int64_t, bool> has_params;
  for (const auto& [key, t] : items) {
    if (key.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string_view k = std::string_view(key).substr(prefix.size());
    int64_t index = 0;
    std::string name;
    if (k.starts_with("state.") && parse_index(k.substr(6), index, name)) {
      FABRIC_CHECK(t.defined(), ValueError, "OptimizerState::unflatten: '", key, "' holds an undefined tensor");
      s.state[index][name] = t;
    } else if (k.starts_with("param_groups.") && parse_index(k.substr(13), index, name)) {
      GroupState& gs = groups[index];
      if (name == "params") {
        FABRIC_CHECK(t.defined() && t.dim() == 1 && !is_floating(t.dtype()) && t.dtype() != DType::bool_, ValueError,
                     "OptimizerState::unflatten: '", key, "' must be a 1-D integer tensor of parameter indices, got ",
                     t.defined() ? detail::cat(dtype_name(t.dtype()), " of shape ", shape_str(t.sizes()))
                                 : std::string("an undefined tensor"));
        gs.params = t.to_vector<int64_t>();
        has_params[index] = true;
      } else {
        StoredHyperParam stored;
        gs.options[name] = hyper_from_tensor(t, key, stored);
        gs.options.stored[name] = std::move(stored);
      }
    } else {
      throw ValueError(detail::cat("OptimizerState::unflatten: key '", key, "' is neither ", prefix,
                                   "state.<index>.<name> nor ", prefix, "param_groups.<index>.<name>"));
    }
  }
  int64_t expected = 0;
  for (auto& [g, gs] : groups) {
    FABRIC_CHECK(g == expected, ValueError, "OptimizerState::unflatten: parameter group ", expected,
                 " is missing (found ", prefix, "param_groups.", g, " without it)");
    FABRIC_CHECK(has_params.count(g), ValueError, "OptimizerState::unflatten: ", prefix, "param_groups.", g,
                 ".params is missing");
    s.param_groups.push_back(std::move(gs));
    ++expected;
  }
  return s;
}

}  // namespace fabric::optim
