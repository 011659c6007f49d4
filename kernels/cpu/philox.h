// The CPU's bulk Philox4x32-10 (tensor/random_kernels.h's contract), for kernels that draw their
// own random words: the random fills and dropout, and fused attention's dropout mask.
#pragma once
#include <cstdint>

namespace fabric::cpu {

// Words of blocks [first, first + count) (counter hi = 0, key = seed's 32-bit halves) into
// words[4 * count]; 16 blocks at a time with AVX-512.
void philox_blocks(uint64_t seed, uint64_t first, int64_t count, uint32_t* words);

}  // namespace fabric::cpu
