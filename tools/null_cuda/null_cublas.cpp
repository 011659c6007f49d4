// cuBLAS (libcublas.so.<major>) for the null CUDA runtime (null_cudart.cpp): the few functions
// fabric calls (batched GEMMs that cuBLASLt does not take); a GEMM runs nothing and is counted.
#include <cublas_api.h>

#include <cstdlib>

extern "C" {

void null_cuda_count_matmul();

cublasStatus_t cublasCreate_v2(cublasHandle_t* h) {
  *h = reinterpret_cast<cublasHandle_t>(std::malloc(64));
  return *h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}
cublasStatus_t cublasDestroy_v2(cublasHandle_t h) {
  std::free(h);
  return CUBLAS_STATUS_SUCCESS;
}
const char* cublasGetStatusName(cublasStatus_t) { return "CUBLAS_STATUS (null cuBLAS)"; }
const char* cublasGetStatusString(cublasStatus_t) { return "reported by the null cuBLAS"; }
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetStream_v2(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t, void*, size_t) {
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGemmStridedBatchedEx_64(cublasHandle_t, cublasOperation_t, cublasOperation_t,
                                             int64_t, int64_t, int64_t, const void*, const void*,
                                             cudaDataType, int64_t, long long, const void*,
                                             cudaDataType, int64_t, long long, const void*, void*,
                                             cudaDataType, int64_t, long long, int64_t,
                                             cublasComputeType_t, cublasGemmAlgo_t) {
  null_cuda_count_matmul();
  return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
