// The process-wide default group (default_group.h).
#include "distributed/default_group.h"

#include <mutex>

namespace fabric::distributed {
namespace {

std::mutex& default_group_mutex() {
  static std::mutex m;
  return m;
}

std::weak_ptr<ProcessGroup>& default_group_slot() {
  static std::weak_ptr<ProcessGroup> slot;
  return slot;
}

}  // namespace

void set_default_process_group(const std::shared_ptr<ProcessGroup>& group) {
  std::lock_guard<std::mutex> lock(default_group_mutex());
  default_group_slot() = group;
}

std::shared_ptr<ProcessGroup> default_process_group() {
  std::lock_guard<std::mutex> lock(default_group_mutex());
  return default_group_slot().lock();
}

}  // namespace fabric::distributed
