#include "autograd/closure_reads.h"

namespace fabric {
namespace {
thread_local ClosureReads* t_reads = nullptr;
}  // namespace

ClosureReadsScope::ClosureReadsScope(ClosureReads& reads) : prev_(t_reads) { t_reads = &reads; }
ClosureReadsScope::~ClosureReadsScope() { t_reads = prev_; }

void note_closure_reads(const OpRecord& rec) {
  if (t_reads == nullptr) return;
  for (size_t i = 0; i < rec.num_inputs; ++i) {
    const Tensor& t = rec.inputs[i];
    if (t.defined() && t.requires_grad() && t_reads->seen.insert(t.impl()).second)
      t_reads->tensors.push_back(t);
  }
}

}  // namespace fabric
