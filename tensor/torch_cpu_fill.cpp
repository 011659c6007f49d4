// torch 1.13's CPU random kernels (aten/src/ATen/native/cpu/DistributionTemplates.h) over a
// TorchCpuRng: uniform_kernel, normal_kernel (normal_fill for a contiguous tensor of >= 16
// elements, else one at::normal_distribution<double> draw per element), random_from_to_kernel and
// bernoulli_kernel, each value converted to the dtype as torch's static_cast does.
#include "tensor/torch_cpu_fill.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <numeric>
#include <type_traits>

#include "tensor/factory.h"
#include "tensor/float_formats.h"
#include "tensor/inplace_graph.h"
#include "tensor/torch_cpu_rng.h"

namespace fabric {
namespace {

// The order torch's TensorIterator visits one operand's elements in: dims by decreasing stride,
// ties (only size-1 dims can tie without overlap) in their own order.
std::vector<int64_t> memory_order(const Tensor& t) {
  std::vector<int64_t> order(static_cast<size_t>(t.dim()));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return t.stride(a) > t.stride(b); });
  return order;
}

// ---- uniform_kernel: at::uniform_real_distribution<scalar_t>(from, to) per element -------------
template <typename T>  // Half or BFloat16: from, to and their difference rounded to T
void uniform_reduced(T* out, int64_t n, double low, double high, TorchCpuRng& g) {
  constexpr int digits = std::is_same_v<T, Half> ? 11 : 8;
  const T from(low), to(high);
  const float width = static_cast<float>(T(static_cast<float>(to) - static_cast<float>(from)));
  for (int64_t i = 0; i < n; ++i)
    out[i] = T(g.uniform_float(digits, static_cast<float>(from), width));
}

void uniform_values(void* out, DType dt, int64_t n, double low, double high, TorchCpuRng& g) {
  switch (dt) {
    case DType::float64: {
      auto* o = static_cast<double*>(out);
      for (int64_t i = 0; i < n; ++i) o[i] = g.uniform_double(low, high - low);
      break;
    }
    case DType::float32: {
      auto* o = static_cast<float*>(out);
      const float from = static_cast<float>(low), to = static_cast<float>(high);
      for (int64_t i = 0; i < n; ++i) o[i] = g.uniform_float(24, from, to - from);
      break;
    }
    case DType::float16:
      uniform_reduced(static_cast<Half*>(out), n, low, high, g);
      break;
    case DType::bfloat16:
      uniform_reduced(static_cast<BFloat16*>(out), n, low, high, g);
      break;
    default:
      FABRIC_CHECK(false, DTypeError, "uniform_: torch_cpu generator: unsupported dtype ",
                   dtype_name(dt));
  }
}

// ---- normal_kernel's vectorised path: normal_fill<scalar_t>
// -------------------------------------- normal_fill_16 in Half or BFloat16 arithmetic. c10 gives
// BFloat16 its own std::log, std::sqrt, std::cos and std::sin, and its * and + round to bfloat16,
// so every step rounds; Half has none of those, so its steps run in float and only radius, θ and
// the result are rounded (the last product and the add fused, as GCC compiled it).
template <typename T>
void normal_fill_16_reduced(T* d, T mean, T std) {
  constexpr bool bf16 = std::is_same_v<T, BFloat16>;
  auto f = [](T v) { return static_cast<float>(v); };
  for (int j = 0; j < 8; ++j) {
    const T u1(1.0f - f(d[j]));
    const T u2 = d[j + 8];
    T radius;
    if constexpr (bf16) {
      const T log_u1(std::log(f(u1)));
      radius = T(std::sqrt(f(T(-2.0f * f(log_u1)))));
    } else {
      radius = T(std::sqrt(-2.0f * std::log(f(u1))));
    }
    const T theta(2.0 * std::numbers::pi * static_cast<double>(f(u2)));
    const float trig[2] = {std::cos(f(theta)), std::sin(f(theta))};
    for (int k = 0; k < 2; ++k) {
      if constexpr (bf16) {
        const T t(trig[k]);
        const T scaled(f(T(f(radius) * f(t))) * f(std));
        d[j + 8 * k] = T(f(scaled) + f(mean));
      } else {
        d[j + 8 * k] = T(std::fmaf(f(radius) * trig[k], f(std), f(mean)));
      }
    }
  }
}

// All n uniforms first, then the whole blocks of 16 (fill_blocks(data, count)); a ragged tail
// redraws 16 uniforms into the last 16 elements and transforms those (overwriting values of the
// previous block, as torch does).
template <typename T, typename Uniform, typename FillBlocks>
void normal_fill(T* data, int64_t n, Uniform uniform, FillBlocks fill_blocks) {
  for (int64_t i = 0; i < n; ++i) data[i] = uniform();
  fill_blocks(data, n / 16);
  if (n % 16 != 0) {
    T* tail = data + n - 16;
    for (int i = 0; i < 16; ++i) tail[i] = uniform();
    fill_blocks(tail, 1);
  }
}

// One block at a time through fill16.
template <typename T, typename Fill16>
auto each_block(Fill16 fill16) {
  return [fill16](T* data, int64_t blocks) {
    for (int64_t b = 0; b < blocks; ++b) fill16(data + 16 * b);
  };
}

void normal_vectorised(void* out, DType dt, int64_t n, double mean, double std, TorchCpuRng& g) {
  switch (dt) {
    case DType::float64:
      normal_fill(
          static_cast<double*>(out), n, [&] { return g.uniform_double(0.0, 1.0); },
          each_block<double>([&](double* d) { torch_normal_fill_16(d, mean, std); }));
      break;
    case DType::float32: {
      const float m = static_cast<float>(mean), s = static_cast<float>(std);
      const TorchNormalFill16Fn fill = torch_normal_fill_16_stub(Device::cpu());
      normal_fill(
          static_cast<float*>(out), n, [&] { return g.uniform_float(24, 0.0f, 1.0f); },
          [&](float* d, int64_t blocks) { fill(d, blocks, m, s); });
      break;
    }
    case DType::float16:
      normal_fill(
          static_cast<Half*>(out), n, [&] { return Half(g.uniform_float(11, 0.0f, 1.0f)); },
          each_block<Half>([&](Half* d) { normal_fill_16_reduced(d, Half(mean), Half(std)); }));
      break;
    case DType::bfloat16:
      normal_fill(
          static_cast<BFloat16*>(out), n, [&] { return BFloat16(g.uniform_float(8, 0.0f, 1.0f)); },
          each_block<BFloat16>(
              [&](BFloat16* d) { normal_fill_16_reduced(d, BFloat16(mean), BFloat16(std)); }));
      break;
    default:
      FABRIC_CHECK(false, DTypeError, "normal_: torch_cpu generator: unsupported dtype ",
                   dtype_name(dt));
  }
}

// ---- one value per element, converted as static_cast<scalar_t> ---------------------------------
// (c10's Half and BFloat16 are made from float: a double or int64 value is rounded to float first.)
void store(void* out, DType dt, int64_t i, double v) {
  switch (dt) {
    case DType::float64:
      static_cast<double*>(out)[i] = v;
      break;
    case DType::float32:
      static_cast<float*>(out)[i] = static_cast<float>(v);
      break;
    case DType::float16:
      static_cast<Half*>(out)[i] = Half(static_cast<float>(v));
      break;
    case DType::bfloat16:
      static_cast<BFloat16*>(out)[i] = BFloat16(static_cast<float>(v));
      break;
    default:
      FABRIC_CHECK(false, DTypeError, "torch_cpu generator: unsupported dtype ", dtype_name(dt));
  }
}

void store_int(void* out, DType dt, int64_t i, int64_t v) {
  switch (dt) {
    case DType::int64:
      static_cast<int64_t*>(out)[i] = v;
      break;
    case DType::int32:
      static_cast<int32_t*>(out)[i] = static_cast<int32_t>(v);
      break;
    case DType::int8:
      static_cast<int8_t*>(out)[i] = static_cast<int8_t>(v);
      break;
    case DType::uint8:
      static_cast<uint8_t*>(out)[i] = static_cast<uint8_t>(v);
      break;
    case DType::bool_:
      static_cast<bool*>(out)[i] = v != 0;
      break;
    case DType::float64:
      static_cast<double*>(out)[i] = static_cast<double>(v);
      break;
    default:
      store(out, dt, i, static_cast<double>(static_cast<float>(v)));  // int64 -> float -> dtype
  }
}

// Fills t with values made in torch's visiting order by draw(out, dtype, n, vectorised): straight
// into a contiguous t, else into a buffer laid out in that order, then written through.
template <typename Draw>
void fill_in_visiting_order(Tensor& t, TorchCpuRng& rng, Draw draw) {
  FABRIC_CHECK(t.device().is_cpu(), DeviceError,
               "torch_cpu generator: draws CPU tensors only, got one on ", t.device());
  const int64_t n = t.numel();
  if (n == 0) return;
  auto lock = rng.lock();
  if (t.is_contiguous()) {
    draw(t.data_ptr(), t.dtype(), n, /*vectorised=*/true);
    t.storage()->bump_version();
    return;
  }
  Tensor visited = t.permute(memory_order(t));
  Tensor values = empty(visited.sizes(), {.dtype = t.dtype()});
  draw(values.data_ptr(), t.dtype(), n, /*vectorised=*/false);
  write_values(visited, values);
}

// n values of a draw, in visiting order, into contiguous memory.
void draw(void* out, DType dt, int64_t n, const RandomParams& p, bool vectorised, TorchCpuRng& g) {
  switch (p.dist) {
    case RandomDist::uniform:
      uniform_values(out, dt, n, p.a, p.b, g);
      break;
    case RandomDist::normal:
      if (vectorised && n >= 16) {
        normal_vectorised(out, dt, n, p.a, p.b, g);
      } else {
        for (int64_t i = 0; i < n; ++i) store(out, dt, i, g.normal_double(p.a, p.b));
      }
      break;
    case RandomDist::randint:
      for (int64_t i = 0; i < n; ++i) store_int(out, dt, i, g.uniform_int(p.range, p.low));
      break;
  }
}

}  // namespace

void torch_cpu_random_fill(Tensor& t, const RandomParams& params, TorchCpuRng& rng) {
  fill_in_visiting_order(t, rng, [&](void* out, DType dt, int64_t n, bool vectorised) {
    draw(out, dt, n, params, vectorised, rng);
  });
}

void torch_cpu_bernoulli_fill(Tensor& t, double p, TorchCpuRng& rng) {
  fill_in_visiting_order(t, rng, [&](void* out, DType dt, int64_t n, bool) {
    for (int64_t i = 0; i < n; ++i) store_int(out, dt, i, rng.bernoulli(p) ? 1 : 0);
  });
}

void torch_cpu_exponential_fill(Tensor& t, double lambd, TorchCpuRng& rng) {
  const double scale = -1.0 / lambd;
  fill_in_visiting_order(t, rng, [&](void* out, DType dt, int64_t n, bool) {
    for (int64_t i = 0; i < n; ++i)
      store(out, dt, i, scale * std::log(1.0 - rng.uniform_double(0.0, 1.0)));
  });
}

Tensor torch_cpu_dropout_mask(const Tensor& input, double p, TorchCpuRng& rng) {
  const DType dt = input.dtype();
  const double scale = dropout_scale(p, dt);
  Tensor mask = empty(input.sizes(), {.dtype = dt});
  auto lock = rng.lock();
  for (int64_t i = 0; i < mask.numel(); ++i)
    store(mask.data_ptr(), dt, i, rng.bernoulli(1.0 - p) ? scale : 0.0);
  return mask;
}

}  // namespace fabric
