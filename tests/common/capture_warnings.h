// Test helper: the fabric::warn messages raised while a CapturedWarnings lives, every one (the
// default handler's once-per-site filter does not apply), with the previous handler restored after.
#pragma once
#include <mutex>
#include <string>
#include <vector>

#include "tensor/warning.h"

namespace fabric::test {

class CapturedWarnings {
 public:
  CapturedWarnings()
      : previous_(set_warning_handler([this](const Warning& w) {
          std::lock_guard lock(mutex_);
          messages_.push_back(w.message);
        })) {}
  ~CapturedWarnings() { set_warning_handler(std::move(previous_)); }
  CapturedWarnings(const CapturedWarnings&) = delete;
  CapturedWarnings& operator=(const CapturedWarnings&) = delete;

  std::vector<std::string> messages() const {
    std::lock_guard lock(mutex_);
    return messages_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> messages_;
  WarningHandler previous_;
};

}  // namespace fabric::test
