// Helpers shared by the runtime tests.
#pragma once
#include <exception>
#include <functional>
#include <string>

namespace fabric::testing_util {

// The message of the E that fn throws; "(other error) ..." for any other exception, "(no error)"
// when nothing is thrown.
template <class E>
std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("(other error) ") + e.what();
  }
  return "(no error)";
}

}  // namespace fabric::testing_util
