// Lightning's logger directory layout, root_dir/name/version, shared by CSVLogger and
// TensorBoardLogger: the name level and the choice of the version directory.
#pragma once
#include <string>

namespace fabric {

// root_dir/name, or root_dir itself when `name` is empty (Lightning's `name=""`).
std::string logger_root_dir(const std::string& root_dir, const std::string& name);

// The version directory's name under `root` (root_dir/name), as Lightning's loggers choose it: with
// `version` empty, version_N with N one past the largest existing version_N directory (0 for the
// first); a `version` of all digits: version_<version>; anything else: `version` itself. Only reads
// the directory, so two loggers that ask before either writes get the same version, as Lightning's.
std::string resolve_log_version(const std::string& root, const std::string& version);

}  // namespace fabric
