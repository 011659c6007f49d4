// Lightning's loggers' version directories (its _get_next_version and the version_<n> naming).
#include "runtime/log_version.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>

namespace fabric {
namespace {
namespace fs = std::filesystem;

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

// Lightning's _get_next_version: one past the largest version_N directory under `dir`, else 0.
// N is the name's second "_"-separated part, as Lightning's name.split("_")[1]: version_7_old
// counts as 7.
int64_t next_version(const fs::path& dir) {
  int64_t next = 0;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (!e.is_directory(ec) || n.rfind("version_", 0) != 0) continue;
    const std::string digits = n.substr(8, n.find('_', 8) - 8);
    if (all_digits(digits) && digits.size() < 18) next = std::max<int64_t>(next, std::stoll(digits) + 1);
  }
  return next;
}

}  // namespace

std::string logger_root_dir(const std::string& root_dir, const std::string& name) {
  return name.empty() ? root_dir : (fs::path(root_dir) / name).string();
}

std::string resolve_log_version(const std::string& root, const std::string& version) {
  if (version.empty()) return "version_" + std::to_string(next_version(root));
  return all_digits(version) ? "version_" + version : version;
}

}  // namespace fabric
