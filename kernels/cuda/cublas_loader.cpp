// The cuBLAS and cuBLASLt functions fabric calls, defined here with hidden visibility: the linker
// resolves every call inside libfabric_runtime to these, none is exported, and the library no
// longer needs libcublas/libcublasLt at load time. Each forwards to the real function, looked up
// once. A function newly called elsewhere must be added here, or the library fails to link
// (an undefined symbol), never silently at run time.
#include "kernels/cuda/cublas_loader.h"

#include <cuda_runtime_api.h>  // before the pragma: CUDA runtime functions keep their visibility

#pragma GCC visibility push(hidden)
#include <cublasLt.h>
#include <cublas_api.h>
#pragma GCC visibility pop

#include <string>

#ifndef FABRIC_CUDA_LIBRARY_DIR
#define FABRIC_CUDA_LIBRARY_DIR ""
#endif

namespace fabric::cuda {

LazyLibrary& cublaslt_library() {
  static LazyLibrary lib("cuBLASLt", "libcublasLt.so." + std::to_string(CUBLAS_VER_MAJOR),
                         FABRIC_CUDA_LIBRARY_DIR);
  return lib;
}

LazyLibrary& cublas_library() {
  static LazyLibrary lib("cuBLAS", "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR),
                         FABRIC_CUDA_LIBRARY_DIR);
  return lib;
}

namespace {

// Calls the real `Self` (our forwarder's own address names the function and its type).
template <auto Self, typename... Args>
auto call_real(LazyLibrary& lib, const char* name, Args... args) {
  static const auto real = reinterpret_cast<decltype(Self)>(lib.symbol(name));
  return real(args...);
}

}  // namespace
}  // namespace fabric::cuda

using fabric::cuda::call_real;
using fabric::cuda::cublas_library;
using fabric::cuda::cublaslt_library;

#define FABRIC_CUBLASLT_CALL(fn, ...) call_real<&fn>(cublaslt_library(), #fn, __VA_ARGS__)
#define FABRIC_CUBLAS_CALL(fn, ...) call_real<&fn>(cublas_library(), #fn, __VA_ARGS__)

extern "C" {

// ---- cuBLASLt ----------------------------------------------------------------------------------

cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
  return FABRIC_CUBLASLT_CALL(cublasLtCreate, handle);
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
  return FABRIC_CUBLASLT_CALL(cublasLtDestroy, handle);
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                              const void* alpha, const void* A, cublasLtMatrixLayout_t Adesc,
                              const void* B, cublasLtMatrixLayout_t Bdesc, const void* beta,
                              const void* C, cublasLtMatrixLayout_t Cdesc, void* D,
                              cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t* algo,
                              void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  return FABRIC_CUBLASLT_CALL(cublasLtMatmul, handle, desc, alpha, A, Adesc, B, Bdesc, beta, C,
                              Cdesc, D, Ddesc, algo, workspace, workspace_bytes, stream);
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t Adesc,
                                              cublasLtMatrixLayout_t Bdesc,
                                              cublasLtMatrixLayout_t Cdesc,
                                              cublasLtMatrixLayout_t Ddesc,
                                              cublasLtMatmulPreference_t preference,
                                              int requested, cublasLtMatmulHeuristicResult_t results[],
                                              int* returned) {
  return FABRIC_CUBLASLT_CALL(cublasLtMatmulAlgoGetHeuristic, handle, desc, Adesc, Bdesc, Cdesc,
                              Ddesc, preference, requested, results, returned);
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute,
                                        cudaDataType_t scale_type) {
  return FABRIC_CUBLASLT_CALL(cublasLtMatmulDescCreate, desc, compute, scale_type);
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
  return FABRIC_CUBLASLT_CALL(cublasLtMatmulDescDestroy, desc);
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc,
                                              cublasLtMatmulDescAttributes_t attr, const void* buf,
                                              size_t bytes) {
  return FABRIC_CUBLASLT_CALL(cublasLtMatmulDescSetAttribute, desc, attr, buf, bytes);
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
  return FABRIC_CUBLASLT_CALL(cublasLtMatmulPreferenceCreate, pref);
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  return FABRIC_CUBLASLT_CALL(cublasLtMatmulPreferenceDestroy, pref);
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void* buf, size_t bytes) {
  return FABRIC_CUBLASLT_CALL(cublasLtMatmulPreferenceSetAttribute, pref, attr, buf, bytes);
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType type,
                                          uint64_t rows, uint64_t cols, int64_t ld) {
  return FABRIC_CUBLASLT_CALL(cublasLtMatrixLayoutCreate, layout, type, rows, cols, ld);
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
  return FABRIC_CUBLASLT_CALL(cublasLtMatrixLayoutDestroy, layout);
}

cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t layout,
                                                cublasLtMatrixLayoutAttribute_t attr,
                                                const void* buf, size_t bytes) {
  return FABRIC_CUBLASLT_CALL(cublasLtMatrixLayoutSetAttribute, layout, attr, buf, bytes);
}

const char* cublasLtGetStatusName(cublasStatus_t status) {
  return FABRIC_CUBLASLT_CALL(cublasLtGetStatusName, status);
}

const char* cublasLtGetStatusString(cublasStatus_t status) {
  return FABRIC_CUBLASLT_CALL(cublasLtGetStatusString, status);
}

// ---- cuBLAS ------------------------------------------------------------------------------------

cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  return FABRIC_CUBLAS_CALL(cublasCreate_v2, handle);
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  return FABRIC_CUBLAS_CALL(cublasDestroy_v2, handle);
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  return FABRIC_CUBLAS_CALL(cublasSetMathMode, handle, mode);
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
  return FABRIC_CUBLAS_CALL(cublasSetStream_v2, handle, stream);
}

cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void* workspace, size_t bytes) {
  return FABRIC_CUBLAS_CALL(cublasSetWorkspace_v2, handle, workspace, bytes);
}

cublasStatus_t cublasGemmStridedBatchedEx_64(
    cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int64_t m,
    int64_t n, int64_t k, const void* alpha, const void* A, cudaDataType Atype, int64_t lda,
    long long int strideA, const void* B, cudaDataType Btype, int64_t ldb, long long int strideB,
    const void* beta, void* C, cudaDataType Ctype, int64_t ldc, long long int strideC,
    int64_t batch_count, cublasComputeType_t compute, cublasGemmAlgo_t algo) {
  return FABRIC_CUBLAS_CALL(cublasGemmStridedBatchedEx_64, handle, transa, transb, m, n, k, alpha,
                            A, Atype, lda, strideA, B, Btype, ldb, strideB, beta, C, Ctype, ldc,
                            strideC, batch_count, compute, algo);
}

const char* cublasGetStatusName(cublasStatus_t status) {
  return FABRIC_CUBLAS_CALL(cublasGetStatusName, status);
}

const char* cublasGetStatusString(cublasStatus_t status) {
  return FABRIC_CUBLAS_CALL(cublasGetStatusString, status);
}

}  // extern "C"
