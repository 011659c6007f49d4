#include "distributed/self_process_group.h"

#include "tensor/error.h"
#include "tensor/ops.h"

namespace fabric::distributed {
namespace {

class DoneWork : public Work {
 public:
  void wait() override {}
  bool is_completed() const override { return true; }
};

WorkPtr done() { return std::make_shared<DoneWork>(); }

// output receives input unless it already is that memory (an in-place gather of this rank's slot).
void copy_into(Tensor& output, const Tensor& input, const char* op) {
  FABRIC_CHECK(output.numel() == input.numel(), ValueError, "single-process group: ", op, " output has ",
               output.numel(), " elements, expected the input's ", input.numel(), " (one rank)");
  const bool same = output.storage().get() == input.storage().get() &&
                    output.storage_offset() == input.storage_offset() && output.dtype() == input.dtype() &&
                    output.is_contiguous() && input.is_contiguous();
  if (same) return;
  Tensor dst = output.view(input.sizes());
  dst.copy_(input);
}

}  // namespace

WorkPtr SelfProcessGroup::all_reduce(Tensor& tensor, ReduceOp op) {
  (void)tensor;
  (void)op;
  return done();
}

WorkPtr SelfProcessGroup::reduce_scatter(Tensor& output, const Tensor& input, ReduceOp op) {
  (void)op;
  copy_into(output, input, "reduce_scatter");
  return done();
}

WorkPtr SelfProcessGroup::all_gather(Tensor& output, const Tensor& input) {
  copy_into(output, input, "all_gather");
  return done();
}

WorkPtr SelfProcessGroup::all_gather_v(Tensor& output, const Tensor& input, const std::vector<int64_t>& counts) {
  FABRIC_CHECK(counts.size() == 1 && counts[0] == input.numel(), ValueError,
               "single-process group: all_gather_v takes one count equal to the input's ", input.numel(),
               " elements, got ", counts.size(), " count(s)");
  copy_into(output, input, "all_gather_v");
  return done();
}

WorkPtr SelfProcessGroup::broadcast(Tensor& tensor, int root) {
  (void)tensor;
  FABRIC_CHECK(root == 0, ValueError, "single-process group: broadcast root must be 0, got ", root);
  return done();
}

WorkPtr SelfProcessGroup::barrier() { return done(); }

WorkPtr SelfProcessGroup::send(const Tensor& tensor, int dst, uint32_t tag) {
  (void)tensor;
  (void)tag;
  throw ValueError("single-process group: send to rank " + std::to_string(dst) + ", but rank 0 is the only rank");
}

WorkPtr SelfProcessGroup::recv(Tensor& tensor, int src, uint32_t tag) {
  (void)tensor;
  (void)tag;
  throw ValueError("single-process group: recv from rank " + std::to_string(src) +
                   ", but rank 0 is the only rank");
}

}  // namespace fabric::distributed
