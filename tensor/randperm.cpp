// randperm (randperm.h): torch 1.13's checks, the permutation built on the host (torch's CPU
// algorithm over a torch_cpu stream, or Fisher–Yates over float64 uniforms from Philox), then
// converted to the dtype and moved to the device.
#include "tensor/randperm.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>
#include <vector>

#include "tensor/factory.h"
#include "tensor/torch_cpu_rng.h"

namespace fabric {
namespace {

// torch's check_supported_max_int_with_precision and its integer overflow check.
void check_fits(int64_t n, DType dt) {
  FABRIC_CHECK(dt != DType::bool_ && !is_fp8(dt), DTypeError, "randperm: not implemented for ",
               dtype_name(dt));
  const auto limit = [&](int64_t max_n, const char* shown, const char* type) {
    FABRIC_CHECK(n <= max_n, ValueError, "randperm: n cannot be greater than ", shown, " for ",
                 type, " type, got n=", n);
  };
  switch (dt) {
    case DType::float16:
      limit(2049, "2049", "Half");
      break;
    case DType::float32:
      limit((int64_t{1} << 24) + 1, "2^24+1", "Float");
      break;
    case DType::float64:
      limit((int64_t{1} << 53) + 1, "2^53+1", "Double");
      break;
    case DType::int8:
    case DType::uint8:
    case DType::int32: {
      const int64_t top = dt == DType::int8 ? 127 : dt == DType::uint8 ? 255 : INT32_MAX;
      FABRIC_CHECK(n - 1 <= top, ValueError, "randperm: value cannot be converted to type ",
                   dtype_name(dt), " without overflow (n=", n, ", largest value ", n - 1, ")");
      break;
    }
    default:
      break;
  }
}

}  // namespace

Tensor randperm(int64_t n, const TensorOptions& opts, Generator* gen) {
  FABRIC_CHECK(n >= 0, ValueError, "randperm: n must be non-negative, got ", n);
  check_fits(n, opts.dtype);
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), int64_t{0});
  Generator& g = gen ? *gen : default_generator();
  if (g.torch_cpu() && opts.device.is_cpu()) {
    TorchCpuRng& rng = g.torch_cpu_for_draw();
    auto lock = rng.lock();
    for (int64_t i = 0; i + 1 < n; ++i) {
      const auto z = static_cast<int64_t>(rng.random() % static_cast<uint64_t>(n - i));
      std::swap(p[static_cast<size_t>(i)], p[static_cast<size_t>(i + z)]);
    }
  } else if (n > 1) {
    // Swap i with i + floor(u_i (n - i)): u_i a float64 uniform in [0, 1), so every position
    // left is (all but) equally likely and the draw does not depend on the thread count.
    const std::vector<double> u = rand({n - 1}, {.dtype = DType::float64}, &g).to_vector<double>();
    for (int64_t i = 0; i + 1 < n; ++i) {
      const int64_t left = n - i;
      const auto z = std::min(
          left - 1, static_cast<int64_t>(u[static_cast<size_t>(i)] * static_cast<double>(left)));
      std::swap(p[static_cast<size_t>(i)], p[static_cast<size_t>(i + z)]);
    }
  }
  Tensor out = from_vector(p, {n}).to(opts.dtype);
  if (!opts.device.is_cpu()) out = out.to(opts.device);
  if (opts.requires_grad) out.set_requires_grad(true);
  return out;
}

}  // namespace fabric
