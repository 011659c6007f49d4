// Tensor factories: fresh tensors of a shape filled with a constant, a range, or random values
// (random ones draw from a Generator, see random.h).
#pragma once
#include <optional>
#include <vector>

#include "tensor/scalar.h"
#include "tensor/tensor.h"

namespace fabric {

class Generator;

Tensor empty(const Shape& shape, const TensorOptions& opts = {});
Tensor zeros(const Shape& shape, const TensorOptions& opts = {});
Tensor ones(const Shape& shape, const TensorOptions& opts = {});
Tensor full(const Shape& shape, const Scalar& value, const TensorOptions& opts);
// torch.full without a dtype: the fill value's kind picks it (a bool gives bool, an integer int64,
// a float the default float dtype).
Tensor full(const Shape& shape, const Scalar& value);
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, const Scalar& value);
// [start, end) by step, as torch.arange: int64 when every bound is an integer, else the default
// float dtype, unless `dtype` is given.
Tensor arange(const Scalar& start, const Scalar& end, const Scalar& step = 1,
              std::optional<DType> dtype = std::nullopt, Device device = Device::cpu());
Tensor arange(const Scalar& end, std::optional<DType> dtype = std::nullopt, Device device = Device::cpu());
// torch.linspace's values bit for bit (tensor/linspace.cpp): start and end converted to the dtype
// (a value it cannot hold raises ValueError, as torch), then the dtype's own arithmetic.
Tensor linspace(double start, double end, int64_t steps, const TensorOptions& opts = {});
// torch.eye: an (n, m) matrix (m = n when not given) with ones on the main diagonal and zeros
// elsewhere; a negative n or m raises ValueError, as torch.
Tensor eye(int64_t n, std::optional<int64_t> m = std::nullopt, const TensorOptions& opts = {});
// torch.logspace: base ** (the exponents torch's CPU loop computes, tensor/linspace.cpp), each
// power in double rounded once into the dtype, bit for bit as torch 1.13 (glibc's pow).
Tensor logspace(double start, double end, int64_t steps, double base = 10.0,
                const TensorOptions& opts = {});
// A 0-dim tensor holding `value`.
Tensor scalar_tensor(const Scalar& value, const TensorOptions& opts = {});
// A tensor copied from a vector of values, with the given shape (default: 1-D).
template <typename T>
Tensor from_vector(const std::vector<T>& values, Shape shape = {}, const TensorOptions& opts = {.dtype = dtype_v<T>});

// Random factories: uniform [0, 1), standard normal, integers in [low, high).
Tensor rand(const Shape& shape, const TensorOptions& opts = {}, Generator* gen = nullptr);
Tensor randn(const Shape& shape, const TensorOptions& opts = {}, Generator* gen = nullptr);
Tensor randint(int64_t low, int64_t high, const Shape& shape,
               const TensorOptions& opts = {.dtype = DType::int64}, Generator* gen = nullptr);

// In-place random fills (floating tensors; any layout but an expanded view, whose elements share
// memory: a ValueError, as torch's).
Tensor& uniform_(Tensor& t, double low = 0, double high = 1, Generator* gen = nullptr);
Tensor& normal_(Tensor& t, double mean = 0, double std = 1, Generator* gen = nullptr);

}  // namespace fabric
