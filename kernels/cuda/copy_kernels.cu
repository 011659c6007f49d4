// CUDA copy/convert and fill kernels over a StridedLoop (operand 0 is the destination): any of
// the 11 dtypes to any other with the CPU's conversion rules, fp8 saturating on request.
#include <cstdint>
#include <cstring>
#include <optional>

#include "kernels/cuda/alignment.h"
#include "kernels/cuda/cast.cuh"
#include "kernels/cuda/loop_kernel.cuh"
#include "tensor/copy_kernels.h"

namespace fabric::cuda {
namespace {

// ---- conversion: one kernel, the dtype pair chosen per element by two uniform switches ----------
// (121 template kernels would cost far more compile time for a memory-bound loop.)
template <typename S>
__device__ __forceinline__ void store_as(char* dst, DType dt, S v, bool saturate) {
  switch (dt) {
    case DType::float64:
      store(dst, cast_value<double>(v));
      break;
    case DType::float32:
      store(dst, cast_value<float>(v));
      break;
    case DType::float16:
      store(dst, cast_value<Half>(v));
      break;
    case DType::bfloat16:
      store(dst, cast_value<BFloat16>(v));
      break;
    case DType::float8_e4m3fn:
      store(dst, saturate ? cast_value_saturating<Float8E4M3>(v) : cast_value<Float8E4M3>(v));
      break;
    case DType::float8_e5m2:
      store(dst, saturate ? cast_value_saturating<Float8E5M2>(v) : cast_value<Float8E5M2>(v));
      break;
    case DType::int64:
      store(dst, cast_value<int64_t>(v));
      break;
    case DType::int32:
      store(dst, cast_value<int32_t>(v));
      break;
    case DType::int8:
      store(dst, cast_value<int8_t>(v));
      break;
    case DType::uint8:
      store(dst, cast_value<uint8_t>(v));
      break;
    case DType::bool_:
      store(dst, cast_value<bool>(v));
      break;
  }
}

struct ConvertOp {
  DType dst_type;
  DType src_type;
  bool saturate;
  __device__ void operator()(char* (&p)[2]) const {
    const char* s = p[1];
    switch (src_type) {
      case DType::float64:
        store_as(p[0], dst_type, load<double>(s), saturate);
        break;
      case DType::float32:
        store_as(p[0], dst_type, load<float>(s), saturate);
        break;
      case DType::float16:
        store_as(p[0], dst_type, load<Half>(s), saturate);
        break;
      case DType::bfloat16:
        store_as(p[0], dst_type, load<BFloat16>(s), saturate);
        break;
      case DType::float8_e4m3fn:
        store_as(p[0], dst_type, load<Float8E4M3>(s), saturate);
        break;
      case DType::float8_e5m2:
        store_as(p[0], dst_type, load<Float8E5M2>(s), saturate);
        break;
      case DType::int64:
        store_as(p[0], dst_type, load<int64_t>(s), saturate);
        break;
      case DType::int32:
        store_as(p[0], dst_type, load<int32_t>(s), saturate);
        break;
      case DType::int8:
        store_as(p[0], dst_type, load<int8_t>(s), saturate);
        break;
      case DType::uint8:
        store_as(p[0], dst_type, load<uint8_t>(s), saturate);
        break;
      // Any non-zero byte is true, as for the CPU's bulk conversion.
      case DType::bool_:
        store_as(p[0], dst_type, load<uint8_t>(s) != 0, saturate);
        break;
    }
  }
};

// Same dtype: move the bytes of one element.
template <typename U>
struct MoveOp {
  __device__ void operator()(char* (&p)[2]) const { store<U>(p[0], load<U>(p[1])); }
};

template <typename U>
struct FillOp {
  U bits;
  __device__ void operator()(char* (&p)[1]) const { store<U>(p[0], bits); }
};

// Every operand advances by its itemsize in one flat run (or there is one element).
bool dense(const StridedLoop& loop) {
  if (loop.ndim == 0) return true;
  if (loop.ndim > 1) return false;
  for (int k = 0; k < loop.num_operands; ++k)
    if (loop.ops[k].strides[0] != itemsize(loop.ops[k].dtype)) return false;
  return true;
}

// ---- wide paths: where one element a thread left an H200 at a third of its bandwidth -----------

// A same-dtype copy whose innermost run is contiguous on both sides in whole 16-byte pieces, every
// other stride and both addresses multiples of 16 (the attention heads' (B, T, nh, hs) <->
// (B, nh, T, hs) permutations, hs * itemsize = 128 bytes): the same loop over 16-byte elements.
std::optional<StridedLoop> as_16_byte_pieces(const StridedLoop& loop) {
  if (loop.ndim < 1) return std::nullopt;
  const int last = loop.ndim - 1;
  const int64_t isz = itemsize(loop.ops[0].dtype);
  const int64_t run = loop.sizes[last] * isz;
  if (run % 16 != 0) return std::nullopt;
  StridedLoop w = loop;
  for (int k = 0; k < 2; ++k) {
    if (loop.ops[k].strides[last] != isz || !aligned_to(loop.ops[k].data, 16)) return std::nullopt;
    for (int d = 0; d < last; ++d)
      if (loop.ops[k].strides[d] % 16 != 0) return std::nullopt;
    w.ops[k].strides[last] = 16;
  }
  w.sizes[last] = run / 16;
  return w;
}

// The casts of mixed precision (autocast's bf16/f16 copies of float32 activations and weights,
// their gradients' casts back) over a dense loop: four elements a thread, loaded and stored at
// once, each through the cast_value ConvertOp uses, so the bits are ConvertOp's.
template <typename S, typename D>
struct Convert4 {
  struct alignas(4 * sizeof(S)) In {
    S v[4];
  };
  struct alignas(4 * sizeof(D)) Out {
    D v[4];
  };
  __device__ void operator()(char* (&p)[2]) const {
    const In s = *reinterpret_cast<const In*>(p[1]);
    Out d;
#pragma unroll
    for (int j = 0; j < 4; ++j) d.v[j] = cast_value<D>(s.v[j]);
    *reinterpret_cast<Out*>(p[0]) = d;
  }
};

// The dense loop's first `count` elements from element `first` on.
StridedLoop dense_part(const StridedLoop& loop, int64_t first, int64_t count, int64_t group) {
  StridedLoop part = loop;
  part.ndim = 1;
  part.sizes[0] = count / group;
  for (int k = 0; k < 2; ++k) {
    const int64_t isz = itemsize(loop.ops[k].dtype);
    part.ops[k].data = loop.ops[k].data + first * isz;
    part.ops[k].strides[0] = isz * group;
  }
  return part;
}

template <typename S, typename D>
void convert4(const StridedLoop& loop) {
  const int64_t n = loop.numel(), main = n - n % 4;
  if (main > 0) launch_loop<2>(dense_part(loop, 0, main, 4), Convert4<S, D>{});
  if (main < n)
    launch_loop<2>(dense_part(loop, main, n - main, 1),
                   ConvertOp{loop.ops[0].dtype, loop.ops[1].dtype, false});
}

// True when it converted: a dense float32 <-> bfloat16/float16 loop with 4-element alignment.
bool try_convert4(const StridedLoop& loop) {
  const DType dt = loop.ops[0].dtype, st = loop.ops[1].dtype;
  if (loop.ndim != 1 || !dense(loop)) return false;
  if (!aligned_to(loop.ops[0].data, 4 * itemsize(dt)) ||
      !aligned_to(loop.ops[1].data, 4 * itemsize(st)))
    return false;
  if (st == DType::float32 && dt == DType::bfloat16) return convert4<float, BFloat16>(loop), true;
  if (st == DType::float32 && dt == DType::float16) return convert4<float, Half>(loop), true;
  if (st == DType::bfloat16 && dt == DType::float32) return convert4<BFloat16, float>(loop), true;
  if (st == DType::float16 && dt == DType::float32) return convert4<Half, float>(loop), true;
  return false;
}

void copy_kernel(const StridedLoop& loop, bool saturate_fp8) {
  const DType dt = loop.ops[0].dtype, st = loop.ops[1].dtype;
  const int64_t n = loop.numel();
  if (n == 0) return;
  if (dt == st) {
    if (dense(loop)) {
      const int device = loop_device(loop);
      DeviceGuard guard(device);
      FABRIC_CUDA_CHECK(cudaMemcpyAsync(loop.ops[0].data, loop.ops[1].data,
                                        static_cast<size_t>(n * itemsize(dt)),
                                        cudaMemcpyDeviceToDevice, compute_stream(device)));
      return;
    }
    if (const auto pieces = as_16_byte_pieces(loop))
      return launch_loop<2>(*pieces, MoveOp<uint4>{});
    switch (itemsize(dt)) {
      case 1:
        return launch_loop<2>(loop, MoveOp<uint8_t>{});
      case 2:
        return launch_loop<2>(loop, MoveOp<uint16_t>{});
      case 4:
        return launch_loop<2>(loop, MoveOp<uint32_t>{});
      default:
        return launch_loop<2>(loop, MoveOp<uint64_t>{});
    }
  }
  if (try_convert4(loop)) return;
  launch_loop<2>(loop, ConvertOp{dt, st, saturate_fp8});
}

void fill_kernel(const StridedLoop& loop, const Scalar& value) {
  const DType dt = loop.ops[0].dtype;
  const int64_t n = loop.numel();
  if (n == 0) return;
  const int64_t size = itemsize(dt);
  uint64_t bits = 0;  // the value in dt, as the CPU's fill rounds it
  visit_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T v =
        value.is_floating() ? cast_value<T>(value.to_double()) : cast_value<T>(value.to_int());
    std::memcpy(&bits, &v, sizeof(T));
  });
  bool same_bytes = true;  // e.g. zeros, or any 1-byte value: one memset does it
  for (int64_t b = 1; b < size; ++b)
    same_bytes = same_bytes && ((bits >> (8 * b)) & 0xFF) == (bits & 0xFF);
  if (same_bytes && dense(loop)) {
    const int device = loop_device(loop);
    DeviceGuard guard(device);
    FABRIC_CUDA_CHECK(cudaMemsetAsync(loop.ops[0].data, static_cast<int>(bits & 0xFF),
                                      static_cast<size_t>(n * size), compute_stream(device)));
    return;
  }
  switch (size) {
    case 1:
      return launch_loop<1>(loop, FillOp<uint8_t>{static_cast<uint8_t>(bits)});
    case 2:
      return launch_loop<1>(loop, FillOp<uint16_t>{static_cast<uint16_t>(bits)});
    case 4:
      return launch_loop<1>(loop, FillOp<uint32_t>{static_cast<uint32_t>(bits)});
    default:
      return launch_loop<1>(loop, FillOp<uint64_t>{bits});
  }
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(copy_stub, cuda, &cuda::copy_kernel);
FABRIC_REGISTER_KERNEL(fill_stub, cuda, &cuda::fill_kernel);
}  // namespace fabric
