// An autocast region on the CPU for the length of a scope (tests of the autocast policies).
#pragma once
#include "tensor/autocast.h"

namespace fabric {

struct CpuAutocast {
  explicit CpuAutocast(DType dt) { autocast_enter(DeviceType::cpu, true, dt, true); }
  ~CpuAutocast() { autocast_exit(DeviceType::cpu); }
  CpuAutocast(const CpuAutocast&) = delete;
  CpuAutocast& operator=(const CpuAutocast&) = delete;
};

}  // namespace fabric
