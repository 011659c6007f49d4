// The one dispatch point per kernel: the op layer declares a stub (a function-pointer slot per
// device type), each device's kernels register into it at load time, and an op calls
// stub(device) to reach the kernel. Kernels see only value types; ops never name a device.
#pragma once
#include "tensor/device.h"
#include "tensor/error.h"

namespace fabric {

template <typename Fn>
struct DispatchStub {
  const char* name;
  Fn cpu = nullptr;
  Fn cuda = nullptr;

  Fn operator()(Device d) const {
    Fn f = d.is_cpu() ? cpu : cuda;
    if (!f) {
      throw DeviceError(detail::cat("no ", d.is_cpu() ? "CPU" : "CUDA", " kernel for '", name, "'",
                                    d.is_cuda() ? " (this build has no CUDA backend, or the kernel is not written)" : ""));
    }
    return f;
  }
  // The kernel for `d`, or null when that device has none (for ops with a fallback of their own).
  Fn find(Device d) const { return d.is_cpu() ? cpu : cuda; }
};

// Stubs are constant-initialised, so kernels may register from any translation unit's static
// initialisers regardless of order.
#define FABRIC_DECLARE_STUB(stub, FnType) extern ::fabric::DispatchStub<FnType> stub
#define FABRIC_DEFINE_STUB(stub, FnType) constinit ::fabric::DispatchStub<FnType> stub{#stub}
#define FABRIC_REGISTER_KERNEL(stub, device, fn)                          \
  [[maybe_unused]] static const bool fabric_reg_##device##_##stub = [] { \
    ::fabric::stub.device = (fn);                                        \
    return true;                                                         \
  }()

}  // namespace fabric
