// The counters of the null CUDA runtime (tools/null_cuda): what the host asked of CUDA since the
// process started. A program that may run under it looks the function up at run time
// (dlsym(RTLD_DEFAULT, "null_cuda_counts")): found means the null runtime is the one loaded.
#pragma once

struct NullCudaCounts {
  long launches;        // kernels: <<<...>>> and cudaLaunchKernelExC
  long host_waits;      // cudaStreamSynchronize, cudaDeviceSynchronize, cudaEventSynchronize
  long device_mallocs;  // cudaMalloc (the caching allocator growing)
  long device_frees;    // cudaFree
  long events_created;  // cudaEventCreateWithFlags
  long copies;          // cudaMemcpyAsync, cudaMemcpyPeerAsync
  long memsets;         // cudaMemsetAsync, cudaMemset
  long device_queries;  // cudaDeviceGetAttribute, cudaGetDeviceProperties, cudaFuncGetAttributes,
                        // cudaOccupancyMaxActiveBlocksPerMultiprocessorWithFlags
  long matmuls;         // cublasLtMatmul, cublasGemmStridedBatchedEx
  long matmul_heuristics;  // cublasLtMatmulAlgoGetHeuristic (a plan made, not found in a cache)
};

using NullCudaCountsFn = void (*)(NullCudaCounts*);
