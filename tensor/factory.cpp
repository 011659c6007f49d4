// Constant and range factories (the random ones are in random.cpp).
#include "tensor/factory.h"

#include <cmath>

#include "tensor/elementwise_operands.h"
#include "tensor/ops.h"
#include "tensor/promotion.h"

namespace fabric {

Tensor empty(const Shape& shape, const TensorOptions& opts) {
  for (int64_t d : shape)
    FABRIC_CHECK(d >= 0, ShapeError, "empty: negative dimension ", d, " in shape ", shape_str(shape));
  const int64_t n = numel_of(shape);  // throws when the element count overflows
  // The byte count must fit int64 too (nbytes() and every offset are int64), as PyTorch's storage
  // size check; a request that fits but no machine holds is the allocator's to refuse.
  int64_t nbytes;
  FABRIC_CHECK(!__builtin_mul_overflow(n, itemsize(opts.dtype), &nbytes), ShapeError, "empty: a ",
               dtype_name(opts.dtype), " tensor of shape ", shape_str(shape), " (", n,
               " elements) needs more bytes than int64 can count (the storage size overflows)");
  auto storage = std::make_shared<StorageImpl>(static_cast<size_t>(nbytes), opts.device);
  Tensor t = Tensor::from_storage(std::move(storage), opts.dtype, shape, contiguous_strides(shape), 0);
  if (opts.requires_grad) t.set_requires_grad(true);
  return t;
}

Tensor full(const Shape& shape, const Scalar& value, const TensorOptions& opts) {
  TensorOptions o = opts;
  o.requires_grad = false;
  Tensor t = empty(shape, o);
  t.fill_(value);
  if (opts.requires_grad) t.set_requires_grad(true);
  return t;
}

Tensor full(const Shape& shape, const Scalar& value) {
  const DType dt = value.is_floating() ? default_float_dtype() : value.natural_dtype();
  return full(shape, value, {.dtype = dt});
}

Tensor zeros(const Shape& shape, const TensorOptions& opts) { return full(shape, 0, opts); }
Tensor ones(const Shape& shape, const TensorOptions& opts) { return full(shape, 1, opts); }

namespace {
// The *_like factories read the shape, dtype and device of a defined tensor.
TensorOptions like_options(const char* op, const Tensor& t) {
  FABRIC_CHECK(t.defined(), ValueError, op, ": got an undefined tensor");
  return {.dtype = t.dtype(), .device = t.device()};
}
}  // namespace

// Laid out as t is (torch's default memory_format=preserve_format): a transposed t gives a
// transposed result.
Tensor empty_like(const Tensor& t) {
  return empty_preserving_layout(t, like_options("empty_like", t));
}
namespace {
Tensor filled_like(const char* op, const Tensor& t, const Scalar& v) {
  Tensor out = empty_preserving_layout(t, like_options(op, t));
  out.fill_(v);
  return out;
}
}  // namespace
Tensor zeros_like(const Tensor& t) { return filled_like("zeros_like", t, 0); }
Tensor ones_like(const Tensor& t) { return filled_like("ones_like", t, 1); }
Tensor full_like(const Tensor& t, const Scalar& v) { return filled_like("full_like", t, v); }

Tensor scalar_tensor(const Scalar& value, const TensorOptions& opts) { return full({}, value, opts); }

Tensor eye(int64_t n, std::optional<int64_t> m, const TensorOptions& opts) {
  FABRIC_CHECK(n >= 0, ValueError, "eye: n must be greater or equal to 0, got ", n);
  const int64_t cols = m.value_or(n);
  FABRIC_CHECK(cols >= 0, ValueError, "eye: m must be greater or equal to 0, got ", cols);
  TensorOptions o = opts;
  o.requires_grad = false;
  Tensor t = zeros({n, cols}, o);
  // The diagonal is a strided view of t (row stride + 1): one fill writes it on any device.
  if (n > 0 && cols > 0) diagonal(t).fill_(1);
  if (opts.requires_grad) t.set_requires_grad(true);
  return t;
}

namespace {

// torch's Scalar::to<int64_t>(): a float bound truncates toward zero; one int64 cannot hold is
// refused, as c10's checked conversion refuses it.
int64_t truncated_bound(const char* what, const Scalar& v, DType dt) {
  if (!v.is_floating()) return v.to_int();
  const double d = v.to_double();
  FABRIC_CHECK(std::isfinite(d) && d >= -0x1p63 && d < 0x1p63, ValueError, "arange: ", what, " ", d,
               " cannot be converted to an integer for a ", dtype_name(dt), " range");
  return static_cast<int64_t>(d);
}

// An integer dtype, as torch computes it: start, end and step are first truncated to integers
// (its accumulate type, int64), so arange(0, 2.5, 1, int64) is [0, 1] and a step of 0.5 is a
// zero step. The count comes from the truncated bounds for int64 and from the bounds as given
// for the narrower dtypes (torch's two branches); values are start + i * step in int64,
// converted (wrapping) to the dtype.
Tensor arange_integral(const Scalar& start, const Scalar& end, const Scalar& step, DType dt,
                       Device device) {
  const int64_t a = truncated_bound("start", start, dt), b = truncated_bound("end", end, dt),
                c = truncated_bound("step", step, dt);
  FABRIC_CHECK(c != 0, ValueError, "arange: step must be non-zero",
               step.is_floating() ? detail::cat(" (step ", step.to_double(),
                                                " truncates to 0 for a ", dtype_name(dt), " range)")
                                  : std::string());
  FABRIC_CHECK((c > 0 && b >= a) || (c < 0 && b <= a), ValueError, "arange: upper bound ", b,
               " and lower bound ", a, " inconsistent with step sign ", c);
  const bool any_float = start.is_floating() || end.is_floating() || step.is_floating();
  int64_t n;
  if (dt == DType::int64 || !any_float) {
    // The span in 128 bits: end - start overflows int64 for ranges like (-2, INT64_MAX).
    const __int128 count = c > 0 ? (__int128(b) - a + c - 1) / c : (__int128(a) - b - c - 1) / -c;
    FABRIC_CHECK(count <= INT64_MAX, ShapeError, "arange: the range ", a, " -> ", b, " with step ",
                 c, " has more elements than int64 can count");
    n = static_cast<int64_t>(count);
  } else {
    const double count = std::ceil((end.to_double() - start.to_double()) / step.to_double());
    FABRIC_CHECK(count >= 0 && count < 0x1p63, ValueError, "arange: the range ", start.to_double(),
                 " -> ", end.to_double(), " with step ", step.to_double(), " gives ", count,
                 " elements for a ", dtype_name(dt), " range");
    n = static_cast<int64_t>(count);
  }
  Tensor r = empty({n}, {.dtype = DType::int64});
  int64_t* p = r.data<int64_t>();
  // In uint64, which wraps instead of overflowing: i * step can exceed int64 on the way (e.g.
  // INT64_MIN -> INT64_MAX by INT64_MAX) while every start + i * step fits.
  const uint64_t ua = static_cast<uint64_t>(a), uc = static_cast<uint64_t>(c);
  for (int64_t i = 0; i < n; ++i) p[i] = static_cast<int64_t>(ua + static_cast<uint64_t>(i) * uc);
  return r.to(dt).to(device);
}

// n values of torch 1.13's CPU arange kernel, its AVX2 build (cpu_serial_kernel_vec over
// Vectorized<T>::arange, accumulating in double, W = 8 float32 or 4 float64 lanes, two vectors a
// step): the first n - n % 2W values in vectors, each vector's first value T(start + step * i) and
// its lane k T(first + k * step), the rest one by one as T(start + step * i). Each sum is one
// rounding (fma), as compiled there. That is torch's layout for one thread, or up to 32768 values;
// torch splits longer ranges between its threads and lays out each part so.
template <typename T>
void torch_arange(T* out, int64_t n, double start, double step) {
  constexpr int64_t W = 32 / sizeof(T);
  const int64_t vector_end = n - n % (2 * W);
  for (int64_t i = 0; i < vector_end; i += W) {
    const T first = static_cast<T>(std::fma(step, static_cast<double>(i), start));
    for (int64_t k = 0; k < W; ++k)
      out[i + k] =
          static_cast<T>(std::fma(static_cast<double>(k), step, static_cast<double>(first)));
  }
  for (int64_t i = vector_end; i < n; ++i)
    out[i] = static_cast<T>(std::fma(step, static_cast<double>(i), start));
}

// n values of torch 1.13's CPU arange kernel for float16 and bfloat16: as torch_arange, but its
// accumulate type is float (start and step are rounded to float first) and Vectorized<T> holds 16
// lanes (two vectors a step, 32 values). A vector's first value is T(start + step * i), one fma in
// float; lane k is T(float(first) + k * step), the product rounded on its own (c10's Half + float
// operator is not fused there); the tail is T(start + step * i), one fma. Matched against torch's
// values bit for bit (ArangeTorch.HalfValuesBitForBit, tests/tensor/test_arange_torch.cpp).
// The lanes' product must round before the sum: no contraction into an fma here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif
template <typename T>
void torch_arange_half(T* out, int64_t n, double start_d, double step_d) {
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
  constexpr int64_t W = 16;
  const float start = static_cast<float>(start_d), step = static_cast<float>(step_d);
  const int64_t vector_end = n - n % (2 * W);
  for (int64_t i = 0; i < vector_end; i += W) {
    const float first = static_cast<float>(T(std::fma(step, static_cast<float>(i), start)));
    for (int64_t k = 0; k < W; ++k) {
      const float lane_step = static_cast<float>(k) * step;  // rounded before the sum
      out[i + k] = T(first + lane_step);
    }
  }
  for (int64_t i = vector_end; i < n; ++i) out[i] = T(std::fma(step, static_cast<float>(i), start));
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

}  // namespace

Tensor arange(const Scalar& start, const Scalar& end, const Scalar& step, std::optional<DType> dtype, Device device) {
  const bool all_int = !start.is_floating() && !end.is_floating() && !step.is_floating();
  const DType dt = dtype.value_or(all_int ? DType::int64 : default_float_dtype());
  if (is_integral(dt)) return arange_integral(start, end, step, dt, device);
  const double s = start.to_double(), e = end.to_double(), st = step.to_double();
  FABRIC_CHECK(st != 0, ValueError, "arange: step must be non-zero");
  FABRIC_CHECK(std::isfinite(s) && std::isfinite(e), ValueError, "arange: unsupported range: ", s,
               " -> ", e, " (start and end must be finite)");
  FABRIC_CHECK((st > 0 && e >= s) || (st < 0 && e <= s), ValueError, "arange: upper bound ", e,
               " and lower bound ", s, " inconsistent with step sign ", st);
  // Checked in double: converting a count past int64 (or NaN) to int64 is undefined.
  const double count = std::ceil((e - s) / st);
  FABRIC_CHECK(count < 0x1p63, ShapeError, "arange: the range ", s, " -> ", e, " with step ", st,
               " has ", count, " elements, more than int64 can count");
  const int64_t n = static_cast<int64_t>(count);
  if (dt == DType::float32 || dt == DType::float64) {
    Tensor cpu_t = empty({n}, {.dtype = dt});
    if (dt == DType::float32)
      torch_arange(cpu_t.data<float>(), n, s, st);
    else
      torch_arange(cpu_t.data<double>(), n, s, st);
    return cpu_t.to(device);
  }
  if (dt == DType::float16 || dt == DType::bfloat16) {
    Tensor cpu_t = empty({n}, {.dtype = dt});
    if (dt == DType::float16)
      torch_arange_half(cpu_t.data<Half>(), n, s, st);
    else
      torch_arange_half(cpu_t.data<BFloat16>(), n, s, st);
    return cpu_t.to(device);
  }
  Tensor cpu_t = empty({n}, {.dtype = DType::float64});
  double* p = cpu_t.data<double>();
  for (int64_t i = 0; i < n; ++i) p[i] = s + static_cast<double>(i) * st;
  return cpu_t.to(dt).to(device);
}

Tensor arange(const Scalar& end, std::optional<DType> dtype, Device device) {
  return arange(Scalar(0), end, Scalar(1), dtype, device);
}

template <typename T>
Tensor from_vector(const std::vector<T>& values, Shape shape, const TensorOptions& opts) {
  if (shape.empty()) shape = {static_cast<int64_t>(values.size())};  // 0-dim: use scalar_tensor
  FABRIC_CHECK(numel_of(shape) == static_cast<int64_t>(values.size()), ShapeError, "from_vector: ", values.size(),
               " values do not fill shape ", shape_str(shape));
  Tensor src = empty(shape, {.dtype = dtype_v<T>});
  if (!values.empty()) {
    if constexpr (std::is_same_v<T, bool>) {
      bool* p = src.data<bool>();
      for (size_t i = 0; i < values.size(); ++i) p[i] = values[i];
    } else {
      std::copy(values.begin(), values.end(), src.data<T>());
    }
  }
  Tensor out = src.to(opts.dtype).to(opts.device);
  if (opts.requires_grad) out.set_requires_grad(true);
  return out;
}

template Tensor from_vector<double>(const std::vector<double>&, Shape, const TensorOptions&);
template Tensor from_vector<float>(const std::vector<float>&, Shape, const TensorOptions&);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, Shape, const TensorOptions&);
template Tensor from_vector<int32_t>(const std::vector<int32_t>&, Shape, const TensorOptions&);
template Tensor from_vector<int8_t>(const std::vector<int8_t>&, Shape, const TensorOptions&);
template Tensor from_vector<uint8_t>(const std::vector<uint8_t>&, Shape, const TensorOptions&);
template Tensor from_vector<bool>(const std::vector<bool>&, Shape, const TensorOptions&);
template Tensor from_vector<Half>(const std::vector<Half>&, Shape, const TensorOptions&);
template Tensor from_vector<BFloat16>(const std::vector<BFloat16>&, Shape, const TensorOptions&);

}  // namespace fabric
