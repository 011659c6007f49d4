// Dispatch stubs of unfold (im2col) and fold (col2im) over contiguous tensors: an image
// (N, C, H, W) and its columns (N, C*KH*KW, BH*BW), row c*KH*KW + i*KW + j holding input
// (c, b_h*SH - PH + i*DH, b_w*SW - PW + j*DW) for block (b_h, b_w), zero where that is padding.
#pragma once
#include <cstdint>

#include "tensor/dispatch_stub.h"
#include "tensor/dtype.h"

namespace fabric {

struct FoldDesc {
  int64_t N = 0, C = 0, H = 0, W = 0;
  int64_t KH = 1, KW = 1, DH = 1, DW = 1, PH = 0, PW = 0, SH = 1, SW = 1;
  int64_t BH = 0, BW = 0;  // blocks along H and W (L = BH * BW)
  DType dtype = DType::float32;
};

// cols (all written) from image.
using UnfoldFn = void (*)(const FoldDesc& d, const void* image, void* cols);
// image (all written): each pixel the sum of the column entries that read it.
using FoldFn = void (*)(const FoldDesc& d, const void* cols, void* image);
FABRIC_DECLARE_STUB(unfold_stub, UnfoldFn);
FABRIC_DECLARE_STUB(fold_stub, FoldFn);

}  // namespace fabric
