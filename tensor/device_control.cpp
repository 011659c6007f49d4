// The device-neutral synchronize and the process-wide TF32 switch.
#include "tensor/device_control.h"

#include <atomic>

namespace fabric {

FABRIC_DEFINE_STUB(device_synchronize_stub, DeviceSynchronizeFn);

namespace {
std::atomic<bool> g_allow_tf32{false};
}  // namespace

void synchronize(const Device& device) {
  if (device.is_cpu()) return;
  device_synchronize_stub(device)(device.index);
}

bool set_allow_tf32(bool allow) { return g_allow_tf32.exchange(allow); }
bool allow_tf32() { return g_allow_tf32.load(std::memory_order_relaxed); }

}  // namespace fabric
