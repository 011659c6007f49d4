// The backward of a gather: what every rank's loss says about this rank's row, summed over ranks.
#include "distributed/all_gather_grad.h"

#include <utility>
#include <vector>

#include "autograd/connect_node.h"
#include "autograd/grad_mode.h"
#include "distributed/collective_staging.h"
#include "tensor/error.h"
#include "tensor/factory.h"

namespace fabric::distributed {

Tensor connect_all_gather_grad(const Tensor& gathered, const Tensor& input,
                               std::shared_ptr<ProcessGroup> group) {
  FABRIC_CHECK(gathered.defined() && input.defined() && gathered.dim() == input.dim() + 1,
               ShapeError, "all_gather: the gathered tensor must be (world, *input.shape)");
  if (!grad_enabled() || !input.requires_grad()) return gathered;
  const int64_t row = group ? group->rank() : 0;
  const Shape shape = gathered.sizes();
  const TensorOptions opts{.dtype = gathered.dtype(), .device = gathered.device()};
  auto backward = [group, row, shape, opts](const std::vector<Tensor>& grad_outputs) {
    // An undefined gradient is zero, yet the all-reduce must still run: the peers wait for it.
    Tensor g = grad_outputs[0].defined() ? grad_outputs[0].detach().contiguous().clone()
                                         : zeros(shape, opts);
    if (group) staged_all_reduce(*group, g, ReduceOp::sum);
    return std::vector<Tensor>{g.select(0, row)};
  };
  auto node = std::make_shared<FunctionNode>("all_gather", std::move(backward));
  node->set_saved_versions({});  // saves no tensor: a retained graph can run it again
  add_input_edges(*node, {input});
  Tensor out = gathered.detach();
  set_grad_fn(out, node, 0);
  return out;
}

}  // namespace fabric::distributed
