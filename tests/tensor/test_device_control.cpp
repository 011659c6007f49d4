// The device-neutral synchronize and TF32 switch of tensor/device_control.h: a CPU device has
// nothing to wait for; the TF32 switch is off by default, as torch's, and returns its old value.
#include <gtest/gtest.h>

#include "tensor/device_control.h"

namespace fabric {
namespace {

TEST(DeviceControl, SynchronizingTheCpuReturnsAtOnce) { synchronize(Device::cpu()); }

TEST(DeviceControl, Tf32IsOffByDefaultAndSwitchesProcessWide) {
  EXPECT_FALSE(allow_tf32());
  EXPECT_FALSE(set_allow_tf32(true));
  EXPECT_TRUE(allow_tf32());
  EXPECT_TRUE(set_allow_tf32(false));
  EXPECT_FALSE(allow_tf32());
}

}  // namespace
}  // namespace fabric
