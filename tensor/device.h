// Where a tensor lives: the CPU or CUDA device N. The type exists on every build; the CUDA
// kernels are only present where the CUDA backend was compiled.
#pragma once
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

namespace fabric {

enum class DeviceType : uint8_t { cpu, cuda };

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;

  constexpr Device() = default;
  constexpr Device(DeviceType t, int i = 0) : type(t), index(i) {}
  // "cpu", "cuda", "cuda:1"; throws DeviceError otherwise.
  Device(std::string_view spec);  // NOLINT: implicit from strings is the point
  Device(const char* spec) : Device(std::string_view(spec)) {}

  static constexpr Device cpu() { return Device(DeviceType::cpu, 0); }
  static constexpr Device cuda(int i = 0) { return Device(DeviceType::cuda, i); }
  constexpr bool is_cpu() const { return type == DeviceType::cpu; }
  constexpr bool is_cuda() const { return type == DeviceType::cuda; }
  std::string str() const;
  friend constexpr bool operator==(const Device& a, const Device& b) {
    return a.type == b.type && (a.type == DeviceType::cpu || a.index == b.index);
  }
};

std::ostream& operator<<(std::ostream& os, const Device& d);

}  // namespace fabric
