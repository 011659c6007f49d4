// The Gloo process group: collectives on CPU tensors over TCP, as PyTorch's ProcessGroupGloo
// (all_reduce, reduce_scatter and all_gather through shared memory when every rank is on this
// host: shm_collectives.h). Ranks
// rendezvous through a Store; operations run asynchronously, in issue order, on one worker thread
// per group. Ranks whose collectives disagree (another collective, dtype, element count, op, root
// or counts) get ShapeError / DTypeError / ValueError / DistributedError on every rank, and the
// group is broken from then on (gloo_call_check.h); so do a send and its recv that disagree on
// the dtype or the element count, on both ranks.
#pragma once
#include <chrono>
#include <memory>
#include <string>

#include "distributed/process_group.h"
#include "distributed/store.h"

namespace fabric::distributed {

struct GlooOptions {
  // Every operation (and the rendezvous) fails with TimeoutError after this long.
  std::chrono::milliseconds timeout{std::chrono::minutes(30)};
  // The address this rank listens on; peers must be able to reach it.
  std::string hostname = "127.0.0.1";
  // When every rank of the group runs on this host, all_reduce, reduce_scatter and all_gather go
  // through a shared-memory segment instead of TCP (distributed/shm_collectives.h); everything
  // else stays on Gloo. Every rank must agree, or none uses it; FABRIC_GLOO_SHM=0 in a rank's
  // environment also turns it off.
  bool shared_memory = true;
};

// Connects `size` ranks through `store` (blocks until every rank has joined, or TimeoutError).
// Several groups may share one store: every rank must create its groups in the same order.
std::shared_ptr<ProcessGroup> make_gloo_process_group(std::shared_ptr<Store> store, int rank,
                                                      int size, const GlooOptions& options = {});

}  // namespace fabric::distributed
