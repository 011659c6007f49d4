// max_unpool1d/2d/3d (tensor/max_unpool.h): torch.nn.functional's output-size rule and its
// ValueErrors, aten's argument checks in their order, then zeros of (..., plane_out) with x
// scattered along the flattened plane. scatter's CPU kernel walks each plane's indices in order
// (the last of repeated ones wins, as torch's loop) and its gradient gathers grad_out at the
// indices (torch's max_pool_double_backward), so no kernel of its own is needed.
#include <string>
#include <vector>

#include "tensor/autocast.h"
#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/index_kernels.h"
#include "tensor/max_unpool.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

using detail::cat;

std::string describe(const Tensor& t) {
  return cat(shape_str(t.sizes()), " ", dtype_name(t.dtype()));
}

// Python's repr of a list of ints: "[2, 5]" (torch's ValueError prints output_size that way).
std::string py_list(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += cat(i ? ", " : "", v[i]);
  return s + "]";
}

// "4x4", "4x4x4": torch's "output volumes are of size ..." in its invalid-index error.
std::string volumes_str(const std::vector<int64_t>& sizes) {
  std::string s;
  for (size_t i = 0; i < sizes.size(); ++i) s += cat(i ? "x" : "", sizes[i]);
  return s;
}

// A size argument of {k} (every dim) or one value per dim.
std::vector<int64_t> per_dim(const char* op, const char* name, const std::vector<int64_t>& v,
                             size_t n) {
  FABRIC_CHECK(v.size() == 1 || v.size() == n, ValueError, op, ": ", name, " must have 1 or ", n,
               " elements, got ", shape_str(v));
  return v.size() == 1 ? std::vector<int64_t>(n, v[0]) : v;
}

struct Geometry {
  std::vector<int64_t> kernel, stride, padding;
};

// torch.nn.functional._unpool_output_size: the default (in - 1) * stride + kernel - 2 * padding
// per spatial dim, or the given output_size (its last len(kernel) entries when it has two more)
// strictly within stride of it.
std::vector<int64_t> unpool_output_size(const char* op, const Shape& in, const Geometry& g,
                                        const std::optional<std::vector<int64_t>>& output_size) {
  const size_t n = g.kernel.size();
  std::vector<int64_t> dflt(n);
  for (size_t d = 0; d < n; ++d) {
    const int64_t spread = checked_size_mul(in[in.size() - n + d] - 1, g.stride[d], op);
    dflt[d] = checked_size_add(checked_size_add(spread, g.kernel[d], op),
                               checked_size_mul(-2, g.padding[d], op), op);
  }
  if (!output_size) return dflt;
  std::vector<int64_t> given = *output_size;
  if (given.size() == n + 2) given.erase(given.begin(), given.begin() + 2);
  FABRIC_CHECK(given.size() == n, ValueError, op, ": output_size should be a sequence containing ",
               n, " or ", n + 2, " elements, but it has a length of '", given.size(), "'");
  for (size_t d = 0; d < n; ++d) {
    const int64_t lo = checked_size_add(dflt[d], -g.stride[d], op);
    const int64_t hi = checked_size_add(dflt[d], g.stride[d], op);
    FABRIC_CHECK(lo < given[d] && given[d] < hi, ValueError, op, ": invalid output_size \"",
                 py_list(given), "\" (dim ", d, " must be between ", lo, " and ", hi, ")");
  }
  return given;
}

// aten's checks of max_unpooling2d/3d, in their order. `layouts` names the accepted ranks.
void check_arguments(const char* op, const Tensor& x, const Tensor& indices, const Geometry& g,
                     const char* layouts) {
  const int64_t nsp = static_cast<int64_t>(g.kernel.size());
  FABRIC_CHECK(indices.dtype() == DType::int64, DTypeError, op,
               ": elements in indices should be type int64 but got: ", describe(indices));
  FABRIC_CHECK(x.dim() == nsp + 1 || x.dim() == nsp + 2, ShapeError, op, ": input should be ",
               layouts, ", but got a tensor with ", x.dim(), " dimensions: ", describe(x));
  FABRIC_CHECK(x.sizes() == indices.sizes(), ShapeError, op,
               ": expected shape of indices to be same as that of the input tensor (",
               shape_str(x.sizes()),
               ") but got indices tensor with shape: ", shape_str(indices.sizes()));
  // As torch: the first dim may be empty (a batch, or an unbatched input's channels).
  for (int64_t d = 1; d < x.dim(); ++d)
    FABRIC_CHECK(x.size(d) > 0, ShapeError, op,
                 ": expected input to have non-zero size for non-batch dimensions, but got ",
                 shape_str(x.sizes()), " with dimension ", d, " being empty");
  // torch checks the strides of the 3-d op only (a 2-d stride of 0 just stacks the windows).
  if (nsp == 3)
    FABRIC_CHECK(g.stride[0] > 0 && g.stride[1] > 0 && g.stride[2] > 0, ValueError, op,
                 ": strides should be greater than zero, but got stride: ", shape_str(g.stride));
  FABRIC_CHECK(x.device() == indices.device(), DeviceError, op, ": input on ", x.device(),
               ", indices on ", indices.device());
  const DType t = x.dtype();
  FABRIC_CHECK(
      t == DType::float64 || t == DType::float32 || t == DType::float16 || t == DType::bfloat16,
      DTypeError, op, ": not implemented for ", describe(x),
      "; supported: float64, float32, float16, bfloat16");
}

// torch's CPU kernel checks every index against its plane's output and reports the last bad one
// it met in x's order; this names the same one, before anything is written.
void check_indices_now(const char* op, const Tensor& indices, int64_t plane_out,
                       const std::string& volumes) {
  if (indices.numel() == 0) return;
  const Tensor idx = indices.contiguous();
  const auto [lo, hi] = index_minmax_stub(idx.device())(idx.data_ptr(), idx.dtype(), idx.numel());
  if (lo >= 0 && hi < plane_out) return;
  const int64_t* p = idx.data<int64_t>();
  int64_t bad = 0;
  for (int64_t i = 0; i < idx.numel(); ++i)
    if (p[i] < 0 || p[i] >= plane_out) bad = p[i];
  throw IndexError(cat(op, ": Found an invalid max index: ", bad, " (output volumes are of size ",
                       volumes, ")"));
}

// The shared body: `volumes` is torch's output-size text (1-d: "Lx1", torch unpooling it as 2-d).
Tensor unpool(const char* op, const Tensor& x_in, const Tensor& indices, const Geometry& g,
              const std::optional<std::vector<int64_t>>& output_size, const char* layouts,
              bool one_d) {
  FABRIC_CHECK(x_in.defined() && indices.defined(), ValueError, op, ": undefined input or indices");
  const int64_t nsp = static_cast<int64_t>(g.kernel.size());
  // On CPU autocast's float32 list (1-d runs as torch's max_unpool2d).
  Tensor x = x_in;
  apply_autocast(nsp == 3 ? OpId::max_unpool3d : OpId::max_unpool2d, {&x});
  FABRIC_CHECK(x.dim() >= nsp, ShapeError, op, ": input should be ", layouts,
               ", but got a tensor with ", x.dim(), " dimensions: ", describe(x));
  const std::vector<int64_t> spatial = unpool_output_size(op, x.sizes(), g, output_size);
  check_arguments(op, x, indices, g, layouts);
  for (int64_t s : spatial)
    FABRIC_CHECK(s >= 0, ShapeError, op, ": the output size ", py_list(spatial),
                 " must not be negative (input ", describe(x), ", kernel_size ",
                 shape_str(g.kernel), ", stride ", shape_str(g.stride), ", padding ",
                 shape_str(g.padding), ")");
  const Shape prefix(x.sizes().begin(), x.sizes().end() - nsp);
  int64_t plane_in = 1, plane_out = 1;
  for (int64_t d = 0; d < nsp; ++d) {
    plane_in *= x.size(x.dim() - nsp + d);
    plane_out = checked_size_mul(plane_out, spatial[d], op);
  }
  Shape out_shape = prefix;
  out_shape.insert(out_shape.end(), spatial.begin(), spatial.end());
  const TensorOptions opts{.dtype = x.dtype(), .device = x.device()};
  // torch writes nothing, and checks no index, into an empty output.
  if (numel_of(out_shape) == 0 && x.numel() > 0) return zeros(out_shape, opts);
  std::vector<int64_t> vol = spatial;
  if (one_d) vol.push_back(1);
  // On CUDA the scatter checks its indices inside the kernel (its own message, raised at the next
  // synchronisation) rather than the op waiting for the device here.
  if (x.device().is_cpu()) check_indices_now(op, indices, plane_out, volumes_str(vol));
  Shape flat_in = prefix, flat_out = prefix;
  flat_in.push_back(plane_in);
  flat_out.push_back(plane_out);
  const Tensor planes =
      scatter(zeros(flat_out, opts), -1, indices.reshape(flat_in), x.reshape(flat_in));
  return planes.view(out_shape);
}

Geometry geometry(const char* op, size_t n, const std::vector<int64_t>& kernel,
                  const std::vector<int64_t>& stride, const std::vector<int64_t>& padding) {
  Geometry g;
  g.kernel = per_dim(op, "kernel_size", kernel, n);
  g.stride = stride.empty() ? g.kernel : per_dim(op, "stride", stride, n);
  g.padding = per_dim(op, "padding", padding, n);
  return g;
}

}  // namespace

Tensor max_unpool1d(const Tensor& x, const Tensor& indices, int64_t kernel_size,
                    std::optional<int64_t> stride, int64_t padding,
                    const std::optional<std::vector<int64_t>>& output_size) {
  const Geometry g{{kernel_size}, {stride.value_or(kernel_size)}, {padding}};
  return unpool("max_unpool1d", x, indices, g, output_size, "2d (C, L) or 3d (N, C, L)", true);
}

Tensor max_unpool2d(const Tensor& x, const Tensor& indices, std::vector<int64_t> kernel_size,
                    std::vector<int64_t> stride, std::vector<int64_t> padding,
                    const std::optional<std::vector<int64_t>>& output_size) {
  const char* op = "max_unpool2d";
  return unpool(op, x, indices, geometry(op, 2, kernel_size, stride, padding), output_size,
                "3d (C, H, W) or 4d (N, C, H, W)", false);
}

Tensor max_unpool3d(const Tensor& x, const Tensor& indices, std::vector<int64_t> kernel_size,
                    std::vector<int64_t> stride, std::vector<int64_t> padding,
                    const std::optional<std::vector<int64_t>>& output_size) {
  const char* op = "max_unpool3d";
  return unpool(op, x, indices, geometry(op, 3, kernel_size, stride, padding), output_size,
                "4d (C, D, H, W) or 5d (N, C, D, H, W)", false);
}

}  // namespace fabric
