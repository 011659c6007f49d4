// Where fabric finds its own files (the bundled configs and data): one rule for fabric-train and
// for an app that embeds the library through the C API.
#pragma once
#include <string>

namespace fabric {

// $FABRIC_HOME when set; else the source tree the library was built from, while it still holds
// tools/configs (a build tree's fabric-train and tests); else the installed package's
// <prefix>/share/fabric, found from the library's own file (<prefix>/lib/libfabric_runtime.so),
// so that it is the same for fabric-train (<prefix>/bin) and for an app installed anywhere.
// "" when none of these can be told (the library's file cannot be found).
std::string fabric_home();

}  // namespace fabric
