// The inside of a ZeroStrategy (shared by zero.cpp, which shards and runs the collectives, and
// zero_state.cpp, which converts optimizer and module state to and from the single-process layout).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "distributed/zero.h"

namespace fabric::distributed {

struct ZeroStrategy::Group {
  struct Bucket {
    int64_t start = 0, len = 0;   // slice of every partition
    std::vector<size_t> params;   // indices into params
    int64_t pending = 0;          // parameters whose gradient is not ready yet in this backward
    WorkPtr work;
  };
  std::vector<Tensor> params;     // the group's trainable parameters, in group order
  std::vector<int64_t> offsets;   // element offset of each in flat
  std::vector<std::vector<size_t>> buckets_of;  // per parameter
  std::vector<int64_t> remaining; // per parameter: buckets not yet launched in this backward
  std::vector<uint8_t> ready;
  DType dtype = DType::float32;   // flat's: the parameters', their gradients', the wire's
  Tensor flat;                    // (padded,) dtype: the module's parameters are views of it
  // (P,) float32 leaf the optimizer steps. Float32: on flat's storage at rank*P. Half: the fp32
  // master of partition rank, its own storage. Half: from the end of backward until
  // prepare_optimizer_gradients its .grad is the reduced partition gradient in dtype (stage 2:
  // its own (P,) buffer; stage 1: this rank's slice of flat_grad), then float32.
  Tensor shard;
  Tensor pending_grad;            // (P,) dtype: this backward's reduce-scatter output
  // Stage 1, half: (padded,) dtype, the module's gradients in flat's layout (moved here from the
  // parameters' .grad at the reduction, as DeepSpeed's flat fp16 gradient buffer); the reduction
  // writes this rank's slice. Freed when the optimizer's gradients are prepared.
  Tensor flat_grad;
  std::vector<Bucket> buckets;
  int64_t numel = 0, padded = 0, partition = 0;
  // Stage 2's hooks stay on the parameters, which may outlive the group (a module outlives the
  // optimizer that sharded it): they hold this weakly and do nothing once the group is gone.
  std::shared_ptr<const bool> token = std::make_shared<const bool>(true);

  bool half() const { return dtype != DType::float32; }
};

struct ZeroStrategy::Sharded {
  const optim::Optimizer* optimizer = nullptr;
  // The optimizer's: once it expires, the entry (its flat buffers, master partitions and buckets)
  // goes at the next point between backwards (forget_destroyed_optimizers).
  std::weak_ptr<const void> lifetime;
  std::vector<std::unique_ptr<Group>> groups;
  // Per optimizer group: the Groups sharding it, one per flat dtype in order of first appearance
  // (none when it had nothing trainable and was left as it was; the optimizer's group then holds
  // their shards in this order), and per original parameter where it went. The single-process
  // state_dict layout is rebuilt from these.
  struct Slot {
    int64_t sub = -1;    // index into by_group[gi]; -1: not trainable, not sharded
    int64_t index = -1;  // in that Group's params
  };
  std::vector<std::vector<Group*>> by_group;
  std::vector<std::vector<Slot>> slots;
};

}  // namespace fabric::distributed
