// The CUDA runtime layer: error checking, device queries, what happens without a device, streams
// and events, the caching allocator's statistics on a real device, and host/device copies.
#include <gtest/gtest.h>

#include <cstring>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/storage.h"
#include "tests/common/expect_error.h"
#include "tests/cuda/cuda_test_util.h"

#ifdef FABRIC_WITH_CUDA
#include "kernels/cuda/caching_allocator.h"
#include "kernels/cuda/stream.h"
#endif

namespace fabric {
namespace {

using test::kGpu;

#ifdef FABRIC_WITH_CUDA

// ---- no device needed ---------------------------------------------------------------------------

TEST(CudaErrors, CheckMacroNamesTheCallTheErrorAndItsMessage) {
  // Fails with or without a GPU: cudaErrorInvalidDevice, or the missing driver's error.
  const std::string msg = thrown<DeviceError>([] { FABRIC_CUDA_CHECK(cudaSetDevice(1 << 20)); });
  EXPECT_CONTAINS(msg, "cudaSetDevice(1 << 20) failed: cudaError");
  EXPECT_CONTAINS(msg, "(code ");
  EXPECT_CONTAINS(msg, "test_cuda_runtime.cpp");
  int dev = -1;
  if (test::cuda_devices() > 0) EXPECT_NO_THROW(FABRIC_CUDA_CHECK(cudaGetDevice(&dev)));
}

TEST(CudaErrors, LibraryStatusMacrosNameTheStatus) {
  // cublasStatus_t 1 is CUBLAS_STATUS_NOT_INITIALIZED; cudnnStatus_t 2000 is
  // CUDNN_STATUS_BAD_PARAM.
  const int not_initialized = 1, bad_param = 2000;
  EXPECT_CONTAINS(thrown<DeviceError>([&] { FABRIC_CUBLAS_CHECK(not_initialized); }),
                  "not_initialized failed: CUBLAS_STATUS_NOT_INITIALIZED (code 1)");
  EXPECT_CONTAINS(thrown<DeviceError>([&] { FABRIC_CUBLASLT_CHECK(not_initialized); }),
                  "CUBLAS_STATUS_NOT_INITIALIZED");
  EXPECT_CONTAINS(thrown<DeviceError>([&] { FABRIC_CUDNN_CHECK(bad_param); }),
                  "bad_param failed: CUDNN_STATUS_BAD_PARAM (code 2000)");
  EXPECT_NO_THROW(FABRIC_CUBLAS_CHECK(0));
  EXPECT_NO_THROW(FABRIC_CUDNN_CHECK(0));
}

TEST(CudaRuntime, DeviceCountNeverThrowsAndExplainsZero) {
  std::string why;
  int n = -1;
  EXPECT_NO_THROW(n = cuda::device_count(&why));
  EXPECT_GE(n, 0);
  EXPECT_EQ(cuda::is_available(), n > 0);
  if (n == 0) {
    EXPECT_FALSE(why.empty());
  } else {
    EXPECT_TRUE(why.empty()) << why;
  }
  EXPECT_EQ(cuda::device_count(), n);  // probed once, stable
}

// Without a GPU (or a driver) a CUDA tensor is a DeviceError naming the device and the reason.
TEST(CudaRuntime, NoDeviceIsAClearDeviceError) {
  if (test::cuda_devices() > 0) GTEST_SKIP() << "a CUDA device is present";
  const std::string msg = thrown<DeviceError>([] { zeros({2}, {.device = kGpu}); });
  EXPECT_CONTAINS(msg, "cannot allocate on cuda:0");
  EXPECT_CONTAINS(msg, "no CUDA device is available");
  EXPECT_CONTAINS(thrown<DeviceError>([] { ones({3}).to(Device::cuda(1)); }), "cuda:1");
  EXPECT_THROW(device_allocator(kGpu), DeviceError);
  EXPECT_THROW(cuda::synchronize(0), DeviceError);
  EXPECT_THROW(cuda::compute_stream(0), DeviceError);
  EXPECT_THROW(cuda::set_device(0), DeviceError);
  EXPECT_THROW(cuda::DeviceGuard guard(0), DeviceError);
}

// ---- on a device ------------------------------------------------------------------------------

TEST(CudaRuntime, DevicesAndGuards) {
  FABRIC_REQUIRE_CUDA();
  const int n = cuda::device_count();
  const int before = cuda::current_device();
  {
    cuda::DeviceGuard guard(n - 1);
    EXPECT_EQ(cuda::current_device(), n - 1);
  }
  EXPECT_EQ(cuda::current_device(), before);
  EXPECT_CONTAINS(thrown<DeviceError>([&] { cuda::set_device(n); }), "does not exist");
  EXPECT_THROW(cuda::check_device(-1, "test"), DeviceError);
  EXPECT_NO_THROW(cuda::synchronize(0));
  EXPECT_THROW(zeros({2}, {.device = Device::cuda(n)}), DeviceError);
}

TEST(CudaRuntime, OneComputeStreamPerDeviceAndEvents) {
  FABRIC_REQUIRE_CUDA();
  cudaStream_t s = cuda::compute_stream(0);
  EXPECT_NE(s, nullptr);
  EXPECT_EQ(cuda::compute_stream(0), s);
  EXPECT_NE(s, cudaStreamLegacy);
  cuda::Event start(0, true), stop(0, true);
  start.record(s);
  Tensor x = ones({1 << 20}, {.device = kGpu});
  Tensor y = x * 2.0;
  stop.record(s);
  stop.synchronize();
  EXPECT_TRUE(stop.query());
  EXPECT_GE(start.elapsed_ms(stop), 0.0f);
  cuda::Event moved = std::move(start);
  EXPECT_EQ(start.get(), nullptr);
  EXPECT_NE(moved.get(), nullptr);
  EXPECT_EQ(y.to_vector<float>()[12345], 2.0f);
}

TEST(CudaAllocator, StatisticsFollowTensors) {
  FABRIC_REQUIRE_CUDA();
  Allocator& alloc = device_allocator(kGpu);
  cuda::synchronize(0);
  alloc.empty_cache();
  const AllocatorStats base = alloc.stats();
  int64_t during = 0;
  {
    Tensor a = empty({1 << 20}, {.device = kGpu});  // 4 MiB: the large pool, a 20 MiB segment
    const AllocatorStats s = alloc.stats();
    EXPECT_EQ(s.allocated_bytes - base.allocated_bytes, 4 << 20);
    // A segment that a tensor of an earlier test still holds a block of survives empty_cache and
    // may serve the request from its free part (seen on an H200 after the tests before this one):
    // then nothing is reserved anew; otherwise a new segment of at least the request is.
    if (s.num_system_allocs > base.num_system_allocs) {
      EXPECT_GE(s.reserved_bytes - base.reserved_bytes, 4 << 20);
    } else {
      EXPECT_EQ(s.reserved_bytes, base.reserved_bytes);
    }
    EXPECT_GE(s.reserved_bytes, s.allocated_bytes);
    EXPECT_GE(s.peak_allocated_bytes, s.allocated_bytes);
    during = s.allocated_bytes;
    Tensor b = empty({100}, {.device = kGpu});  // 400 bytes -> one 512-byte block
    EXPECT_EQ(alloc.stats().allocated_bytes, during + 512);
  }
  AllocatorStats after = alloc.stats();
  EXPECT_EQ(after.allocated_bytes, base.allocated_bytes);
  EXPECT_GE(after.peak_allocated_bytes, during + 512);
  EXPECT_GE(after.reserved_bytes, base.reserved_bytes);  // cached, not returned
  // Freed blocks are reused: the same request again reaches no cudaMalloc.
  const int64_t sys = after.num_system_allocs;
  { Tensor a = empty({1 << 20}, {.device = kGpu}); }
  EXPECT_EQ(alloc.stats().num_system_allocs, sys);
  alloc.reset_peak();
  EXPECT_EQ(alloc.stats().peak_allocated_bytes, alloc.stats().allocated_bytes);
  cuda::synchronize(0);
  alloc.empty_cache();
  EXPECT_EQ(alloc.stats().reserved_bytes, base.reserved_bytes);
}

TEST(CudaAllocator, OutOfMemoryIsADeviceErrorWithTheNumbers) {
  FABRIC_REQUIRE_CUDA();
  // 2^48 floats = 1 PiB: no device has it, so the retry fails too.
  const std::string msg = thrown<DeviceError>([] { empty({int64_t{1} << 48}, {.device = kGpu}); });
  EXPECT_CONTAINS(msg, "cuda:0");
  EXPECT_CONTAINS(msg, "out of memory");
  EXPECT_CONTAINS(msg, "tried to allocate 1048576.00 GiB");
  EXPECT_CONTAINS(msg, "reserved");
  EXPECT_CONTAINS(msg, "MiB free of");
  // The device still works afterwards.
  EXPECT_EQ((ones({4}, {.device = kGpu}) + 1.0).to_vector<float>(), std::vector<float>(4, 2.0f));
}

TEST(CudaAllocator, PinnedStagingBuffersAreCached) {
  FABRIC_REQUIRE_CUDA();
  Tensor host = arange(0, 1000, 1, DType::float32);
  host.to(kGpu);  // warms a staging buffer of this size class
  cuda::synchronize(0);
  const AllocatorStats before = cuda::pinned_stats();
  for (int i = 0; i < 5; ++i) {
    host.to(kGpu);
    cuda::synchronize(0);  // the buffer's copy is done, so the next copy may take it again
  }
  const AllocatorStats after = cuda::pinned_stats();
  EXPECT_EQ(after.num_system_allocs, before.num_system_allocs);
  EXPECT_GE(after.num_cache_hits, before.num_cache_hits + 5);
  EXPECT_EQ(after.allocated_bytes, 0);
  cuda::pinned_empty_cache();
  EXPECT_EQ(cuda::pinned_stats().reserved_bytes, 0);
}

TEST(CudaCopy, HostDeviceRoundTripSmallAndChunked) {
  FABRIC_REQUIRE_CUDA();
  // 8 MiB is the staging chunk: below, one buffer; above, two in turn (and an odd tail).
  for (int64_t n : {int64_t{1}, int64_t{1000}, int64_t{2 << 20}, int64_t{(7 << 20) + 123}}) {
    Tensor h = test::random_ints({n}, DType::int32, INT32_MIN, INT32_MAX, static_cast<uint64_t>(n));
    Tensor back = h.to(kGpu).to(Device::cpu());
    ASSERT_EQ(back.nbytes(), h.nbytes());
    EXPECT_EQ(std::memcmp(back.data_ptr(), h.data_ptr(), static_cast<size_t>(h.nbytes())), 0)
        << n << " ints";
  }
}

TEST(CudaCopy, HostSourceMayChangeRightAfterTheCopyIsQueued) {
  FABRIC_REQUIRE_CUDA();
  Tensor h = full({(3 << 20) + 5}, 1.0);  // 12 MiB of float32: the chunked path
  Tensor d = h.to(kGpu);
  h.fill_(7.0);  // the copy staged h already: d must hold the old values
  Tensor d2 = d * 1.0;
  const std::vector<float> v = d2.to_vector<float>();
  EXPECT_EQ(v.front(), 1.0f);
  EXPECT_EQ(v.back(), 1.0f);
  EXPECT_EQ(v[v.size() / 2], 1.0f);
}

TEST(CudaCopy, DeviceToDeviceOnOneDevice) {
  FABRIC_REQUIRE_CUDA();
  Tensor h = test::awkward_tensor({37, 41}, DType::float32);
  Tensor d = h.to(kGpu);
  test::expect_matches(h, d.clone(), {}, "clone");
  test::expect_matches(h.t().contiguous(), d.t().contiguous(), {}, "transposed contiguous");
  Tensor dst = zeros({41, 37}, {.device = kGpu});
  dst.copy_(d.t());
  test::expect_matches(h.t(), dst, {}, "copy_ of a transposed view");
}

TEST(CudaCopy, BetweenDevices) {
  if (test::cuda_devices() < 2) GTEST_SKIP() << "needs two CUDA devices";
  Tensor h = test::awkward_tensor({1000, 33}, DType::float32);
  Tensor d0 = h.to(Device::cuda(0));
  Tensor d1 = (d0 * 2.0).to(Device::cuda(1));  // reads a result still being computed on cuda:0
  EXPECT_EQ(d1.device(), Device::cuda(1));
  test::expect_matches(h * 2.0, d1, {}, "cuda:0 -> cuda:1");
  Tensor back = (d1 + 1.0).to(Device::cuda(0));
  test::expect_matches(h * 2.0 + 1.0, back, {}, "cuda:1 -> cuda:0");
  // A kernel on cuda:1 launches on cuda:1 whatever the current device is.
  cuda::DeviceGuard guard(0);
  test::expect_matches(h * 2.0 - 3.0, d1 - 3.0, {}, "kernel on cuda:1 from cuda:0");
}

#else  // !FABRIC_WITH_CUDA

TEST(CudaRuntime, BuildWithoutCudaRejectsCudaTensors) {
  EXPECT_THROW(zeros({2}, {.device = kGpu}), DeviceError);
  GTEST_SKIP() << "this build has no CUDA backend";
}

#endif

}  // namespace
}  // namespace fabric
