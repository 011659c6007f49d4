// Dispatch stubs for 3-D convolution (forward, backward data, backward weights). Tensors are
// contiguous NCDHW (weights OIDHW, O = groups * O/groups) of one floating dtype; the op layer
// (ops_conv.cpp) validates the geometry before calling. Spatial arrays are (depth, height,
// width).
#pragma once
#include <array>
#include <cstdint>

#include "tensor/conv_kernels.h"
#include "tensor/dispatch_stub.h"
#include "tensor/dtype.h"

namespace fabric {

// x (N, C, in...), w (OC, C/groups, k...), y (N, OC, out...); dilation 1 = dense kernel.
struct Conv3dDesc {
  int64_t N = 0, C = 0, OC = 0, groups = 1;
  std::array<int64_t, 3> in{}, k{}, out{}, stride{1, 1, 1}, pad{}, dil{1, 1, 1};
  DType dtype = DType::float32;

  int64_t in_numel() const { return in[0] * in[1] * in[2]; }      // per channel
  int64_t k_numel() const { return k[0] * k[1] * k[2]; }          // per channel pair
  int64_t out_numel() const { return out[0] * out[1] * out[2]; }  // per channel
  int64_t x_numel() const { return N * C * in_numel(); }
  int64_t w_numel() const { return OC * (C / groups) * k_numel(); }
  int64_t y_numel() const { return N * OC * out_numel(); }
};

// The passes' signatures as conv2d's (conv_kernels.h).
using Conv3dForwardFn = ConvForwardFn<Conv3dDesc>;
using Conv3dBackwardDataFn = ConvBackwardDataFn<Conv3dDesc>;
using Conv3dBackwardWeightsFn = ConvBackwardWeightsFn<Conv3dDesc>;
FABRIC_DECLARE_STUB(conv3d_forward_stub, Conv3dForwardFn);
FABRIC_DECLARE_STUB(conv3d_backward_data_stub, Conv3dBackwardDataFn);
FABRIC_DECLARE_STUB(conv3d_backward_weights_stub, Conv3dBackwardWeightsFn);

}  // namespace fabric
