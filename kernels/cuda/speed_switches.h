// Switches for the CUDA speed paths written without a GPU to time them, so that the first run on
// one can compare each against the path it replaced in the same process (`FABRIC_GPU_PROFILE_
// VARIANTS` of tools/gpu-check.sh) and a user can turn one off if it misbehaves. Each is read once
// from the environment; "0" turns the path off, "1" or unset leaves it on. Free of CUDA headers.
#pragma once

namespace fabric::cuda {

// FABRIC_CUDA_WIDE: row, column and elementwise kernels read and write 16-byte pieces
// (cross-entropy's rows of a multiple of 8 classes, 8 elements a thread; contiguous unary, binary
// and activation-backward ops; column sums of contiguous rows, col_sum_wide.h; layer_norm and
// rms_norm rows held in registers, norm_rows_wide.h) instead of one element a step. Off,
// cross-entropy, the column sums and the norms also sum in the old order (a few ulp apart).
bool wide_paths_enabled();

// FABRIC_CUDA_MULTI_TENSOR: Adam/AdamW update all the contiguous parameters of one device, dtype
// and step count in a few launches (multi_tensor_plan.h) instead of one launch per tensor.
bool multi_tensor_enabled();

// FABRIC_CUDA_GEMM_EPILOGUES: for bfloat16/float16 outputs, the GELU of gelu_mlp (GPT-2's MLP) and
// of gemm_bias_gelu / gemm_dgelu runs in cuBLASLt's GEMM epilogue, and a linear layer's bias
// gradient in the epilogue of its weight-gradient GEMM (BGRADB). Off, the plain GEMM is followed by
// our elementwise GELU (or GELU backward) or column sum, the composition's bits, as for float32
// always.
bool gemm_epilogues_enabled();

}  // namespace fabric::cuda
