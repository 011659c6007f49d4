// Restoring a checkpoint's precision state (a loss scaler's) into the current plugin, which may be
// another kind than the one that saved it: the reference never saves it by default, so a load must
// not fail because the precision changed between runs (32-true -> 16-mixed, DDP -> DeepSpeed, ...).
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/checkpoint_detail.h"

namespace fabric::checkpoint_detail {
namespace {

using precision::PrecisionState;
using precision::StateValue;

// What a precision state holds, told by the keys its writers use.
enum class ScalerKind { none, grad_scaler, deepspeed, other };

ScalerKind kind_of(const PrecisionState& s) {
  if (s.empty()) return ScalerKind::none;
  if (s.count("scale") && s.count("_growth_tracker"))
    return ScalerKind::grad_scaler;                        // torch.amp.GradScaler
  if (s.count("cur_scale")) return ScalerKind::deepspeed;  // DeepSpeed's DynamicLossScaler
  return ScalerKind::other;
}

// The key holding the loss scale, for the kinds that have one.
const char* scale_key(ScalerKind k) {
  return k == ScalerKind::grad_scaler ? "scale"
         : k == ScalerKind::deepspeed ? "cur_scale"
                                      : nullptr;
}

std::string describe(ScalerKind k, const PrecisionState& s) {
  switch (k) {
    case ScalerKind::none:
      return "no loss-scaler state";
    case ScalerKind::grad_scaler:
      return "a GradScaler's state";
    case ScalerKind::deepspeed:
      return "a DeepSpeed DynamicLossScaler's state";
    case ScalerKind::other:
      break;
  }
  std::string keys;
  for (const auto& [key, v] : s) keys += (keys.empty() ? "" : ", ") + key;
  return "a state with keys " + keys;
}

bool same_keys(const PrecisionState& a, const PrecisionState& b) {
  if (a.size() != b.size()) return false;
  for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib)
    if (ia->first != ib->first) return false;
  return true;
}

std::optional<double> number(const PrecisionState& s, const char* key) {
  auto it = s.find(key);
  if (it == s.end()) return std::nullopt;
  if (const double* d = std::get_if<double>(&it->second)) return *d;
  if (const int64_t* i = std::get_if<int64_t>(&it->second)) return double(*i);
  return std::nullopt;
}

std::string format(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

}  // namespace

void restore_precision_state(precision::Precision& target, const json& entry,
                             const std::string& path, std::vector<std::string>* warnings) {
  const PrecisionState saved = precision_state_from(entry, path);
  const PrecisionState current = target.state_dict();
  const auto name = entry.find("name");  // only for messages: a missing or odd name is no error
  const std::string saved_by = name != entry.end() && name->is_string() ? name->get<std::string>() : "";
  const ScalerKind from = kind_of(saved), to = kind_of(current);
  if (from == ScalerKind::none && to == ScalerKind::none) return;
  if (from == to && same_keys(saved, current)) {
    target.load_state_dict(saved);  // the same kind of scaler: restored as it was
    return;
  }
  auto warn = [&](const std::string& what) {
    if (warnings) warnings->push_back("Fabric.load: checkpoint " + path + ": " + what);
  };
  const std::string mismatch =
      "the checkpoint holds " + describe(from, saved) + " (saved under precision '" + saved_by +
      "') but the current precision plugin '" + target.name() + "' keeps " + describe(to, current);
  // GradScaler's `scale` and DeepSpeed's `cur_scale` mean the same (the factor the loss is
  // multiplied by); the rest (growth trackers, hysteresis) has no counterpart and keeps the
  // target's values. A static DeepSpeed scale is the config's choice: it is kept.
  const char* from_key = scale_key(from);
  const char* to_key = scale_key(to);
  const std::optional<double> scale = from_key ? number(saved, from_key) : std::nullopt;
  auto dynamic = current.find("dynamic_loss_scale");
  const bool static_target = dynamic != current.end() &&
                             std::holds_alternative<bool>(dynamic->second) &&
                             !std::get<bool>(dynamic->second);
  if (scale && to_key && !static_target) {
    const double value = scale.value();
    PrecisionState translated = current;
    translated[to_key] = value;
    target.load_state_dict(translated);
    warn(mismatch + "; restored its loss scale " + format(value) + " as '" + to_key +
         "', the other fields keep their initial values");
    return;
  }
  warn(mismatch + "; it is not restored" +
       (to == ScalerKind::none ? std::string()
                               : ", the current plugin starts from its initial state"));
}

}  // namespace fabric::checkpoint_detail
