// The connector: resolves Fabric's constructor flags (accelerator, strategy, devices, num_nodes,
// precision, plugins) in the reference's order (fabric-api.md §1), including the LT_* environment
// overrides, into what the Fabric object runs with.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "precision/deepspeed_precision.h"
#include "precision/precision.h"
#include "tensor/device.h"

namespace fabric {

// devices: an int, a list of indices, or a string ("2", "0,1", "-1" = all, "auto").
struct Devices {
  std::string spec = "auto";
  Devices() = default;
  Devices(int n) : spec(std::to_string(n)) {}  // NOLINT: implicit, as `devices=2`
  Devices(const char* s) : spec(s) {}          // NOLINT
  Devices(std::string s) : spec(std::move(s)) {}  // NOLINT
  Devices(const std::vector<int>& ids);           // NOLINT
};

struct ConnectorFlags {
  std::string accelerator = "auto";  // cpu | cuda | gpu | mps | tpu | auto
  std::string strategy = "auto";
  Devices devices;
  int64_t num_nodes = 1;
  std::string precision;  // empty = None (32-true)
  std::shared_ptr<precision::Precision> precision_plugin;  // from `plugins`
  // A DeepSpeed config block (strategy deepspeed* only, ValueError otherwise): its stage overrides
  // the strategy name's, its fp16/bf16 block selects the precision when none is given (a
  // disagreeing one is a ValueError), and it configures DeepSpeedPrecision's scaler and clipping.
  std::optional<precision::DeepSpeedConfig> deepspeed;
};

struct Resolved {
  std::string accelerator;  // "cpu" or "cuda"
  std::string strategy;     // "single_device" or "ddp"
  bool find_unused_parameters = false;  // strategy 'ddp_find_unused_parameters_true'
  int zero_stage = 0;                   // strategy 'deepspeed' (stage 2) / 'deepspeed_stage_N'
  bool offload = false;                 // 'deepspeed_stage_N_offload', 'fsdp_cpu_offload'
  std::vector<int> device_ids;
  int64_t num_nodes = 1;
  std::string precision;  // canonical string or the plugin's name
  std::shared_ptr<precision::Precision> plugin;
  std::vector<std::string> warnings;
  // The device of local rank `local_rank` (cuda:device_ids[local_rank]; cpu for every rank).
  Device root_device(int local_rank = 0) const;
};

// Validates and resolves. ValueError for bad values (naming the flag, the value and what is
// allowed); DeviceError when the accelerator is not available here; NotImplementedError for
// strategies or precisions that this build does not provide yet.
Resolved resolve_connector(ConnectorFlags flags);

// Bounds of the devices and num_nodes flags: far above any machine or cluster, low enough that a
// mistyped count is refused instead of allocating a list of ids per device (or wrapping when
// narrowed to int). The launcher's world size bound (2^20 processes) is the product's.
inline constexpr int64_t kMaxDevicesPerNode = 1 << 16;  // counts up to it, indices below it
inline constexpr int64_t kMaxNumNodes = 1 << 20;

// The devices flag as explicit indices; `available` is the accelerator's device count (what -1
// means, and what 'auto' means on cuda; 'auto' on cpu is one device). ValueError naming the spec and what is allowed
// (a count above kMaxDevicesPerNode or an index at or past it too; on the cpu, anything but a count,
// as Lightning's CPUAccelerator). fabric-train's config check uses it too.
std::vector<int> parse_devices(const std::string& spec, int available, const std::string& accelerator);

// Strategy names the reference registers (lower-cased).
const std::vector<std::string>& known_strategies();

// The number of CUDA devices visible (0 without a driver or without the CUDA backend), and why
// there are none when that is the case.
int cuda_device_count(std::string* why_none = nullptr);

}  // namespace fabric
