// The NCCL group's watchdog, checked on the null CUDA runtime (tools/null_cuda): with
// NULL_NCCL_STALL=1 a collective acts out a peer that never joins -- its stream never completes
// until the communicator is aborted. A host waiting for the whole device (cudaDeviceSynchronize:
// fabric::cuda::synchronize, the caching allocator freeing a segment) sees no collective timeout of
// its own; the watchdog must abort the group at the op's deadline so that the wait returns and the
// op reports the timeout. Elsewhere (the real runtime loaded) it skips; a real two-GPU twin is in
// tests/distributed/test_nccl_process_group.cpp.
#include <dlfcn.h>
#include <gtest/gtest.h>

// CUDA builds only (a CPU-only build has no CUDA headers).
#ifdef FABRIC_WITH_CUDA

#include <chrono>
#include <cstdlib>
#include <future>
#include <string>
#include <thread>

#include "distributed/nccl_process_group.h"
#include "distributed/store.h"
#include "kernels/cuda/cuda_check.h"
#include "tensor/factory.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

using namespace std::chrono_literals;

bool under_null_runtime() { return dlsym(RTLD_DEFAULT, "null_cuda_counts") != nullptr; }

// Lets every stalled null collective complete (as if the missing peer had come).
void release_every_stall() {
  using ReleaseFn = void (*)(const void*);
  reinterpret_cast<ReleaseFn>(dlsym(RTLD_DEFAULT, "null_cuda_release_stalls"))(nullptr);
}

// A one-rank NCCL group of `timeout` on cuda:0 and an all-reduce on it that never completes
// (NULL_NCCL_STALL while it is issued). stderr is captured from before the op: on a loaded
// machine the watchdog may speak before the test starts waiting.
struct StalledAllReduce {
  std::shared_ptr<distributed::ProcessGroup> pg;
  Tensor t;
  distributed::WorkPtr work;
  explicit StalledAllReduce(std::chrono::milliseconds timeout)
      : pg(distributed::make_nccl_process_group(std::make_shared<distributed::HashStore>(), 0, 1, 0,
                                                {.timeout = timeout})),
        t(ones({16}).to(Device::cuda(0))) {
    testing::internal::CaptureStderr();
    setenv("NULL_NCCL_STALL", "1", 1);
    work = pg->all_reduce(t);
    unsetenv("NULL_NCCL_STALL");
  }
};

TEST(CudaHostPath, NcclWatchdogLetsADeviceWaitReturnWhenACollectiveHangs) {
  if (!under_null_runtime()) GTEST_SKIP() << "needs the null CUDA runtime (tools/null_cuda)";
  StalledAllReduce stalled(1000ms);
  auto& [pg, t, work] = stalled;
  const auto start = std::chrono::steady_clock::now();
  auto waited = std::async(std::launch::async, [] { cuda::synchronize(0); });
  if (waited.wait_for(30s) != std::future_status::ready) {
    // Let the blocked thread go, so that the failure is reported instead of a hung process.
    release_every_stall();
    waited.get();
    const std::string err = testing::internal::GetCapturedStderr();
    FAIL() << "cuda::synchronize still waits 30 s after the group's 1000 ms timeout; stderr: "
           << err;
  }
  waited.get();
  const auto took = std::chrono::steady_clock::now() - start;
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_LT(took, 10s);
  EXPECT_CONTAINS(err, "nccl all_reduce (rank 0 of 1, cuda:0)");
  EXPECT_CONTAINS(err, "timed out after 1000 ms");
  EXPECT_CONTAINS(err, "watchdog");

  // The op itself reports the timeout the watchdog found, and the group stays broken.
  EXPECT_TRUE(work->is_completed());
  const std::string msg = thrown<TimeoutError>([&] { work->wait(); });
  EXPECT_CONTAINS(msg, "nccl all_reduce (rank 0 of 1, cuda:0)");
  EXPECT_CONTAINS(msg, "timed out after 1000 ms");
  EXPECT_CONTAINS(thrown<DistributedError>([&] { pg->barrier(); }), "broken by an earlier failure");
}

// Before its deadline an op that is still running is left alone (no abort, nothing said); once it
// completes, it waits as any op.
TEST(CudaHostPath, NcclWatchdogLeavesAnOpBeforeItsDeadlineAlone) {
  if (!under_null_runtime()) GTEST_SKIP() << "needs the null CUDA runtime (tools/null_cuda)";
  StalledAllReduce stalled(30s);
  auto& [pg, t, work] = stalled;
  std::this_thread::sleep_for(600ms);  // several of the watchdog's looks
  EXPECT_FALSE(work->is_completed());
  release_every_stall();
  work->wait();
  EXPECT_TRUE(work->is_completed());
  pg->all_reduce(t)->wait();  // the group still works
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

// An error NCCL reports in the background (a peer's connection lost) breaks the group at the
// watchdog's next look, without waiting for the deadline.
TEST(CudaHostPath, NcclWatchdogBreaksTheGroupOnAnAsynchronousError) {
  if (!under_null_runtime()) GTEST_SKIP() << "needs the null CUDA runtime (tools/null_cuda)";
  StalledAllReduce stalled(600s);
  auto& work = stalled.work;
  setenv("NULL_NCCL_ASYNC_ERROR", "1", 1);
  const auto start = std::chrono::steady_clock::now();
  auto waited = std::async(std::launch::async, [] { cuda::synchronize(0); });
  const bool returned = waited.wait_for(30s) == std::future_status::ready;
  unsetenv("NULL_NCCL_ASYNC_ERROR");
  if (!returned) release_every_stall();
  waited.get();
  const std::string err = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(returned) << "the device wait still blocks 30 s after the error; stderr: " << err;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_CONTAINS(err, "the communicator reported an asynchronous error");
  const std::string msg = thrown<DistributedError>([&] { work->wait(); });
  EXPECT_CONTAINS(msg,
                  "nccl all_reduce (rank 0 of 1, cuda:0) failed: the communicator reported "
                  "an asynchronous error");
}

}  // namespace
}  // namespace fabric

#endif  // FABRIC_WITH_CUDA
