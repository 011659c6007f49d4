// Fabric.save keeps the precision plugin's state (the loss scaler) by default under "precision";
// a state whose own "precision" key holds a plain value must not make the scaler's state vanish.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "nn/mlp.h"
#include "precision/mixed_precision.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

std::string temp_dir(const std::string& name) {
  return (fs::temp_directory_path() / (name + "_" + std::to_string(::getpid()))).string();
}

precision::GradScaler& scaler_of(Fabric& fab) {
  return *dynamic_cast<precision::MixedPrecision&>(fab.precision()).scaler();
}

TEST(FabricCheckpointPrecisionKey, UserPrecisionValueKeepsTheScalerState) {
  const std::string dir = temp_dir("fabric_precision_key");
  {
    Fabric fab({.precision = "16-mixed"});
    manual_seed(0);
    auto mlp = nn::make<nn::MLP>({.sizes = {4, 8, 2}});
    FabricModule model = fab.setup_module(mlp);
    fab.backward(sum(model(ones({3, 4}))));  // creates the scale
    scaler_of(fab).update(512.0);
    // The user's own "precision" (e.g. the precision string of the run) next to the model.
    fab.save(dir, {{"model", model}, {"precision", "16-mixed"}, {"step", 3}});
  }
  Fabric fab2({.precision = "16-mixed"});
  auto mlp2 = nn::make<nn::MLP>({.sizes = {4, 8, 2}});
  FabricModule model2 = fab2.setup_module(mlp2);
  State state{{"model", model2}, {"precision", ""}, {"step", 0}};
  State rest = fab2.load(dir, state);
  EXPECT_EQ(std::get<std::string>(state.at("precision").value()), "16-mixed");  // the user's value
  EXPECT_EQ(std::get<int64_t>(state.at("step").value()), 3);
  EXPECT_EQ(scaler_of(fab2).get_scale(), 512.0);  // and the scaler's, restored by default
  EXPECT_TRUE(rest.empty());
  EXPECT_TRUE(fab2.warnings().empty());

  // Reading the checkpoint whole shows both: the user's value and the plugin's state.
  Checkpoint all = fab2.load(dir);
  ASSERT_TRUE(all.count("precision"));
  EXPECT_EQ(all.at("precision").kind, "string");
  int plugin_entries = 0;
  for (const auto& [key, entry] : all)
    if (entry.kind == "precision") {
      ++plugin_entries;
      EXPECT_EQ(std::get<double>(entry.precision_state.at("scale")), 512.0);
    }
  EXPECT_EQ(plugin_entries, 1);
  fs::remove_all(dir);
}

// The plugin passed explicitly under any key is saved once, under that key, as before.
TEST(FabricCheckpointPrecisionKey, ExplicitPluginEntryIsTheOnlyPluginEntry) {
  const std::string dir = temp_dir("fabric_precision_key_explicit");
  Fabric fab({.precision = "16-mixed"});
  auto mlp = nn::make<nn::MLP>({.sizes = {4, 8, 2}});
  FabricModule model = fab.setup_module(mlp);
  fab.backward(sum(model(ones({3, 4}))));
  scaler_of(fab).update(256.0);
  fab.save(dir, {{"model", model}, {"precision", "x"}, {"scaler", fab.precision()}});
  Checkpoint all = fab.load(dir);
  int plugin_entries = 0;
  for (const auto& [key, entry] : all) plugin_entries += entry.kind == "precision";
  EXPECT_EQ(plugin_entries, 1);
  ASSERT_TRUE(all.count("scaler"));
  EXPECT_EQ(std::get<double>(all.at("scaler").precision_state.at("scale")), 256.0);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace fabric
