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

// Connects `size` ranks through `store`; this rank runs on CUDA device `device` and takes
// contiguous cuda:<device> tensors (float64/32/16, bfloat16, int64/32/8, uint8, and fp8 where the
// NCCL linked is 2.24 or newer). Operations are queued on the group's own stream after the work
// already issued on the device's default stream; Work::wait() blocks until the operation is done
// and orders later default-stream work after it. The `tag` of send/recv is ignored: NCCL matches
// point-to-point transfers by issue order between a pair of ranks.
// Several groups may share one store: every rank must create its groups in the same order.
// Without the CUDA backend: DeviceError saying so.
std::shared_ptr<ProcessGroup> make_nccl_process_group(std::shared_ptr<Store> store, int rank,
                                                      int size, int device,
                                                      const NcclOptions& options = {});

// Whether this build has the NCCL process group (built with CUDA, NCCL linked). It says nothing
// about whether a GPU is present.
bool nccl_available();

}  // namespace fabric::distributed
