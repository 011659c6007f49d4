// Before a group connects, its ranks agree on the world through the store: every rank says how
// many ranks it expects and which one it is. Ranks started with different --devices/--num-nodes
// (or WORLD_SIZE) otherwise meet inside the transport's rendezvous, which fails with an internal
// size check ("136 vs 45") or waits out the whole timeout for ranks that never come.
#pragma once
#include <chrono>
#include <string>

#include "distributed/store.h"

namespace fabric::distributed {

// Collective over the `size` ranks that use `store`. `how` says where this rank's world came from
// ("devices 2 x num_nodes 2 (node_rank 0)"), named in the errors. Rank 0 waits (up to `timeout`)
// until every other rank has said the same size; the others check rank 0's. DistributedError on
// every rank that sees a disagreement: a rank expecting another world size, or two processes
// taking one rank; TimeoutError on rank 0 naming the ranks that never came.
void agree_on_world(Store& store, int rank, int size, const std::string& how,
                    std::chrono::milliseconds timeout);

}  // namespace fabric::distributed
