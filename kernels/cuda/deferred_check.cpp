// The per-device record of the deferred range checks: allocated when a device arms its first
// check, read after the caller's own wait at each synchronisation point, cleared after a failure.
#include "kernels/cuda/deferred_check.h"

#include <array>

#include "kernels/cuda/stream.h"
#include "tensor/error.h"

namespace fabric::cuda {
namespace {

struct DeviceChecks {
  std::once_flag created;
  DeferredCheckRecord* record = nullptr;  // device memory, for the life of the process
  DeferredCheckRecord* host = nullptr;    // pinned: the read is queued like any other copy
  DeferredCheckSites sites;
  std::mutex read_mu;
};

DeviceChecks& checks_of(int device) {
  static std::array<DeviceChecks, kMaxDevices> all;
  FABRIC_CHECK(device >= 0 && device < kMaxDevices, DeviceError, "deferred checks: CUDA device ",
               device, " is past the ", kMaxDevices, " supported");
  return all[static_cast<size_t>(device)];
}

DeviceChecks& created_checks(int device) {
  DeviceChecks& c = checks_of(device);
  std::call_once(c.created, [&] {
    DeviceGuard guard(device);
    void* d = nullptr;
    void* h = nullptr;
    FABRIC_CUDA_CHECK(cudaMalloc(&d, sizeof(DeferredCheckRecord)));
    FABRIC_CUDA_CHECK(cudaHostAlloc(&h, sizeof(DeferredCheckRecord), cudaHostAllocPortable));
    FABRIC_CUDA_CHECK(cudaMemcpyAsync(d, &kNoFailure, sizeof(DeferredCheckRecord),
                                      cudaMemcpyHostToDevice, compute_stream(device)));
    c.record = static_cast<DeferredCheckRecord*>(d);
    c.host = static_cast<DeferredCheckRecord*>(h);
  });
  return c;
}

}  // namespace

DeviceRangeCheck device_range_check(int device, uint64_t site, int64_t bound) {
  DeviceRangeCheck c;
  c.bound = bound;
  if (site == 0) return c;
  c.record = created_checks(device).record;
  c.site = site;
  return c;
}

uint64_t arm_range_check(int device, RangeErrorText text) {
  return created_checks(device).sites.arm(std::move(text));
}

DeferredCheckRead::DeferredCheckRead(int device, cudaStream_t stream)
    : device_(device), stream_(stream) {
  DeviceChecks& c = checks_of(device);
  lock_ = std::unique_lock<std::mutex>(c.read_mu);
  read_ = c.sites.begin_read();
  // needed implies a check was armed, so the record exists.
  if (read_.needed) {
    FABRIC_CUDA_CHECK(cudaMemcpyAsync(c.host, c.record, sizeof(DeferredCheckRecord),
                                      cudaMemcpyDeviceToHost, stream_));
  }
}

void DeferredCheckRead::finish() {
  if (!read_.needed) return;
  DeviceChecks& c = checks_of(device_);
  const DeferredCheckRecord r = *c.host;
  RangeErrorText::Kind kind = RangeErrorText::Kind::index;
  std::optional<std::string> msg = c.sites.finish_read(read_, r, &kind);
  if (!msg) return;
  // Cleared before raising, so the error is reported once and later ops check afresh.
  FABRIC_CUDA_CHECK(cudaMemcpyAsync(c.record, &kNoFailure, sizeof(DeferredCheckRecord),
                                    cudaMemcpyHostToDevice, stream_));
  if (kind == RangeErrorText::Kind::value_count) throw ValueError(*msg);
  throw IndexError(*msg);
}

}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(arm_range_check_stub, cuda, &cuda::arm_range_check);
}  // namespace fabric
