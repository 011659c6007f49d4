// CUDA kernels with three inputs: where (a byte-width select, so one kernel per element size
// serves every dtype) and addcmul (self + value * t1 * t2), mirroring the CPU kernels.
#include "kernels/cuda/cast.cuh"
#include "kernels/cuda/loop_kernel.cuh"
#include "tensor/elementwise_kernels.h"

namespace fabric::cuda {
namespace {

// Operands (out, cond (bool), a, b).
template <typename U>
struct WhereOp {
  __device__ void operator()(char* (&p)[4]) const {
    store<U>(p[0], load<uint8_t>(p[1]) != 0 ? load<U>(p[2]) : load<U>(p[3]));
  }
};

void where_kernel(const StridedLoop& loop) {
  switch (itemsize(loop.ops[0].dtype)) {
    case 1:
      return launch_loop<4>(loop, WhereOp<uint8_t>{});
    case 2:
      return launch_loop<4>(loop, WhereOp<uint16_t>{});
    case 4:
      return launch_loop<4>(loop, WhereOp<uint32_t>{});
    default:
      return launch_loop<4>(loop, WhereOp<uint64_t>{});
  }
}

template <typename T>
using addcmul_math_t = std::conditional_t<std::is_same_v<T, bool>, int32_t, opmath_t<T>>;

// Operands (out, self, t1, t2).
template <typename T>
struct AddcmulOp {
  using M = addcmul_math_t<T>;
  M value;
  __device__ __forceinline__ M read(const char* p) const {
    if constexpr (std::is_same_v<T, bool>) {
      return load<uint8_t>(p) != 0 ? 1 : 0;
    } else {
      return static_cast<M>(load<T>(p));
    }
  }
  __device__ void operator()(char* (&p)[4]) const {
    const M s = read(p[1]), a = read(p[2]), b = read(p[3]);
    M r;
    if constexpr (std::is_floating_point_v<M>) {
      // g++ contracts the CPU's s + v * a * b into this one fma.
      if constexpr (std::is_same_v<M, float>) {
        r = fmaf(value * a, b, s);
      } else {
        r = fma(value * a, b, s);
      }
    } else {
      using U = std::make_unsigned_t<M>;
      r = static_cast<M>(
          static_cast<U>(static_cast<U>(s) +
                         static_cast<U>(static_cast<U>(static_cast<U>(value) * static_cast<U>(a)) *
                                        static_cast<U>(b))));
    }
    if constexpr (std::is_same_v<T, bool>) {
      store<bool>(p[0], r != 0);
    } else {
      store<T>(p[0], static_cast<T>(r));
    }
  }
};

void addcmul_kernel(const StridedLoop& loop, const Scalar& value) {
  const DType dt = loop.ops[0].dtype;
  FABRIC_CHECK(!is_fp8(dt), DTypeError, "addcmul kernel: no CUDA kernel for ", dtype_name(dt),
               " (fp8 values are converted, not computed on)");
  visit_compute_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    launch_loop<4>(loop, AddcmulOp<T>{scalar_as<addcmul_math_t<T>>(value)});
  });
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(where_stub, cuda, &cuda::where_kernel);
FABRIC_REGISTER_KERNEL(addcmul_stub, cuda, &cuda::addcmul_kernel);
}  // namespace fabric
