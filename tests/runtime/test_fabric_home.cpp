// fabric_home() (runtime/fabric_home.h), the one rule fabric-train and the C API find fabric's own
// files by. The installed package's case (<prefix>/share/fabric beside the installed library, the
// source tree gone) is tests/install/check_install.sh's.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include "runtime/fabric_home.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

// Sets (or, with nullopt, removes) FABRIC_HOME for the test, restoring it afterwards.
class FabricHomeVariable {
 public:
  explicit FabricHomeVariable(const std::optional<std::string>& value) {
    if (const char* v = std::getenv("FABRIC_HOME")) saved_ = v;
    if (value)
      ::setenv("FABRIC_HOME", value->c_str(), 1);
    else
      ::unsetenv("FABRIC_HOME");
  }
  ~FabricHomeVariable() {
    if (saved_)
      ::setenv("FABRIC_HOME", saved_->c_str(), 1);
    else
      ::unsetenv("FABRIC_HOME");
  }

 private:
  std::optional<std::string> saved_;
};

TEST(FabricHome, TheVariableWinsAsGiven) {
  FabricHomeVariable home(std::string("/nowhere/fabric-home"));
  EXPECT_EQ(fabric_home(), "/nowhere/fabric-home");
}

#ifdef FABRIC_CONFIG_DIR
// In a build tree: the source tree the library was built from (its tools/configs is this test's
// FABRIC_CONFIG_DIR), for fabric-train and an app calling the C API alike.
TEST(FabricHome, ABuildTreesLibraryFindsItsSourceTree) {
  FabricHomeVariable home(std::nullopt);
  const fs::path source = fs::path(FABRIC_CONFIG_DIR).parent_path().parent_path();
  ASSERT_FALSE(fabric_home().empty());
  EXPECT_EQ(fs::weakly_canonical(fabric_home()), fs::weakly_canonical(source))
      << "FABRIC_SOURCE_DIR is set on runtime/fabric_home.cpp by cmake/FabricInstall.cmake";
}
#endif

}  // namespace
}  // namespace fabric
