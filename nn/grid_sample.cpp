// grid_sample's argument checks (torch 1.13's messages: F.grid_sample's for the mode strings,
// ATen's grid_sampler() checks for shapes) and its autograd node: a custom function whose forward
// and backward are the CPU loops of nn/grid_sample_2d.cpp and nn/grid_sample_3d.cpp. Tensors on
// another device are sampled on the CPU and the results moved back.
#include "nn/grid_sample.h"

#include <any>
#include <string>
#include <vector>

#include "autograd/custom_function.h"
#include "nn/grid_sample_kernels.h"
#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/shape.h"

namespace fabric::nn {
inline namespace functional {

namespace {

using grid_sample_detail::Interp;
using grid_sample_detail::Options;
using grid_sample_detail::Padding;

// at::geometry_is_contiguous: the strides a contiguous tensor of these sizes has (size-1 dims
// excepted).
bool geometry_is_contiguous(const std::vector<int64_t>& sizes,
                            const std::vector<int64_t>& strides) {
  int64_t expected = 1;
  for (size_t i = sizes.size(); i-- > 0;) {
    if (sizes[i] == 0) return true;
    if (sizes[i] != 1 && strides[i] != expected) return false;
    expected *= sizes[i];
  }
  return true;
}

// Whether torch's 2-D walk (grid_sample_2d_grid_slice_iterator) restarts its vector chunks at
// each output row of this grid's layout.
bool walks_per_row(const Tensor& grid) {
  if (grid.dim() != 4) return false;
  const int64_t Ho = grid.size(1), Wo = grid.size(2);
  const int64_t sH = grid.stride(1), sW = grid.stride(2), sC = grid.stride(3);
  if (geometry_is_contiguous({Ho, Wo, 2}, {sH, sW, sC})) return false;
  if (sW == 1 || Wo == 1) return !geometry_is_contiguous({Ho, Wo}, {sH, sW});
  return true;
}

struct GridSampleFunction : Function<GridSampleFunction> {
  static Tensor forward(AutogradContext* ctx, const Tensor& input, const Tensor& grid,
                        const Options& o) {
    const Tensor x = input.to(Device::cpu()).contiguous();
    const Tensor g = grid.to(Device::cpu()).contiguous();
    Shape out_shape{x.size(0), x.size(1)};
    for (int64_t d = 1; d + 1 < g.dim(); ++d) out_shape.push_back(g.size(d));
    Tensor out = empty(out_shape, {.dtype = x.dtype()});
    if (out.numel() > 0) {
      if (x.dim() == 4) {
        grid_sample_detail::forward_2d(x, g, out, o);
      } else {
        grid_sample_detail::forward_3d(x, g, out, o);
      }
    }
    ctx->save_for_backward({input, grid});
    ctx->saved_data["options"] = o;
    return out.to(input.device());
  }

  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> grads) {
    const std::vector<Tensor> saved = ctx->get_saved_variables();
    const Options o = std::any_cast<Options>(ctx->saved_data["options"]);
    const Device device = saved[0].device();
    const Tensor x = saved[0].detach().to(Device::cpu()).contiguous();
    const Tensor g = saved[1].detach().to(Device::cpu()).contiguous();
    const Tensor go = grads[0].detach().to(Device::cpu()).contiguous();
    Tensor grad_input =
        ctx->needs_input_grad(0) ? zeros(x.sizes(), {.dtype = x.dtype()}) : Tensor();
    Tensor grad_grid = zeros(g.sizes(), {.dtype = g.dtype()});
    if (go.numel() > 0) {
      if (x.dim() == 4) {
        grid_sample_detail::backward_2d(go, x, g, grad_input, grad_grid, o);
      } else {
        grid_sample_detail::backward_3d(go, x, g, grad_input, grad_grid, o);
      }
    }
    if (grad_input.defined()) grad_input = grad_input.to(device);
    if (!ctx->needs_input_grad(1)) grad_grid = Tensor();
    return {grad_input, grad_grid.defined() ? grad_grid.to(device) : Tensor(), Tensor()};
  }
};

}  // namespace

Tensor grid_sample(const Tensor& input, const Tensor& grid, const std::string& mode,
                   const std::string& padding_mode, bool align_corners) {
  Options o;
  o.align_corners = align_corners;
  if (mode == "bilinear") {
    o.interp = Interp::bilinear;
  } else if (mode == "nearest") {
    o.interp = Interp::nearest;
  } else if (mode == "bicubic") {
    o.interp = Interp::bicubic;
  } else {
    throw ValueError(
        "nn.functional.grid_sample(): expected mode to be 'bilinear', 'nearest' or 'bicubic', "
        "but got: '" +
        mode + "'");
  }
  if (padding_mode == "zeros") {
    o.padding = Padding::zeros;
  } else if (padding_mode == "border") {
    o.padding = Padding::border;
  } else if (padding_mode == "reflection") {
    o.padding = Padding::reflection;
  } else {
    throw ValueError(
        "nn.functional.grid_sample(): expected padding_mode to be 'zeros', 'border', or "
        "'reflection', but got: '" +
        padding_mode + "'");
  }
  FABRIC_CHECK(input.defined(), ValueError, "grid_sampler(): expected input to not be undefined");
  FABRIC_CHECK(grid.defined(), ValueError, "grid_sampler(): expected grid to not be undefined");
  FABRIC_CHECK(input.device() == grid.device(), DeviceError,
               "grid_sampler(): expected input and grid to be on same device, but input is on ",
               input.device().str(), " and grid is on ", grid.device().str());
  const int64_t dims = input.dim();
  const char* want = dims == 4 ? "4D" : "5D";
  // ATen's common checks first (batch, last grid size, non-empty planes), then the rank.
  FABRIC_CHECK(dims >= 1 && grid.dim() >= 1, ShapeError, "grid_sampler(): expected ", want,
               " input and grid with same number of dimensions, but got input with sizes ",
               shape_str(input.sizes()), " and grid with sizes ", shape_str(grid.sizes()));
  FABRIC_CHECK(input.size(0) == grid.size(0), ShapeError,
               "grid_sampler(): expected grid and input to have same batch size, but got input "
               "with sizes ",
               shape_str(input.sizes()), " and grid with sizes ", shape_str(grid.sizes()));
  FABRIC_CHECK(grid.size(-1) == dims - 2, ShapeError, "grid_sampler(): expected grid to have size ",
               dims - 2, " in last dimension, but got grid with sizes ", shape_str(grid.sizes()));
  for (int64_t i = 2; i < dims; ++i)
    FABRIC_CHECK(input.size(i) > 0, ShapeError,
                 "grid_sampler(): expected input to have non-empty spatial dimensions, but input "
                 "has sizes ",
                 shape_str(input.sizes()), " with dimension ", i, " being empty");
  FABRIC_CHECK((dims == 4 || dims == 5) && grid.dim() == dims, ShapeError,
               "grid_sampler(): expected ", want,
               " input and grid with same number of dimensions, but got input with sizes ",
               shape_str(input.sizes()), " and grid with sizes ", shape_str(grid.sizes()));
  FABRIC_CHECK(!(dims == 5 && o.interp == Interp::bicubic), NotImplementedError,
               "grid_sampler(): bicubic interpolation only supports 4D input");
  const DType dt = input.dtype();
  FABRIC_CHECK(dt == DType::float32 || dt == DType::float64, DTypeError,
               "grid_sampler(): ", dims == 4 ? "grid_sampler_2d_cpu" : "grid_sampler3d_cpu",
               " not implemented for ", dtype_name(dt), " (input ", shape_str(input.sizes()),
               "); supported: float32, float64");
  FABRIC_CHECK(grid.dtype() == dt, DTypeError,
               "grid_sampler(): expected input and grid to have the same dtype, but input is ",
               dtype_name(dt), " and grid is ", dtype_name(grid.dtype()));
  o.chunks_per_row = walks_per_row(grid);
  return GridSampleFunction::apply(input, grid, o);
}

}  // namespace functional
}  // namespace fabric::nn
