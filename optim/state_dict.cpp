// Flattening of OptimizerState to named tensors and back, and typed hyper-parameter reads.
#include "optim/state_dict.h"

#include <charconv>
#include <limits>

#include "tensor/factory.h"

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

HyperParam hyper_from_tensor(const Tensor& t, const std::string& key) {
  FABRIC_CHECK(t.defined(), ValueError, "OptimizerState::unflatten: '", key, "' holds an undefined tensor");
  if (t.dim() == 0) {
    if (t.dtype() == DType::bool_) return t.item<bool>();
    return t.item<double>();
  }
  FABRIC_CHECK(t.dim() == 1, ValueError, "OptimizerState::unflatten: '", key,
               "' must be a 0-dim (number or flag) or 1-D (tuple) tensor, got shape ", shape_str(t.sizes()));
  return t.to_vector<double>();
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
  if (const double* d = std::get_if<double>(&it->second)) {
    value = *d;
  } else {
    throw ValueError(detail::cat(who, ": hyper-parameter '", key, "' must be a number, got ", kind_name(it->second)));
  }
}

void read_hyper_param(const HyperParams& h, const std::string& key, bool& value, const char* who) {
  auto it = h.find(key);
  if (it == h.end()) return;
  if (const bool* b = std::get_if<bool>(&it->second)) {
    value = *b;
  } else if (const double* d = std::get_if<double>(&it->second); d && (*d == 0 || *d == 1)) {
    value = *d != 0;  // a flag written as 0/1 by another tool
  } else {
    throw ValueError(detail::cat(who, ": hyper-parameter '", key, "' must be a flag, got ", kind_name(it->second)));
  }
}

void read_hyper_param(const HyperParams& h, const std::string& key, std::vector<double>& value, size_t size,
                      const char* who) {
  auto it = h.find(key);
  if (it == h.end()) return;
  const auto* v = std::get_if<std::vector<double>>(&it->second);
  FABRIC_CHECK(v && v->size() == size, ValueError, who, ": hyper-parameter '", key, "' must be a tuple of ", size,
               " numbers, got ", v ? detail::cat("a tuple of ", v->size()) : std::string(kind_name(it->second)));
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
        gs.options[name] = hyper_from_tensor(t, key);
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
