// Multi-tensor kernels' launches: the tensors of a list go in launches of plan_multi_tensor
// (multi_tensor_plan.h), each launch's table of pointers, sizes and (slot, chunk) per block passed
// as the kernel's argument. A kernel reads its block's slot and element range with block_range.
#pragma once
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/multi_tensor_plan.h"

namespace fabric::cuda {

inline constexpr int kMultiTensors = 24;
inline constexpr int kMultiBlocks = 320;
inline constexpr int64_t kMultiChunk = 65536;
inline constexpr int kMultiThreads = 512;

// Depth pointers per tensor (Adam: param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq).
template <int Depth>
struct MultiTensorTable {
  void* ptr[Depth][kMultiTensors];
  int64_t n[kMultiTensors];
  int32_t chunk[kMultiBlocks];
  uint8_t slot[kMultiBlocks];
};
static_assert(sizeof(MultiTensorTable<5>) <= 3072,
              "leave room under the 4 KiB of kernel arguments");
static_assert(kMultiTensors <= 256, "slots are bytes");

struct BlockRange {
  int slot;
  int64_t begin, end;
};

template <int Depth>
__device__ __forceinline__ BlockRange block_range(const MultiTensorTable<Depth>& t) {
  const int s = t.slot[blockIdx.x];
  const int64_t begin = static_cast<int64_t>(t.chunk[blockIdx.x]) * kMultiChunk;
  return {s, begin, begin + kMultiChunk < t.n[s] ? begin + kMultiChunk : t.n[s]};
}

// For each launch of the plan over `sizes`: fills a table from pointer(i, d) (tensor i's pointer
// d) and calls launch(table, blocks), which queues the kernel.
template <int Depth, typename Pointer, typename Launch>
void for_each_multi_tensor_launch(const std::vector<int64_t>& sizes, const Pointer& pointer,
                                  const Launch& launch) {
  for (const int64_t n : sizes) {
    FABRIC_CHECK(n <= kMultiChunk * INT32_MAX, ValueError, "multi-tensor kernel: a tensor of ", n,
                 " elements has more chunks than a launch table numbers");
  }
  for (const MultiTensorLaunch& l :
       plan_multi_tensor(sizes, kMultiTensors, kMultiBlocks, kMultiChunk)) {
    MultiTensorTable<Depth> t{};
    for (size_t k = 0; k < l.tensors.size(); ++k) {
      const int i = l.tensors[k];
      for (int d = 0; d < Depth; ++d) t.ptr[d][k] = pointer(i, d);
      t.n[k] = sizes[static_cast<size_t>(i)];
    }
    for (size_t b = 0; b < l.blocks.size(); ++b) {
      t.slot[b] = static_cast<uint8_t>(l.blocks[b].slot);
      t.chunk[b] = static_cast<int32_t>(l.blocks[b].chunk);
    }
    launch(t, static_cast<unsigned>(l.blocks.size()));
  }
}

}  // namespace fabric::cuda
