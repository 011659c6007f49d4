// Lightning's measure_flops (lightning.fabric.utilities.throughput): the FLOPs of a forward pass,
// or of a forward and backward pass, counted by the op-level FlopCounter (tensor/flop_counter.h),
// for Throughput's flops and MFU.
//
//   const int64_t fwd_and_bwd = fabric::measure_flops(
//       model, [&] { return model.forward(x); }, [](const Tensor& y) { return y.sum(); });
#pragma once
#include <cstdint>
#include <functional>

#include "nn/module.h"
#include "tensor/tensor.h"

namespace fabric {

// Runs forward_fn under a FlopCounter and, when loss_fn is given, loss_fn(forward_fn()).backward()
// too, and returns the FLOPs counted (torch.utils.flop_counter's rules: matrix products,
// convolutions and fused attention; elementwise ops count 0). model's gradients are as before
// afterwards (the backward's own are dropped), so a measurement can sit anywhere in a training
// loop; measure the plain module, not one wrapped for DDP/FSDP (whose backward hooks would
// communicate). forward_fn empty, or loss_fn returning an undefined tensor: ValueError.
int64_t measure_flops(nn::Module& model, const std::function<Tensor()>& forward_fn,
                      const std::function<Tensor(const Tensor&)>& loss_fn = {});

}  // namespace fabric
