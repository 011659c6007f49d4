// An op built on another reports the other's argument errors in its own name: the user called
// take_along_dim, not gather, and all/any, not sum.
#pragma once
#include <string>
#include <string_view>
#include <utility>

#include "tensor/error.h"

namespace fabric {

// Runs `call` (which runs `delegate`) and rethrows an IndexError, ValueError, ShapeError or
// DTypeError whose message starts "<delegate>:" as the same type starting "<op>:".
template <typename F>
auto in_op_name(std::string_view op, std::string_view delegate, F&& call) {
  const auto renamed = [&](const Error& e) {
    std::string message = e.what();
    const std::string prefix = std::string(delegate) + ":";
    if (message.rfind(prefix, 0) == 0) message = std::string(op) + message.substr(delegate.size());
    return message;
  };
  try {
    return std::forward<F>(call)();
  } catch (const IndexError& e) {
    throw IndexError(renamed(e));
  } catch (const ValueError& e) {
    throw ValueError(renamed(e));
  } catch (const ShapeError& e) {
    throw ShapeError(renamed(e));
  } catch (const DTypeError& e) {
    throw DTypeError(renamed(e));
  }
}

}  // namespace fabric
