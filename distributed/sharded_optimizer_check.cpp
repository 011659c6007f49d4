#include "distributed/sharded_optimizer_check.h"

#include "optim/lbfgs.h"
#include "tensor/error.h"

namespace fabric::distributed {

void check_shardable(const optim::Optimizer& optimizer, const std::string& strategy) {
  FABRIC_CHECK(
      dynamic_cast<const optim::LBFGS*>(&optimizer) == nullptr, NotImplementedError, strategy,
      ": the LBFGS optimizer cannot be sharded: its step evaluates the closure several times "
      "and computes its updates from all parameters at once, while each rank holds only its "
      "partition. Use strategy 'ddp' (or one device) for LBFGS");
}

}  // namespace fabric::distributed
