// Grid sizes for the elementwise loops (loop_kernel.cuh). Free of CUDA headers.
#pragma once
#include <cstdint>

namespace fabric::cuda {

// Blocks of `threads` threads for an elementwise loop of n elements on `device`: one element per
// thread, but at most FABRIC_CUDA_LOOP_WAVES (default 4) full waves of resident blocks, the
// grid-stride loop covering the rest. Uncapped, a GPT-2-sized loop (6.3M elements) launched 24,576
// short-lived blocks and ran at a third of an H200's bandwidth, the block scheduling its limit;
// FABRIC_CUDA_LOOP_WAVES=0 restores that (at most 65,536 blocks) for comparison.
int64_t loop_blocks(int device, int64_t n, int threads);

}  // namespace fabric::cuda
