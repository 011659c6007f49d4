// fabric-train's configuration: the YAML schema (sections fabric, model, data, loss, optimizer,
// scheduler, trainer, logger, lora, fsdp, deepspeed), its defaults and checks, dotted
// `--set key.path=value` overrides, and the resolved config written back as YAML. Errors name the
// file, line, column and key, and suggest the closest key for a misspelt one.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tensor/error.h"

namespace fabric {

// A bad config: what fabric-train reports with exit status 2.
class ConfigError : public ValueError {
 public:
  using ValueError::ValueError;
};

struct TrainConfig {
  struct Fabric {
    std::string accelerator = "cpu";
    std::string strategy = "auto";
    std::string devices = "1";  // the connector's Devices spec ("2", "0,1", "-1", "auto")
    int64_t num_nodes = 1;
    std::string precision = "32-true";
    // The ZeRO stage (1, 2 or 3) under a deepspeed* strategy, as Lightning's
    // DeepSpeedStrategy(stage=...); also `deepspeed.stage`. 0: not given (the strategy name's, or
    // deepspeed.zero_optimization.stage). The parser puts it in `deepspeed` as
    // zero_optimization.stage, which is what the strategy reads.
    int64_t stage = 0;
    // Seconds every collective and the rendezvous may wait for a peer (FabricOptions::timeout,
    // Lightning's DDPStrategy(timeout=...)); not given: 1800, as PyTorch's default.
    std::optional<double> timeout;
    // The precision plugin's own options, one block per plugin (Lightning's constructor arguments
    // of MixedPrecision's GradScaler, TransformerEnginePrecision and BitsandbytesPrecision). A
    // block left at its defaults builds the plugin of the precision string alone.
    struct Scaler {  // 16-mixed: torch.cuda.amp.GradScaler(...)
      double init_scale = 65536.0;
      double growth_factor = 2.0;
      double backoff_factor = 0.5;
      int64_t growth_interval = 2000;
      bool enabled = true;
      bool operator==(const Scaler&) const = default;
    } scaler;
    struct TransformerEngine {  // transformer-engine*: the DelayedScaling recipe and the layers
      std::string fp8_format = "HYBRID";  // HYBRID (E4M3 forward, E5M2 backward) or E4M3
      int64_t margin = 0;
      int64_t amax_history_len = 1024;
      std::string amax_compute_algo = "max";  // max | most_recent
      bool replace_layers = true;
      std::string fallback_compute_dtype;  // empty: the weights' dtype
      bool operator==(const TransformerEngine&) const = default;
    } transformer_engine;
    struct Bitsandbytes {  // nf4, nf4-dq, fp4, fp4-dq, int8, int8-training
      std::string dtype;   // the compute dtype; empty: the mode's (bfloat16; int8: float16)
      std::vector<std::string>
          ignore_modules;  // Linear layers (dotted-name prefixes) kept as they are
      bool operator==(const Bitsandbytes&) const = default;
    } bitsandbytes;
  } fabric;
  struct Model {
    std::string name = "mlp";  // mlp | gpt | cnn
    std::string init;          // optional weights.safetensors loaded after construction
    // mlp
    std::vector<int64_t> sizes = {784, 256, 10};
    std::string activation = "relu";
    bool bias = true;  // mlp and gpt
    // gpt
    int64_t vocab_size = 0;  // 0: the data's vocabulary (text) or the largest token id + 1
    int64_t block_size = 128;
    int64_t n_layer = 4;
    int64_t n_head = 4;
    int64_t n_embd = 256;
    double dropout = 0.0;
    std::string gelu = "tanh";
    // cnn
    int64_t in_channels = 1;
    int64_t image_size = 28;
    int64_t num_classes = 10;
    int64_t channels1 = 16;
    int64_t channels2 = 32;
    bool batch_norm = false;
  } model;
  struct Data {
    std::string kind = "tensors";  // text | tokens | tensors | images
    std::string path;
    std::string labels;  // images: the labels IDX file (default: derived from path)
    bool shuffle = false;
    bool drop_last = false;  // tensors, images: drop each epoch's last incomplete batch
    double val_fraction = 0.0;
    bool flatten = false;  // images: (N, 784) for an MLP instead of (N, 1, 28, 28)
  } data;
  std::string loss = "cross_entropy";  // cross_entropy, mse, l1, smooth_l1, huber, bce_with_logits
  struct Optimizer {
    // sgd | adam | adamw | rmsprop | adagrad | nadam | radam | adamax | adadelta | rprop | asgd
    std::string name = "sgd";
    double lr = 0.1;
    double momentum = 0.0;  // sgd, rmsprop
    double dampening = 0.0;
    bool nesterov = false;
    double weight_decay = 0.0;
    std::vector<double> betas = {0.9, 0.999};
    // Not given: the optimizer's own default, as in PyTorch (1e-8; adagrad 1e-10, adadelta 1e-6).
    std::optional<double> eps;
    // rmsprop's; asgd's when not given is 0.75 (the parser fills in the named optimizer's default).
    double alpha = 0.99;
    bool centered = false;                   // rmsprop
    double lr_decay = 0.0;                   // adagrad
    double initial_accumulator_value = 0.0;  // adagrad
    double momentum_decay = 4e-3;            // nadam
    double rho = 0.9;                        // adadelta
    std::vector<double> etas = {0.5, 1.2};   // rprop: (etaminus, etaplus)
    std::vector<double> step_sizes = {1e-6, 50.0};  // rprop: (min, max) step size
    double lambd = 1e-4;                            // asgd: decay term
    double t0 = 1e6;                                // asgd: the step at which averaging starts
  } optimizer;
  struct Scheduler {
    // constant | step | cosine | multistep | exponential | linear | polynomial | onecycle |
    // cosine_warm_restarts | plateau | cyclic | multiplicative
    std::string name = "constant";
    int64_t warmup_steps = 0;
    double min_lr = 0.0;              // cosine; cosine_warm_restarts' eta_min; plateau's floor
    int64_t step_size = 1000;         // step
    double gamma = 0.1;               // step, multistep, exponential; cyclic's when not given: 1
    std::vector<int64_t> milestones;  // multistep
    double start_factor = 1.0 / 3;    // linear
    double end_factor = 1.0;          // linear
    int64_t total_iters = 5;          // linear, polynomial
    double power = 1.0;               // polynomial
    // onecycle (PyTorch's OneCycleLR over the run's steps)
    double max_lr = 0.0;  // 0: optimizer.lr (cyclic: required)
    double pct_start = 0.3;
    std::string anneal_strategy = "cos";  // cos | linear
    double div_factor = 25.0;
    double final_div_factor = 1e4;
    bool three_phase = false;
    // onecycle and cyclic: SGD's momentum or Adam's beta1, between the two below. Not given with
    // cyclic, the two are CyclicLR's defaults, 0.8 and 0.9 (the parser fills them in).
    bool cycle_momentum = true;
    double base_momentum = 0.85;
    double max_momentum = 0.95;
    // cyclic (PyTorch's CyclicLR, stepped per optimizer step); max_lr, gamma, cycle_momentum and
    // the momenta above are its too.
    std::optional<double> base_lr;  // not given: optimizer.lr
    int64_t step_size_up = 2000;
    std::optional<int64_t> step_size_down;  // not given: step_size_up
    int64_t t_0 = 1000;  // cosine_warm_restarts: the first cycle's steps
    int64_t t_mult = 1;  // cosine_warm_restarts: each cycle's length over the last one's
    // plateau (PyTorch's ReduceLROnPlateau on each validation's val_loss)
    // plateau: min | max; cyclic: triangular | triangular2 | exp_range (its default when not given)
    std::string mode = "min";
    double factor = 0.1;    // plateau's multiplier at a reduction; multiplicative's at every step
    int64_t patience = 10;  // validations
    double threshold = 1e-4;
    std::string threshold_mode = "rel";  // rel | abs
    int64_t cooldown = 0;                // validations
  } scheduler;
  struct Trainer {
    int64_t max_steps = -1;   // -1: use max_epochs; 0: set up and write checkpoints/last only
    int64_t max_epochs = -1;  // -1: use max_steps
    int64_t batch_size = 32;
    int64_t accumulate_grad_batches = 1;
    double clip_grad_norm = 0.0;  // 0: off
    double clip_grad_val = 0.0;   // 0: off
    int64_t val_every = 0;        // steps; 0: off
    int64_t val_batches = 10;
    int64_t log_every = 1;
    int64_t checkpoint_every = 0;  // steps; 0: only checkpoints/last at the end
    int64_t keep_last = 0;         // step-N checkpoints kept; 0: all
    int64_t seed = 0;
    bool deterministic = false;
    // Lightning Trainer's sync_batchnorm: BatchNorm layers become SyncBatchNorm before setup when
    // several processes train (a no-op on one).
    bool sync_batchnorm = false;
    std::string run_dir = "runs/example";
    int64_t sample_tokens = 0;  // text GPT: characters generated at the end (0: none)
    std::string sample_prompt = "\n";
  } trainer;
  struct Logger {
    bool csv = true;
    bool tensorboard = false;
  } logger;
  // LoRA adapters (QLoRA with fabric.precision nf4 / nf4-dq / fp4 / fp4-dq / int8): rank 0 = off.
  struct LoRA {
    int64_t rank = 0;
    double alpha = 16.0;
    double dropout = 0.0;
    std::vector<std::string> target = {"c_attn", "c_proj", "c_fc"};
  } lora;
  // The `fsdp:` section (fabric.strategy fsdp or fsdp_cpu_offload only; an error otherwise), passed
  // to FabricOptions::fsdp. Checked names: sharding_strategy (any case, stored upper-case) and
  // state_dict_type; the policies' module type names are checked against the model when it is built.
  struct Fsdp {
    std::string sharding_strategy = "FULL_SHARD";  // FULL_SHARD | SHARD_GRAD_OP | NO_SHARD | HYBRID_SHARD
    // Module type names (nn::Module::type_name) that become FSDP units. Not given with the gpt
    // model: {"Block"} (one unit per transformer block, the root holding the rest).
    std::vector<std::string> auto_wrap_policy;
    // Module type names whose forward is recomputed in backward.
    std::vector<std::string> activation_checkpointing_policy;
    bool cpu_offload = false;  // true under strategy fsdp_cpu_offload
    std::string state_dict_type = "sharded";  // sharded (one file per rank) | full (one file)
  } fsdp;
  // The `deepspeed:` section (fabric.strategy deepspeed* only) in DeepSpeed's key names, nested
  // (precision/deepspeed_precision.h), kept as JSON for FabricOptions::deepspeed_config; empty:
  // none. Its fp16/bf16 block sets fabric.precision when that is not given; its
  // train_micro_batch_size_per_gpu / gradient_accumulation_steps set trainer.batch_size /
  // trainer.accumulate_grad_batches when those are not given, and must equal them otherwise.
  std::string deepspeed;
  // What the parser did on its own and reports (load_train_config prints them): e.g. the file's
  // fsdp or deepspeed section dropped because fabric.strategy, set on the command line, does not
  // use it (resuming an FSDP run under ddp). Not part of the config: never dumped.
  std::vector<std::string> warnings;
  // The fabric keys whose value the environment gave (Lightning's LT_* variables replacing the
  // config's default), as "fabric.strategy=fsdp (LT_STRATEGY)"; said once on stderr at load. Not
  // part of the config: never dumped (config.yaml holds the values themselves).
  std::vector<std::string> from_environment;
};

// A variable of Lightning's `fabric run` CLI, which passes its options to the program as LT_*
// variables (fabric-api.md §1, §5): LT_STRATEGY=fsdp.
struct EnvironmentSetting {
  std::string variable;
  std::string value;
};
// The LT_ACCELERATOR, LT_STRATEGY, LT_DEVICES, LT_NUM_NODES and LT_PRECISION variables this process
// has (an empty value counts: Lightning's connector takes it too), in that order.
std::vector<EnvironmentSetting> lightning_environment();
// Sets each of those variables that this process has to `config`'s value of its key. The connector
// reads them again when Fabric is built, and the ranks a launcher starts inherit them: after the
// config has folded them in (load_train_config's `environment`), both then see exactly the config's
// values (bf16-mixed where the variable said bf16, which the connector under LT_CLI_USED=1 would
// call a conflict with the config's bf16-mixed), and re-reading the config folds them to the same.
void align_lightning_environment(const TrainConfig& config);
// Removes those variables from this process's environment: after the config has folded them in, for
// a command that launches nothing and resolves Fabrics of its own (fabric-train validate's
// one-process check on the cpu), which the variables would otherwise change.
void clear_lightning_environment();

// Reads and checks the YAML file `path`, applying `overrides` ("trainer.max_steps=10",
// "deepspeed.zero_optimization.stage=2") on top, and prints the config's warnings to stderr. An
// override's value is YAML (`--set` text); one made by string_override is taken as it is.
// ConfigError on any problem: unknown keys ("did you mean ..."), wrong types, out-of-range values,
// unknown choices (strategy names and devices too), a missing file. An explicit null (`init: null`,
// `--set trainer.max_epochs=null`) means the key's default.
// A relative path in it (data.path, data.labels, model.init) is used as it is when it exists from
// the current directory; otherwise it is looked up in the config file's directory, then in
// `search_dirs` in order (fabric-train passes fabric's home), and the path found is the one the
// resolved config holds.
// `environment` (fabric-train passes lightning_environment()) is folded in after the overrides and
// before anything is checked, with the rule Lightning applies to its constructor arguments and the
// CLI's LT_* values: a variable's value becomes its key's (fabric.strategy for LT_STRATEGY) where
// the file and the overrides leave that key at its default (not given, null, or the schema's or
// Lightning's default value: accelerator cpu/auto, strategy auto, devices 1/auto, num_nodes 1,
// precision 32-true); a key they set to another value that disagrees with the variable's is a
// ConfigError naming both. The keys it set are listed in `from_environment`, said on stderr.
TrainConfig load_train_config(const std::string& path,
                              const std::vector<std::string>& overrides = {},
                              const std::vector<std::string>& search_dirs = {},
                              const std::vector<EnvironmentSetting>& environment = {});
// The same from YAML text; `name` stands for the file in messages; relative paths are looked up
// in the current directory, then in `search_dirs`.
TrainConfig parse_train_config(const std::string& yaml, const std::string& name,
                               const std::vector<std::string>& overrides = {},
                               const std::vector<std::string>& search_dirs = {},
                               const std::vector<EnvironmentSetting>& environment = {});
// An override that sets `key` to the string `value` as it is, not read as YAML: a path such as
// "runs/exp #2", "null" or "a: b" stays that path ("key:=value").
std::string string_override(const std::string& key, const std::string& value);
// The resolved configuration as YAML (every key, defaults filled in), readable by load_train_config
// and by YAML 1.1 readers such as PyYAML (numbers always carry a '.': 1.0e-08, not 1e-08).
std::string dump_train_config(const TrainConfig& config);
// Every key with its type, default and meaning, as a Markdown table (fabric-train --help, README).
std::string train_config_schema();

}  // namespace fabric
