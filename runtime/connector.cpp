// Flag validation and resolution for Fabric (the reference's _Connector).
#include "runtime/connector.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <sstream>

#include "precision/bitsandbytes_precision.h"
#include "precision/fsdp_precision.h"
#include "precision/registry.h"
#include "tensor/error.h"

#ifdef FABRIC_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace fabric {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "'" : ", '") + s + "'";
  return out;
}

std::string fsdp_mode_list() { return join(precision::FSDPPrecision::modes()); }

// A precision this runtime defines (not one registered by the user).
bool is_builtin_precision(const std::string& p) {
  const auto& c = precision::canonical_precisions();
  const auto& b = precision::bitsandbytes_modes();
  return std::find(c.begin(), c.end(), p) != c.end() || std::find(b.begin(), b.end(), p) != b.end();
}

// Strategies this build runs: one process, or data parallel over several.
bool available_strategy(const std::string& s) {
  return s == "single_device" || s == "ddp" || s == "deepspeed" || s == "fsdp";
}

}  // namespace

std::vector<int> parse_devices(const std::string& spec, int available, const std::string& accelerator) {
  const std::string s = lower(spec);
  auto bad = [&](const std::string& why) {
    return ValueError("devices='" + spec + "' is invalid: " + why +
                      ". Expected a positive number of devices (at most " + std::to_string(kMaxDevicesPerNode) +
                      "), a list of indices ('0,1'), '-1' for all, or 'auto'");
  };
  // fabric-api.md §1.3: auto is auto_device_count(), i.e. every visible GPU on cuda, 1 on cpu.
  if (s == "auto") {
    if (accelerator != "cuda" || available < 1) return std::vector<int>{0};
    std::vector<int> ids(static_cast<size_t>(available));
    for (int i = 0; i < available; ++i) ids[size_t(i)] = i;
    return ids;
  }
  if (s.empty()) throw bad("it is empty");
  // fabric-api.md (Lightning's CPUAccelerator): on the cpu, devices is a number of processes, an
  // int > 0; indices and -1 ("all") name GPUs.
  if (accelerator == "cpu" && (s.find(',') != std::string::npos || s.front() == '[' || s == "-1"))
    throw bad("on the cpu accelerator devices is the number of processes, an int > 0 (device indices and '-1' "
              "are for cuda)");
  if (s.find(',') != std::string::npos || s.front() == '[') {
    std::vector<int> ids;
    std::string body = s;
    body.erase(std::remove_if(body.begin(), body.end(), [](char c) { return c == '[' || c == ']' || c == ' '; }),
               body.end());
    std::stringstream ss(body);
    std::string item;
    while (std::getline(ss, item, ',')) {
      if (item.empty()) continue;
      char* end = nullptr;
      errno = 0;
      const long v = std::strtol(item.c_str(), &end, 10);
      if (*end != '\0' || v < 0) throw bad("'" + item + "' is not a device index");
      // Checked before the narrowing to int, which would wrap 4294967296 to device 0.
      if (errno == ERANGE || v >= kMaxDevicesPerNode)
        throw bad("index " + item + " is too large (indices are below " + std::to_string(kMaxDevicesPerNode) + ")");
      if (std::find(ids.begin(), ids.end(), int(v)) != ids.end()) throw bad("index " + item + " is repeated");
      ids.push_back(int(v));
    }
    if (ids.empty()) throw bad("the list is empty");
    return ids;
  }
  char* end = nullptr;
  errno = 0;
  const long n = std::strtol(s.c_str(), &end, 10);
  if (*end != '\0') throw bad("not a number");
  // Before the list of ids is built: 10^12 would not fit in memory, 2^32 + 1 would take 17 GB.
  if (errno == ERANGE || n > kMaxDevicesPerNode) throw bad("too many devices");
  if (n == -1) {
    if (available < 1) throw bad("no " + accelerator + " device is available");
    std::vector<int> ids(static_cast<size_t>(available));
    for (int i = 0; i < available; ++i) ids[size_t(i)] = i;
    return ids;
  }
  if (n == 0) throw bad("zero devices");
  // -2 and below read "zero devices" as well, which they are not.
  if (n < 0) throw bad("a negative count (-1, all devices, is the only negative one)");
  std::vector<int> ids(static_cast<size_t>(n));
  for (int i = 0; i < int(n); ++i) ids[size_t(i)] = i;
  return ids;
}

namespace {

// LT_* variables replace the constructor flags (the CLI sets them). Under LT_CLI_USED=1, a flag
// the code set to a non-default value that disagrees with the environment is an error.
void apply_env_overrides(ConnectorFlags& f) {
  const bool cli = [] {
    const char* v = std::getenv("LT_CLI_USED");
    return v && std::string(v) == "1";
  }();
  auto take = [&](const char* var, std::string& flag, const std::string& default_value, const char* name) {
    const char* v = std::getenv(var);
    if (!v) return;
    if (cli && flag != default_value && flag != v)
      throw ValueError(std::string("Your code has `Fabric(") + name + "=" + flag +
                       ", ...)` but it conflicts with the value `--" + name + "=" + v +
                       "` set through the CLI. Remove it either from the CLI or from the Lightning Fabric object.");
    flag = v;
  };
  take("LT_ACCELERATOR", f.accelerator, "auto", "accelerator");
  take("LT_STRATEGY", f.strategy, "auto", "strategy");
  take("LT_DEVICES", f.devices.spec, "auto", "devices");
  // A precision plugin of the very precision LT_PRECISION names agrees with it: fabric-train folds
  // the variable into its config and passes that precision's plugin when the config gives the
  // plugin options (Lightning would refuse "both precision and a precision plugin" here).
  const char* lt_precision = std::getenv("LT_PRECISION");
  bool plugin_is_it = false;
  if (lt_precision && f.precision_plugin && f.precision.empty()) {
    try {
      plugin_is_it = precision::canonical_precision(lt_precision) == f.precision_plugin->name();
    } catch (const ValueError&) {  // not a precision name: refused below as Lightning refuses it
    }
  }
  if (!plugin_is_it) take("LT_PRECISION", f.precision, "", "precision");
  if (const char* v = std::getenv("LT_NUM_NODES")) {
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    FABRIC_CHECK(*end == '\0', ValueError, "LT_NUM_NODES='", v, "' is not an integer");
    if (cli && f.num_nodes != 1 && f.num_nodes != n)
      throw ValueError("Your code has `Fabric(num_nodes=" + std::to_string(f.num_nodes) +
                       ", ...)` but it conflicts with the value `--num_nodes=" + v + "` set through the CLI.");
    f.num_nodes = n;
  }
}

}  // namespace

Devices::Devices(const std::vector<int>& ids) {
  spec.clear();
  for (int i : ids) {
    if (!spec.empty()) spec += ',';
    spec += std::to_string(i);
  }
  if (ids.size() == 1) spec += ",";  // a one-element list names device ids[0], not a count
}

Device Resolved::root_device(int local_rank) const {
  if (accelerator != "cuda") return Device::cpu();
  return Device::cuda(device_ids.empty() ? 0 : device_ids.at(size_t(local_rank) % device_ids.size()));
}

const std::vector<std::string>& known_strategies() {
  static const std::vector<std::string> v = {
      "auto",          "single_device",     "dp",           "ddp",
      "ddp_spawn",     "ddp_fork",          "ddp_notebook", "ddp_find_unused_parameters_true",
      "fsdp",          "fsdp_cpu_offload",
      "deepspeed",     "deepspeed_stage_1", "deepspeed_stage_1_offload",
      "deepspeed_stage_2", "deepspeed_stage_2_offload",
      "deepspeed_stage_3", "deepspeed_stage_3_offload", "deepspeed_stage_3_offload_nvme",
      "model_parallel", "xla",              "xla_fsdp",     "single_xla",
      "single_tpu"};
  return v;
}

int cuda_device_count(std::string* why_none) {
#ifdef FABRIC_WITH_CUDA
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    // Error 35 (cudaErrorInsufficientDriver) is what a machine without a driver reports.
    if (why_none) *why_none = std::string("cudaGetDeviceCount failed: ") + cudaGetErrorString(err);
    return 0;
  }
  if (n == 0 && why_none) *why_none = "no CUDA device is visible";
  return n;
#else
  if (why_none) *why_none = "this build has no CUDA backend (configured with FABRIC_CUDA=OFF or without nvcc)";
  return 0;
#endif
}

Resolved resolve_connector(ConnectorFlags f) {
  apply_env_overrides(f);
  Resolved r;
  // 1. Validate flags.
  std::string acc = lower(f.accelerator);
  static const std::vector<std::string> accelerators = {"cpu", "cuda", "mps", "tpu", "gpu", "auto"};
  FABRIC_CHECK(std::find(accelerators.begin(), accelerators.end(), acc) != accelerators.end(), ValueError,
               "You selected an invalid accelerator name: `accelerator='", f.accelerator,
               "'`. Available names are: ", join(accelerators), ".");
  const std::string strategy = lower(f.strategy);
  const auto& strategies = known_strategies();
  FABRIC_CHECK(std::find(strategies.begin(), strategies.end(), strategy) != strategies.end(), ValueError,
               "You selected an invalid strategy name: `strategy='", f.strategy,
               "'`. It must be one of: ", join(strategies), ".");
  // Bounded: Fabric narrows it to int for the strategy, where a huge count would wrap.
  FABRIC_CHECK(f.num_nodes >= 1 && f.num_nodes <= kMaxNumNodes, ValueError,
               "`num_nodes` must be a positive integer of at most ", kMaxNumNodes, ", got ", f.num_nodes);
  FABRIC_CHECK(!(f.precision_plugin && !f.precision.empty()), ValueError,
               "Received both `precision='", f.precision,
               "'` and a precision plugin in `plugins`. Choose one.");

  // 2. Accelerator.
  std::string why_no_cuda;
  const int n_cuda = cuda_device_count(&why_no_cuda);
  if (acc == "auto") acc = n_cuda > 0 ? "cuda" : "cpu";
  if (acc == "gpu") {
    FABRIC_CHECK(n_cuda > 0, DeviceError, "`accelerator='gpu'` was selected but no GPU is available (",
                 why_no_cuda, ")");
    acc = "cuda";
  }
  FABRIC_CHECK(acc != "mps" && acc != "tpu", DeviceError, "`accelerator='", acc,
               "'` is not available: this runtime supports 'cpu' and 'cuda'");
  FABRIC_CHECK(acc != "cuda" || n_cuda > 0, DeviceError,
               "`accelerator='cuda'` is not available on this machine (", why_no_cuda, ")");
  r.accelerator = acc;

  // 3. Devices.
  r.device_ids = parse_devices(f.devices.spec, acc == "cuda" ? n_cuda : 1, acc);
  if (acc == "cuda") {
    const std::string& spec = f.devices.spec;
    const bool count = !spec.empty() && std::all_of(spec.begin(), spec.end(), ::isdigit);
    for (int id : r.device_ids) {
      if (id < n_cuda) continue;
      if (count)
        throw DeviceError(detail::cat("devices=", spec, " asks for ", r.device_ids.size(),
                                      " CUDA devices but only ", n_cuda, " are visible"));
      throw DeviceError(detail::cat("devices='", spec, "' names CUDA device ", id, " but only ",
                                    n_cuda, " are visible"));
    }
  }
  r.num_nodes = f.num_nodes;

  // 5. Strategy.
  const bool many = r.device_ids.size() > 1 || r.num_nodes > 1;
  std::string s = strategy;
  if (s == "auto") s = many ? "ddp" : "single_device";
  if (s == "dp" && acc == "cpu") {
    r.warnings.push_back("The `dp` strategy is not supported on CPU; using `ddp` instead");
    s = "ddp";
  }
  if (s == "ddp_find_unused_parameters_true") {
    r.find_unused_parameters = true;
    s = "ddp";
  }
  if (s == "fsdp_cpu_offload") {
    r.offload = true;
    s = "fsdp";
  }
  if (s.rfind("deepspeed", 0) == 0 && s.find("nvme") == std::string::npos) {
    // ZeRO: 'deepspeed' is stage 2, as in the reference; '_offload' keeps the optimizer state
    // (stage 3: the parameter shards too) in host memory.
    const bool offload = s.size() > 8 && s.substr(s.size() - 8) == "_offload";
    const std::string base = offload ? s.substr(0, s.size() - 8) : s;
    r.zero_stage = base == "deepspeed" ? 2 : std::stoi(base.substr(base.size() - 1));
    r.offload = offload;
    s = "deepspeed";
  }
  if (f.deepspeed) {
    FABRIC_CHECK(s == "deepspeed" || s.rfind("deepspeed", 0) == 0, ValueError,
                 "a DeepSpeed config was given, but strategy='", f.strategy, "' is not a deepspeed strategy");
    if (f.deepspeed->stage) {
      // The config's stage wins over the name's (ZeroStrategy refuses stages it does not run).
      r.zero_stage = *f.deepspeed->stage;
      s = "deepspeed";
    }
    // So does its offload device, when it names one.
    if (const std::optional<bool> offload = f.deepspeed->offload(r.zero_stage))
      r.offload = *offload;
    // DeepSpeed checks train_batch_size against micro batch x accumulation x world size at setup.
    if (f.deepspeed->train_batch_size)
      (void)f.deepspeed->batch_sizes(static_cast<int64_t>(r.device_ids.size()) * r.num_nodes);
    if (!f.deepspeed->ignored.empty()) r.warnings.push_back(f.deepspeed->ignored_warning());
  }
  if (s == "ddp_spawn" || s == "ddp_fork" || s == "ddp_notebook") {
    // Python's start methods have no C++ counterpart: processes re-run the command line.
    r.warnings.push_back("strategy '" + s + "' runs as 'ddp' here (the subprocess launcher re-runs the program)");
    s = "ddp";
  }
  // Unlike the reference, FSDP is not refused on CPU: this runtime shards over Gloo there.
  FABRIC_CHECK(!(s == "single_device" && many), ValueError, "strategy='single_device' runs on one device, but ",
               r.device_ids.size(), " devices on ", r.num_nodes, " node(s) were requested");
  FABRIC_CHECK(available_strategy(s), NotImplementedError, "strategy '", s,
               "' is not available in this build yet; use 'auto', 'single_device', 'ddp', 'fsdp' or 'deepspeed'");
  r.strategy = s;

  // 7. Precision plugin.
  if (f.deepspeed && f.deepspeed->precision()) {
    const std::string from_config = *f.deepspeed->precision();
    if (f.precision.empty() && !f.precision_plugin) {
      f.precision = from_config;
    } else {
      const std::string given = f.precision_plugin ? f.precision_plugin->name() : precision::canonical_precision(f.precision);
      // The block names a half type, which its mixed or true mode both use (Lightning writes the
      // fp16 block for "16-*" and the bf16 block for "bf16-*").
      const std::string half = from_config.substr(0, from_config.find('-'));
      FABRIC_CHECK(given == from_config || given == half + "-true", ValueError, "precision='", given,
                   "' disagrees with the DeepSpeed config, whose ",
                   from_config == "16-mixed" ? "fp16" : "bf16", " block selects '", from_config,
                   "'; drop one of them or make them agree");
    }
  }
  if (f.precision_plugin) {
    r.plugin = f.precision_plugin;
    r.precision = r.plugin->name();
    // As the reference's FSDPStrategy.precision setter (a TypeError there).
    FABRIC_CHECK(s != "fsdp" || dynamic_cast<precision::FSDPPrecision*>(r.plugin.get()), DTypeError,
                 "strategy='fsdp' can only work with an FSDPPrecision plugin, found the precision plugin '",
                 r.precision, "' in `plugins`. Pass precision::FSDPPrecision(", fsdp_mode_list(),
                 ") or a subclass of it, or a precision string");
  } else {
    std::string warning;
    r.precision = precision::canonical_precision(f.precision, &warning);
    if (!warning.empty()) r.warnings.push_back(warning);
    // Mixed modes autocast on the accelerator's device type.
    const DeviceType dev = acc == "cuda" ? DeviceType::cuda : DeviceType::cpu;
    static const std::vector<std::string> ds_modes = {"32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true"};
    const bool fsdp_mode = std::find(precision::FSDPPrecision::modes().begin(), precision::FSDPPrecision::modes().end(),
                                     r.precision) != precision::FSDPPrecision::modes().end();
    if (s == "fsdp") {
      // As the reference: FSDP -> FSDPPrecision; its other precisions (64-true, transformer-engine,
      // the bitsandbytes modes) are refused before any plugin is built. A registered custom name
      // must build an FSDPPrecision.
      FABRIC_CHECK(fsdp_mode || !is_builtin_precision(r.precision), ValueError, "precision='", r.precision,
                   "' is not supported with strategy='fsdp': FSDPPrecision takes ", fsdp_mode_list());
      r.plugin = fsdp_mode ? std::make_shared<precision::FSDPPrecision>(r.precision, dev)
                           : precision::make_precision(r.precision, dev);
      FABRIC_CHECK(dynamic_cast<precision::FSDPPrecision*>(r.plugin.get()), DTypeError,
                   "strategy='fsdp' can only work with an FSDPPrecision plugin, but the registered precision '",
                   r.precision, "' builds another plugin");
    } else if (s == "deepspeed" && std::find(ds_modes.begin(), ds_modes.end(), r.precision) == ds_modes.end()) {
      // As the reference: DeepSpeed -> DeepSpeedPrecision, which takes its 5 modes only (a ValueError
      // there): 64-true and the transformer-engine modes are refused. The bitsandbytes modes stay,
      // this runtime's extension (frozen quantized weights beside sharded trainable ones: QLoRA
      // under ZeRO), and so does a registered custom name, which builds its own plugin.
      const auto& bnb = precision::bitsandbytes_modes();
      FABRIC_CHECK(std::find(bnb.begin(), bnb.end(), r.precision) != bnb.end() || !is_builtin_precision(r.precision),
                   ValueError, "precision='", r.precision, "' is not supported with strategy='", strategy,
                   "': DeepSpeedPrecision takes ", join(ds_modes));
      r.plugin = precision::make_precision(r.precision, dev);
    } else if (s == "deepspeed") {
      // As the reference: DeepSpeed -> DeepSpeedPrecision (loss scaling and clipping from the config).
      std::optional<precision::DeepSpeedFp16Config> fp16;
      if (f.deepspeed) fp16 = f.deepspeed->fp16_for(r.precision);
      r.plugin = std::make_shared<precision::DeepSpeedPrecision>(r.precision, dev, fp16,
                                                                 f.deepspeed ? f.deepspeed->gradient_clipping : 0.0);
    } else {
      r.plugin = precision::make_precision(r.precision, dev);
    }
  }
  // ZeRO-3 shards every parameter as floating point; quantized weights (packed uint8, int8) cannot
  // be sharded that way, as FSDP refuses the bitsandbytes precisions.
  FABRIC_CHECK(!(s == "deepspeed" && r.zero_stage == 3 &&
                 dynamic_cast<precision::BitsandbytesPrecision*>(r.plugin.get())),
               ValueError, "precision='", r.precision, "' is not supported with strategy='", f.strategy,
               "' (ZeRO stage 3 shards the parameters, and quantized weights cannot be sharded); use "
               "deepspeed_stage_1, deepspeed_stage_2 or ddp, or a precision without quantized weights");
  return r;
}

}  // namespace fabric
