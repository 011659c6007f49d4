// See multi_tensor_plan.h.
#include "kernels/cuda/multi_tensor_plan.h"

#include "tensor/error.h"

namespace fabric::cuda {

std::vector<MultiTensorLaunch> plan_multi_tensor(const std::vector<int64_t>& sizes, int max_tensors,
                                                 int max_blocks, int64_t chunk) {
  FABRIC_CHECK(max_tensors > 0 && max_blocks > 0 && chunk > 0, ValueError,
               "plan_multi_tensor: limits must be positive, got ", max_tensors, " tensors, ",
               max_blocks, " blocks, chunk ", chunk);
  std::vector<MultiTensorLaunch> plan;
  MultiTensorLaunch cur;
  const auto close = [&] {
    if (!cur.blocks.empty()) plan.push_back(std::move(cur));
    cur = MultiTensorLaunch{};
  };
  for (int t = 0; t < static_cast<int>(sizes.size()); ++t) {
    const int64_t chunks = (sizes[t] + chunk - 1) / chunk;
    for (int64_t c = 0; c < chunks; ++c) {
      if (static_cast<int>(cur.blocks.size()) == max_blocks) close();
      // A new launch, or the first chunk of this tensor in this one, takes a slot.
      if (cur.tensors.empty() || cur.tensors.back() != t) {
        if (static_cast<int>(cur.tensors.size()) == max_tensors) close();
        cur.tensors.push_back(t);
      }
      cur.blocks.push_back({static_cast<int>(cur.tensors.size()) - 1, c});
    }
  }
  close();
  return plan;
}

}  // namespace fabric::cuda
