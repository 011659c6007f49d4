// The tensors requiring grad that a no-grad forward reads (activation checkpointing): the segment
// closes over them (module parameters, a tensor computed before it), so its node gets an edge to
// each and the recompute hands their gradients back along those edges. Every leaf then
// accumulates once per backward, with its whole gradient, and its hooks (DDP's, FSDP's) run once,
// as when the segment is not checkpointed.
#pragma once
#include <unordered_set>
#include <vector>

#include "tensor/op_record.h"
#include "tensor/tensor.h"

namespace fabric {

struct ClosureReads {
  std::vector<Tensor> tensors;  // first-read order, each once
  std::unordered_set<const TensorImpl*> seen;
};

// While alive, every op this thread records notes its inputs that require grad into `reads`
// (the op layer calls the recorder for such ops also under no-grad). Scopes nest; the innermost
// collects.
class ClosureReadsScope {
 public:
  explicit ClosureReadsScope(ClosureReads& reads);
  ~ClosureReadsScope();
  ClosureReadsScope(const ClosureReadsScope&) = delete;
  ClosureReadsScope& operator=(const ClosureReadsScope&) = delete;

 private:
  ClosureReads* prev_;
};

// Called by the recorder for every op.
void note_closure_reads(const OpRecord& rec);

}  // namespace fabric
