// The RAII contexts precision plugins hand out (forward_context, module_init_context, ...): a
// move-only guard that undoes what entering did when it goes out of scope, plus the two contexts
// the plugins are built from, the default-dtype context and the autocast region.
#pragma once
#include <functional>
#include <utility>
#include <vector>

#include "tensor/device.h"
#include "tensor/dtype.h"

namespace fabric::precision {

class ContextGuard {
 public:
  ContextGuard() = default;  // a null context: nothing to undo
  explicit ContextGuard(std::function<void()> on_exit) { exits_.push_back(std::move(on_exit)); }
  ContextGuard(ContextGuard&& other) noexcept : exits_(std::move(other.exits_)) { other.exits_.clear(); }
  ContextGuard& operator=(ContextGuard&& other) noexcept {
    if (this != &other) {
      exit();
      exits_ = std::move(other.exits_);
      other.exits_.clear();
    }
    return *this;
  }
  ContextGuard(const ContextGuard&) = delete;
  ContextGuard& operator=(const ContextGuard&) = delete;
  ~ContextGuard() { exit(); }

  // Nests `inner` inside this context: it is undone first.
  ContextGuard& then(ContextGuard&& inner) {
    for (auto& e : inner.exits_) exits_.push_back(std::move(e));
    inner.exits_.clear();
    return *this;
  }
  // Undoes the context now (innermost first); later calls do nothing.
  void exit() {
    while (!exits_.empty()) {
      auto fn = std::move(exits_.back());
      exits_.pop_back();
      fn();
    }
  }

 private:
  std::vector<std::function<void()>> exits_;
};

// torch.set_default_dtype for the scope: factories without a dtype create `dtype`.
ContextGuard default_dtype_context(DType dtype);
// torch.autocast(device_type, dtype, enabled, cache_enabled) for the scope (nestable).
ContextGuard autocast_context(DeviceType device, DType dtype, bool enabled = true,
                              bool cache_enabled = true);

}  // namespace fabric::precision
