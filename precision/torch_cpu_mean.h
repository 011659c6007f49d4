// torch.mean of a contiguous float32 vector as PyTorch's CPU kernel computes it, bit for bit:
// bitsandbytes' double quantization centres the absmax statistics on `absmax.mean()`, and a
// mean summed any other way (in order, or in double) differs in the last bit for some lengths,
// which moves every recovered absmax and so every dequantized weight of those blocks.
#pragma once
#include <cstdint>

namespace fabric::precision {

// PyTorch 1.13's cascade_sum (ATen/native/cpu/SumKernel.cpp) for one contiguous row on its AVX2
// build (8 float lanes) in one thread, then the float32 division by n that at::mean does. 0 for
// n = 0 (torch: NaN; the callers have no statistics then).
float torch_cpu_mean_float32(const float* x, int64_t n);

}  // namespace fabric::precision
