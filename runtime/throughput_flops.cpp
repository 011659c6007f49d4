// Peak FLOP/s per CUDA device and dtype: Lightning's _CUDA_FLOPS entries for H100 and A100, its
// chip-name parsing, and H200.
#include "runtime/throughput_flops.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>

#include "precision/bitsandbytes_precision.h"
#include "precision/deepspeed_precision.h"
#include "precision/fsdp_precision.h"
#include "precision/mixed_precision.h"
#include "precision/transformer_engine_precision.h"
#include "precision/true_precision.h"
#include "tensor/device_control.h"

#ifdef FABRIC_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace fabric {
namespace {

using DTypeFlops = std::map<std::string, double>;

// Lightning's table (src/lightning/fabric/utilities/throughput.py, _CUDA_FLOPS): dense peaks
// (without 2:4 sparsity) from NVIDIA's datasheets. H200 is not in that table: its tensor-core
// entries are the dense H200 SXM values Lightning adopted later (PR #21743: tf32 494.5, bf16/fp16
// 989.5, int8 1979 TFLOPS), float64/float32 those of NVIDIA's H200 datasheet (34 / 67 TFLOPS).
const std::map<std::string, DTypeFlops>& cuda_flops_table() {
  static const std::map<std::string, DTypeFlops> table = {
      {"h100 nvl",
       {{"float64", 67e12},
        {"float32", 133.8e12},
        {"tfloat32", 989.4e12},
        {"bfloat16", 1978.8e12},
        {"float16", 1978.8e12},
        {"int8", 3957.8e12}}},
      {"h100 sxm",
       {{"float64", 33.5e12},
        {"float32", 66.9e12},
        {"tfloat32", 494.7e12},
        {"bfloat16", 989.4e12},
        {"float16", 989.4e12},
        {"int8", 1978.9e12}}},
      {"h100 pcie",
       {{"float64", 25.6e12},
        {"float32", 51.2e12},
        {"tfloat32", 378e12},
        {"bfloat16", 756e12},
        {"float16", 756e12},
        {"int8", 1513e12}}},
      {"h200 sxm",
       {{"float64", 34e12},
        {"float32", 67e12},
        {"tfloat32", 494.5e12},
        {"bfloat16", 989.5e12},
        {"float16", 989.5e12},
        {"int8", 1979e12}}},
      {"a100",
       {{"float64", 9.7e12},
        {"float32", 19.5e12},
        {"tfloat32", 156e12},
        {"bfloat16", 312e12},
        {"float16", 312e12},
        {"int8", 624e12}}},
  };
  return table;
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// Lightning's parsing: the lower-cased name narrowed to a table key; a recognised family whose
// variant is not (an H100 that is neither HBM3, NVL nor PCIe) keeps the full name.
std::optional<std::string> chip_of(const std::string& device_name) {
  std::string chip = device_name;
  std::transform(chip.begin(), chip.end(), chip.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (contains(chip, "h100")) {
    if (contains(chip, "hbm3")) return "h100 sxm";
    if (contains(chip, "nvl")) return "h100 nvl";
    if (contains(chip, "pcie") || contains(chip, "hbm2e")) return "h100 pcie";
    return chip;
  }
  // "NVIDIA H200" is the SXM part; the NVL (PCIe) part's peaks are lower and not in the table.
  if (contains(chip, "h200")) return contains(chip, "nvl") ? "h200 nvl" : "h200 sxm";
  if (contains(chip, "a100")) return "a100";
  return std::nullopt;
}

std::string quoted(const std::string& s) { return "'" + s + "'"; }

}  // namespace

std::string compute_dtype_key(const precision::Precision& plugin) {
  using namespace precision;
  if (const auto* p = dynamic_cast<const BitsandbytesPrecision*>(&plugin))
    return std::string(dtype_name(p->dtype()));
  if (const auto* p = dynamic_cast<const MixedPrecision*>(&plugin))
    return std::string(dtype_name(p->dtype()));
  if (const auto* p = dynamic_cast<const TruePrecision*>(&plugin))
    return std::string(dtype_name(p->dtype()));  // 64/16/bf16-true
  if (const auto* p = dynamic_cast<const DeepSpeedPrecision*>(&plugin))
    return std::string(dtype_name(p->dtype()));
  if (dynamic_cast<const TransformerEnginePrecision*>(&plugin)) return "int8";
  if (const auto* p = dynamic_cast<const FSDPPrecision*>(&plugin))
    return std::string(dtype_name(p->mixed_precision_config().reduce_dtype));
  return "float32";
}

std::optional<double> cuda_peak_flops(const std::string& device_name, const std::string& dtype,
                                      bool float32_as_tf32, std::string* why_none) {
  const std::optional<std::string> chip = chip_of(device_name);
  if (!chip) {
    if (why_none) *why_none = "FLOPs not found for " + quoted(device_name);
    return std::nullopt;
  }
  const auto& table = cuda_flops_table();
  auto entry = table.find(*chip);
  if (entry == table.end()) {
    if (why_none)
      *why_none = "FLOPs not found for " + quoted(device_name) + ", chip is " + quoted(*chip);
    return std::nullopt;
  }
  const std::string key = dtype == "float32" && float32_as_tf32 ? "tfloat32" : dtype;
  auto flops = entry->second.find(key);
  if (flops == entry->second.end()) {
    if (why_none) *why_none = quoted(device_name) + " does not support " + key;
    return std::nullopt;
  }
  return std::trunc(flops->second);  // Lightning returns int(...)
}

std::optional<double> get_available_flops(Device device, const std::string& dtype,
                                          std::string* why_none) {
  if (!device.is_cuda()) return std::nullopt;
#ifdef FABRIC_WITH_CUDA
  cudaDeviceProp prop{};
  const cudaError_t err = cudaGetDeviceProperties(&prop, device.index);
  if (err != cudaSuccess) {
    if (why_none)
      *why_none = std::string("cudaGetDeviceProperties failed: ") + cudaGetErrorString(err);
    return std::nullopt;
  }
  // TF32 needs Ampere (compute capability 8.0) or later and float32 matmuls allowed to use it.
  const bool tf32 = prop.major >= 8 && fabric::allow_tf32();
  return cuda_peak_flops(prop.name, dtype, tf32, why_none);
#else
  if (why_none) *why_none = "this build has no CUDA backend";
  return std::nullopt;
#endif
}

}  // namespace fabric
