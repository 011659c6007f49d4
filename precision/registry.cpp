// Precision string resolution and the custom plugin registry.
#include "precision/registry.h"

#include <map>
#include <mutex>

#include "precision/bitsandbytes_precision.h"
#include "precision/mixed_precision.h"
#include "precision/transformer_engine_precision.h"
#include "precision/true_precision.h"

namespace fabric::precision {
namespace {

const std::map<std::string, std::string>& aliases() {
  static const std::map<std::string, std::string> a = {
      {"64", "64-true"}, {"32", "32-true"}, {"16", "16-mixed"}, {"bf16", "bf16-mixed"}};
  return a;
}

struct Registry {
  std::mutex mu;
  std::map<std::string, PrecisionFactory> factories;
};

Registry& registry() {
  static Registry r;
  return r;
}

bool is_canonical(const std::string& v) {
  for (const auto& c : canonical_precisions())
    if (c == v) return true;
  for (const auto& c : bitsandbytes_modes())
    if (c == v) return true;
  return false;
}

std::string allowed_values() {
  std::string out;
  for (const auto& c : canonical_precisions()) out += (out.empty() ? "'" : ", '") + c + "'";
  for (const auto& [a, c] : aliases()) out += ", '" + a + "'";
  for (const auto& m : bitsandbytes_modes()) out += ", '" + m + "'";
  for (const auto& n : registered_precisions()) out += ", '" + n + "' (registered)";
  return out;
}

}  // namespace

const std::vector<std::string>& canonical_precisions() {
  static const std::vector<std::string> v = {"64-true",   "32-true",           "16-mixed",
                                             "bf16-mixed", "16-true",          "bf16-true",
                                             "transformer-engine", "transformer-engine-float16"};
  return v;
}

const std::vector<std::string>& bitsandbytes_modes() {
  static const std::vector<std::string> v = {"nf4", "nf4-dq", "fp4", "fp4-dq", "int8", "int8-training"};
  return v;
}

std::string canonical_precision(const std::string& value, std::string* warning) {
  if (value.empty()) return "32-true";
  if (is_canonical(value)) return value;
  if (auto it = aliases().find(value); it != aliases().end()) {
    if (warning && (value == "16" || value == "bf16"))
      *warning = "precision='" + value + "' is supported for historical reasons but its usage is "
                 "discouraged. Please set your precision to '" + it->second + "' instead!";
    return it->second;
  }
  {
    std::lock_guard<std::mutex> lock(registry().mu);
    if (registry().factories.count(value)) return value;
  }
  throw ValueError("Precision '" + value + "' is invalid. Allowed precision values: " + allowed_values());
}

void register_precision(const std::string& name, PrecisionFactory factory) {
  FABRIC_CHECK(!name.empty(), ValueError, "register_precision: the name must not be empty");
  FABRIC_CHECK(!is_canonical(name) && !aliases().count(name), ValueError, "register_precision: '", name,
               "' is a built-in precision value; choose another name");
  FABRIC_CHECK(static_cast<bool>(factory), ValueError, "register_precision: the factory for '", name,
               "' is empty");
  std::lock_guard<std::mutex> lock(registry().mu);
  registry().factories[name] = std::move(factory);
}

bool unregister_precision(const std::string& name) {
  std::lock_guard<std::mutex> lock(registry().mu);
  return registry().factories.erase(name) > 0;
}

std::vector<std::string> registered_precisions() {
  std::lock_guard<std::mutex> lock(registry().mu);
  std::vector<std::string> out;
  for (const auto& [n, f] : registry().factories) out.push_back(n);
  return out;
}

std::shared_ptr<Precision> make_precision(const std::string& value, DeviceType device) {
  const std::string p = canonical_precision(value);
  if (p == "32-true") return std::make_shared<Precision>();
  if (p == "64-true") return std::make_shared<DoublePrecision>();
  if (p == "16-true" || p == "bf16-true") return std::make_shared<HalfPrecision>(p);
  if (p == "16-mixed" || p == "bf16-mixed") return std::make_shared<MixedPrecision>(p, device);
  if (p == "transformer-engine")
    return std::make_shared<TransformerEnginePrecision>(DType::bfloat16, DelayedScaling{}, true, std::nullopt, device);
  if (p == "transformer-engine-float16")
    return std::make_shared<TransformerEnginePrecision>(DType::float16, DelayedScaling{}, true, std::nullopt, device);
  for (const auto& m : bitsandbytes_modes())
    if (p == m) return std::make_shared<BitsandbytesPrecision>(p);
  PrecisionFactory factory;
  {
    std::lock_guard<std::mutex> lock(registry().mu);
    factory = registry().factories.at(p);
  }
  std::shared_ptr<Precision> plugin = factory(device);
  FABRIC_CHECK(plugin != nullptr, ValueError, "the factory registered for precision '", p,
               "' returned no plugin");
  return plugin;
}

}  // namespace fabric::precision
