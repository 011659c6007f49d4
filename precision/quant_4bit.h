// bitsandbytes-style 4-bit blockwise quantization (NF4, FP4) with optional double quantization of
// the absmax statistics through the 8-bit dynamic code (spec §6), bit-exact with the reference.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/quant_kernels.h"
#include "tensor/tensor.h"

namespace fabric::precision {

// How a 4-bit tensor was quantized: what dequantize_4bit needs to rebuild it.
struct QuantState4bit {
  // float32 (nblocks) absmax per block, or, when `nested`, uint8 (nblocks) 8-bit dynamic codes
  // of absmax - nested_offset.
  Tensor absmax;
  int64_t blocksize = 64;
  std::string quant_type = "fp4";  // "nf4" | "fp4"
  DType dtype = DType::float32;    // of the original tensor
  Shape shape;                     // of the original tensor
  bool nested = false;
  Tensor nested_absmax;        // float32 (ceil(nblocks / 256)), when nested
  float nested_offset = 0.0f;  // mean of the original absmax, when nested
  int64_t nested_blocksize = 256;
  // float32 (256): the 8-bit code the nested statistics were quantized with (bitsandbytes'
  // state2.code, a checkpoint's `nested_quant_map`); undefined: dynamic_code_8bit().
  Tensor nested_code;

  int64_t numel() const { return numel_of(shape); }
  // The 16 code values (bitsandbytes' quant_map), float32.
  Tensor quant_map() const;
};

struct Quantized4bit {
  Tensor packed;  // uint8 ((n + 1) / 2, 1), first element in the high nibble
  QuantState4bit state;
};

// A (float32, float16 or bfloat16, any shape, CPU) -> packed codes and state. blocksize: a power
// of two in [32, 4096]; quant_type "nf4" or "fp4"; compress_statistics: double quantization.
// NaN/inf follow bitsandbytes' default (torch) backend: a NaN makes its block's absmax NaN and
// every code of the block 0, so the whole block dequantizes to NaN; an inf makes absmax inf and
// r = 0, so the block dequantizes to NaN or ±inf. An all-zero block stores absmax 0 (1e-38 for a
// trailing partial block) and the zero code (7 for NF4, 0 for FP4); it dequantizes to 0.
Quantized4bit quantize_4bit(const Tensor& A, int64_t blocksize = 64,
                            const std::string& quant_type = "fp4",
                            bool compress_statistics = false);

// packed + state -> a tensor of state.dtype and state.shape.
Tensor dequantize_4bit(const Tensor& packed, const QuantState4bit& state);
// The same values read in `dtype` (float32, float16 or bfloat16): bit for bit
// dequantize_4bit(packed, state).to(dtype), each value rounded to state.dtype and then to dtype,
// in one pass where the device has the kernel (the CPU); elsewhere that composition.
Tensor dequantize_4bit(const Tensor& packed, const QuantState4bit& state, DType dtype);

// The per-block fp32 absmax of a state (dequantizing the nested statistics with the state's
// nested code when needed: absmax[j] = f32(f32(code[q_j] · absmax2[j / 256]) + offset)).
Tensor absmax_of(const QuantState4bit& state);

Quant4Type parse_quant4_type(const std::string& quant_type, const char* op);
void check_blocksize_4bit(int64_t blocksize, const char* op);

// torch.linspace(start, end, steps) in float32, bit for bit as torch computes it on the CPU (steps
// >= 2): the values bitsandbytes builds the dynamic code from.
std::vector<float> torch_linspace_f32(float start, float end, int64_t steps);

// The signed 8-bit dynamic code of bitsandbytes (256 sorted fp32 values, -1.0 not included), as
// create_dynamic_map() gives it with torch's float32 linspace.
const std::array<float, 256>& dynamic_code_8bit();
// Midpoints between consecutive dynamic-code values, f32 of the exact midpoint.
const std::array<float, 255>& dynamic_code_8bit_midpoints();

struct Quantized8bit {
  Tensor codes;   // uint8, shape of the input
  Tensor absmax;  // float32 (ceil(n / blocksize))
};

// Blockwise 8-bit quantization with the dynamic code (bucketize on midpoints, ties to the lower
// index), as used for double quantization. A: float32, any shape. An all-zero block gets absmax
// 0 and code 127 (the value 0).
Quantized8bit quantize_blockwise_8bit(const Tensor& A, int64_t blocksize = 256);
// codes (uint8) and absmax -> float32 of codes' shape: code[q] · absmax[i / blocksize], where
// `code` is float32 (256) or undefined (dynamic_code_8bit()).
Tensor dequantize_blockwise_8bit(const Tensor& codes, const Tensor& absmax, int64_t blocksize = 256,
                                 const Tensor& code = Tensor());

}  // namespace fabric::precision
