// The fabric-train config's key table: every key of every section with its type, bounds, choices
// and help, bound to its TrainConfig member (see train_config_fields.h).
#include "runtime/train_config_fields.h"

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
  }
  return "?";
}

namespace {

#define FIELD_INT(sec, mem, lo, help) \
  Field{#sec, #mem, Kind::integer, help, [](TrainConfig& c, const Value& v) { c.sec.mem = v.i; }, \
        [](const TrainConfig& c) { return YAML::Node(c.sec.mem); }, lo}
#define FIELD_NUM(sec, mem, lo, help) \
  Field{#sec, #mem, Kind::number, help, [](TrainConfig& c, const Value& v) { c.sec.mem = v.d; }, \
        [](const TrainConfig& c) { return YAML::Node(c.sec.mem); }, lo}
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

}  // namespace

const std::vector<Field>& fields() {
  static const std::vector<Field> f = [] {
    std::vector<Field> v;
    v.push_back(with_choices(FIELD_STR(fabric, accelerator, "cpu, cuda, gpu or auto"), {"cpu", "cuda", "gpu", "auto", "mps", "tpu"}));
    v.push_back(FIELD_STR(fabric, strategy, "auto, single_device, ddp, ddp_find_unused_parameters_true, fsdp, fsdp_cpu_offload, deepspeed (ZeRO stage 2), deepspeed_stage_1, deepspeed_stage_2, deepspeed_stage_2_offload, deepspeed_stage_3 or deepspeed_stage_3_offload (auto: ddp when devices * num_nodes > 1)"));
    v.push_back(FIELD_STR(fabric, devices, "devices per node: a count, a list '0,1', -1 (all) or auto; on cpu, the number of processes"));
    v.push_back(FIELD_INT(fabric, num_nodes, 1, "number of nodes"));
    v.push_back(FIELD_STR(fabric, precision, "64-true, 32-true, 16-mixed, bf16-mixed, 16-true, bf16-true (or 64, 32, 16, bf16)"));
    v.push_back(with_choices(FIELD_STR(model, name, "the model: mlp, gpt or cnn"), {"mlp", "gpt", "cnn"}));
    v.push_back(FIELD_STR(model, init, "optional safetensors file of initial weights (the model's state_dict keys)"));
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
    v.push_back(for_models(with_choices(FIELD_STR(model, activation, "mlp: relu, gelu, gelu_tanh, tanh, silu or sigmoid"),
                                        {"relu", "gelu", "gelu_tanh", "tanh", "silu", "sigmoid"}),
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
    v.push_back(with_choices(FIELD_STR(data, kind, "text, tokens, tensors or images"), {"text", "tokens", "tensors", "images"}));
    v.push_back(FIELD_STR(data, path, "the data file (text: UTF-8; tokens: uint16 ids; tensors: safetensors with inputs/targets; images: IDX images)"));
    v.push_back(FIELD_STR(data, labels, "images: the IDX labels file (default: path with images -> labels)"));
    v.push_back(FIELD_BOOL(data, shuffle, "shuffle examples each epoch (tensors, images)"));
    v.push_back(FIELD_BOOL(data, drop_last, "drop each epoch's last incomplete batch (tensors, images)"));
    v.push_back(with_max(FIELD_NUM(data, val_fraction, 0, "fraction held out for validation"), 0.9));
    v.push_back(FIELD_BOOL(data, flatten, "images: flatten to (N, 784) for an MLP"));
    v.push_back(with_choices(Field{"", "loss", Kind::string, "cross_entropy or mse",
                                   [](TrainConfig& c, const Value& x) { c.loss = x.s; },
                                   [](const TrainConfig& c) { return YAML::Node(c.loss); }},
                             {"cross_entropy", "mse"}));
    v.push_back(with_choices(FIELD_STR(optimizer, name, "sgd, adam or adamw"), {"sgd", "adam", "adamw"}));
    v.push_back(FIELD_NUM(optimizer, lr, 0, "learning rate"));
    v.push_back(FIELD_NUM(optimizer, momentum, 0, "sgd: momentum"));
    v.push_back(FIELD_NUM(optimizer, dampening, 0, "sgd: dampening"));
    v.push_back(FIELD_BOOL(optimizer, nesterov, "sgd: Nesterov momentum"));
    v.push_back(FIELD_NUM(optimizer, weight_decay, 0, "weight decay (decoupled for adamw)"));
    v.push_back(Field{"optimizer", "betas", Kind::number_list, "adam, adamw: [beta1, beta2]",
                      [](TrainConfig& c, const Value& x) { c.optimizer.betas = x.dl; },
                      [](const TrainConfig& c) {
                        YAML::Node n;
                        for (double b : c.optimizer.betas) n.push_back(b);
                        n.SetStyle(YAML::EmitterStyle::Flow);
                        return n;
                      },
                      0, 1});
    v.push_back(FIELD_NUM(optimizer, eps, 0, "adam, adamw: epsilon"));
    v.push_back(with_choices(FIELD_STR(scheduler, name, "constant, step or cosine (linear warm-up, then cosine to min_lr)"),
                             {"constant", "step", "cosine"}));
    v.push_back(FIELD_INT(scheduler, warmup_steps, 0, "cosine: linear warm-up steps"));
    v.push_back(FIELD_NUM(scheduler, min_lr, 0, "cosine: final learning rate"));
    v.push_back(FIELD_INT(scheduler, step_size, 1, "step: steps between decays"));
    v.push_back(FIELD_NUM(scheduler, gamma, 0, "step: decay factor"));
    v.push_back(FIELD_INT(trainer, max_steps, -1, "optimizer steps to run (-1: use max_epochs; 0: only set up and write checkpoints/last)"));
    v.push_back(FIELD_INT(trainer, max_epochs, -1, "epochs to run (-1: use max_steps)"));
    v.push_back(FIELD_INT(trainer, batch_size, 1, "examples per batch and process (with several processes the global batch is this times their number)"));
    v.push_back(FIELD_INT(trainer, accumulate_grad_batches, 1, "batches per optimizer step"));
    v.push_back(FIELD_NUM(trainer, clip_grad_norm, 0, "clip gradients to this total 2-norm (0: off)"));
    v.push_back(FIELD_NUM(trainer, clip_grad_val, 0, "clip gradients to [-v, v] (0: off)"));
    v.push_back(FIELD_INT(trainer, val_every, 0, "validate every N steps (0: off; needs data.val_fraction > 0)"));
    v.push_back(FIELD_INT(trainer, val_batches, 1, "batches per validation"));
    v.push_back(FIELD_INT(trainer, log_every, 1, "log every N steps"));
    v.push_back(FIELD_INT(trainer, checkpoint_every, 0, "write checkpoints/step-N every N steps (0: only checkpoints/last)"));
    v.push_back(FIELD_INT(trainer, keep_last, 0, "step-N checkpoints to keep (0: all)"));
    v.push_back(FIELD_INT(trainer, seed, 0, "seed of initialisation, data order and dropout"));
    v.push_back(FIELD_BOOL(trainer, deterministic, "single-threaded reductions for bit-reproducible runs"));
    v.push_back(FIELD_STR(trainer, run_dir, "the run directory (config.yaml, metrics.csv, checkpoints/)"));
    v.push_back(FIELD_INT(trainer, sample_tokens, 0, "gpt on text: characters to generate at the end"));
    v.push_back(FIELD_STR(trainer, sample_prompt, "gpt on text: the prompt of that sample"));
    v.push_back(FIELD_BOOL(logger, csv, "write run_dir/metrics.csv"));
    v.push_back(FIELD_BOOL(logger, tensorboard, "write TensorBoard event files to run_dir/tensorboard"));
    v.push_back(FIELD_INT(lora, rank, 0, "LoRA rank (0: no adapters); the base weights are frozen"));
    v.push_back(FIELD_NUM(lora, alpha, 0, "LoRA alpha (the update is scaled by alpha / rank)"));
    v.push_back(with_max(FIELD_NUM(lora, dropout, 0, "LoRA dropout on the adapter input"), 0.999999));
    v.push_back(Field{"lora", "target", Kind::string_list, "names of the layers that get adapters",
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

const std::vector<std::string>& sections() {
  static const std::vector<std::string> s = {"fabric", "model",   "data",   "loss", "optimizer",
                                             "scheduler", "trainer", "logger", "lora", "fsdp", "deepspeed"};
  return s;
}

// The `deepspeed:` section's keys for the schema table (parsed by DeepSpeedConfig, not by fields()).
const std::vector<std::array<std::string, 4>>& deepspeed_schema() {
  static const std::vector<std::array<std::string, 4>> rows = {
      {"zero_optimization.stage", "integer", "(strategy's)", "ZeRO stage (1, 2 or 3); overrides the strategy name's"},
      {"fp16.enabled", "bool", "false", "16-mixed with DeepSpeed's dynamic loss scaler (sets fabric.precision when not given)"},
      {"fp16.loss_scale", "number", "0", "0: dynamic; > 0: a static loss scale"},
      {"fp16.initial_scale_power", "integer", "16", "initial scale 2^power (with none of these keys: 2^32, hysteresis 1)"},
      {"fp16.loss_scale_window", "integer", "1000", "clean steps between scale growths"},
      {"fp16.hysteresis", "integer", "2", "overflows absorbed before the scale drops"},
      {"fp16.consecutive_hysteresis", "bool", "false", "refill the hysteresis on every clean step"},
      {"fp16.min_loss_scale", "number", "1", "lowest scale"},
      {"bf16.enabled", "bool", "false", "bf16-mixed (sets fabric.precision when not given)"},
      {"gradient_clipping", "number", "0", "clip to this global 2-norm, fused into unscaling (0: off)"},
      {"train_micro_batch_size_per_gpu", "integer", "(none)", "sets trainer.batch_size when not given; must equal it otherwise"},
      {"gradient_accumulation_steps", "integer", "(none)", "sets trainer.accumulate_grad_batches when not given; must equal it otherwise"}};
  return rows;
}

}  // namespace fabric::train_config_detail
