// Parsing and printing device specs ("cpu", "cuda", "cuda:1").
#include "tensor/device.h"

#include <charconv>

#include "tensor/error.h"

namespace fabric {

Device::Device(std::string_view spec) {
  auto bad = [&] {
    return DeviceError(detail::cat("invalid device '", spec, "'; expected 'cpu', 'cuda' or 'cuda:N'"));
  };
  if (spec == "cpu") {
    *this = Device::cpu();
  } else if (spec == "cuda" || spec == "gpu") {
    *this = Device::cuda(0);
  } else if (spec.substr(0, 5) == "cuda:") {
    int idx = -1;
    auto rest = spec.substr(5);
    auto [p, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), idx);
    if (ec != std::errc() || p != rest.data() + rest.size() || idx < 0) throw bad();
    *this = Device::cuda(idx);
  } else {
    throw bad();
  }
}

std::string Device::str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

std::ostream& operator<<(std::ostream& os, const Device& d) { return os << d.str(); }

}  // namespace fabric
