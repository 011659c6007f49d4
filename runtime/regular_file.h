// Paths that must name regular files (config files, data files): what a path names instead, for
// the error that refuses it before it is opened. A FIFO blocks its reader, /dev/zero never ends,
// and a directory reads as empty.
#pragma once
#include <string>

namespace fabric {

// "" when `path` (symlinks followed) is a regular file, or names nothing (the caller's own "no
// such file" applies) or cannot be examined (opening it reports why); otherwise what it is: "a
// directory", "a FIFO", "a character device", "a block device", "a socket" or "not a regular file".
std::string non_regular_file_kind(const std::string& path);

}  // namespace fabric
