// How a multi-tensor kernel covers a list of tensors: launches of at most `max_tensors` tensors
// and `max_blocks` blocks, each block one chunk of `chunk` elements of one tensor (the last chunk
// of a tensor shorter). The table of a launch travels in the kernel's arguments (4 KiB), so no
// host-to-device copy and no wait are needed; PyTorch's multi_tensor_apply does the same. A tensor
// whose chunks do not fit the current launch continues in the next one. Free of CUDA headers:
// tests/cuda/test_multi_tensor_plan.cpp checks the plans on the host.
#pragma once
#include <cstdint>
#include <vector>

namespace fabric::cuda {

struct MultiTensorLaunch {
  std::vector<int> tensors;  // indices into the list, in order; a launch's slot s is tensors[s]
  struct Block {
    int slot;
    int64_t chunk;  // elements [chunk * chunk_size, min((chunk + 1) * chunk_size, n))
  };
  std::vector<Block> blocks;
};

// Tensors of zero elements are skipped. Every chunk of every other tensor is in exactly one
// block, in the list's order.
std::vector<MultiTensorLaunch> plan_multi_tensor(const std::vector<int64_t>& sizes, int max_tensors,
                                                 int max_blocks, int64_t chunk);

}  // namespace fabric::cuda
