// fabric_home(): fabric's own files, from the environment, the source tree or the library's file.
#include "runtime/fabric_home.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>

// The build sets FABRIC_SOURCE_DIR (the source tree) and FABRIC_HOME_FROM_LIBDIR (the installed
// share/fabric, relative to the installed library's folder: "../share/fabric" for <prefix>/lib,
// "../../share/fabric" for a multiarch lib/x86_64-linux-gnu) on this file.
#ifndef FABRIC_HOME_FROM_LIBDIR
#define FABRIC_HOME_FROM_LIBDIR "../share/fabric"
#endif

namespace fabric {
namespace fs = std::filesystem;

std::string fabric_home() {
  if (const char* h = std::getenv("FABRIC_HOME")) return h;
#ifdef FABRIC_SOURCE_DIR
  if (fs::exists(fs::path(FABRIC_SOURCE_DIR) / "tools/configs")) return FABRIC_SOURCE_DIR;
#endif
  // The file this function's code was loaded from: the shared library (or, linked statically,
  // the executable, whose bin/ is as deep as lib/).
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&fabric_home), &info) == 0 || info.dli_fname == nullptr)
    return "";
  std::error_code ec;
  fs::path file = fs::canonical(info.dli_fname, ec);  // a symlink's target: the real prefix
  if (ec) file = info.dli_fname;
  return (file.parent_path() / FABRIC_HOME_FROM_LIBDIR).lexically_normal().string();
}

}  // namespace fabric
