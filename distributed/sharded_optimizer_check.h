// Optimizers a sharding strategy (ZeRO, FSDP) cannot step on its rank's partition.
#pragma once
#include <string>

#include "optim/optimizer.h"

namespace fabric::distributed {

// NotImplementedError naming `strategy` for LBFGS: its step evaluates the closure several times
// and takes its direction, curvature pairs and line search from dot products over all parameters.
// On a partition each rank would compute its own (and, its convergence checks differing, call the
// closure's collectives a different number of times), and the module's gathered parameters are
// refreshed only after the step, so the closure would not see the updates it evaluates. DDP keeps
// whole replicas: LBFGS steps there (and on one device).
void check_shardable(const optim::Optimizer& optimizer, const std::string& strategy);

}  // namespace fabric::distributed
