// The NCCL process group: collectives on CUDA tensors of one device per rank, as PyTorch's
// ProcessGroupNCCL. Ranks rendezvous through a Store; no CUDA or NCCL header is needed to use it.
#pragma once
#include <chrono>
#include <memory>

#include "distributed/process_group.h"
#include "distributed/store.h"

namespace fabric::distributed {

struct NcclOptions {
  // The communicator's creation and every operation fail with TimeoutError after this long; the
  // communicator is then aborted and the group is broken.
  std::chrono::milliseconds timeout{std::chrono::minutes(30)};
};

// Connects `size` ranks through `store` (rank 0 publishes the NCCL unique id; blocks until every
// rank has joined, or TimeoutError). This rank runs on CUDA device `device` and takes contiguous
// cuda:<device> tensors: float64/32/16, bfloat16, int64/32/8, uint8, bool (moved as uint8; reduced
// with max or min only, as on Gloo), and fp8 when built with NCCL 2.24 or newer (fp8 reductions
// need compute capability 9.0). CPU tensors are refused (DeviceError): collective_staging.h moves
// them. device() is cuda:<device>.
// An op is queued on the group's own stream after the work already issued on the device's
// default stream; the call returns once NCCL has enqueued it (NCCL sets up connections on the
// first op of a kind, which waits for the peers, bounded by the timeout). Work::wait() blocks
// until the op is done and orders later default-stream work after it. A timeout or NCCL error
// aborts the communicator: the op fails with TimeoutError / DistributedError and the group is
// unusable afterwards. The `tag` of send/recv is ignored: NCCL pairs a rank's sends to a peer
// with that peer's receives in issue order, and a send holds the stream until it is received.
// Several groups may share one store: every rank must create its groups in the same order.
// Without the CUDA backend: DeviceError saying so.
std::shared_ptr<ProcessGroup> make_nccl_process_group(std::shared_ptr<Store> store, int rank,
                                                      int size, int device,
                                                      const NcclOptions& options = {});

// Whether this build has the NCCL process group (built with CUDA, NCCL linked). It says nothing
// about whether a GPU is present.
bool nccl_available();

}  // namespace fabric::distributed
