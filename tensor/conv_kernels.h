// Dispatch stubs for 2-D convolution (forward, backward data, backward weights) and pooling.
// Tensors are contiguous NCHW (weights OIHW, O = groups * O/groups) of one floating dtype; the op
// layer validates the geometry before calling.
#pragma once
#include <cstdint>

#include "tensor/dispatch_stub.h"
#include "tensor/dtype.h"
#include "tensor/error.h"

namespace fabric {

// x (N, C, H, W), w (OC, C/groups, KH, KW), y (N, OC, OH, OW); dilation 1 = dense kernel.
struct Conv2dDesc {
  int64_t N = 0, C = 0, H = 0, W = 0, OC = 0, KH = 0, KW = 0, OH = 0, OW = 0;
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1, groups = 1;
  DType dtype = DType::float32;
};

// The three convolution passes, one signature per geometry struct (Conv2dDesc, Conv3dDesc in
// conv3d_kernels.h). y = conv(x, w) + bias (bias (OC) may be null).
template <class Desc>
using ConvForwardFn = void (*)(const Desc& d, const void* x, const void* w, const void* bias,
                               void* y);
// dx = the gradient w.r.t. x for dy (all of dx is written).
template <class Desc>
using ConvBackwardDataFn = void (*)(const Desc& d, const void* dy, const void* w, void* dx);
// dw and/or db (either may be null) for dy and x (all of each is written).
template <class Desc>
using ConvBackwardWeightsFn = void (*)(const Desc& d, const void* dy, const void* x, void* dw,
                                       void* db);
using Conv2dForwardFn = ConvForwardFn<Conv2dDesc>;
using Conv2dBackwardDataFn = ConvBackwardDataFn<Conv2dDesc>;
using Conv2dBackwardWeightsFn = ConvBackwardWeightsFn<Conv2dDesc>;
FABRIC_DECLARE_STUB(conv2d_forward_stub, Conv2dForwardFn);
FABRIC_DECLARE_STUB(conv2d_backward_data_stub, Conv2dBackwardDataFn);
FABRIC_DECLARE_STUB(conv2d_backward_weights_stub, Conv2dBackwardWeightsFn);

// planes = N * C independent (H, W) -> (OH, OW) planes; padding never exceeds half the kernel.
struct Pool2dDesc {
  int64_t planes = 0, H = 0, W = 0, OH = 0, OW = 0, KH = 1, KW = 1, SH = 1, SW = 1, PH = 0, PW = 0;
  DType dtype = DType::float32;
};
// Calls f(T{}) for the floating dtypes the convolution, pooling and resampling kernels take (each
// device's), DTypeError naming `what` and the dtype otherwise (the op layer checks first; this
// guards a kernel called directly).
template <typename F>
void visit_conv_dtype(DType t, const char* what, F&& f) {
  switch (t) {
    case DType::float64:
      return f(double{});
    case DType::float32:
      return f(float{});
    case DType::bfloat16:
      return f(BFloat16{});
    case DType::float16:
      return f(Half{});
    default:
      throw DTypeError(detail::cat(what, " kernel: unsupported dtype ", dtype_name(t),
                                   " (expected float64, float32, bfloat16 or float16)"));
  }
}
// max pool pads with -inf and propagates NaN; avg pool counts the padding (count_include_pad).
using Pool2dForwardFn = void (*)(const Pool2dDesc& d, const void* x, void* y);
// dx (all written) from dy; max pool recomputes each window's first maximum from x.
using MaxPool2dBackwardFn = void (*)(const Pool2dDesc& d, const void* dy, const void* x, void* dx);
using AvgPool2dBackwardFn = void (*)(const Pool2dDesc& d, const void* dy, void* dx);
FABRIC_DECLARE_STUB(max_pool2d_forward_stub, Pool2dForwardFn);
FABRIC_DECLARE_STUB(avg_pool2d_forward_stub, Pool2dForwardFn);
FABRIC_DECLARE_STUB(max_pool2d_backward_stub, MaxPool2dBackwardFn);
FABRIC_DECLARE_STUB(avg_pool2d_backward_stub, AvgPool2dBackwardFn);
// The offset in its plane of each window's first maximum (planes * OH * OW int64), as the max
// backward picks it: for max pool's double backward, which gathers at these positions.
using MaxPool2dIndicesFn = void (*)(const Pool2dDesc& d, const void* x, int64_t* indices);
FABRIC_DECLARE_STUB(max_pool2d_indices_stub, MaxPool2dIndicesFn);
// Adaptive average pooling: (H, W) -> (OH, OW) planes with torch's windows, rows
// [floor(i*H/OH), ceil((i+1)*H/OH)) and likewise for columns (K*, S*, P* unused). The backward
// writes all of dx: each dy spread evenly over its window, summed where windows overlap.
FABRIC_DECLARE_STUB(adaptive_avg_pool2d_forward_stub, Pool2dForwardFn);
FABRIC_DECLARE_STUB(adaptive_avg_pool2d_backward_stub, AvgPool2dBackwardFn);

}  // namespace fabric
