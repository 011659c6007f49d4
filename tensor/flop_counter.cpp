// The thread-local FLOP counter stack the ops report into (flop_counter.h).
#include "tensor/flop_counter.h"

#include <algorithm>
#include <vector>

namespace fabric {
namespace {

// The counters alive on this thread, oldest first: thread-local so that an op counts where it
// ran, as a torch dispatch mode does, and no lock sits on the ops' path.
thread_local std::vector<FlopCounter*> t_counters;
// The name a FlopOpName files this thread's reports under (null: the op's own).
thread_local const char* t_op_name = nullptr;
// The FlopsNotCounted scopes alive on this thread.
thread_local int t_not_counted = 0;

}  // namespace

FlopCounter::FlopCounter() { t_counters.push_back(this); }

FlopCounter::~FlopCounter() {
  // Usually the last one; a counter that outlives a later one (heap-held) is found anyway.
  auto it = std::find(t_counters.rbegin(), t_counters.rend(), this);
  if (it != t_counters.rend()) t_counters.erase(std::next(it).base());
}

int64_t FlopCounter::flops_of(std::string_view op) const {
  auto it = by_op_.find(op);
  return it == by_op_.end() ? 0 : it->second;
}

void FlopCounter::reset() {
  by_op_.clear();
  total_ = 0;
}

bool counting_flops() { return !t_counters.empty() && t_not_counted == 0; }

void report_flops(std::string_view op, int64_t flops) {
  if (t_not_counted > 0) return;
  if (t_op_name) op = t_op_name;
  for (FlopCounter* c : t_counters) {
    auto it = c->by_op_.find(op);
    if (it == c->by_op_.end()) it = c->by_op_.emplace(std::string(op), 0).first;
    it->second += flops;
    c->total_ += flops;
  }
}

FlopOpName::FlopOpName(const char* op) : previous_(t_op_name) { t_op_name = op; }

FlopOpName::~FlopOpName() { t_op_name = previous_; }

FlopsNotCounted::FlopsNotCounted() { ++t_not_counted; }

FlopsNotCounted::~FlopsNotCounted() { --t_not_counted; }

}  // namespace fabric
