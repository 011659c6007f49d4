// Test helpers shared across the layer test binaries: the message of an expected exception.
#pragma once
#include <gtest/gtest.h>

#include <exception>
#include <string>

namespace fabric {

// The message of the fabric::Error subclass E that fn throws (a test failure otherwise).
template <class E, class Fn>
std::string thrown(Fn&& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw another exception type: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no exception thrown";
  return "";
}

}  // namespace fabric

#define EXPECT_CONTAINS(msg, sub) EXPECT_NE(std::string(msg).find(sub), std::string::npos) << (msg)
