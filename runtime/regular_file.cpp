// What a path names when it is not a regular file (see regular_file.h).
#include "runtime/regular_file.h"

#include <filesystem>
#include <system_error>

namespace fabric {

std::string non_regular_file_kind(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  // status() only stats: unlike opening, it does not block on a FIFO.
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st) || fs::is_regular_file(st)) return "";
  if (fs::is_directory(st)) return "a directory";
  if (fs::is_fifo(st)) return "a FIFO";
  if (fs::is_character_file(st)) return "a character device";
  if (fs::is_block_file(st)) return "a block device";
  if (fs::is_socket(st)) return "a socket";
  return "not a regular file";
}

}  // namespace fabric
