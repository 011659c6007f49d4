// A device's peak FLOP/s for the MFU of Throughput (Lightning's get_available_flops and
// _plugin_to_compute_dtype), for the CUDA devices this runtime targets: H100 (SXM, PCIe, NVL),
// H200 and A100. The CPU has no entry (none, as Lightning). The FLOPs per batch come from
// measure_flops (runtime/measure_flops.h), as in Lightning, or from your own formula.
#pragma once
#include <optional>
#include <string>

#include "tensor/device.h"

namespace fabric {

namespace precision {
class Precision;
}

// The dtype whose peak applies to a plugin, as Lightning picks it: "float64" (64-true), the half
// dtype of 16/bf16 true and mixed modes, DeepSpeed's and bitsandbytes' dtype, FSDP's reduce
// dtype, "int8" for transformer-engine (FP8: Lightning rates it at the int8 peak), else "float32".
std::string compute_dtype_key(const precision::Precision& plugin);

// The peak FLOP/s of a CUDA device of this name (as cudaGetDeviceProperties reports it) for a
// dtype key ("float64", "float32", "tfloat32", "bfloat16", "float16", "int8"). float32 reads the
// "tfloat32" entry when float32_as_tf32 (Lightning: an Ampere or later device whose float32
// matmuls may use TF32). Unknown device or dtype: none, with Lightning's warning text in *why_none.
std::optional<double> cuda_peak_flops(const std::string& device_name, const std::string& dtype,
                                      bool float32_as_tf32 = false,
                                      std::string* why_none = nullptr);

// cuda_peak_flops for a CUDA device (its name and compute capability read from the driver, TF32
// from fabric::allow_tf32(), tensor/device_control.h); none for the CPU, without a reason
// (Lightning returns None silently).
std::optional<double> get_available_flops(Device device, const std::string& dtype,
                                          std::string* why_none = nullptr);

}  // namespace fabric
