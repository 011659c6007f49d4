// CUDA copy/convert and fill kernels over a StridedLoop (operand 0 is the destination): any of
// the 11 dtypes to any other with the CPU's conversion rules, fp8 saturating on request.
#include <cstring>

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
