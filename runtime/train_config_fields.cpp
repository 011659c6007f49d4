// The fabric-train config's key table: every key of every section with its type, bounds, choices
// and help, bound to its TrainConfig member (see train_config_fields.h), and the lookups that
// suggest a key for a misspelt one.
#include "runtime/train_config_fields.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>
#include <sstream>

#include "precision/deepspeed_config_keys.h"
#include "precision/registry.h"
#include "runtime/connector.h"

namespace fabric::train_config_detail {

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::integer: return "integer";
    case Kind::number: return "number";
    case Kind::boolean: return "bool";
    case Kind::string: return "string";
    case Kind::int_list: return "list of integers";
    case Kind::number_list: return "list of numbers";
    case Kind::string_list: return "list of strings";
    case Kind::devices: return "integer, list of integers or string";
  }
  return "?";
}

std::string format_number(double x) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, x);
  std::string s(buf, ec == std::errc() ? end : buf);
  if (s.find_first_of("ni") != std::string::npos) return s;  // inf / nan: the checks refuse them
  const size_t e = s.find('e');
  std::string mantissa = s.substr(0, e), exponent = e == std::string::npos ? "" : s.substr(e + 1);
  if (mantissa.find('.') == std::string::npos) mantissa += ".0";
  if (!exponent.empty() && exponent[0] != '-' && exponent[0] != '+') exponent.insert(0, "+");
  return exponent.empty() ? mantissa : mantissa + "e" + exponent;
}

YAML::Node number_node(double x) { return YAML::Node(format_number(x)); }

namespace {

#define FIELD_INT(sec, mem, lo, help) \
  Field{#sec, #mem, Kind::integer, help, [](TrainConfig& c, const Value& v) { c.sec.mem = v.i; }, \
        [](const TrainConfig& c) { return YAML::Node(c.sec.mem); }, lo}
#define FIELD_NUM(sec, mem, lo, help) \
  Field{#sec, #mem, Kind::number, help, [](TrainConfig& c, const Value& v) { c.sec.mem = v.d; }, \
        [](const TrainConfig& c) { return number_node(c.sec.mem); }, lo}
#define FIELD_BOOL(sec, mem, help) \
  Field{#sec, #mem, Kind::boolean, help, [](TrainConfig& c, const Value& v) { c.sec.mem = v.b; }, \
        [](const TrainConfig& c) { return YAML::Node(c.sec.mem); }}
#define FIELD_STR(sec, mem, help) \
  Field{#sec, #mem, Kind::string, help, [](TrainConfig& c, const Value& v) { c.sec.mem = v.s; }, \
        [](const TrainConfig& c) { return YAML::Node(c.sec.mem); }}

Field with_choices(Field f, std::vector<std::string> c) {
  f.choices = std::move(c);
  return f;
}
Field for_models(Field f, std::vector<std::string> m) {
  f.models = std::move(m);
  return f;
}
Field with_max(Field f, double max) {
  f.max = max;
  return f;
}

// A list of module type names in the fsdp section (flow style; an empty list dumps as [] so that
// the dumped config reads back as given).
Field fsdp_policy_field(const char* key, std::vector<std::string> TrainConfig::Fsdp::*member, const char* help) {
  return Field{"fsdp", key, Kind::string_list, help,
               [member](TrainConfig& c, const Value& x) { c.fsdp.*member = x.sl; },
               [member](const TrainConfig& c) {
                 YAML::Node n(YAML::NodeType::Sequence);
                 for (const auto& t : c.fsdp.*member) n.push_back(t);
                 n.SetStyle(YAML::EmitterStyle::Flow);
                 return n;
               }};
}

// Two numbers (rprop's etas and step_sizes), flow style; the checks ask for exactly two.
Field number_pair_field(const char* section, const char* key,
                        std::vector<double> TrainConfig::Optimizer::*member, const char* help) {
  return Field{section,
               key,
               Kind::number_list,
               help,
               [member](TrainConfig& c, const Value& x) { c.optimizer.*member = x.dl; },
               [member](const TrainConfig& c) {
                 YAML::Node n;
                 for (double b : c.optimizer.*member) n.push_back(number_node(b));
                 n.SetStyle(YAML::EmitterStyle::Flow);
                 return n;
               },
               0};
}

// A list spec ("0,1", "0," or "[0, 1]") dumps as a YAML list, anything else as it was given.
YAML::Node devices_node(const TrainConfig& c) {
  const std::string& spec = c.fabric.devices;
  if (spec.find_first_of(",[") == std::string::npos) return YAML::Node(spec);
  try {
    YAML::Node n(YAML::NodeType::Sequence);
    for (int id : parse_devices(spec, 1, c.fabric.accelerator)) n.push_back(id);
    n.SetStyle(YAML::EmitterStyle::Flow);
    return n;
  } catch (const ValueError&) {
    return YAML::Node(spec);  // not checked (a TrainConfig built in code): as given
  }
}

// Levenshtein distance with adjacent transpositions counting one edit (optimal string alignment).
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

// The candidate nearest in spelling; among equals, the one of the closest length (dpp: ddp, not dp).
std::string nearest(const std::string& key, const std::vector<std::string>& candidates, size_t* distance = nullptr) {
  std::string best;
  std::pair<size_t, size_t> best_rank{std::numeric_limits<size_t>::max(), 0};
  for (const auto& c : candidates) {
    const std::pair<size_t, size_t> rank{edit_distance(key, c), c.size() > key.size() ? c.size() - key.size() : key.size() - c.size()};
    if (rank < best_rank) best_rank = rank, best = c;
  }
  if (distance) *distance = best_rank.first;
  return best;
}

// The words of a snake_case key (of two letters or more).
std::vector<std::string> words(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string w; std::getline(ss, w, '_');)
    if (w.size() >= 2) out.push_back(w);
  return out;
}

// The candidate an unknown key most likely meant, or "" when none is reasonably close: the
// PyTorch name's counterpart (learning_rate -> lr), a typo's correction, else a key that contains
// it or shares a word with it (epochs -> max_epochs, grad_clip -> clip_grad_norm).
std::string near_key(const std::string& key, const std::vector<std::string>& candidates) {
  auto has = [&](const std::string& c) { return std::find(candidates.begin(), candidates.end(), c) != candidates.end(); };
  static const std::vector<std::pair<std::string, std::string>> synonyms = {
      {"learning_rate", "lr"}, {"type", "name"}, {"type", "kind"}, {"file", "path"}, {"filename", "path"}};
  for (const auto& [from, to] : synonyms)
    if (key == from && has(to)) return to;
  size_t best_d = 0;
  std::string best = nearest(key, candidates, &best_d);
  if (!best.empty() && best_d <= std::max<size_t>(2, key.size() / 3)) return best;
  // By shared content, ties to the nearer spelling.
  best.clear();
  std::pair<size_t, size_t> best_rank{0, 0};  // (score, max - distance)
  const auto key_words = words(key);
  for (const auto& c : candidates) {
    size_t score = key.size() >= 3 && (c.find(key) != std::string::npos || key.find(c) != std::string::npos) ? 100 : 0;
    const auto cw = words(c);
    for (const auto& w : key_words) score += std::count(cw.begin(), cw.end(), w);
    const std::pair<size_t, size_t> rank{score, std::numeric_limits<size_t>::max() - edit_distance(key, c)};
    if (score > 0 && rank > best_rank) best_rank = rank, best = c;
  }
  return best;
}


// The precision plugin's options: fabric.scaler.*, fabric.transformer_engine.* and
// fabric.bitsandbytes.* (keys with a dot: a block of the section, see plugin_blocks()). The
// bounds the plugins check themselves and that a field cannot say (growth_factor > 1, a backoff
// in (0, 1), int8's float16) stay theirs, reported at the key by the config check.
#define PLUGIN_FIELD(block, mem, kind, value, node, help)                                          \
  Field {                                                                                          \
    "fabric", #block "." #mem, kind, help, [](TrainConfig& c, const Value& x) { c.fabric.block.mem = x.value; }, \
        [](const TrainConfig& c) { return node(c.fabric.block.mem); }                            \
  }
YAML::Node plain_node(const auto& x) { return YAML::Node(x); }
// An empty dtype is "not given" (the plugin's default): null, which the dump leaves out.
YAML::Node dtype_node(const std::string& x) { return x.empty() ? YAML::Node() : YAML::Node(x); }
YAML::Node string_list_node(const std::vector<std::string>& xs) {
  YAML::Node n(YAML::NodeType::Sequence);
  for (const auto& x : xs) n.push_back(x);
  n.SetStyle(YAML::EmitterStyle::Flow);
  return n;
}
Field with_min(Field f, double min) {
  f.min = min;
  return f;
}

void add_plugin_fields(std::vector<Field>& v) {
  v.push_back(PLUGIN_FIELD(scaler, init_scale, Kind::number, d, number_node,
                           "16-mixed: the GradScaler's initial loss scale (> 0, a float32)"));
  v.push_back(PLUGIN_FIELD(scaler, growth_factor, Kind::number, d, number_node,
                           "16-mixed: the scale's factor after growth_interval clean steps (> 1)"));
  v.push_back(PLUGIN_FIELD(scaler, backoff_factor, Kind::number, d, number_node,
                           "16-mixed: the scale's factor after a step with inf/NaN gradients (in (0, 1))"));
  v.push_back(with_min(PLUGIN_FIELD(scaler, growth_interval, Kind::integer, i, plain_node,
                                    "16-mixed: clean steps before the scale grows"),
                       1));
  v.push_back(PLUGIN_FIELD(scaler, enabled, Kind::boolean, b, plain_node,
                           "16-mixed: false trains in float16 autocast without loss scaling"));
  v.push_back(with_choices(PLUGIN_FIELD(transformer_engine, fp8_format, Kind::string, s, plain_node,
                                        "transformer-engine*: HYBRID (E4M3 forward, E5M2 gradients) or E4M3 (both)"),
                           {"HYBRID", "E4M3"}));
  {
    Field margin = PLUGIN_FIELD(transformer_engine, margin, Kind::integer, i, plain_node,
                                "transformer-engine*: the recipe's margin: scale = fp8_max * 2^-margin / amax");
    margin.min = -126, margin.max = 126;
    v.push_back(margin);
  }
  // Each FP8 tensor keeps this many float32 amaxes: a million (4 MB a tensor) is far past use.
  v.push_back(with_max(with_min(PLUGIN_FIELD(transformer_engine, amax_history_len, Kind::integer, i, plain_node,
                                             "transformer-engine*: steps of amax history the scale is computed from"),
                                1),
                       1e6));
  v.push_back(with_choices(PLUGIN_FIELD(transformer_engine, amax_compute_algo, Kind::string, s, plain_node,
                                        "transformer-engine*: max (of the history) or most_recent"),
                           {"max", "most_recent"}));
  v.push_back(PLUGIN_FIELD(transformer_engine, replace_layers, Kind::boolean, b, plain_node,
                           "transformer-engine*: replace Linear layers by FP8 ones (false: only the fallback autocast)"));
  v.push_back(with_choices(PLUGIN_FIELD(transformer_engine, fallback_compute_dtype, Kind::string, s, dtype_node,
                                        "transformer-engine*: the autocast dtype of the non-FP8 ops; not given: the weights' "
                                        "(bfloat16; transformer-engine-float16: float16)"),
                           {"float32", "bfloat16", "float16"}));
  v.push_back(with_choices(PLUGIN_FIELD(bitsandbytes, dtype, Kind::string, s, dtype_node,
                                        "bitsandbytes modes: the compute dtype; not given: bfloat16 (int8 modes: float16, "
                                        "the only one they take)"),
                           {"float32", "bfloat16", "float16"}));
  v.push_back(PLUGIN_FIELD(bitsandbytes, ignore_modules, Kind::string_list, sl, string_list_node,
                           "bitsandbytes modes: Linear layers kept unquantized, by dotted-name prefix (e.g. [lm_head])"));
}
#undef PLUGIN_FIELD
}  // namespace

const std::vector<Field>& fields() {
  static const std::vector<Field> f = [] {
    std::vector<Field> v;
    v.push_back(with_choices(FIELD_STR(fabric, accelerator, "cpu, cuda, gpu or auto"), {"cpu", "cuda", "gpu", "auto", "mps", "tpu"}));
    v.push_back(FIELD_STR(fabric, strategy, "auto, single_device, ddp, ddp_find_unused_parameters_true, fsdp, fsdp_cpu_offload, deepspeed (ZeRO stage 2), deepspeed_stage_1, deepspeed_stage_2, deepspeed_stage_2_offload, deepspeed_stage_3 or deepspeed_stage_3_offload (auto: ddp when devices * num_nodes > 1)"));
    {
      // Not given: null, which the dump leaves out and the schema shows as (none).
      Field stage{"fabric", "stage", Kind::integer,
                  "ZeRO stage with fabric.strategy deepspeed*, as Lightning's DeepSpeedStrategy(stage=...): 1 (optimizer "
                  "state), 2 (and gradients) or 3 (and parameters); not given: the strategy name's (deepspeed: 2). "
                  "deepspeed.stage is the same key; deepspeed.zero_optimization.stage and a deepspeed_stage_N name must "
                  "agree with it",
                  [](TrainConfig& c, const Value& x) { c.fabric.stage = x.i; },
                  [](const TrainConfig& c) { return c.fabric.stage == 0 ? YAML::Node() : YAML::Node(c.fabric.stage); },
                  1, 3};
      v.push_back(stage);
    }
    v.push_back(Field{"fabric", "devices", Kind::devices,
                      "devices per node: a count, a list of indices ([0, 1] or '0,1'), -1 (all) or auto; on cpu, the number of processes (a count only)",
                      [](TrainConfig& c, const Value& x) { c.fabric.devices = x.s; }, devices_node});
    // Bounded as the connector bounds it (a huge count wrapped when narrowed to int).
    v.push_back(with_max(FIELD_INT(fabric, num_nodes, 1, "number of nodes"), double(kMaxNumNodes)));
    v.push_back(FIELD_STR(fabric, precision, "64-true, 32-true, 16-mixed, bf16-mixed, 16-true, bf16-true (or 64, 32, 16, bf16); transformer-engine, transformer-engine-float16 (FP8); nf4, nf4-dq, fp4, fp4-dq, int8, int8-training (bitsandbytes, e.g. with lora)"));
    // Not given: null, which the dump leaves out (PyTorch's 30 minutes). At least a millisecond,
    // the resolution FabricOptions::timeout has; at most a year, which keeps every deadline
    // (now + timeout, in nanoseconds) far from overflowing.
    v.push_back(Field{
        "fabric", "timeout", Kind::number,
        "seconds a collective or the rendezvous waits for the other ranks before failing with a "
        "timeout error naming them (several processes), as Lightning's DDPStrategy(timeout=...); "
        "not given: 1800 (30 min, PyTorch's default)",
        [](TrainConfig& c, const Value& x) { c.fabric.timeout = x.d; },
        [](const TrainConfig& c) {
          return c.fabric.timeout ? number_node(*c.fabric.timeout) : YAML::Node();
        },
        kMinTimeoutSeconds, kMaxTimeoutSeconds});
    add_plugin_fields(v);
    v.push_back(with_choices(FIELD_STR(model, name, "the model: mlp, gpt or cnn"), {"mlp", "gpt", "cnn"}));
    v.push_back(FIELD_STR(model, init, "optional safetensors file of initial weights (the model's state_dict keys; a tied tensor, as the gpt's lm_head.weight = transformer.wte.weight, under any one of its names, as safetensors' save_model writes it)"));
    {
      Field sizes{"model", "sizes", Kind::int_list, "mlp: layer widths {in, hidden..., out}",
                  [](TrainConfig& c, const Value& x) { c.model.sizes = x.il; },
                  [](const TrainConfig& c) {
                    YAML::Node n;
                    for (int64_t s : c.model.sizes) n.push_back(s);
                    n.SetStyle(YAML::EmitterStyle::Flow);
                    return n;
                  },
                  1};
      v.push_back(for_models(sizes, {"mlp"}));
    }
    v.push_back(for_models(with_choices(FIELD_STR(model, activation,
                                                  "mlp: relu, gelu, gelu_tanh, tanh, silu, sigmoid, leaky_relu, elu, selu, "
                                                  "celu, softplus, hardtanh, relu6, mish, hardswish or hardsigmoid"),
                                        {"relu", "gelu", "gelu_tanh", "tanh", "silu", "sigmoid", "leaky_relu", "elu",
                                         "selu", "celu", "softplus", "hardtanh", "relu6", "mish", "hardswish",
                                         "hardsigmoid"}),
                           {"mlp"}));
    v.push_back(for_models(FIELD_BOOL(model, bias, "mlp, gpt: biases in Linear (and LayerNorm for gpt)"), {"mlp", "gpt"}));
    v.push_back(for_models(FIELD_INT(model, vocab_size, 0, "gpt: vocabulary size; 0 = from the data"), {"gpt"}));
    v.push_back(for_models(FIELD_INT(model, block_size, 1, "gpt: context length T"), {"gpt"}));
    v.push_back(for_models(FIELD_INT(model, n_layer, 0, "gpt: transformer blocks"), {"gpt"}));
    v.push_back(for_models(FIELD_INT(model, n_head, 1, "gpt: attention heads"), {"gpt"}));
    v.push_back(for_models(FIELD_INT(model, n_embd, 1, "gpt: embedding width C (a multiple of n_head)"), {"gpt"}));
    v.push_back(for_models(with_max(FIELD_NUM(model, dropout, 0, "gpt: dropout probability"), 0.999999), {"gpt"}));
    v.push_back(for_models(with_choices(FIELD_STR(model, gelu, "gpt: tanh (GPT-2) or none (erf)"), {"tanh", "none"}), {"gpt"}));
    v.push_back(for_models(FIELD_INT(model, in_channels, 1, "cnn: input channels"), {"cnn"}));
    v.push_back(for_models(FIELD_INT(model, image_size, 4, "cnn: square input size, divisible by 4"), {"cnn"}));
    v.push_back(for_models(FIELD_INT(model, num_classes, 1, "cnn: classes"), {"cnn"}));
    v.push_back(for_models(FIELD_INT(model, channels1, 1, "cnn: channels of the first conv"), {"cnn"}));
    v.push_back(for_models(FIELD_INT(model, channels2, 1, "cnn: channels of the second conv"), {"cnn"}));
    v.push_back(for_models(FIELD_BOOL(model, batch_norm, "cnn: a BatchNorm2d after each conv (running statistics in the checkpoint)"), {"cnn"}));
    v.push_back(with_choices(FIELD_STR(data, kind, "text, tokens, tensors or images"), {"text", "tokens", "tensors", "images"}));
    v.push_back(FIELD_STR(data, path, "the data file (text: UTF-8; tokens: uint16 ids; tensors: safetensors with inputs/targets; images: IDX images)"));
    v.push_back(FIELD_STR(data, labels, "images: the IDX labels file (default: path with images -> labels; with it, a directory data.path gives its train-images-idx3-ubyte[.gz])"));
    v.push_back(FIELD_BOOL(data, shuffle, "shuffle examples each epoch (tensors, images)"));
    v.push_back(FIELD_BOOL(data, drop_last, "drop each epoch's last incomplete batch (tensors, images)"));
    v.push_back(with_max(FIELD_NUM(data, val_fraction, 0, "fraction held out for validation"), 0.9));
    v.push_back(FIELD_BOOL(data, flatten, "images: flatten to (N, H*W) (an mlp always gets them flattened)"));
    v.push_back(with_choices(
        Field{"", "loss", Kind::string,
              "cross_entropy (class indices), or with float targets shaped like the output: "
              "mse, l1, smooth_l1 (beta 1), huber (delta 1), bce_with_logits (0/1 labels)",
              [](TrainConfig& c, const Value& x) { c.loss = x.s; },
              [](const TrainConfig& c) { return YAML::Node(c.loss); }},
        {"cross_entropy", "mse", "l1", "smooth_l1", "huber", "bce_with_logits"}));
    v.push_back(with_choices(
        FIELD_STR(
            optimizer, name,
            "sgd, adam, adamw, rmsprop, adagrad, nadam, radam, adamax, adadelta, rprop or asgd "
            "(PyTorch's SGD, Adam, AdamW, RMSprop, Adagrad, NAdam, RAdam, Adamax, Adadelta, "
            "Rprop, ASGD; not lbfgs, whose step re-runs forward and backward)"),
        {"sgd", "adam", "adamw", "rmsprop", "adagrad", "nadam", "radam", "adamax", "adadelta",
         "rprop", "asgd"}));
    v.push_back(FIELD_NUM(optimizer, lr, 0, "learning rate"));
    v.push_back(FIELD_NUM(optimizer, momentum, 0, "sgd, rmsprop: momentum"));
    v.push_back(FIELD_NUM(optimizer, dampening, 0, "sgd: dampening"));
    v.push_back(FIELD_BOOL(optimizer, nesterov, "sgd: Nesterov momentum"));
    v.push_back(FIELD_NUM(optimizer, weight_decay, 0,
                          "weight decay of every parameter, biases and norms too (decoupled for adamw; rprop has none)"));
    v.push_back(Field{"optimizer", "betas", Kind::number_list,
                      "adam, adamw, nadam, radam, adamax: [beta1, beta2]",
                      [](TrainConfig& c, const Value& x) { c.optimizer.betas = x.dl; },
                      [](const TrainConfig& c) {
                        YAML::Node n;
                        for (double b : c.optimizer.betas) n.push_back(number_node(b));
                        n.SetStyle(YAML::EmitterStyle::Flow);
                        return n;
                      },
                      0, 1});
    // Not given, each optimizer takes PyTorch's default: config.yaml leaves it out then.
    v.push_back(Field{"optimizer", "eps", Kind::number,
                      "adam, adamw, rmsprop, adagrad, nadam, radam, adamax, adadelta: epsilon "
                      "(default: the optimizer's, 1e-8; adagrad 1e-10, adadelta 1e-6)",
                      [](TrainConfig& c, const Value& x) { c.optimizer.eps = x.d; },
                      [](const TrainConfig& c) {
                        return c.optimizer.eps ? number_node(*c.optimizer.eps) : YAML::Node();
                      },
                      0});
    v.push_back(
        FIELD_NUM(optimizer, alpha, 0,
                  "rmsprop: smoothing constant of the squared-gradient average; asgd: the power of "
                  "eta's decay (not given: 0.75, ASGD's default)"));
    v.push_back(FIELD_BOOL(optimizer, centered, "rmsprop: normalise by the gradient's estimated variance"));
    v.push_back(FIELD_NUM(optimizer, lr_decay, 0, "adagrad: lr / (1 + (step - 1) * lr_decay)"));
    v.push_back(FIELD_NUM(optimizer, initial_accumulator_value, 0, "adagrad: starting value of the squared-gradient sum"));
    v.push_back(FIELD_NUM(
        optimizer, momentum_decay, 0,
        "nadam: momentum schedule, mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay))"));
    v.push_back(with_max(
        FIELD_NUM(optimizer, rho, 0, "adadelta: smoothing constant of both running averages"),
        1.0));
    v.push_back(number_pair_field(
        "optimizer", "etas", &TrainConfig::Optimizer::etas,
        "rprop: [etaminus, etaplus], the step size's multipliers when the gradient's "
        "sign flips and when it keeps (0 < etaminus < 1 < etaplus)"));
    v.push_back(number_pair_field("optimizer", "step_sizes", &TrainConfig::Optimizer::step_sizes,
                                  "rprop: [min, max] step size (0 <= min <= max)"));
    v.push_back(FIELD_NUM(optimizer, lambd, 0,
                          "asgd: decay term, eta = lr / (1 + lambd * lr * step)^alpha"));
    v.push_back(FIELD_NUM(optimizer, t0, 0, "asgd: the step at which averaging starts"));
    v.push_back(with_choices(
        FIELD_STR(
            scheduler, name,
            "constant, step, cosine (linear warm-up, then cosine to min_lr), or PyTorch's "
            "multistep (MultiStepLR), exponential (ExponentialLR), linear (LinearLR), polynomial "
            "(PolynomialLR), onecycle (OneCycleLR over the run's steps), cosine_warm_restarts "
            "(CosineAnnealingWarmRestarts), plateau (ReduceLROnPlateau on each validation's "
            "val_loss), cyclic (CyclicLR), multiplicative (MultiplicativeLR with a constant "
            "factor); each but plateau steps once per optimizer step"),
        {"constant", "step", "cosine", "multistep", "exponential", "linear", "polynomial",
         "onecycle", "cosine_warm_restarts", "plateau", "cyclic", "multiplicative"}));
    v.push_back(FIELD_INT(scheduler, warmup_steps, 0, "cosine (and constant): linear warm-up steps"));
    v.push_back(FIELD_NUM(scheduler, min_lr, 0, "cosine: final learning rate; cosine_warm_restarts: eta_min; plateau: the lr's floor"));
    v.push_back(FIELD_INT(scheduler, step_size, 1, "step: steps between decays"));
    v.push_back(FIELD_NUM(
        scheduler, gamma, 0,
        "step, multistep, exponential: decay factor; cyclic: exp_range's scale gamma^step (not "
        "given: 1)"));
    v.push_back(Field{"scheduler", "milestones", Kind::int_list, "multistep: the steps at which the lr is multiplied by gamma (non-decreasing)",
                      [](TrainConfig& c, const Value& x) { c.scheduler.milestones = x.il; },
                      [](const TrainConfig& c) {
                        YAML::Node n(YAML::NodeType::Sequence);
                        for (int64_t m : c.scheduler.milestones) n.push_back(m);
                        n.SetStyle(YAML::EmitterStyle::Flow);
                        return n;
                      },
                      1});
    v.push_back(with_max(FIELD_NUM(scheduler, start_factor, 0, "linear: the lr factor at step 0, in (0, 1]"), 1));
    v.push_back(with_max(FIELD_NUM(scheduler, end_factor, 0, "linear: the lr factor from total_iters on, in [0, 1]"), 1));
    v.push_back(FIELD_INT(scheduler, total_iters, 1, "linear, polynomial: steps until the final factor"));
    v.push_back(FIELD_NUM(scheduler, power, 0, "polynomial: the power of the decay to 0"));
    v.push_back(FIELD_NUM(
        scheduler, max_lr, 0,
        "onecycle: the peak learning rate (0: optimizer.lr); cyclic: the cycle's upper bound "
        "(required)"));
    v.push_back(with_max(FIELD_NUM(scheduler, pct_start, 0, "onecycle: the fraction of the steps spent raising the lr"), 1));
    v.push_back(with_choices(FIELD_STR(scheduler, anneal_strategy, "onecycle: cos or linear annealing"), {"cos", "linear"}));
    v.push_back(FIELD_NUM(scheduler, div_factor, 0, "onecycle: the first lr is max_lr / div_factor (> 0)"));
    v.push_back(FIELD_NUM(scheduler, final_div_factor, 0, "onecycle: the last lr is the first / final_div_factor (> 0)"));
    v.push_back(FIELD_BOOL(scheduler, three_phase, "onecycle: back down to the first lr before annealing to the last"));
    v.push_back(FIELD_BOOL(scheduler, cycle_momentum,
                           "onecycle, cyclic: cycle sgd's momentum (adam's beta1) between "
                           "max_momentum and base_momentum, inversely to the lr"));
    v.push_back(with_max(
        FIELD_NUM(scheduler, base_momentum, 0,
                  "onecycle, cyclic: the momentum at the peak lr (not given with cyclic: 0.8)"),
        0.999999));
    v.push_back(with_max(
        FIELD_NUM(scheduler, max_momentum, 0,
                  "onecycle, cyclic: the momentum at the lowest lrs (not given with cyclic: 0.9)"),
        0.999999));
    v.push_back(Field{"scheduler", "base_lr", Kind::number,
                      "cyclic: the cycle's lower bound and first lr (not given: optimizer.lr)",
                      [](TrainConfig& c, const Value& x) { c.scheduler.base_lr = x.d; },
                      [](const TrainConfig& c) {
                        return c.scheduler.base_lr ? number_node(*c.scheduler.base_lr)
                                                   : YAML::Node();
                      },
                      0});
    v.push_back(FIELD_INT(scheduler, step_size_up, 1, "cyclic: steps from base_lr up to max_lr"));
    v.push_back(Field{"scheduler", "step_size_down", Kind::integer,
                      "cyclic: steps from max_lr back down to base_lr (not given: step_size_up)",
                      [](TrainConfig& c, const Value& x) { c.scheduler.step_size_down = x.i; },
                      [](const TrainConfig& c) {
                        return c.scheduler.step_size_down ? YAML::Node(*c.scheduler.step_size_down)
                                                          : YAML::Node();
                      },
                      0});
    v.push_back(FIELD_INT(scheduler, t_0, 1, "cosine_warm_restarts: the steps of the first cycle"));
    v.push_back(FIELD_INT(scheduler, t_mult, 1, "cosine_warm_restarts: each cycle's length over the last one's"));
    v.push_back(with_choices(
        FIELD_STR(scheduler, mode,
                  "plateau: min (val_loss should fall) or max; cyclic: triangular, triangular2 "
                  "(amplitude halved every cycle) or exp_range (scaled by gamma^step) (not "
                  "given: triangular)"),
        {"min", "max", "triangular", "triangular2", "exp_range"}));
    v.push_back(FIELD_NUM(
        scheduler, factor, 0,
        "plateau: the lr's multiplier at a reduction, in [0, 1); multiplicative: the lr's "
        "multiplier at every step, > 0"));
    v.push_back(FIELD_INT(scheduler, patience, 0, "plateau: validations without improvement before the lr is reduced"));
    v.push_back(FIELD_NUM(scheduler, threshold, 0, "plateau: the least improvement that counts (see threshold_mode)"));
    v.push_back(with_choices(FIELD_STR(scheduler, threshold_mode, "plateau: rel (better than best * (1 -+ threshold)) or abs (best -+ threshold)"), {"rel", "abs"}));
    v.push_back(FIELD_INT(scheduler, cooldown, 0, "plateau: validations after a reduction in which none is counted as bad"));
    v.push_back(FIELD_INT(trainer, max_steps, -1, "optimizer steps to run (-1: use max_epochs; 0: only set up and write checkpoints/last)"));
    v.push_back(FIELD_INT(trainer, max_epochs, -1, "epochs to run (-1: use max_steps; neither set: 1000, as Lightning's Trainer)"));
    v.push_back(FIELD_INT(trainer, batch_size, 1, "examples per batch and process (with several processes the global batch is this times their number)"));
    v.push_back(FIELD_INT(trainer, accumulate_grad_batches, 1, "batches per optimizer step"));
    v.push_back(FIELD_NUM(trainer, clip_grad_norm, 0, "clip gradients to this total 2-norm (0: off)"));
    v.push_back(FIELD_NUM(trainer, clip_grad_val, 0, "clip gradients to [-v, v] (0: off)"));
    v.push_back(FIELD_INT(trainer, val_every, 0, "validate every N steps (0: off; needs data.val_fraction > 0)"));
    v.push_back(FIELD_INT(trainer, val_batches, 1, "batches per validation"));
    v.push_back(FIELD_INT(trainer, log_every, 1, "log every N steps"));
    v.push_back(FIELD_INT(trainer, checkpoint_every, 0, "write checkpoints/step-N every N steps (0: only checkpoints/last)"));
    v.push_back(FIELD_INT(trainer, keep_last, 0, "step-N checkpoints to keep (0: all)"));
    // Lightning's seed_everything (Fabric::seed_everything) takes 0 .. 2^32 - 1, as numpy.
    v.push_back(with_max(FIELD_INT(trainer, seed, 0, "seed of initialisation, data order and dropout"),
                         4294967295.0));
    v.push_back(FIELD_BOOL(trainer, deterministic, "single-threaded reductions for bit-reproducible runs"));
    v.push_back(FIELD_BOOL(trainer, sync_batchnorm, "BatchNorm layers normalise with the statistics of the global batch over all processes (SyncBatchNorm); a no-op with one process"));
    v.push_back(FIELD_STR(trainer, run_dir, "the run directory (config.yaml, metrics.csv, checkpoints/)"));
    v.push_back(FIELD_INT(trainer, sample_tokens, 0, "gpt on text: characters to generate at the end"));
    v.push_back(FIELD_STR(trainer, sample_prompt, "gpt on text: the prompt of that sample"));
    v.push_back(FIELD_BOOL(logger, csv, "write run_dir/metrics.csv"));
    v.push_back(FIELD_BOOL(logger, tensorboard, "write TensorBoard event files to run_dir/tensorboard"));
    v.push_back(FIELD_INT(lora, rank, 0, "LoRA rank (0: no adapters); the base weights are frozen"));
    v.push_back(FIELD_NUM(lora, alpha, 0, "LoRA alpha (the update is scaled by alpha / rank)"));
    v.push_back(with_max(FIELD_NUM(lora, dropout, 0, "LoRA dropout on the adapter input"), 0.999999));
    v.push_back(Field{"lora", "target", Kind::string_list, "names of the layers that get adapters, as PEFT's `target_modules`: a layer's whole dotted path or a dotted tail of it (`c_attn` every block's, `h.0.attn.c_attn` the first block's, an MLP's `layers.0`)",
                      [](TrainConfig& c, const Value& x) { c.lora.target = x.sl; },
                      [](const TrainConfig& c) {
                        YAML::Node n;
                        for (const auto& t : c.lora.target) n.push_back(t);
                        n.SetStyle(YAML::EmitterStyle::Flow);
                        return n;
                      }});
    v.push_back(FIELD_STR(fsdp, sharding_strategy, "FULL_SHARD, SHARD_GRAD_OP, NO_SHARD or HYBRID_SHARD (shard within a node, replicate across nodes; needs an auto_wrap_policy) (fabric.strategy fsdp)"));
    v.push_back(fsdp_policy_field("auto_wrap_policy", &TrainConfig::Fsdp::auto_wrap_policy,
                                  "module type names that become FSDP units, e.g. [Block]; gpt: [Block] when not given; [] = the whole model is one unit (fabric.strategy fsdp)"));
    v.push_back(fsdp_policy_field("activation_checkpointing_policy", &TrainConfig::Fsdp::activation_checkpointing_policy,
                                  "module type names whose forward is recomputed in backward instead of stored, e.g. [Block] (fabric.strategy fsdp)"));
    v.push_back(FIELD_BOOL(fsdp, cpu_offload, "keep the parameter and gradient shards in host memory (true under fabric.strategy fsdp_cpu_offload) (fabric.strategy fsdp)"));
    v.push_back(with_choices(FIELD_STR(fsdp, state_dict_type, "checkpoint layout: sharded (one file per rank; fabric-train consolidate makes a full one) or full (gathered to rank 0) (fabric.strategy fsdp)"),
                             {"sharded", "full"}));
    return v;
  }();
  return f;
}

const std::vector<PluginBlock>& plugin_blocks() {
  static const std::vector<PluginBlock> b = [] {
    std::vector<PluginBlock> v = {
        {"scaler", "MixedPrecision's GradScaler", {"16-mixed"}},
        {"transformer_engine", "TransformerEnginePrecision", {"transformer-engine", "transformer-engine-float16"}},
        {"bitsandbytes", "BitsandbytesPrecision", precision::bitsandbytes_modes()}};
    return v;
  }();
  return b;
}

namespace {
std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
  return s;
}
}  // namespace

bool is_fsdp_strategy(const std::string& strategy) {
  const std::string l = lower(strategy);
  return l == "fsdp" || l == "fsdp_cpu_offload";
}

bool is_deepspeed_strategy(const std::string& strategy) { return lower(strategy).rfind("deepspeed", 0) == 0; }

bool plugin_block_used(const PluginBlock& block, const TrainConfig& c) {
  if (std::find(block.precisions.begin(), block.precisions.end(), c.fabric.precision) == block.precisions.end())
    return false;
  // DeepSpeed scales the loss itself (deepspeed.fp16.*).
  return !(block.name == "scaler" && is_deepspeed_strategy(c.fabric.strategy));
}

const PluginBlock* plugin_block_of(const std::string& key) {
  const size_t dot = key.find('.');
  if (dot == std::string::npos) return nullptr;
  for (const PluginBlock& b : plugin_blocks())
    if (key.compare(0, dot, b.name) == 0 && b.name.size() == dot) return &b;
  return nullptr;
}

const std::vector<std::string>& sections() {
  static const std::vector<std::string> s = {"fabric", "model",   "data",   "loss", "optimizer",
                                             "scheduler", "trainer", "logger", "lora", "fsdp", "deepspeed"};
  return s;
}

// The `deepspeed:` section's keys for the schema table (parsed by DeepSpeedConfig, not by fields()).
const std::vector<std::array<std::string, 4>>& deepspeed_schema() {
  static const std::vector<std::array<std::string, 4>> rows = {
      {"stage", "integer", "(strategy's)",
       "ZeRO stage (1, 2 or 3), as Lightning's DeepSpeedStrategy(stage=...): the same key as fabric.stage"},
      {"zero_optimization.stage", "integer", "(strategy's)", "ZeRO stage (1, 2 or 3); overrides the strategy name's"},
      {"fp16.enabled", "bool", "false", "16-mixed with DeepSpeed's dynamic loss scaler (sets fabric.precision when not given)"},
      {"fp16.loss_scale", "number", "0", "0: dynamic; > 0: a static loss scale"},
      {"fp16.initial_scale_power", "integer", "16", "initial scale 2^power (with none of these keys: 2^32, hysteresis 1)"},
      {"fp16.loss_scale_window", "integer", "1000", "clean steps between scale growths"},
      {"fp16.hysteresis", "integer", "2", "overflows absorbed before the scale drops"},
      {"fp16.consecutive_hysteresis", "bool", "false", "refill the hysteresis on every clean step"},
      {"fp16.min_loss_scale", "number", "1", "lowest scale (0: no floor)"},
      {"bf16.enabled", "bool", "false", "bf16-mixed (sets fabric.precision when not given)"},
      {"gradient_clipping", "number", "0", "clip to this global 2-norm, fused into unscaling (0: off)"},
      {"zero_optimization.offload_optimizer.device", "string", "none",
       "cpu: keep the optimizer state in host memory (as the *_offload strategies); none: on the device"},
      {"zero_optimization.offload_param.device", "string", "none",
       "cpu at stage 3: keep the parameter shards (and the optimizer state) in host memory"},
      {"train_batch_size", "integer", "(none)",
       "must equal trainer.batch_size x trainer.accumulate_grad_batches x devices x num_nodes, as DeepSpeed checks; "
       "derives whichever of the first two is not given"},
      {"train_micro_batch_size_per_gpu", "integer", "(none)", "sets trainer.batch_size when not given; must equal it otherwise"},
      {"gradient_accumulation_steps", "integer", "(none)", "sets trainer.accumulate_grad_batches when not given; must equal it otherwise"}};
  return rows;
}

std::string refused_choice(const std::string& path, const std::string& value) {
  // LBFGS steps with a closure that re-runs forward and backward on the same batch several times
  // per step; fabric-train's step runs each micro-batch's forward and backward once, then steps
  // (gradient accumulation over batches it has moved past, 16-mixed's GradScaler and the sharded
  // strategies all step without one).
  if (path == "optimizer.name" && value == "lbfgs")
    return "lbfgs is not supported by fabric-train: LBFGS re-evaluates the loss several times per "
           "step through a "
           "closure (forward and backward on the same batch), while fabric-train runs each batch's "
           "forward and "
           "backward once before the optimizer step (gradient accumulation, 16-mixed's loss scaler "
           "and the sharded "
           "strategies step without a closure). Use optim::LBFGS from the C++ API, with "
           "FabricOptimizer::step(closure), or another optimizer.name";
  return "";
}

std::string suggestion(const std::string& key, const std::vector<std::string>& candidates) {
  size_t d = 0;
  const std::string best = nearest(key, candidates, &d);
  if (best.empty() || d > std::max<size_t>(2, key.size() / 3)) return "";
  return "; did you mean '" + best + "'?";
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string did_you_mean(const std::string& key, const std::vector<std::string>& candidates, const std::string& label,
                         const std::vector<std::string>& elsewhere) {
  if (candidates.empty()) return "";
  auto say = [](const std::string& c) { return "; did you mean '" + c + "'?"; };
  if (const std::string near = near_key(key, candidates); !near.empty()) return say(near);
  for (const auto& p : elsewhere)
    if (p.size() > key.size() && p.compare(p.size() - key.size(), key.size(), key) == 0 && p[p.size() - key.size() - 1] == '.')
      return say(p);
  return say(nearest(key, candidates)) + " (" + label + ": " + join(candidates) + ")";
}

bool is_deepspeed_key(const std::string& path) {
  for (const auto& row : deepspeed_schema())
    if (row[0] == path) return true;
  return precision::deepspeed_key_use(path) == precision::DeepSpeedKeyUse::honoured;
}
bool is_deepspeed_block(const std::string& path) {
  for (const auto& row : deepspeed_schema())
    if (row[0].rfind(path + ".", 0) == 0) return true;
  return precision::deepspeed_key_use(path) == precision::DeepSpeedKeyUse::block;
}
bool is_deepspeed_ignored(const std::string& path) {
  return precision::deepspeed_key_use(path) == precision::DeepSpeedKeyUse::ignored;
}
std::vector<std::string> deepspeed_children(const std::string& prefix) {
  // This runtime's keys first, then DeepSpeed's other documented ones (a typo of those is a
  // typo too).
  std::vector<std::string> out;
  for (const auto& row : deepspeed_schema()) {
    if (!prefix.empty() && row[0].rfind(prefix + ".", 0) != 0) continue;
    const std::string rest = prefix.empty() ? row[0] : row[0].substr(prefix.size() + 1);
    const std::string name = rest.substr(0, rest.find('.'));
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  }
  for (const std::string& name : precision::deepspeed_documented_children(prefix))
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  return out;
}

}  // namespace fabric::train_config_detail
