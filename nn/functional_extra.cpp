// pdist as torch 1.13's CPU kernels compute it (aten/src/ATen/native/cpu/DistanceOpsKernel.cpp):
// forward, per pair, map2_reduce_all over the features in AVX2 vectors (8 floats, 4 doubles):
// lane l accumulates features l, l + 8, ... (p = 2: each square fused into the running sum, as
// g++ contracts torch's diff * diff + acc), the lanes then reduced as torch's vec_reduce_all
// (float: a halving tree; double: in order); features fewer than one vector add in order.
// Backward, per feature column, torch's walk over the pairs: row i gains and row j loses each
// pair's term. softmin is softmax of the negation.
#include "nn/functional_extra.h"

#include <algorithm>
#include <any>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "autograd/custom_function.h"
#include "tensor/error.h"
#include "tensor/exponential.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/shape.h"

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace fabric::nn {
inline namespace functional {

namespace {

enum class Norm { zero, one, two, inf, general };

Norm norm_of(double p) {
  if (p == 0) return Norm::zero;
  if (p == 1) return Norm::one;
  if (p == 2) return Norm::two;
  if (std::isinf(p)) return Norm::inf;
  return Norm::general;
}

// One feature's contribution (torch's F::map) and the running reduction (F::red).
template <typename T>
T map_feature(Norm norm, T diff, T p) {
  switch (norm) {
    case Norm::zero:
      return std::min(std::ceil(diff), T(1));
    case Norm::one:
    case Norm::inf:
      return diff;
    case Norm::two:
      return diff * diff;
    default:
      return std::pow(diff, p);
  }
}
template <typename T>
T reduce(Norm norm, T acc, T up) {
  return norm == Norm::inf ? std::max(acc, up) : acc + up;
}
// acc red map(diff), with torch's contraction of acc + diff * diff.
template <typename T>
T accumulate(Norm norm, T acc, T diff, T p) {
  if (norm == Norm::two) return std::fma(diff, diff, acc);
  return reduce(norm, acc, map_feature(norm, diff, p));
}
template <typename T>
T finish(Norm norm, T agg, T p) {
  if (norm == Norm::two) return std::sqrt(agg);
  if (norm == Norm::general) return std::pow(agg, T(1) / p);
  return agg;
}

template <typename T>
T pair_distance(Norm norm, const T* a, const T* b, int64_t m, T p) {
  constexpr int64_t S = sizeof(T) == 4 ? 8 : 4;
  const auto diff = [&](int64_t k) { return std::fabs(a[k] - b[k]); };
  if (m < S) {
    // vec_reduce_all over the first m lanes, in order (lanes past m are never read).
    T acc = map_feature(norm, m > 0 ? diff(0) : T(0), p);
    for (int64_t k = 1; k < m; ++k) acc = reduce(norm, acc, map_feature(norm, diff(k), p));
    return finish(norm, acc, p);
  }
  T lane[S];
  for (int64_t l = 0; l < S; ++l) lane[l] = map_feature(norm, diff(l), p);
  int64_t d = S;
  for (; d < m - m % S; d += S)
    for (int64_t l = 0; l < S; ++l) lane[l] = accumulate(norm, lane[l], diff(d + l), p);
  for (int64_t l = 0; d + l < m; ++l) lane[l] = accumulate(norm, lane[l], diff(d + l), p);
  T acc;
  if constexpr (S == 8) {
    // torch's AVX2 float reduction: halves, then quarters, then neighbours.
    T w[4], u[2];
    for (int l = 0; l < 4; ++l) w[l] = reduce(norm, lane[l], lane[l + 4]);
    for (int l = 0; l < 2; ++l) u[l] = reduce(norm, w[l], w[l + 2]);
    acc = reduce(norm, u[0], u[1]);
  } else {
    acc = lane[0];
    for (int64_t l = 1; l < S; ++l) acc = reduce(norm, acc, lane[l]);
  }
  return finish(norm, acc, p);
}

template <typename T>
T sign_of(T v) {
  return static_cast<T>((T(0) < v) - (v < T(0)));
}

// d dist / d x_i for one feature (torch's F::backward), given diff = x_i - x_j.
template <typename T>
T pair_gradient(Norm norm, T diff, T grad, T dist, T p) {
  switch (norm) {
    case Norm::one:
      return grad * sign_of(diff);
    case Norm::two:
      return dist == 0 ? T(0) : grad * diff / dist;
    case Norm::inf:
      return grad * sign_of(diff) *
             (T(1) - std::min(T(1), std::ceil(std::fabs(std::fabs(diff) - dist))));
    case Norm::general:
      if (p < 2) {
        if (dist == 0 || (p < 1 && diff == 0)) return T(0);
        return sign_of(diff) * std::pow(std::fabs(diff), p - 1) * grad / std::pow(dist, p - 1);
      }
      if (dist == 0) return T(0);
      return diff * std::pow(std::fabs(diff), p - 2) * grad / std::pow(dist, p - 1);
    default:
      return T(0);
  }
}

template <typename T>
void pdist_forward(const Tensor& x, Tensor& out, double p) {
  const int64_t n = x.size(0), m = x.size(1);
  const Norm norm = norm_of(p);
  const T* xs = x.data<T>();
  T* o = out.data<T>();
  int64_t k = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j)
      o[k++] = pair_distance<T>(norm, xs + i * m, xs + j * m, m, static_cast<T>(p));
}

template <typename T>
void pdist_backward(const Tensor& grad, const Tensor& x, const Tensor& dist, Tensor& gx, double p) {
  const int64_t n = x.size(0), m = x.size(1);
  const Norm norm = norm_of(p);
  const T* xs = x.data<T>();
  const T* g = grad.data<T>();
  const T* d = dist.data<T>();
  T* r = gx.data<T>();
  for (int64_t c = 0; c < m; ++c) {
    int64_t k = 0;
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = i + 1; j < n; ++j, ++k) {
        const T t =
            pair_gradient<T>(norm, xs[i * m + c] - xs[j * m + c], g[k], d[k], static_cast<T>(p));
        r[i * m + c] = r[i * m + c] + t;
        r[j * m + c] = r[j * m + c] - t;
      }
    }
  }
}

struct PdistFunction : Function<PdistFunction> {
  static Tensor forward(AutogradContext* ctx, const Tensor& input, double p) {
    const Tensor x = input.to(Device::cpu()).contiguous();
    const int64_t n = x.size(0);
    Tensor out = empty({n > 1 ? n * (n - 1) / 2 : 0}, {.dtype = x.dtype()});
    if (x.dtype() == DType::float64) {
      pdist_forward<double>(x, out, p);
    } else {
      pdist_forward<float>(x, out, p);
    }
    out = out.to(input.device());
    ctx->save_for_backward({input, out});
    ctx->saved_data["p"] = p;
    return out;
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> grads) {
    const std::vector<Tensor> saved = ctx->get_saved_variables();
    const double p = std::any_cast<double>(ctx->saved_data["p"]);
    const Tensor x = saved[0].detach().to(Device::cpu()).contiguous();
    Tensor gx = zeros(x.sizes(), {.dtype = x.dtype()});
    // torch: no gradient through p = 0 (a count), fewer than two rows or no features.
    if (p != 0 && x.size(0) > 1 && x.size(1) > 0) {
      const Tensor g = grads[0].detach().to(Device::cpu()).contiguous();
      const Tensor d = saved[1].detach().to(Device::cpu()).contiguous();
      if (x.dtype() == DType::float64) {
        pdist_backward<double>(g, x, d, gx, p);
      } else {
        pdist_backward<float>(g, x, d, gx, p);
      }
    }
    return {gx.to(saved[0].device()), Tensor()};
  }
};

}  // namespace

Tensor pdist(const Tensor& input, double p) {
  FABRIC_CHECK(input.defined(), ValueError, "pdist: undefined input");
  FABRIC_CHECK(input.dim() == 2, ShapeError, "pdist only supports 2D tensors, got: ", input.dim(),
               "D (input ", shape_str(input.sizes()), ")");
  FABRIC_CHECK(input.is_floating_point(), DTypeError,
               "pdist only supports floating-point dtypes, got ", dtype_name(input.dtype()));
  FABRIC_CHECK(input.dtype() == DType::float32 || input.dtype() == DType::float64, DTypeError,
               "pdist: \"pdist\" not implemented for ", dtype_name(input.dtype()),
               "; supported: float32, float64");
  FABRIC_CHECK(p >= 0, ValueError, "pdist only supports non-negative p values, got ", p);
  return PdistFunction::apply(input, p);
}

Tensor softmin(const Tensor& x, int64_t dim, std::optional<DType> dtype) {
  return softmax(neg(x), dim, dtype);
}

Tensor gumbel_softmax(const Tensor& logits, double tau, bool hard, int64_t dim, Generator* gen) {
  FABRIC_CHECK(logits.defined(), ValueError, "gumbel_softmax: undefined logits");
  // torch: -torch.empty_like(logits, memory_format=torch.legacy_contiguous_format).exponential_()
  // .log(), then the same ops in the same order.
  Tensor noise = empty(logits.sizes(), {.dtype = logits.dtype(), .device = logits.device()});
  exponential_(noise, 1.0, gen);
  const Tensor gumbels = div(add(logits, neg(log(noise))), tau);
  const Tensor y_soft = softmax(gumbels, dim);
  if (!hard) return y_soft;
  const Tensor index = std::get<1>(max(y_soft, dim, /*keepdim=*/true));
  const Tensor y_hard = scatter(zeros_like(logits), dim, index, Scalar(1.0));
  return add(sub(y_hard, y_soft.detach()), y_soft);
}

}  // namespace functional
}  // namespace fabric::nn
