// Collectives on tensors that may not be where the process group takes them. The NCCL group takes
// only contiguous cuda:N tensors (as PyTorch's ProcessGroupNCCL), yet the small host-side
// exchanges around training (shapes, byte strings, flags, counts, norms, a loss) are built on the
// CPU; Lightning's Fabric moves such data to the strategy's device before a collective, and so do
// these: copy to the group's device (contiguous), run, wait, copy the result back into the
// caller's tensor, in its layout and on its device. A tensor the group takes as it is goes as it
// is, so on Gloo a CPU caller pays nothing. The groups themselves keep refusing what they cannot
// take: a hot path that handed them the wrong device would rather fail than copy silently.
#pragma once
#include <cstdint>
#include <vector>

#include "distributed/process_group.h"

namespace fabric::distributed {

// Whether `group` takes `t` as it is: contiguous and on group.device() (any device when the group
// has none). An undefined tensor counts as taken, so that the group's own error names it.
bool takes_as_is(const ProcessGroup& group, const Tensor& t);

// `t` itself when the group takes it as it is, else a contiguous copy of it on the group's device.
Tensor on_group_device(const ProcessGroup& group, const Tensor& t);

// The ProcessGroup operations of the same names, blocking: each returns once the collective is
// done and its result is in the caller's tensor (`tensor`, `output`). The group's contract on
// dtypes, shapes and roots is unchanged, and so are its errors.
void staged_all_reduce(ProcessGroup& group, Tensor& tensor, ReduceOp op = ReduceOp::sum);
void staged_all_gather(ProcessGroup& group, Tensor& output, const Tensor& input);
void staged_all_gather_v(ProcessGroup& group, Tensor& output, const Tensor& input,
                         const std::vector<int64_t>& counts);
void staged_broadcast(ProcessGroup& group, Tensor& tensor, int root);

}  // namespace fabric::distributed
