// fractional_max_pool2d/3d (tensor/fractional_max_pool.h): torch.nn.functional's output size and
// sample draw, aten's checks in their order, then torch's window starts (generate_intervals, in
// the input's scalar type) and window maxima on the host, and a gather of x at the maxima. The
// 2-d op runs as the 3-d one with a time dim of 1 (one window start of 0): the offsets and the
// order of the comparisons are the same.
#include <algorithm>
#include <climits>
#include <cmath>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "tensor/autocast.h"
#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/fractional_max_pool.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

using detail::cat;

std::string describe(const Tensor& t) {
  return cat(shape_str(t.sizes()), " ", dtype_name(t.dtype()));
}

// Sizes as torch's messages print them: "[2, 3, 6, 7]".
std::string sizes_list(const Shape& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += cat(i ? ", " : "", v[i]);
  return s + "]";
}

// The geometry of one call. Spatial vectors have nsp entries (T, H, W or H, W).
struct Plan {
  const char* op = nullptr;
  int64_t nsp = 0;
  int64_t batch = 1, channels = 0;  // batch 1 for unbatched x
  std::vector<int64_t> in, out, kernel;
};

// {k} or one entry per spatial dim, as torch's _pair/_triple and aten's size checks.
template <typename T>
std::vector<T> per_dim(const char* op, const char* name, const std::vector<T>& v, int64_t n,
                       const char* what) {
  FABRIC_CHECK(v.size() == 1 || static_cast<int64_t>(v.size()) == n, ValueError, op, ": ", name,
               " must either be a single ", what, " or tuple of ", n, " ", what, "s, got ",
               v.size(), " values");
  return v.size() == 1 ? std::vector<T>(static_cast<size_t>(n), v[0]) : v;
}

// torch.nn.functional's output size: output_size as given, else int(in * ratio) per dim (a
// Python float product, truncated toward zero).
std::vector<int64_t> output_sizes(const Plan& p,
                                  const std::optional<std::vector<int64_t>>& output_size,
                                  const std::optional<std::vector<double>>& output_ratio) {
  if (output_size) return per_dim(p.op, "output_size", *output_size, p.nsp, "Int");
  const std::vector<double> ratio = per_dim(p.op, "output_ratio", *output_ratio, p.nsp, "float");
  std::vector<int64_t> out(static_cast<size_t>(p.nsp));
  for (int64_t d = 0; d < p.nsp; ++d) {
    const double v = static_cast<double>(p.in[d]) * ratio[d];
    FABRIC_CHECK(std::isfinite(v) && std::abs(v) < 9.2e18, ValueError, p.op, ": output_ratio ",
                 ratio[d], " gives no output size for input size ", p.in[d]);
    out[d] = static_cast<int64_t>(v);
  }
  return out;
}

// aten's checks of the input and the window geometry, in their order.
Plan plan(const char* op, int64_t nsp, const Tensor& x, const std::vector<int64_t>& kernel_size,
          const std::optional<std::vector<int64_t>>& output_size,
          const std::optional<std::vector<double>>& output_ratio) {
  Plan p{.op = op, .nsp = nsp};
  FABRIC_CHECK(output_size || output_ratio, ValueError, op,
               " requires specifying either an output_size or an output_ratio");
  p.kernel = per_dim(op, "kernel_size", kernel_size, nsp, "Int");
  FABRIC_CHECK(x.dim() == nsp + 1 || x.dim() == nsp + 2, ShapeError, op, "(): Expected ", nsp + 1,
               "D or ", nsp + 2, "D tensor, but got: ", sizes_list(x.sizes()));
  const DType t = x.dtype();
  FABRIC_CHECK(t == DType::float64 || t == DType::float32, DTypeError, op, ": not implemented for ",
               describe(x), "; supported: float64, float32 (torch 1.13's CPU kernel)");
  for (int64_t d = 1; d < x.dim(); ++d)
    FABRIC_CHECK(x.size(d) > 0, ShapeError, op,
                 "(): Expected input to have non-zero size for non-batch dimensions, but got ",
                 sizes_list(x.sizes()), " with dimension ", d, " being empty.");
  const bool batched = x.dim() == nsp + 2;
  p.batch = batched ? x.size(0) : 1;
  p.channels = x.size(batched ? 1 : 0);
  p.in.assign(x.sizes().end() - nsp, x.sizes().end());
  // torch reads outside the window for a kernel of size <= 0.
  for (int64_t d = 0; d < nsp; ++d)
    FABRIC_CHECK(p.kernel[d] > 0, ValueError, op, ": kernel_size must be positive, got ",
                 shape_str(p.kernel));
  p.out = output_sizes(p, output_size, output_ratio);
  // aten's bound: the last window ends inside the input; the 3-d kernel's check is strict.
  static const char* const names2[] = {"height", "width"};
  static const char* const names3[] = {"time", "height", "width"};
  for (int64_t d = 0; d < nsp; ++d) {
    const int64_t end = p.out[d] + p.kernel[d] - 1;
    const bool fits = nsp == 3 ? end < p.in[d] : end <= p.in[d];
    const char* name = nsp == 3 ? names3[d] : names2[d];
    FABRIC_CHECK(fits, ShapeError, op, nsp == 3 ? "_out" : "", "(): pool ", name, " ", p.kernel[d],
                 " too large relative to input ", name, " ", p.in[d], " (output_size ",
                 shape_str(p.out), ")");
  }
  for (int64_t d = 0; d < nsp; ++d)
    FABRIC_CHECK(p.out[d] >= 0, ShapeError, op,
                 ": Trying to create tensor with negative dimension ", p.out[d], ": ",
                 shape_str(p.out));
  return p;
}

// Later torch's fractional_max_pool_check_shape: torch 1.13 reads the samples as a flat
// (N, C, nsp) array without checking, past their end when they are smaller.
void check_samples(const Plan& p, const Tensor& x, const Tensor& s) {
  FABRIC_CHECK(s.device() == x.device(), DeviceError, p.op, ": _random_samples on ", s.device(),
               ", input on ", x.device());
  FABRIC_CHECK(s.dtype() == x.dtype(), DTypeError, p.op,
               ": Expect _random_samples to have the same dtype as input (", dtype_name(x.dtype()),
               "), got ", describe(s));
  FABRIC_CHECK(s.dim() == 3, ShapeError, p.op,
               ": Expect _random_samples to have 3 dimensions, got ", s.dim(), " (",
               shape_str(s.sizes()), ")");
  FABRIC_CHECK(s.size(0) >= p.batch, ShapeError, p.op,
               ": Expect _random_samples.size(0) no less then input batch size (", p.batch,
               "), got ", shape_str(s.sizes()));
  FABRIC_CHECK(s.size(1) == p.channels, ShapeError, p.op,
               ": Expect _random_samples.size(1) equals to input channel size (", p.channels,
               "), got ", shape_str(s.sizes()));
  FABRIC_CHECK(s.size(2) == p.nsp, ShapeError, p.op, ": Expect _random_samples.size(2) equals to ",
               p.nsp, "; got ", s.size(2), ".");
}

// static_cast<int> as torch's x86 build executes it: NaN and values outside int's range give
// INT_MIN (the "integer indefinite" of cvttss2si) where C++ leaves the conversion undefined.
template <typename T>
int64_t to_int(T v) {
  if (!(v > static_cast<T>(-2147483649.0) && v < static_cast<T>(2147483648.0))) return INT_MIN;
  return static_cast<int>(v);
}

// aten's generate_intervals: the window starts of one dim for one plane, computed in T as torch
// does (alpha, the sum and the products each rounded to T). The last window ends at the input's
// end. A start outside the input (a sample far outside [0, 1) whose products leave int's range)
// is refused: torch reads there.
template <typename T>
void window_starts(const Plan& p, int64_t d, T sample, int64_t* starts) {
  const int64_t in = p.in[d], out = p.out[d], k = p.kernel[d];
  if (out > 1) {
    const T alpha = static_cast<T>(in - k) / static_cast<T>(out - 1);
    for (int64_t i = 0; i < out - 1; ++i) {
      starts[i] = to_int((static_cast<T>(i) + sample) * alpha) - to_int(sample * alpha);
      FABRIC_CHECK(starts[i] >= 0 && starts[i] <= in - k, ValueError, p.op,
                   ": _random_samples value ", sample, " puts window ", i, " of spatial dim ", d,
                   " at ", starts[i], ", outside the input (size ", in, ", kernel ", k, ")");
    }
  }
  if (out > 0) starts[out - 1] = in - k;
}

// The sample of each spatial dim: 2-d (H, W) takes [1], [0]; 3-d (T, H, W) takes [0], [1], [2].
int64_t sample_slot(const Plan& p, int64_t d) { return p.nsp == 2 ? 1 - d : d; }

// The offset in its plane of each window's maximum, for planes of contiguous x (host data), in
// torch's order: the first of equal maxima, the last NaN; an all -inf window names its first
// element. Out: (planes, out...) int64, row-major.
template <typename T>
std::vector<int64_t> window_maxima(const Plan& p, const T* x, const T* samples) {
  // As 3-d: (T, H, W) with a time dim of 1 for the 2-d op.
  const int64_t lead = 3 - p.nsp;
  std::vector<int64_t> in(3, 1), out(3, 1), k(3, 1);
  for (int64_t d = 0; d < p.nsp; ++d) {
    in[lead + d] = p.in[d];
    out[lead + d] = p.out[d];
    k[lead + d] = p.kernel[d];
  }
  const int64_t planes = p.batch * p.channels;
  const int64_t in_plane = in[0] * in[1] * in[2], out_plane = out[0] * out[1] * out[2];
  std::vector<int64_t> result(static_cast<size_t>(planes * out_plane));
  std::vector<int64_t> st[3] = {std::vector<int64_t>(out[0], 0), std::vector<int64_t>(out[1]),
                                std::vector<int64_t>(out[2])};
  for (int64_t plane = 0; plane < planes; ++plane) {
    // Samples row `plane` of (N', C, nsp): rows past the batch are not read, as torch.
    for (int64_t d = 0; d < p.nsp; ++d)
      window_starts<T>(p, d, samples[plane * p.nsp + sample_slot(p, d)], st[lead + d].data());
    const T* xp = x + plane * in_plane;
    int64_t* ip = result.data() + plane * out_plane;
    for (int64_t ot = 0; ot < out[0]; ++ot)
      for (int64_t oh = 0; oh < out[1]; ++oh)
        for (int64_t ow = 0; ow < out[2]; ++ow) {
          const int64_t t0 = st[0][ot], h0 = st[1][oh], w0 = st[2][ow];
          T best = -std::numeric_limits<T>::infinity();
          int64_t at = (t0 * in[1] + h0) * in[2] + w0;
          for (int64_t t = t0; t < t0 + k[0]; ++t)
            for (int64_t h = h0; h < h0 + k[1]; ++h)
              for (int64_t w = w0; w < w0 + k[2]; ++w) {
                const int64_t off = (t * in[1] + h) * in[2] + w;
                const T v = xp[off];
                if (v > best || std::isnan(v)) {
                  best = v;
                  at = off;
                }
              }
          *ip++ = at;
        }
  }
  return result;
}

template <typename T>
std::vector<int64_t> maxima_on_host(const Plan& p, const Tensor& x, const Tensor& samples) {
  const Tensor xh = x.detach().to(Device::cpu()).contiguous();
  const std::vector<T> s = samples.detach().to_vector<T>();
  return window_maxima<T>(p, xh.data<T>(), s.data());
}

std::tuple<Tensor, Tensor> pool(const char* op, int64_t nsp, const Tensor& x_in,
                                const std::vector<int64_t>& kernel_size,
                                const std::optional<std::vector<int64_t>>& output_size,
                                const std::optional<std::vector<double>>& output_ratio,
                                const Tensor& random_samples, Generator* gen) {
  FABRIC_CHECK(x_in.defined(), ValueError, op, ": undefined input");
  Tensor x = x_in;
  // On CPU autocast's float32 list, samples included (drawn first in x's own dtype, as torch's
  // functional draws them before the op casts).
  apply_autocast(nsp == 3 ? OpId::fractional_max_pool3d : OpId::fractional_max_pool2d, {&x});
  const Plan p = plan(op, nsp, x, kernel_size, output_size, output_ratio);
  Tensor samples = random_samples;
  if (!samples.defined())
    samples = rand({p.batch, p.channels, nsp}, {.dtype = x_in.dtype(), .device = x.device()}, gen);
  apply_autocast(nsp == 3 ? OpId::fractional_max_pool3d : OpId::fractional_max_pool2d, {&samples});
  check_samples(p, x, samples);
  // The rows of the batch, in (N, C, nsp) order.
  samples = samples.detach().narrow(0, 0, p.batch).contiguous();

  const Shape prefix(x.sizes().begin(), x.sizes().end() - nsp);
  Shape out_shape = prefix, flat_in = prefix, flat_out = prefix;
  out_shape.insert(out_shape.end(), p.out.begin(), p.out.end());
  flat_in.push_back(numel_of(Shape(p.in.begin(), p.in.end())));
  flat_out.push_back(numel_of(Shape(p.out.begin(), p.out.end())));
  std::vector<int64_t> offsets;
  if (numel_of(out_shape) > 0)
    offsets = x.dtype() == DType::float64 ? maxima_on_host<double>(p, x, samples)
                                          : maxima_on_host<float>(p, x, samples);
  Tensor indices = empty(flat_out, {.dtype = DType::int64});
  if (!offsets.empty()) std::copy(offsets.begin(), offsets.end(), indices.data<int64_t>());
  indices = indices.to(x.device());
  Tensor values = gather(x.reshape(flat_in), -1, indices);
  return {values.view(out_shape), indices.view(out_shape)};
}

}  // namespace

Tensor fractional_max_pool2d(const Tensor& x, const std::vector<int64_t>& kernel_size,
                             const std::optional<std::vector<int64_t>>& output_size,
                             const std::optional<std::vector<double>>& output_ratio,
                             const Tensor& random_samples, Generator* gen) {
  return std::get<0>(fractional_max_pool2d_with_indices(x, kernel_size, output_size, output_ratio,
                                                        random_samples, gen));
}

Tensor fractional_max_pool3d(const Tensor& x, const std::vector<int64_t>& kernel_size,
                             const std::optional<std::vector<int64_t>>& output_size,
                             const std::optional<std::vector<double>>& output_ratio,
                             const Tensor& random_samples, Generator* gen) {
  return std::get<0>(fractional_max_pool3d_with_indices(x, kernel_size, output_size, output_ratio,
                                                        random_samples, gen));
}

std::tuple<Tensor, Tensor> fractional_max_pool2d_with_indices(
    const Tensor& x, const std::vector<int64_t>& kernel_size,
    const std::optional<std::vector<int64_t>>& output_size,
    const std::optional<std::vector<double>>& output_ratio, const Tensor& random_samples,
    Generator* gen) {
  return pool("fractional_max_pool2d", 2, x, kernel_size, output_size, output_ratio, random_samples,
              gen);
}

std::tuple<Tensor, Tensor> fractional_max_pool3d_with_indices(
    const Tensor& x, const std::vector<int64_t>& kernel_size,
    const std::optional<std::vector<int64_t>>& output_size,
    const std::optional<std::vector<double>>& output_ratio, const Tensor& random_samples,
    Generator* gen) {
  return pool("fractional_max_pool3d", 3, x, kernel_size, output_size, output_ratio, random_samples,
              gen);
}

}  // namespace fabric
