// See collective_staging.h.
#include "distributed/collective_staging.h"

#include "autograd/grad_mode.h"
#include "tensor/factory.h"

namespace fabric::distributed {

namespace {

// Where a staged copy of `t` goes: the group's device, or t's own for a group that takes any.
Device staging_device(const ProcessGroup& group, const Tensor& t) {
  const std::optional<Device> device = group.device();
  return device ? *device : t.device();
}

// An output the group takes: `t` itself, or an uninitialized stand-in (the collective overwrites
// every element, so nothing of t needs copying there).
Tensor output_on_group_device(const ProcessGroup& group, const Tensor& t) {
  if (takes_as_is(group, t)) return t;
  return empty(t.sizes(), {.dtype = t.dtype(), .device = staging_device(group, t)});
}

// The collective's result into the caller's tensor, when it ran on a stand-in: element by element
// in logical order, so a strided view receives each value at its own index.
void copy_back(Tensor& caller, const Tensor& staged) {
  if (staged.is_same(caller)) return;
  NoGradGuard no_grad;
  caller.copy_(staged);
}

}  // namespace

bool takes_as_is(const ProcessGroup& group, const Tensor& t) {
  if (!t.defined()) return true;
  const std::optional<Device> device = group.device();
  return (!device || t.device() == *device) && t.is_contiguous();
}

Tensor on_group_device(const ProcessGroup& group, const Tensor& t) {
  if (takes_as_is(group, t)) return t;
  NoGradGuard no_grad;
  return t.detach().to(staging_device(group, t)).contiguous();
}

void staged_all_reduce(ProcessGroup& group, Tensor& tensor, ReduceOp op) {
  Tensor staged = on_group_device(group, tensor);
  group.all_reduce(staged, op)->wait();
  copy_back(tensor, staged);
}

void staged_all_gather(ProcessGroup& group, Tensor& output, const Tensor& input) {
  Tensor out = output_on_group_device(group, output);
  group.all_gather(out, on_group_device(group, input))->wait();
  copy_back(output, out);
}

void staged_all_gather_v(ProcessGroup& group, Tensor& output, const Tensor& input,
                         const std::vector<int64_t>& counts) {
  Tensor out = output_on_group_device(group, output);
  group.all_gather_v(out, on_group_device(group, input), counts)->wait();
  copy_back(output, out);
}

void staged_broadcast(ProcessGroup& group, Tensor& tensor, int root) {
  // The root's values go out from the stand-in, so it starts as a copy of the caller's tensor.
  Tensor staged = on_group_device(group, tensor);
  group.broadcast(staged, root)->wait();
  copy_back(tensor, staged);
}

}  // namespace fabric::distributed
