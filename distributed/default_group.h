// The process group a distributed layer uses when it was given none (torch.distributed's
// group.WORLD): the default group of the strategy launched last in this process.
#pragma once
#include <memory>

#include "distributed/process_group.h"

namespace fabric::distributed {

// Held weakly: the group ends with its strategy, and a later strategy's launch replaces it.
void set_default_process_group(const std::shared_ptr<ProcessGroup>& group);
// Null when no multi-process strategy is alive (one process, or before launch).
std::shared_ptr<ProcessGroup> default_process_group();

}  // namespace fabric::distributed
