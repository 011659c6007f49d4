// Where a write that replaces a file by renaming a finished temporary over it should go. Shared by
// the safetensors writer and the CSV logger: both must keep a link a link and never turn a device,
// FIFO or folder at the path into a regular file.
#pragma once
#include <string>

namespace fabric {

// `path`, or the file a link at `path` points to (a chain of links followed; a dangling link to
// where it points). IOError "<who>: <path> is not a regular file (expected <expected>)" when
// that is something other than a regular file: a folder, a device, a FIFO, a socket.
std::string regular_write_target(const std::string& path, const std::string& who,
                                 const std::string& expected);

// `target` + `suffix` (trailing separators of `target` dropped), the name's end given up to keep
// it within NAME_MAX (255 bytes): a target whose name is near that limit could otherwise be
// written by no one. Writers and readers of a sibling (a checkpoint's temporary, its ".old" copy)
// both name it through here, so they agree on the cut.
std::string sibling_named(const std::string& target, const std::string& suffix);

// sibling_named(target, ".tmp.<pid>"), or with another marker (checkpoint folders use ".tmp-").
std::string temporary_sibling(const std::string& target, const char* marker = ".tmp.");

}  // namespace fabric
