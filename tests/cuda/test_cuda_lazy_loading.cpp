// cuBLAS and cuBLASLt are opened on first use, not when libfabric_runtime loads: a process that
// never multiplies on a GPU never maps them (about 210 MiB resident and a third of a second each).
#include <gtest/gtest.h>

#include "tests/common/expect_error.h"

#ifdef FABRIC_WITH_CUDA
#include "kernels/cuda/cublas_loader.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/lazy_library.h"
#endif

namespace fabric {
namespace {

#ifdef FABRIC_WITH_CUDA

// Recorded while the test binary starts, before any test can have opened them.
const bool kCublasLtMappedAtStart = cuda::is_mapped(cuda::cublaslt_library().soname());
const bool kCublasMappedAtStart = cuda::is_mapped(cuda::cublas_library().soname());

TEST(CudaLazyLoading, LoadingTheLibraryDoesNotMapCublas) {
  EXPECT_TRUE(cuda::is_mapped("libfabric_runtime.so.0"));  // the probe itself works
  EXPECT_FALSE(kCublasLtMappedAtStart);
  EXPECT_FALSE(kCublasMappedAtStart);
}

TEST(CudaLazyLoading, CublasLtErrorsAreNamedWithoutOpeningCublas) {
  // Needs no device. Asking libcublas for a cuBLASLt status name would map it (~210 MiB) for
  // nothing; cuBLASLt names its own codes.
  const bool cublas_loaded_before = cuda::cublas_library().is_loaded();
  EXPECT_CONTAINS(thrown<DeviceError>([] { FABRIC_CUBLASLT_CHECK(1); }),
                  "CUBLAS_STATUS_NOT_INITIALIZED");
  EXPECT_TRUE(cuda::cublaslt_library().is_loaded());
  EXPECT_EQ(cuda::cublas_library().is_loaded(), cublas_loaded_before);
}

TEST(CudaLazyLoading, FirstCallOpensTheLibrary) {
  // A status name needs no device: the call opens libcublas (which maps libcublasLt with it).
  EXPECT_CONTAINS(thrown<DeviceError>([] { FABRIC_CUBLAS_CHECK(1); }),
                  "CUBLAS_STATUS_NOT_INITIALIZED");
  EXPECT_TRUE(cuda::cublas_library().is_loaded());
  EXPECT_TRUE(cuda::is_mapped(cuda::cublas_library().soname()));
  EXPECT_NE(cuda::cublaslt_library().symbol("cublasLtMatmul"), nullptr);
  EXPECT_TRUE(cuda::cublaslt_library().is_loaded());
}

TEST(CudaLazyLoading, MissingLibraryOrFunctionIsADeviceErrorThatSaysWhatToDo) {
  cuda::LazyLibrary absent("cuFoo", "libcufoo-not-here.so.7", "/nonexistent/cuda/lib");
  const std::string msg = thrown<DeviceError>([&] { absent.symbol("cufooCreate"); });
  EXPECT_CONTAINS(msg, "the CUDA backend needs cuFoo (libcufoo-not-here.so.7)");
  EXPECT_CONTAINS(msg, "/nonexistent/cuda/lib/libcufoo-not-here.so.7:");
  EXPECT_CONTAINS(msg, "LD_LIBRARY_PATH");
  EXPECT_FALSE(absent.is_loaded());
  // Asking again gives the same answer (the attempt is made once).
  EXPECT_CONTAINS(thrown<DeviceError>([&] { absent.symbol("cufooCreate"); }), "could not load it");

  EXPECT_CONTAINS(thrown<DeviceError>([] { cuda::cublas_library().symbol("cublasNoSuchCall"); }),
                  "has no function cublasNoSuchCall");
}

#else

TEST(CudaLazyLoading, NeedsTheCudaBackend) { GTEST_SKIP() << "built without CUDA"; }

#endif

}  // namespace
}  // namespace fabric
