// DeepSpeedPrecision: ZeRO's loss-scaled step (spec §5), and the DeepSpeed config block's parser.
#include "precision/deepspeed_precision.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "autograd/grad_mode.h"
#include "precision/deepspeed_config_keys.h"
#include "precision/pyyaml_compat.h"
#include "precision/true_precision.h"
#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::precision {
namespace {

using Json = nlohmann::json;

// Every key, at every level, classified by DeepSpeed's documentation: a typo is refused where it
// stands; documented keys this runtime does not use are collected in `ignored`.
void check_keys(const Json& obj, const std::string& prefix, std::vector<std::string>& ignored) {
  FABRIC_CHECK(obj.is_object(), ValueError, "DeepSpeed config: '", prefix,
               "' must be a mapping, got ", obj.dump());
  for (const auto& [key, value] : obj.items()) {
    const std::string path = prefix.empty() ? key : prefix + "." + key;
    switch (deepspeed_key_use(path)) {
      case DeepSpeedKeyUse::unknown:
        throw ValueError(
            "DeepSpeed config: unknown key '" + path + "'" + deepspeed_did_you_mean(key, prefix) +
            " (not a key of DeepSpeed's config, https://www.deepspeed.ai/docs/config-json/)");
      case DeepSpeedKeyUse::ignored:
        ignored.push_back(path);
        break;
      case DeepSpeedKeyUse::block:
        check_keys(value, path, ignored);
        break;
      case DeepSpeedKeyUse::honoured:
        break;
    }
  }
}

int64_t get_int(const Json& v, const std::string& key) {
  FABRIC_CHECK(v.is_number_integer() || (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()),
               ValueError, "DeepSpeed config: '", key, "' must be an integer, got ", v.dump());
  return v.is_number_integer() ? v.get<int64_t>() : static_cast<int64_t>(v.get<double>());
}

double get_double(const Json& v, const std::string& key) {
  FABRIC_CHECK(v.is_number(), ValueError, "DeepSpeed config: '", key, "' must be a number, got ", v.dump());
  return v.get<double>();
}

bool get_bool(const Json& v, const std::string& key) {
  FABRIC_CHECK(v.is_boolean(), ValueError, "DeepSpeed config: '", key, "' must be true or false, got ", v.dump());
  return v.get<bool>();
}

// `obj` without its honoured keys whose value is "auto" (at every level), which are listed in
// `autos`: they read as not given.
Json without_auto(const Json& obj, const std::string& prefix, std::vector<std::string>& autos) {
  Json out = Json::object();
  for (const auto& [key, value] : obj.items()) {
    const std::string path = prefix.empty() ? key : prefix + "." + key;
    const DeepSpeedKeyUse use = deepspeed_key_use(path);
    if (use == DeepSpeedKeyUse::honoured && value.is_string() && value.get<std::string>() == "auto") {
      autos.push_back(path);
    } else {
      out[key] = use == DeepSpeedKeyUse::block ? without_auto(value, path, autos) : value;
    }
  }
  return out;
}

DeepSpeedConfig from_json(const Json& given) {
  DeepSpeedConfig c;
  check_keys(given, "", c.ignored);
  const Json j = without_auto(given, "", c.auto_keys);
  c.fp16_enabled_auto = std::find(c.auto_keys.begin(), c.auto_keys.end(), "fp16.enabled") != c.auto_keys.end();
  if (j.contains("zero_optimization")) {
    const Json& z = j["zero_optimization"];
    if (z.contains("stage")) {
      const int64_t s = get_int(z["stage"], "zero_optimization.stage");
      FABRIC_CHECK(s >= 0 && s <= 3, ValueError, "DeepSpeed config: zero_optimization.stage must be 0..3, got ", s);
      c.stage = static_cast<int>(s);
    }
    // An offload block without "device" offloads nothing (DeepSpeed's default device is none).
    auto device = [&](const char* block, std::optional<std::string>& out) {
      if (!z.contains(block) || !z[block].contains("device")) return;
      const std::string key = std::string("zero_optimization.") + block + ".device";
      const Json& v = z[block]["device"];
      FABRIC_CHECK(v.is_string() || v.is_null(), ValueError, "DeepSpeed config: '", key,
                   "' must be \"cpu\" or \"none\", got ", v.dump());
      const std::string d = v.is_null() ? "none" : v.get<std::string>();
      FABRIC_CHECK(d == "cpu" || d == "none", ValueError, "DeepSpeed config: '", key,
                   "' must be \"cpu\" or \"none\", got \"", d, "\"",
                   d == "nvme" ? " (NVMe offload is not available in this build)" : "");
      out = d;
    };
    device("offload_optimizer", c.offload_optimizer_device);
    device("offload_param", c.offload_param_device);
    if (z.contains("cpu_offload") && get_bool(z["cpu_offload"], "zero_optimization.cpu_offload")) {
      FABRIC_CHECK(c.offload_optimizer_device.value_or("cpu") == "cpu", ValueError,
                   "DeepSpeed config: zero_optimization.cpu_offload (deprecated) is true but "
                   "zero_optimization.offload_optimizer.device is \"none\"; keep one of them");
      c.offload_optimizer_device = "cpu";
    }
  }
  if (j.contains("fp16")) {
    const Json& f = j["fp16"];
    DeepSpeedFp16Config b;
    // DeepSpeed: a present block without "enabled" is disabled.
    if (f.contains("enabled")) b.enabled = get_bool(f["enabled"], "fp16.enabled");
    if (f.contains("loss_scale")) b.loss_scale = get_double(f["loss_scale"], "fp16.loss_scale");
    if (f.contains("initial_scale_power")) b.initial_scale_power = get_int(f["initial_scale_power"], "fp16.initial_scale_power");
    if (f.contains("loss_scale_window")) b.loss_scale_window = get_int(f["loss_scale_window"], "fp16.loss_scale_window");
    if (f.contains("hysteresis")) b.hysteresis = get_int(f["hysteresis"], "fp16.hysteresis");
    if (f.contains("consecutive_hysteresis"))
      b.consecutive_hysteresis = get_bool(f["consecutive_hysteresis"], "fp16.consecutive_hysteresis");
    if (f.contains("min_loss_scale")) b.min_loss_scale = get_double(f["min_loss_scale"], "fp16.min_loss_scale");
    // Each value on its own, named by its key (the scaler's constructor would name its own
    // arguments): min_loss_scale 0 is DeepSpeed's "no floor"; a window or hysteresis below 1 would
    // never back off or divide by zero there.
    FABRIC_CHECK(!b.loss_scale || (std::isfinite(*b.loss_scale) && *b.loss_scale >= 0), ValueError,
                 "DeepSpeed config: fp16.loss_scale must be finite and >= 0 (0: dynamic), got ",
                 b.loss_scale.value_or(0));
    FABRIC_CHECK(!b.loss_scale_window || *b.loss_scale_window >= 1, ValueError,
                 "DeepSpeed config: fp16.loss_scale_window must be >= 1, got ",
                 b.loss_scale_window.value_or(0));
    FABRIC_CHECK(!b.hysteresis || *b.hysteresis >= 1, ValueError,
                 "DeepSpeed config: fp16.hysteresis must be >= 1, got ", b.hysteresis.value_or(0));
    FABRIC_CHECK(
        !b.min_loss_scale || (std::isfinite(*b.min_loss_scale) && *b.min_loss_scale >= 0),
        ValueError,
        "DeepSpeed config: fp16.min_loss_scale must be finite and >= 0 (0: no floor), got ",
        b.min_loss_scale.value_or(0));
    c.fp16 = b;
  }
  if (j.contains("bf16")) {
    const Json& b = j["bf16"];
    c.bf16_enabled = b.contains("enabled") ? get_bool(b["enabled"], "bf16.enabled") : false;
  }
  if (j.contains("gradient_clipping")) {
    c.gradient_clipping = get_double(j["gradient_clipping"], "gradient_clipping");
    FABRIC_CHECK(c.gradient_clipping >= 0 && std::isfinite(c.gradient_clipping), ValueError,
                 "DeepSpeed config: gradient_clipping must be finite and >= 0, got ", c.gradient_clipping);
  }
  auto positive = [&](const char* key, std::optional<int64_t>& out) {
    if (!j.contains(key)) return;
    out = get_int(j[key], key);
    FABRIC_CHECK(*out >= 1, ValueError, "DeepSpeed config: ", key, " must be >= 1, got ", *out);
  };
  positive("train_batch_size", c.train_batch_size);
  positive("train_micro_batch_size_per_gpu", c.train_micro_batch_size_per_gpu);
  positive("gradient_accumulation_steps", c.gradient_accumulation_steps);
  FABRIC_CHECK(!(c.fp16 && c.fp16->enabled && c.bf16_enabled.value_or(false)), ValueError,
               "DeepSpeed config: fp16 and bf16 are both enabled; enable at most one");
  // Build the scaler once here so that bad loss-scale values fail at parse time.
  // (An "auto" block is checked as the 16-mixed run that enables it would build it.)
  if (const auto fp16 = c.fp16_for("16-mixed")) (void)make_zero_loss_scaler(*fp16);
  return c;
}

// YAML scalars carry no type: booleans, then integers, then floats, else strings (as YAML 1.2's
// core schema reads them).
Json yaml_to_json(const YAML::Node& n) {
  if (n.IsMap()) {
    Json o = Json::object();
    for (const auto& kv : n) o[kv.first.as<std::string>()] = yaml_to_json(kv.second);
    return o;
  }
  if (n.IsSequence()) {
    Json a = Json::array();
    for (const auto& e : n) a.push_back(yaml_to_json(e));
    return a;
  }
  if (n.IsNull() || !n.IsDefined()) return nullptr;
  const std::string s = n.Scalar();
  if (const std::optional<bool> b = yaml11_bool(s)) return *b;
  try {
    size_t pos = 0;
    const long long i = std::stoll(s, &pos);
    if (pos == s.size()) return static_cast<int64_t>(i);
  } catch (const std::exception&) {
  }
  try {
    size_t pos = 0;
    const double d = std::stod(s, &pos);
    if (pos == s.size()) return d;
  } catch (const std::exception&) {
  }
  return s;
}

}  // namespace

DeepSpeedConfig DeepSpeedConfig::from_json_text(const std::string& json) {
  Json j;
  try {
    j = Json::parse(json);
  } catch (const Json::parse_error& e) {
    throw ValueError(std::string("DeepSpeed config: not valid JSON: ") + e.what());
  }
  return from_json(j);
}

DeepSpeedConfig DeepSpeedConfig::from_json_or_path(const std::string& text_or_path) {
  const size_t first = text_or_path.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text_or_path[first] == '{') return from_json_text(text_or_path);
  std::ifstream in(text_or_path);
  FABRIC_CHECK(in.good(), IOError, "DeepSpeed config: '", text_or_path,
               "' is neither a JSON text (starting with '{') nor a readable file");
  std::stringstream ss;
  ss << in.rdbuf();
  const auto ends_with = [&](const std::string& ext) {
    return text_or_path.size() >= ext.size() &&
           text_or_path.compare(text_or_path.size() - ext.size(), ext.size(), ext) == 0;
  };
  if (ends_with(".yaml") || ends_with(".yml")) return from_yaml_text(ss.str());
  return from_json_text(ss.str());
}

DeepSpeedConfig DeepSpeedConfig::from_yaml(const YAML::Node& node) { return from_json(yaml_to_json(node)); }

DeepSpeedConfig DeepSpeedConfig::from_yaml_text(const std::string& yaml) {
  YAML::Node n;
  try {
    n = resolve_merge_keys(YAML::Load(yaml));
  } catch (const YAML::Exception& e) {
    throw ValueError(std::string("DeepSpeed config: not valid YAML: ") + e.what());
  }
  return from_yaml(n);
}

std::string DeepSpeedConfig::to_json_text() const {
  Json j = Json::object();
  if (stage) j["zero_optimization"]["stage"] = *stage;
  if (fp16) {
    Json f = Json::object();
    if (fp16_enabled_auto)
      f["enabled"] = "auto";
    else
      f["enabled"] = fp16->enabled;
    if (fp16->loss_scale) f["loss_scale"] = *fp16->loss_scale;
    if (fp16->initial_scale_power) f["initial_scale_power"] = *fp16->initial_scale_power;
    if (fp16->loss_scale_window) f["loss_scale_window"] = *fp16->loss_scale_window;
    if (fp16->hysteresis) f["hysteresis"] = *fp16->hysteresis;
    if (fp16->consecutive_hysteresis) f["consecutive_hysteresis"] = *fp16->consecutive_hysteresis;
    if (fp16->min_loss_scale) f["min_loss_scale"] = *fp16->min_loss_scale;
    j["fp16"] = f;
  }
  if (bf16_enabled) j["bf16"]["enabled"] = *bf16_enabled;
  if (gradient_clipping > 0) j["gradient_clipping"] = gradient_clipping;
  if (offload_optimizer_device)
    j["zero_optimization"]["offload_optimizer"]["device"] = *offload_optimizer_device;
  if (offload_param_device)
    j["zero_optimization"]["offload_param"]["device"] = *offload_param_device;
  if (train_batch_size) j["train_batch_size"] = *train_batch_size;
  if (train_micro_batch_size_per_gpu) j["train_micro_batch_size_per_gpu"] = *train_micro_batch_size_per_gpu;
  if (gradient_accumulation_steps) j["gradient_accumulation_steps"] = *gradient_accumulation_steps;
  return j.dump();
}

std::optional<std::string> DeepSpeedConfig::precision() const {
  if (fp16 && fp16->enabled) return std::string("16-mixed");
  if (bf16_enabled.value_or(false)) return std::string("bf16-mixed");
  return std::nullopt;
}

std::optional<DeepSpeedFp16Config> DeepSpeedConfig::fp16_for(const std::string& run_precision) const {
  if (!fp16 || !(fp16->enabled || (fp16_enabled_auto && run_precision == "16-mixed"))) return std::nullopt;
  DeepSpeedFp16Config b = *fp16;
  b.enabled = true;
  return b;
}

std::optional<bool> DeepSpeedConfig::offload(int at_stage) const {
  const bool param_counts = at_stage == 3 && offload_param_device;
  if (!offload_optimizer_device && !param_counts) return std::nullopt;
  return offload_optimizer_device.value_or("none") == "cpu" ||
         (param_counts && *offload_param_device == "cpu");
}

DeepSpeedConfig::Batch DeepSpeedConfig::batch_sizes(int64_t world_size) const {
  FABRIC_CHECK(world_size >= 1, ValueError, "DeepSpeed config: the world size must be >= 1, got ",
               world_size);
  FABRIC_CHECK(train_batch_size || train_micro_batch_size_per_gpu, ValueError,
               "DeepSpeed config: give train_batch_size or train_micro_batch_size_per_gpu");
  Batch b{train_batch_size.value_or(0), train_micro_batch_size_per_gpu.value_or(0),
          gradient_accumulation_steps.value_or(0)};
  // DeepSpeed's derivations use floor division; the check below refuses what does not divide.
  if (!train_batch_size) {
    if (!b.accumulation_steps) b.accumulation_steps = 1;
    b.train_batch_size = b.micro_batch_size * b.accumulation_steps * world_size;
  } else if (!train_micro_batch_size_per_gpu) {
    if (!b.accumulation_steps) b.accumulation_steps = 1;
    b.micro_batch_size = b.train_batch_size / world_size / b.accumulation_steps;
  } else if (!gradient_accumulation_steps) {
    b.accumulation_steps = b.train_batch_size / b.micro_batch_size / world_size;
  }
  FABRIC_CHECK(b.micro_batch_size >= 1 && b.accumulation_steps >= 1 &&
                   b.train_batch_size == b.micro_batch_size * b.accumulation_steps * world_size,
               ValueError, "DeepSpeed config: train_batch_size (", b.train_batch_size,
               ") must equal train_micro_batch_size_per_gpu x gradient_accumulation_steps x world "
               "size, got ",
               train_micro_batch_size_per_gpu ? "" : "(derived) ", b.micro_batch_size, " x ",
               gradient_accumulation_steps ? "" : "(derived) ", b.accumulation_steps, " x ",
               world_size, " = ", b.micro_batch_size * b.accumulation_steps * world_size);
  return b;
}

std::string DeepSpeedConfig::ignored_warning() const {
  if (ignored.empty()) return "";
  std::string keys;
  for (const auto& k : ignored) keys += (keys.empty() ? "" : ", ") + k;
  return "DeepSpeed config: ignored: " + keys +
         " (documented DeepSpeed keys that this runtime does not use)";
}

DeepSpeedFp16Config lightning_fp16_block(double loss_scale, int64_t initial_scale_power, int64_t loss_scale_window,
                                         int64_t hysteresis, double min_loss_scale) {
  DeepSpeedFp16Config b;
  b.enabled = true;
  b.loss_scale = loss_scale;
  b.initial_scale_power = initial_scale_power;
  b.loss_scale_window = loss_scale_window;
  b.hysteresis = hysteresis;
  b.min_loss_scale = min_loss_scale;
  return b;
}

// ---- DeepSpeedPrecision ------------------------------------------------------------------------

namespace {
// fp16, mixed or true, runs on DeepSpeed's loss scaler (Lightning adds the fp16 block for "16-*"):
// without it a float16 gradient underflows or overflows with nothing to skip the step.
bool uses_fp16_scaler(const std::string& precision) { return precision == "16-mixed" || precision == "16-true"; }

DynamicLossScaler scaler_for(const std::string& precision, const std::optional<DeepSpeedFp16Config>& fp16) {
  if (!uses_fp16_scaler(precision)) return DynamicLossScaler::static_scale(1.0);
  DeepSpeedFp16Config b = fp16.value_or(lightning_fp16_block());
  b.enabled = true;  // the precision asks for it even if the block said otherwise (checked by Fabric)
  return make_zero_loss_scaler(b);
}
}  // namespace

DeepSpeedPrecision::DeepSpeedPrecision(const std::string& precision, DeviceType device,
                                       std::optional<DeepSpeedFp16Config> fp16, double gradient_clipping)
    : precision_(precision), device_(device), clip_(gradient_clipping), scaler_(scaler_for(precision, fp16)) {
  FABRIC_CHECK(precision == "32-true" || precision == "16-mixed" || precision == "bf16-mixed" ||
                   precision == "16-true" || precision == "bf16-true",
               ValueError, "DeepSpeedPrecision: precision must be one of '32-true', '16-mixed', 'bf16-mixed', "
               "'16-true', 'bf16-true', got '", precision, "'");
  FABRIC_CHECK(gradient_clipping >= 0 && std::isfinite(gradient_clipping), ValueError,
               "DeepSpeedPrecision: gradient_clipping must be finite and >= 0, got ", gradient_clipping);
  fp16_ = uses_fp16_scaler(precision);
  mixed_ = precision.find("-mixed") != std::string::npos;
  dtype_ = precision.rfind("16", 0) == 0 ? DType::float16
           : precision.rfind("bf16", 0) == 0 ? DType::bfloat16
                                              : DType::float32;
  if (precision == "16-true" || precision == "bf16-true") true_ = std::make_shared<HalfPrecision>(precision);
}

void DeepSpeedPrecision::convert_module(nn::Module& module) {
  if (true_) true_->convert_module(module);
}

Tensor DeepSpeedPrecision::convert_input(const Tensor& input) const { return cast_floating(input, dtype_); }

Tensor DeepSpeedPrecision::convert_output(const Tensor& output) const {
  return cast_floating(output, default_float_dtype());
}

ContextGuard DeepSpeedPrecision::forward_context() {
  if (true_) return true_->forward_context();
  if (mixed_) return autocast_context(device_, dtype_);
  return {};
}

ContextGuard DeepSpeedPrecision::tensor_init_context() {
  return true_ ? true_->tensor_init_context() : ContextGuard{};
}

void DeepSpeedPrecision::backward(const Tensor& loss, nn::Module* module, const Tensor& gradient,
                                  std::optional<bool> retain_graph, bool create_graph) {
  Precision::backward(fp16_ ? scaler_.scale_loss(loss) : loss, module, gradient, retain_graph,
                      create_graph);
}

void DeepSpeedPrecision::unscale_gradients(optim::Optimizer& optimizer) {
  if (!fp16_ || unscaled_ == &optimizer) return;
  NoGradGuard no_grad;
  std::vector<Tensor> grads;
  for (const Tensor& p : optimizer.parameters()) grads.push_back(p.grad());
  scaler_.unscale_and_clip_(grads, 0.0, 0.0);
  unscaled_ = &optimizer;
}

bool DeepSpeedPrecision::optimizer_step(optim::Optimizer& optimizer, nn::Module* module,
                                        const std::function<Tensor()>& closure) {
  (void)module;
  // As the GradScaler path: the closure (forward + Fabric::backward) runs first, then the step.
  if (closure) closure();
  NoGradGuard no_grad;
  const bool was_unscaled = unscaled_ == &optimizer;
  unscaled_ = nullptr;
  std::vector<Tensor> grads;
  for (const Tensor& p : optimizer.parameters())
    if (p.grad().defined()) grads.push_back(p.grad());
  if (fp16_) {
    // Every rank must agree: with sharded gradients an overflow may show only in one shard.
    Tensor flag = scalar_tensor(has_overflow(grads) ? 1.0 : 0.0, {.dtype = DType::float32});
    if (overflow_reducer_) overflow_reducer_(flag);
    if (flag.item<double>() > 0) {
      optimizer.zero_grad();
      scaler_.update_scale(true);
      return false;
    }
  }
  if (clip_ > 0 || (fp16_ && !was_unscaled)) {
    double total_norm = 0;
    if (clip_ > 0) {
      if (grad_norm_fn_) {
        total_norm = grad_norm_fn_(optimizer);
      } else {
        double sq = 0;
        for (const Tensor& g : grads) {
          const double n = norm(g.detach().to(DType::float64)).item<double>();
          sq += n * n;
        }
        total_norm = std::sqrt(sq);
      }
    }
    if (fp16_ && !was_unscaled) {
      scaler_.unscale_and_clip_(grads, total_norm, clip_);
    } else {
      // Already at their true scale: only the clip factor (the spec's formula with a scale of 1).
      DynamicLossScaler::static_scale(1.0).unscale_and_clip_(grads, total_norm, clip_);
    }
  }
  optimizer.step();
  scaler_.update_scale(false);
  return true;
}

PrecisionState DeepSpeedPrecision::state_dict() const { return fp16_ ? scaler_.state_dict() : PrecisionState{}; }

void DeepSpeedPrecision::load_state_dict(const PrecisionState& state) {
  if (fp16_) scaler_.load_state_dict(state);
}

}  // namespace fabric::precision
