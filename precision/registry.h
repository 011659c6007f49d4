// Precision strings: the reference's canonical values and legacy aliases, the plugin each selects,
// and a registry where users add their own plugins under a name (selectable by string, which the
// reference only allows through `plugins`).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "precision/precision.h"

namespace fabric::precision {

// "64-true", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "transformer-engine",
// "transformer-engine-float16".
const std::vector<std::string>& canonical_precisions();

// The quantized-weight modes of BitsandbytesPrecision, selectable by string here (the reference
// takes them only as a plugin): nf4, nf4-dq, fp4, fp4-dq, int8, int8-training.
const std::vector<std::string>& bitsandbytes_modes();

// The canonical string for a value: canonical values map to themselves; "64" -> 64-true,
// "32" -> 32-true, "16" -> 16-mixed and "bf16" -> bf16-mixed (these two set *warning, as the
// reference warns); an empty value (None) -> 32-true; a bitsandbytes mode or a registered custom
// name -> itself.
// Anything else: ValueError listing the allowed values.
std::string canonical_precision(const std::string& value, std::string* warning = nullptr);

using PrecisionFactory = std::function<std::shared_ptr<Precision>(DeviceType device)>;
// Adds a custom plugin under `name` (ValueError when the name is empty or is a canonical value
// or alias; registering a custom name again replaces it).
void register_precision(const std::string& name, PrecisionFactory factory);
bool unregister_precision(const std::string& name);
std::vector<std::string> registered_precisions();

// The plugin for a (canonical or custom) precision on an accelerator's device type.
std::shared_ptr<Precision> make_precision(const std::string& value, DeviceType device);

}  // namespace fabric::precision
