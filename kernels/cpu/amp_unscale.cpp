// The fused unscale + inf/NaN check on the CPU (AVX-512): every element is loaded once, tested
// with vfpclass, multiplied and stored in the same pass; rows run in parallel (for_each_row).
#include <atomic>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/cpu/vec_math.h"
#include "tensor/amp_kernels.h"
#include "tensor/error.h"

namespace fabric::cpu {
namespace {

// vfpclass categories: QNaN | +inf | -inf | SNaN.
constexpr int kNonFinite = 0x01 | 0x08 | 0x10 | 0x80;

// float32, bfloat16, float16: float32 opmath, 16 lanes. The tail is masked, so no lane outside
// the row is read or written (masked-off lanes load as 0, which is finite).
template <class T>
bool unscale_contiguous(T* p, int64_t n, float inv, bool write) {
  const __m512 s = vec::splat(inv);
  __mmask16 bad = 0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = vec::load(p + i);
    bad |= _mm512_fpclass_ps_mask(v, kNonFinite);
    if (write) vec::store(p + i, _mm512_mul_ps(v, s));
  }
  if (i < n) {
    const __mmask16 k = vec::tail_mask(n - i);
    const __m512 v = vec::load(p + i, k);
    bad |= _mm512_fpclass_ps_mask(v, kNonFinite);
    if (write) vec::store(p + i, _mm512_mul_ps(v, s), k);
  }
  return bad != 0;
}

// float64: float64 opmath (PyTorch's opmath_type<double>), the float inverse widened exactly.
bool unscale_contiguous(double* p, int64_t n, float inv, bool write) {
  const __m512d s = _mm512_set1_pd(static_cast<double>(inv));
  __mmask8 bad = 0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m512d v = _mm512_loadu_pd(p + i);
    bad |= _mm512_fpclass_pd_mask(v, kNonFinite);
    if (write) _mm512_storeu_pd(p + i, _mm512_mul_pd(v, s));
  }
  if (i < n) {
    const __mmask8 k = static_cast<__mmask8>((1u << (n - i)) - 1u);
    const __m512d v = _mm512_maskz_loadu_pd(k, p + i);
    bad |= _mm512_fpclass_pd_mask(v, kNonFinite);
    if (write) _mm512_mask_storeu_pd(p + i, k, _mm512_mul_pd(v, s));
  }
  return bad != 0;
}

// Any other stride (non-contiguous gradients, or a broadcast read-only check): scalar code with
// the same opmath and rounding as the vector path.
template <class T>
bool unscale_strided(char* p, int64_t n, int64_t stride, float inv, bool write) {
  using Op = std::conditional_t<std::is_same_v<T, double>, double, float>;
  bool bad = false;
  for (int64_t i = 0; i < n; ++i, p += stride) {
    T* e = reinterpret_cast<T*>(p);
    const Op v = static_cast<Op>(*e);
    bad |= !std::isfinite(v);
    if (write) *e = static_cast<T>(v * static_cast<Op>(inv));
  }
  return bad;
}

template <class T>
void unscale_loop(const StridedLoop& loop, float inv, int32_t* found_flag) {
  const bool write = inv != 1.0f;
  std::atomic<bool> found{false};
  for_each_row(loop, [&](char* const* ptrs, int64_t n, const int64_t* strides) {
    const bool bad = strides[0] == static_cast<int64_t>(sizeof(T))
                         ? unscale_contiguous(reinterpret_cast<T*>(ptrs[0]), n, inv, write)
                         : unscale_strided<T>(ptrs[0], n, strides[0], inv, write);
    if (bad) found.store(true, std::memory_order_relaxed);
  });
  if (found.load(std::memory_order_relaxed)) *found_flag = 1;
}

void amp_unscale_kernel(const StridedLoop& loop, float inv_scale, int32_t* found) {
  FABRIC_CHECK(loop.num_operands == 1, ValueError, "amp_unscale: expected one operand, got ",
               loop.num_operands);
  switch (loop.ops[0].dtype) {
    case DType::float32:
      return unscale_loop<float>(loop, inv_scale, found);
    case DType::bfloat16:
      return unscale_loop<BFloat16>(loop, inv_scale, found);
    case DType::float16:
      return unscale_loop<Half>(loop, inv_scale, found);
    case DType::float64:
      return unscale_loop<double>(loop, inv_scale, found);
    default:
      throw DTypeError(
          detail::cat("amp_unscale: ", dtype_name(loop.ops[0].dtype),
                      " is not supported (expected float64, float32, bfloat16 or float16)"));
  }
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(amp_unscale_stub, cpu, &cpu::amp_unscale_kernel);
}  // namespace fabric
