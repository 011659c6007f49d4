// See atomic_text_file.h.
#include "runtime/atomic_text_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "tensor/error.h"
#include "tensor/write_target.h"

namespace fabric {

void write_text_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = temporary_sibling(path);
  auto fail = [&](int err) {
    ::unlink(tmp.c_str());
    throw IOError("cannot write " + path + " (through " + tmp + "): " + std::strerror(err) +
                  "; the previous " + std::filesystem::path(path).filename().string() +
                  ", if any, is unchanged");
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(errno);
  for (size_t done = 0; done < text.size();) {
    const ssize_t w = ::write(fd, text.data() + done, text.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      const int err = errno;
      ::close(fd);
      fail(err);
    }
    done += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    fail(err);
  }
  if (::close(fd) != 0) fail(errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail(errno);
}

}  // namespace fabric
