// cuBLAS and cuBLASLt are opened on first use (see lazy_library.h): cublas_loader.cpp defines the
// functions of theirs that fabric calls, hidden inside libfabric_runtime, each forwarding to the
// library opened by dlopen. Code calls them as usual through <cublasLt.h> and <cublas_api.h>.
#pragma once

#include "kernels/cuda/lazy_library.h"

namespace fabric::cuda {

LazyLibrary& cublaslt_library();
LazyLibrary& cublas_library();

}  // namespace fabric::cuda
