// The error types every layer throws: a person reading the message should know which op or key
// failed, with which shapes/dtypes/values, and what was expected.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace fabric {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class ShapeError : public Error { public: using Error::Error; };      // incompatible shapes
class DTypeError : public Error { public: using Error::Error; };      // a dtype the op does not take
class IndexError : public Error { public: using Error::Error; };      // index or dim out of range
class ValueError : public Error { public: using Error::Error; };      // a bad argument value
class DeviceError : public Error { public: using Error::Error; };     // wrong/unavailable device
class IOError : public Error { public: using Error::Error; };         // files: missing, malformed
class KeyError : public Error { public: using Error::Error; };        // a name missing from a map/checkpoint
class NotImplementedError : public Error { public: using Error::Error; };
// Collectives, rendezvous and launching: a peer failed, a message was malformed, a rank exited.
class DistributedError : public Error { public: using Error::Error; };
// A collective or store operation did not complete in time (names the op, the rank, the peer).
class TimeoutError : public DistributedError { public: using DistributedError::DistributedError; };

namespace detail {
template <typename... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

// FABRIC_CHECK(cond, ErrorType, "message parts", ...) throws ErrorType with the parts joined.
#define FABRIC_CHECK(cond, ErrorType, ...)                          \
  do {                                                              \
    if (!(cond)) throw ErrorType(::fabric::detail::cat(__VA_ARGS__)); \
  } while (0)

}  // namespace fabric
