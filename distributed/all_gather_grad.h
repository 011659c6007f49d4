// The differentiable all-gather (torch.distributed.nn.functional.all_gather, Fabric's
// all_gather(sync_grads = true)): the gathered tensor joins the autograd graph of the input.
#pragma once
#include <memory>

#include "distributed/process_group.h"

namespace fabric::distributed {

// Makes `gathered` (world, *input.shape), every rank's `input` stacked in rank order, an output of
// a node whose backward gives `input` the sum over every rank j of j's gradient for row
// group.rank() (a sum all-reduce of the (world, *shape) gradient, then that row: torch's
// reduce-scatter). That backward is a collective: every rank of the group must run it (each rank's
// loss must reach `gathered`). A null group: one process, the gradient of unsqueeze(0).
// Returns `gathered` unchanged when grad mode is off or `input` needs no gradient.
Tensor connect_all_gather_grad(const Tensor& gathered, const Tensor& input,
                               std::shared_ptr<ProcessGroup> group);

}  // namespace fabric::distributed
