// A process group of one rank: every collective is a local copy (or nothing), done by the time it
// returns. ZeroStrategy runs its one-process half modes on it, so that one process keeps the
// fp32 master partition (the whole model) that DeepSpeed keeps on one GPU too, through the same
// code as N processes.
#pragma once
#include <memory>

#include "distributed/process_group.h"

namespace fabric::distributed {

class SelfProcessGroup : public ProcessGroup {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "self"; }
  // Nothing ever waits on a peer; a finite value all the same, so that a caller's now() + timeout()
  // cannot overflow.
  std::chrono::milliseconds timeout() const override { return std::chrono::hours(24); }
  // Its collectives are local copies (or nothing), on whatever device the tensors are.
  std::optional<Device> device() const override { return std::nullopt; }

  // Nothing to combine: the tensor is the result (avg over one rank is the value itself).
  WorkPtr all_reduce(Tensor& tensor, ReduceOp op = ReduceOp::sum) override;
  // output = input (one chunk); ValueError when their element counts differ.
  WorkPtr reduce_scatter(Tensor& output, const Tensor& input, ReduceOp op = ReduceOp::sum) override;
  WorkPtr all_gather(Tensor& output, const Tensor& input) override;
  // counts must be {input.numel()}.
  WorkPtr all_gather_v(Tensor& output, const Tensor& input, const std::vector<int64_t>& counts) override;
  // root must be 0.
  WorkPtr broadcast(Tensor& tensor, int root) override;
  WorkPtr barrier() override;
  // There is no peer: ValueError.
  WorkPtr send(const Tensor& tensor, int dst, uint32_t tag = 0) override;
  WorkPtr recv(Tensor& tensor, int src, uint32_t tag = 0) override;
};

}  // namespace fabric::distributed
