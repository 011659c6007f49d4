// Link-following, kind-checking resolution of a write's target, and short temporary names.
#include "tensor/write_target.h"

#include <unistd.h>

#include <filesystem>

#include "tensor/error.h"

namespace fabric {

std::string regular_write_target(const std::string& path, const std::string& who,
                                 const std::string& expected) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path target(path);
  for (int hops = 0; hops < 8 && fs::is_symlink(target, ec); ++hops) {
    const fs::path to = fs::read_symlink(target, ec);
    if (ec) break;
    target = to.is_absolute() ? to : target.parent_path() / to;
  }
  if (fs::exists(target, ec) && !fs::is_regular_file(target, ec))
    throw IOError(who + ": " + path + " is not a regular file (expected " + expected + ")");
  return target.string();
}

std::string sibling_named(const std::string& target, const std::string& suffix) {
  std::string path = target;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const std::filesystem::path p(path);
  std::string name = p.filename().string();
  // NAME_MAX is 255 bytes on Linux's file systems: a long name gives up its end, not the write.
  constexpr size_t kNameMax = 255;
  if (name.size() + suffix.size() > kNameMax) name.resize(kNameMax - suffix.size());
  return (p.parent_path() / (name + suffix)).string();
}

std::string temporary_sibling(const std::string& target, const char* marker) {
  return sibling_named(target, marker + std::to_string(::getpid()));
}

}  // namespace fabric
