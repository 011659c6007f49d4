// One torch 1.13 CPU call on x = ((arange(n) * 5) % 11) / 4 of shape `x` in `dtype`, then
// y.backward(arange(y.numel()) + 1): y and x.grad as printed by a fixture script. The rows of the
// interpolate modes, 3-d/circular pads and pixel shuffles are generated into
// upsample_modes_torch_rows.cpp by tools/fixtures/make_upsample_modes_rows.py.
#pragma once
#include <functional>
#include <vector>

#include "tensor/ops.h"
#include "tensor/tensor.h"

namespace fabric::upsample_torch {

struct UpsampleRow {
  const char* name;
  DType dtype;
  Shape x, y_shape;
  std::function<Tensor(const Tensor&)> call;
  std::vector<double> y, grad;
};

const std::vector<UpsampleRow>& modes_rows();

}  // namespace fabric::upsample_torch
