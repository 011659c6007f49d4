// Derivatives of views, copies and casts: gradients are reshaped, transposed, scattered into
// zeros at the viewed positions, or cast back to the source dtype/device.
#include "autograd/derivatives.h"
#include "autograd/saved.h"
#include "tensor/factory.h"
#include "tensor/op_attrs.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

FABRIC_DERIVATIVE(view) {
  Shape in = attrs_of<ShapeAttrs>(rec).input_shape;
  return [in](const std::vector<Tensor>& g) { return std::vector<Tensor>{g[0].reshape(in)}; };
}

FABRIC_DERIVATIVE(expand) {
  Shape in = attrs_of<ShapeAttrs>(rec).input_shape;
  return [in](const std::vector<Tensor>& g) { return std::vector<Tensor>{sum_to(g[0], in)}; };
}

FABRIC_DERIVATIVE(transpose) {
  auto a = attrs_of<TransposeAttrs>(rec);
  return [a](const std::vector<Tensor>& g) { return std::vector<Tensor>{g[0].transpose(a.dim0, a.dim1)}; };
}

FABRIC_DERIVATIVE(permute) {
  const auto& dims = attrs_of<PermuteAttrs>(rec).dims;
  std::vector<int64_t> inverse(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) inverse[dims[i]] = static_cast<int64_t>(i);
  return [inverse](const std::vector<Tensor>& g) { return std::vector<Tensor>{g[0].permute(inverse)}; };
}

FABRIC_DERIVATIVE(slice) {
  auto a = attrs_of<SliceAttrs>(rec);
  return [a](const std::vector<Tensor>& g) {
    Tensor gi = zeros(a.input_shape, {.dtype = g[0].dtype(), .device = g[0].device()});
    gi.slice(a.dim, a.start, a.end, a.step).copy_(g[0]);
    return std::vector<Tensor>{gi};
  };
}

FABRIC_DERIVATIVE(select) {
  auto a = attrs_of<SelectAttrs>(rec);
  return [a](const std::vector<Tensor>& g) {
    Tensor gi = zeros(a.input_shape, {.dtype = g[0].dtype(), .device = g[0].device()});
    gi.select(a.dim, a.index).copy_(g[0]);
    return std::vector<Tensor>{gi};
  };
}

// torch's UnbindBackward: the slices' gradients stacked along the dim, zeros for a slice that got
// none (nothing when none did).
FABRIC_DERIVATIVE(unbind) {
  auto a = attrs_of<UnbindAttrs>(rec);
  return [a](const std::vector<Tensor>& g) {
    const Tensor* any = nullptr;
    for (const Tensor& t : g)
      if (t.defined()) any = &t;
    if (!any) return std::vector<Tensor>{Tensor()};
    Shape slice = a.input_shape;
    slice.erase(slice.begin() + a.dim);
    std::vector<Tensor> parts;
    parts.reserve(g.size());
    for (const Tensor& t : g)
      parts.push_back(t.defined() ? t
                                  : zeros(slice, {.dtype = any->dtype(), .device = any->device()}));
    return std::vector<Tensor>{stack(parts, a.dim)};
  };
}

FABRIC_DERIVATIVE(clone) {
  return [](const std::vector<Tensor>& g) { return std::vector<Tensor>{g[0]}; };
}

FABRIC_DERIVATIVE(to_dtype) {
  DType from = attrs_of<ToDTypeAttrs>(rec).from;
  return [from](const std::vector<Tensor>& g) { return std::vector<Tensor>{g[0].to(from)}; };
}

FABRIC_DERIVATIVE(to_device) {
  Device from = rec.inputs[0].device();
  return [from](const std::vector<Tensor>& g) { return std::vector<Tensor>{g[0].to(from)}; };
}

}  // namespace
}  // namespace fabric
