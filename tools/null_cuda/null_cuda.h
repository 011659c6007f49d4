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
  long collectives;        // NCCL all-reduce, all-gather, reduce-scatter, broadcast, send, recv
};

// What was asked between two readings.
inline NullCudaCounts operator-(const NullCudaCounts& a, const NullCudaCounts& b) {
  return {a.launches - b.launches,
          a.host_waits - b.host_waits,
          a.device_mallocs - b.device_mallocs,
          a.device_frees - b.device_frees,
          a.events_created - b.events_created,
          a.copies - b.copies,
          a.memsets - b.memsets,
          a.device_queries - b.device_queries,
          a.matmuls - b.matmuls,
          a.matmul_heuristics - b.matmul_heuristics,
          a.collectives - b.collectives};
}

using NullCudaCountsFn = void (*)(NullCudaCounts*);

// null_cuda_kernel_launches(visit, context) calls visit(mangled device name, launches so far,
// context) once for every kernel registered with the runtime, launched or not.
using NullCudaKernelVisitor = void (*)(const char* device_name, long launches, void* context);
using NullCudaKernelLaunchesFn = void (*)(NullCudaKernelVisitor, void*);
