// What the convolution layers (nn/conv.cpp, nn/conv3d.cpp) share when they are built: torch's
// initial values, the channels/groups check, and the 1-tuple torch prints for a 1-d size.
#pragma once
#include <cstdint>
#include <string>

#include "tensor/tensor.h"

namespace fabric::nn {

// torch's _ConvNd.reset_parameters: the weight by kaiming_uniform_(a = sqrt(5)), the bias by
// U(+-1/sqrt(fan_in)) with the weight's fan_in (dim 1 times the kernel: for a transposed conv's
// (in, out/groups, ...) weight that is out/groups * kernel, as torch computes it).
void reset_conv_parameters(const Tensor& weight, const Tensor& bias, Generator* gen);

// ValueError naming `layer` unless both channel counts are positive and divisible by groups.
void check_conv_channels(const char* layer, int64_t in, int64_t out, int64_t groups);

// torch prints a 1-tuple with its trailing comma: kernel_size=(3,).
std::string int1_str(int64_t v);

}  // namespace fabric::nn
