// LoRALinear's forward and init, and apply_lora's replace-and-freeze walk.
#include "nn/lora.h"

#include <algorithm>
#include <cmath>
#include <regex>
#include <sstream>

#include "autograd/grad_mode.h"
#include "nn/init.h"
#include "tensor/autocast.h"
#include "tensor/ops.h"

namespace fabric::nn {

LoRALinear::LoRALinear(std::shared_ptr<Module> base, const LoRALinearOptions& options)
    : options_(options) {
  FABRIC_CHECK(base != nullptr, ValueError, "LoRALinear: the base layer is null");
  FABRIC_CHECK(options.in_features > 0 && options.out_features > 0, ValueError,
               "LoRALinear: in_features and out_features must be positive, got ",
               options.in_features, " and ", options.out_features);
  FABRIC_CHECK(options.rank >= 1, ValueError, "LoRALinear: rank must be >= 1, got ", options.rank);
  FABRIC_CHECK(options.dropout >= 0.0 && options.dropout < 1.0, ValueError,
               "LoRALinear: dropout must be in [0, 1), got ", options.dropout);
  register_module("base_layer", base);
  // nn::Linear's init is PEFT's lora_A init: kaiming_uniform_(a = sqrt(5)).
  lora_A = register_module<Linear>(
      "lora_A", {.in_features = options.in_features, .out_features = options.rank, .bias = false});
  lora_B = register_module<Linear>(
      "lora_B", {.in_features = options.rank, .out_features = options.out_features, .bias = false});
  NoGradGuard no_grad;
  init::constant_(lora_B->weight, 0.0);
  if (options.dropout > 0.0) register_module<Dropout>("lora_dropout", {.p = options.dropout});
}

namespace {

// bitsandbytes' layers, whose PEFT adapters (peft.tuners.lora.bnb) order the casts differently.
// By name: nn/ sits below precision/, where they are defined.
bool bitsandbytes_base(const Module& base) {
  const std::string name = base.type_name();
  return name == "Linear4bit" || name == "Linear8bitLt";
}

}  // namespace

Tensor LoRALinear::forward(const Tensor& x) {
  Module& base = child("base_layer");
  const Tensor y = base(x);
  const DType adapter = lora_A->weight.dtype();
  auto dropout = [&](const Tensor& t) {
    return options_.dropout > 0.0 ? child("lora_dropout")(t) : t;
  };
  auto update = [&](const Tensor& a) {
    return mul(child("lora_B")(child("lora_A")(a)), scaling());
  };
  if (bitsandbytes_base(base)) {
    // PEFT's bnb Linear4bit/Linear8bitLt: outside autocast, x goes to the adapters' dtype before
    // the dropout and the update to the base output's dtype before the add; under autocast x
    // keeps its dtype (the cast after the dropout is exact, autocast casts again).
    const bool autocast = autocast_enabled(x.device().type);
    Tensor h = !autocast && x.dtype() != adapter ? x.to(adapter) : x;
    h = dropout(h);
    if (h.dtype() != adapter) h = h.to(adapter);
    Tensor u = update(h);
    if (u.dtype() != y.dtype()) u = u.to(y.dtype());
    return add(y, u);
  }
  // PEFT's lora.Linear (a plain or FP8 base): x in the adapters' dtype, the dropout there, the
  // update added to the base output in the promoted dtype (a 16-bit base with float32 adapters:
  // float32) and one cast of the sum back to the base output's dtype.
  const Tensor sum = add(y, update(dropout(x.dtype() == adapter ? x : x.to(adapter))));
  return sum.dtype() == y.dtype() ? sum : sum.to(y.dtype());
}

bool lora_targets(const std::string& path, const std::vector<std::string>& targets) {
  return std::any_of(targets.begin(), targets.end(), [&](const std::string& t) {
    return path == t ||
           (path.size() > t.size() && path.compare(path.size() - t.size(), t.size(), t) == 0 &&
            path[path.size() - t.size() - 1] == '.');
  });
}

std::string LoRALinear::extra_repr() const {
  std::ostringstream os;
  os << "in_features=" << options_.in_features << ", out_features=" << options_.out_features
     << ", rank=" << options_.rank << ", alpha=" << options_.alpha
     << ", dropout=" << options_.dropout;
  return os.str();
}

std::pair<int64_t, int64_t> linear_features(const Module& layer) {
  if (const auto* lin = dynamic_cast<const Linear*>(&layer)) {
    return {lin->options().in_features, lin->options().out_features};
  }
  static const std::regex in_re("in_features=(\\d+)"), out_re("out_features=(\\d+)");
  const std::string repr = layer.extra_repr();
  std::smatch mi, mo;
  FABRIC_CHECK(std::regex_search(repr, mi, in_re) && std::regex_search(repr, mo, out_re),
               ValueError, "LoRA: can't tell the in/out features of a ", layer.type_name(),
               " layer (it is not an nn::Linear and its extra_repr \"", repr,
               "\" has no in_features=/out_features=)");
  return {std::stoll(mi[1].str()), std::stoll(mo[1].str())};
}

std::vector<std::string> apply_lora(Module& model, const LoRAOptions& options) {
  FABRIC_CHECK(!options.target.empty(), ValueError,
               "apply_lora: target is empty; name the layers to adapt, e.g. c_attn, c_proj, c_fc");
  FABRIC_CHECK(options.rank >= 1, ValueError, "apply_lora: rank must be >= 1, got ", options.rank);
  FABRIC_CHECK(options.dropout >= 0.0 && options.dropout < 1.0, ValueError,
               "apply_lora: dropout must be in [0, 1), got ", options.dropout);

  // Collect first: replacing while walking would change the list under the walk.
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> hits;
  int64_t adapted = 0;  // targets already wrapped by an earlier call
  for (const auto& [path, m] : model.named_modules()) {
    const size_t dot = path.rfind('.');
    if (!lora_targets(path, options.target)) continue;
    if (dynamic_cast<LoRALinear*>(m.get()) != nullptr) {
      ++adapted;
      continue;
    }
    const std::string parent = dot == std::string::npos ? "" : path.substr(0, dot);
    // Inside an adapter (its base_layer/lora_A/lora_B) nothing is a target.
    if (!parent.empty() && dynamic_cast<LoRALinear*>(model.get_submodule(parent).get())) continue;
    hits.emplace_back(path, m);
  }
  std::ostringstream want;  // each target quoted, so an empty one shows as ''
  for (size_t i = 0; i < options.target.size(); ++i)
    want << (i ? ", " : "") << "'" << options.target[i] << "'";
  FABRIC_CHECK(!hits.empty(), ValueError, "apply_lora: ",
               adapted > 0 ? detail::cat("every layer named by [", want.str(), "] (", adapted,
                                         ") is already adapted (a LoRALinear)")
                           : detail::cat("no layer of this ", model.type_name(),
                                         " is named any of [", want.str(), "]"));

  // Every target is understood before anything changes: a call that throws leaves the model as
  // it was.
  std::vector<std::pair<int64_t, int64_t>> features;
  for (const auto& [path, m] : hits) features.push_back(linear_features(*m));
  // Everything but adapters is frozen (PEFT: parameters without "lora_" in their name), so the
  // adapters of an earlier call stay trainable.
  for (auto& [name, p] : model.named_parameters())
    if (name.find("lora_") == std::string::npos) p.set_requires_grad(false);

  std::vector<std::string> wrapped;
  for (size_t i = 0; i < hits.size(); ++i) {
    const auto& [path, m] = hits[i];
    const auto [in, out] = features[i];
    auto lora = std::make_shared<LoRALinear>(
        m, LoRALinearOptions{.in_features = in, .out_features = out, .rank = options.rank,
                             .alpha = options.alpha, .dropout = options.dropout});
    const size_t dot = path.rfind('.');
    if (dot == std::string::npos) {
      model.register_module(path, lora);
    } else {
      model.get_submodule(path.substr(0, dot))->register_module(path.substr(dot + 1), lora);
    }
    wrapped.push_back(path);
  }
  return wrapped;
}

}  // namespace fabric::nn
