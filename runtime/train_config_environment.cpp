// fabric-train and Lightning's `fabric run` CLI: the LT_* variables it passes its options in, read
// for the config to fold in (load_train_config's `environment`), then set to the config's values or
// removed.
#include <cstdlib>
#include <string>
#include <vector>

#include "runtime/train_config.h"

namespace fabric {

namespace {

// The variables the connector reads (runtime/connector.cpp), in the order it reads them.
constexpr const char* kVariables[] = {"LT_ACCELERATOR", "LT_STRATEGY", "LT_DEVICES", "LT_NUM_NODES",
                                      "LT_PRECISION"};

std::string value_for(const TrainConfig& c, const std::string& variable) {
  if (variable == "LT_ACCELERATOR") return c.fabric.accelerator;
  if (variable == "LT_STRATEGY") return c.fabric.strategy;
  if (variable == "LT_DEVICES") return c.fabric.devices;
  if (variable == "LT_NUM_NODES") return std::to_string(c.fabric.num_nodes);
  return c.fabric.precision;
}

}  // namespace

std::vector<EnvironmentSetting> lightning_environment() {
  std::vector<EnvironmentSetting> out;
  for (const char* name : kVariables)
    if (const char* v = std::getenv(name)) out.push_back({name, v});
  return out;
}

void align_lightning_environment(const TrainConfig& config) {
  for (const char* name : kVariables)
    if (std::getenv(name)) ::setenv(name, value_for(config, name).c_str(), /*overwrite=*/1);
}

void clear_lightning_environment() {
  for (const char* name : kVariables) ::unsetenv(name);
}

}  // namespace fabric
