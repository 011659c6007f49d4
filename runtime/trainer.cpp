// The fit loop of fabric-train: data, model, optimizer and schedule from the config, training
// through Fabric (precision plugins, clipping, accumulation), validation, logging, atomic
// checkpoints and exact resume (sample and export: trainer_inference.cpp).
#include "runtime/trainer.h"

#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <span>

#include "autograd/grad_mode.h"
#include "distributed/sync_batch_norm.h"
#include "optim/lr_scheduler.h"
#include "precision/registry.h"
#include "runtime/atomic_text_file.h"
#include "runtime/data_loader.h"
#include "runtime/fabric.h"
#include "runtime/model_init.h"
#include "runtime/model_memory.h"
#include "runtime/progress.h"
#include "runtime/prompt.h"
#include "runtime/resume_overrides.h"
#include "runtime/run_directory.h"
#include "runtime/sharded_checkpoint.h"
#include "runtime/tensorboard_logger.h"
#include "runtime/train_builders.h"
#include "runtime/train_precision_plugin.h"
#include "tensor/allocator.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace fabric {
namespace fs = std::filesystem;

namespace {

// The datasets of a run: the training split, an optional validation split, and the vocabulary
// size a GPT takes from them. Reading them writes nothing: the run directory is created only once
// everything that depends on the user's config has been set up.
struct RunData {
  std::shared_ptr<const data::Dataset> train, val;
  int64_t vocab_size = 0;
  std::optional<data::CharVocab> vocab;  // text data: saved as vocab.json
  std::string vocab_json;                // and its content, stored in every checkpoint
};

// An id the GPT cannot embed would fail only at the first batch that holds one, maybe long after
// the run directory was written: the whole file is checked before anything is.
void check_token_ids(const TrainConfig& cfg, int64_t max_id, const char* what) {
  const int64_t vocab = cfg.model.vocab_size;
  if (vocab > 0 && max_id >= vocab)
    throw ConfigError("model.vocab_size: " + std::to_string(vocab) + " is too small for data.path '" + cfg.data.path +
                      "', which holds " + what + " " + std::to_string(max_id) + " (ids must be < vocab_size; 0 takes " +
                      "the largest id + 1)");
}

// Class targets beyond the model's outputs would fail only when their batch comes, with a run
// already written: the whole file is checked here, as a GPT's token ids are (-1 is the ignored
// target of fabric-train's cross_entropy; float targets are class probabilities).
void check_class_targets(const TrainConfig& cfg, const Tensor& targets) {
  const bool cnn = cfg.model.name == "cnn";
  if (cfg.loss != "cross_entropy" || (!cnn && cfg.model.name != "mlp") || cfg.model.sizes.empty() ||
      is_floating(targets.dtype()) || targets.numel() == 0)
    return;
  const int64_t classes = cnn ? cfg.model.num_classes : cfg.model.sizes.back();
  Tensor t = targets.to(DType::int64).contiguous();
  const int64_t* p = t.data<int64_t>();
  const int64_t per_example =
      targets.dim() > 0 && targets.size(0) > 0 ? t.numel() / targets.size(0) : 1;
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (p[i] >= -1 && p[i] < classes) continue;
    const std::string key =
        cnn ? "model.num_classes: " + std::to_string(classes)
            : "model.sizes: the last size, " + std::to_string(classes) + " classes,";
    throw ConfigError(key + " is too small for data.path '" + cfg.data.path +
                      "', which holds target " + std::to_string(p[i]) + " (example " +
                      std::to_string(i / per_example) +
                      "; cross_entropy's targets are class indices in [0, classes), -1 ignored)");
  }
}

// The validation split of `train`. Too small to hold an example, it is data.val_fraction's fault
// (the train split's is data.path's), and no fault at all with validation off (trainer.val_every
// 0): then there is none.
template <typename DatasetT>
std::shared_ptr<const data::Dataset> val_split_of(const TrainConfig& cfg, const DatasetT& train) {
  try {
    return std::make_shared<DatasetT>(train.with_split(data::Split::val));
  } catch (const ValueError& e) {
    if (cfg.trainer.val_every <= 0) return nullptr;
    throw ConfigError("data.val_fraction: " + std::string(e.what()));
  }
}

// The character vocabulary stored in the checkpoint a resume of `run_dir` reads; nullopt where it
// holds none (the resume's own checks report a checkpoint that cannot be read).
std::optional<data::CharVocab> checkpoint_vocab(const std::string& run_dir) {
  try {
    const std::string dir = checkpoint_to_resume(run_dir, /*say=*/false);
    const std::optional<StateEntry> v = read_checkpoint_value(dir, "vocab");
    const std::string* json = v ? std::get_if<std::string>(&v->value()) : nullptr;
    if (json) return data::CharVocab::from_json(*json, dir + " (its vocab)");
  } catch (const IOError&) {
  }
  return std::nullopt;
}

bool first_process_of_node();  // below

// Whether `path` holds `vocab` (false when it cannot be read).
bool vocab_file_is(const std::string& path, const data::CharVocab& vocab) {
  try {
    return data::CharVocab::load(path) == vocab;
  } catch (const IOError&) {
    return false;
  }
}

RunData read_data(const TrainConfig& cfg, const std::string& run_dir, bool resuming) {
  const auto& d = cfg.data;
  RunData r;
  const bool with_val = d.val_fraction > 0;
  const int64_t block = cfg.model.block_size;
  if (d.kind == "text") {
    data::TextDatasetOptions o{.block_size = block, .val_fraction = d.val_fraction};
    const std::string vocab_path = run_dir + "/vocab.json";
    if (resuming) {
      // The checkpoint's own copy: the ids its weights were trained with. vocab.json beside it is
      // a copy for the user; edited or damaged, it would silently shift every id (or stop the run
      // blaming data.path), so it is compared, said, and rewritten from the checkpoint's. A
      // checkpoint without one (written before checkpoints held it) takes vocab.json; with
      // neither, one built anew from today's text.
      o.vocab = checkpoint_vocab(run_dir);
      if (!o.vocab && fs::exists(vocab_path)) {
        o.vocab = data::CharVocab::load(vocab_path);
      } else if (o.vocab && fs::exists(vocab_path) && first_process_of_node()) {
        std::string problem;
        try {
          if (!(data::CharVocab::load(vocab_path) == *o.vocab)) problem = "differs from";
        } catch (const IOError& e) {
          problem = std::string("cannot be read (") + e.what() + "), unlike";
        }
        if (!problem.empty())
          std::cerr
              << "fabric-train: warning: resume: " << vocab_path << " " << problem
              << " the vocabulary the checkpoint holds; the run goes on with the checkpoint's "
                 "(the ids its weights were trained with) and rewrites vocab.json from it\n";
      }
    }
    auto train = std::make_shared<data::TextDataset>(d.path, o);
    const int64_t chars = train->vocab().size();
    if (cfg.model.name == "gpt" && cfg.model.vocab_size > 0 && cfg.model.vocab_size < chars)
      throw ConfigError("model.vocab_size: " + std::to_string(cfg.model.vocab_size) +
                        " is too small for data.path '" + d.path + "', whose characters number " +
                        std::to_string(chars) + " (0 takes the text's vocabulary)");
    if (with_val) r.val = val_split_of(cfg, *train);
    r.vocab_size = train->vocab().size();
    r.vocab = train->vocab();
    r.vocab_json = train->vocab().to_json();
    r.train = train;
  } else if (d.kind == "tokens") {
    auto train = std::make_shared<data::TokenDataset>(
        d.path, data::TokenDatasetOptions{.block_size = block, .val_fraction = d.val_fraction, .vocab_size = cfg.model.vocab_size});
    if (with_val) r.val = val_split_of(cfg, *train);
    r.vocab_size = cfg.model.vocab_size;
    if (cfg.model.name == "gpt") {
      // As for tensors data, vocab_size 0 takes the largest id in the file + 1 (one pass over it).
      const int64_t max_id = train->max_token_id();
      check_token_ids(cfg, max_id, "token id");
      if (r.vocab_size <= 0) r.vocab_size = max_id + 1;
    }
    r.train = train;
  } else if (d.kind == "tensors") {
    auto train = std::make_shared<data::TensorDataset>(d.path, data::TensorDatasetOptions{.val_fraction = d.val_fraction});
    if (with_val) r.val = val_split_of(cfg, *train);
    if (cfg.model.name == "gpt") {
      const int64_t max_input = amax(train->inputs().to(DType::int64)).item<int64_t>();
      check_token_ids(cfg, max_input, "an input id");
      check_token_ids(cfg, amax(train->targets().to(DType::int64)).item<int64_t>(), "a target id");
      if (cfg.model.vocab_size <= 0) r.vocab_size = max_input + 1;
    } else {
      check_class_targets(cfg, train->targets());
    }
    r.train = train;
  } else {  // images
    auto [images, labels] = d.labels.empty()
                                ? data::IdxImageDataset::resolve_paths(d.path)
                                : std::pair<std::string, std::string>{
                                      data::IdxImageDataset::resolve_images(d.path), d.labels};
    // An MLP takes flat vectors: the images are flattened for it whatever data.flatten says.
    const bool flatten = d.flatten || cfg.model.name == "mlp";
    auto train = std::make_shared<data::IdxImageDataset>(
        images, labels, data::IdxImageDatasetOptions{.flatten = flatten, .val_fraction = d.val_fraction});
    check_class_targets(
        cfg, from_vector(std::vector<int64_t>(train->labels().begin(), train->labels().end())));
    if (with_val) r.val = val_split_of(cfg, *train);
    r.train = train;
  }
  return r;
}

// A data file that does not suit the config (too short for block_size, ids beyond vocab_size, the
// wrong tensors) is the config's fault.
RunData load_data(const TrainConfig& cfg, const std::string& run_dir, bool resuming) {
  try {
    return read_data(cfg, run_dir, resuming);
  } catch (const ConfigError&) {
    throw;
  } catch (const Error& e) {
    throw ConfigError("data.path: " + std::string(e.what()));
  }
}

// The checkpoint key of the global batch (batch_size × world size) the data position counts in.
constexpr const char* kGlobalBatchKey = "data.global_batch";

// Where a resume goes on in its epoch when the global batch changed since the checkpoint (another
// trainer.batch_size, fabric.devices or num_nodes): every rank's sampler takes every world-size-th
// index of the epoch's order, so `batch_in_epoch` batches at `saved_global` drew the order's first
// batch_in_epoch × saved_global examples; in batches of `global` that is this many, rounded down
// (the examples of a partial batch are drawn again rather than skipped).
int64_t batch_in_epoch_for(int64_t batch_in_epoch, int64_t saved_global, int64_t global) {
  if (saved_global <= 0 || global <= 0 || saved_global == global) return batch_in_epoch;
  // In 128 bits: a position far into a huge epoch times a large saved batch overflows 64.
  return static_cast<int64_t>(static_cast<__int128>(batch_in_epoch) * saved_global / global);
}

// Where a run starts: step 0 of epoch 0 for a fit; a resume's checkpoint's step and data position.
struct StartPoint {
  int64_t step = 0;
  int64_t epoch = 0;
  int64_t batch_in_epoch = 0;  // batches of `epoch` already drawn (by the run's batch size then)
};

// The step a run ends at: max_steps, the step that finishes epoch max_epochs, or whichever comes
// first when both are set (Lightning's Trainer stops at the first limit reached). As in Lightning,
// an epoch ends with an optimizer step: its last accumulation window may hold fewer micro-batches.
// The epochs a resumed run already went through count (Lightning restores current_epoch): the
// steps left are those of the rest of its epoch and of the epochs after it at today's batches per
// epoch and accumulation, which a resume may have changed.
int64_t steps_for(const TrainConfig& cfg, int64_t batches_per_epoch, const StartPoint& at = {}) {
  const int64_t acc = cfg.trainer.accumulate_grad_batches;
  const int64_t per_epoch = (batches_per_epoch + acc - 1) / acc;
  const int64_t max_steps = cfg.trainer.max_steps, max_epochs = cfg.trainer.max_epochs;
  if (max_epochs < 0) return max_steps;
  int64_t epoch_steps = at.step;  // no epoch left: the run is done
  if (max_epochs > at.epoch) {
    const int64_t rest = batches_per_epoch - std::min(at.batch_in_epoch, batches_per_epoch);
    const int64_t later = max_epochs - at.epoch - 1;
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
    // Epochs past what int64 counts in steps (max_epochs: 2^62, say) are a run without an epoch
    // limit, not a wrapped-around, negative one that stops before its first step.
    epoch_steps = per_epoch > 0 && later > (kMax - at.step - per_epoch) / per_epoch
                      ? kMax
                      : at.step + (rest + acc - 1) / acc + later * per_epoch;
  }
  if (max_steps < 0) return epoch_steps;
  return std::min(max_steps, epoch_steps);
}

// The model as the config describes it (its model.init weights load in Run::set_up, before or
// after the precision plugin converts it).
std::shared_ptr<nn::Module> build_model_from_config(const TrainConfig& cfg, int64_t vocab_size) {
  try {
    return build_model(cfg, vocab_size);
  } catch (const ConfigError&) {
    throw;
  } catch (const Error& e) {
    // Hyper-parameters the model refuses, or a gpt whose vocabulary neither the config nor the
    // data gives (that message names model.vocab_size already).
    const std::string what = e.what();
    throw ConfigError(what.rfind("model.", 0) == 0 ? what : "model (" + cfg.model.name + "): " + what);
  }
}

// The optimizer; options it refuses (nesterov without momentum, say) are the config's fault.
std::shared_ptr<optim::Optimizer> build_optimizer_from_config(const TrainConfig& cfg, const std::vector<Tensor>& params) {
  try {
    return build_optimizer(cfg, params);
  } catch (const ConfigError&) {
    throw;
  } catch (const Error& e) {
    throw ConfigError("optimizer (" + cfg.optimizer.name + "): " + e.what());
  }
}

// Where the ranks other than 0 write what rank 0 prints.
std::ostream& null_stream() {
  static std::ostream null(nullptr);
  return null;
}

// With trainer.sync_batchnorm the batch norms become SyncBatchNorm when there is more than one
// process (convert_sync_batchnorm) and stay as they are with one, so an FSDP policy may name either
// form and means the layers whatever the number of processes: each name of a batch norm type
// stands for the other form too.
bool is_batch_norm_type(const std::string& name) {
  return name == "BatchNorm1d" || name == "BatchNorm2d" || name == "BatchNorm3d" ||
         name == "SyncBatchNorm";
}
std::vector<std::string> with_batch_norm_forms(const TrainConfig& cfg,
                                               std::vector<std::string> names) {
  if (!cfg.trainer.sync_batchnorm || std::none_of(names.begin(), names.end(), is_batch_norm_type))
    return names;
  for (const char* form : {"BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm"})
    if (std::find(names.begin(), names.end(), form) == names.end()) names.push_back(form);
  return names;
}

// FabricOptions::fsdp from the fsdp section (read only under an fsdp strategy).
distributed::FSDPOptions fsdp_options(const TrainConfig& cfg) {
  distributed::FSDPOptions o;
  o.sharding_strategy = distributed::parse_sharding_strategy(cfg.fsdp.sharding_strategy);
  o.auto_wrap_policy = with_batch_norm_forms(cfg, cfg.fsdp.auto_wrap_policy);
  o.activation_checkpointing_policy =
      with_batch_norm_forms(cfg, cfg.fsdp.activation_checkpointing_policy);
  o.cpu_offload = cfg.fsdp.cpu_offload;
  o.state_dict_type = cfg.fsdp.state_dict_type;
  return o;
}

// A policy naming a type the model does not have would silently wrap nothing: name the key instead.
void check_fsdp_policies(const TrainConfig& cfg, const nn::Module& net) {
  std::set<std::string> types{net.type_name()};
  for (const auto& [name, child] : net.named_modules()) types.insert(child->type_name());
  // The adapters are added after this check, and FSDP wraps the model with them: a policy may
  // name their layers (wrapping each LoRA layer is a usual PEFT + FSDP policy).
  if (cfg.lora.rank > 0) types.insert("LoRALinear");
  std::string list;
  for (const auto& t : types) list += (list.empty() ? "" : ", ") + t;
  const bool has_batch_norm = std::any_of(types.begin(), types.end(), is_batch_norm_type);
  auto check = [&](const char* key, const std::vector<std::string>& names) {
    for (const auto& n : names)
      if (!types.count(n) &&
          !(cfg.trainer.sync_batchnorm && has_batch_norm && is_batch_norm_type(n)))
        throw ConfigError(std::string("fsdp.") + key + ": '" + n + "' is not a module type of the " + cfg.model.name +
                          " model (its module types: " + list + ")");
  };
  check("auto_wrap_policy", cfg.fsdp.auto_wrap_policy);
  check("activation_checkpointing_policy", cfg.fsdp.activation_checkpointing_policy);
}

std::string describe(const Tensor& t) { return shape_str(t.sizes()) + " " + std::string(dtype_name(t.dtype())); }

bool is_fsdp(const Fabric& fab) { return fab.strategy() == "fsdp"; }

bool is_fsdp_strategy(const TrainConfig& cfg) {
  std::string s = cfg.fabric.strategy;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s == "fsdp" || s == "fsdp_cpu_offload";
}

// Fabric refuses a fabric section it cannot run (a precision the strategy does not take, a
// strategy for one device given two, devices x num_nodes unlike a launcher's WORLD_SIZE): the
// config's fault, named by the keys the refusal is about — the flags its message names (Fabric's
// messages name the flag they refuse), all of precision and strategy when it names none.
ConfigError fabric_section_error(const TrainConfig& cfg, const Error& e) {
  const std::string what = e.what();
  const auto names = [&](const char* flag) { return what.find(flag) != std::string::npos; };
  const TrainConfig::Fabric& f = cfg.fabric;
  std::vector<std::string> keys;
  if (names("accelerator")) keys.push_back("fabric.accelerator '" + f.accelerator + "'");
  if (names("precision")) keys.push_back("fabric.precision '" + f.precision + "'");
  if (names("strategy")) keys.push_back("fabric.strategy '" + f.strategy + "'");
  if (names("devices")) keys.push_back("fabric.devices " + f.devices);
  if (names("num_nodes")) keys.push_back("fabric.num_nodes " + std::to_string(f.num_nodes));
  if (keys.empty())
    keys = {"fabric.precision '" + f.precision + "'", "fabric.strategy '" + f.strategy + "'"};
  std::string prefix;
  for (size_t i = 0; i < keys.size(); ++i)
    prefix += (i == 0 ? "" : i == 1 ? " with " : ", ") + keys[i];
  return ConfigError(prefix + ": " + what);
}

// Runs `resolve`; the errors with which Fabric refuses a fabric section become ConfigErrors.
template <typename F>
void as_fabric_section_check(const TrainConfig& cfg, F&& resolve) {
  try {
    resolve();
  } catch (const ConfigError&) {
    throw;
  } catch (const ValueError& e) {
    throw fabric_section_error(cfg, e);
  } catch (const DTypeError& e) {
    throw fabric_section_error(cfg, e);
  } catch (const NotImplementedError& e) {
    throw fabric_section_error(cfg, e);
  } catch (const DeviceError& e) {
    // An accelerator this runtime never has (mps, tpu) is the config's fault on any machine; a
    // missing GPU or too few of them is this machine's (exit 1).
    if (std::string(e.what()).find("this runtime supports") == std::string::npos) throw;
    throw fabric_section_error(cfg, e);
  }
}

// The Fabric of a run; ConfigError when it refuses the config's fabric section.
void make_fabric(std::optional<Fabric>& fab, const TrainConfig& cfg, const FabricOptions& options) {
  as_fabric_section_check(cfg, [&] { fab.emplace(options); });
}

// What the Fabric of fit would resolve from the fabric section (fabric-train validate): the
// connector's resolution only, so that a multi-device strategy is checked on one process without
// starting the others. The accelerator is left out: a GPU config validates on a machine without one.
void check_fabric_section(const TrainConfig& cfg) {
  as_fabric_section_check(cfg, [&] {
    ConnectorFlags flags{.accelerator = "cpu",
                         .strategy = cfg.fabric.strategy,
                         .devices = cfg.fabric.devices,
                         .num_nodes = cfg.fabric.num_nodes,
                         .precision = cfg.fabric.precision};
    if (!cfg.deepspeed.empty()) flags.deepspeed = precision::DeepSpeedConfig::from_json_or_path(cfg.deepspeed);
    if ((flags.precision_plugin = precision_plugin_for(cfg, DeviceType::cpu)))
      flags.precision.clear();
    (void)resolve_connector(flags);
  });
}

// Once per node, as load_train_config prints the config's warnings: the ranks the launcher starts
// re-run the command line with LOCAL_RANK >= 1.
bool first_process_of_node() {
  const char* local_rank = std::getenv("LOCAL_RANK");
  return !local_rank || std::string(local_rank) == "0";
}

double peak_rss_mib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;
}

class Run {
 public:
  // `resume_sets`: a resume's --set values in effect ("key=value"), which the errors of a
  // checkpoint that does not fit the config name as the likely cause.
  Run(const TrainConfig& cfg, const FitOptions& opt, bool resuming,
      std::vector<std::string> resume_sets = {}, std::string trained_precision = "")
      : cfg_(cfg),
        out_(*opt.out),
        resuming_(resuming),
        run_dir_(cfg.trainer.run_dir),
        resume_sets_(std::move(resume_sets)),
        trained_precision_(std::move(trained_precision)) {
    interactive_ = opt.interactive.value_or(stdout_is_terminal() && opt.out == &std::cout);
    // The files the config names are recorded absolute in config.yaml and the checkpoints: a
    // `resume` or `sample` started from another directory must read the same files (a relative
    // path would name nothing there, or another file).
    for (std::string* path : {&cfg_.data.path, &cfg_.data.labels, &cfg_.model.init})
      if (!path->empty()) *path = fs::absolute(*path).lexically_normal().string();
  }

  FitResult go() {
    const auto& t = cfg_.trainer;
    // Single-threaded reductions for this run only: an embedding program (the C API's fabric_fit)
    // gets its OpenMP thread count back when the run returns or fails.
    struct OmpThreads {
      int before = omp_get_max_threads();
      ~OmpThreads() { omp_set_num_threads(before); }
    } restore_threads;
    if (t.deterministic) omp_set_num_threads(1);
    // With several devices the other ranks start here, re-running this command line; only rank 0
    // touches the run directory, prints and logs.
    FabricOptions options{.accelerator = cfg_.fabric.accelerator,
                          .strategy = cfg_.fabric.strategy,
                          .devices = cfg_.fabric.devices,
                          .num_nodes = cfg_.fabric.num_nodes,
                          .precision = cfg_.fabric.precision,
                          .timeout = distributed_timeout(cfg_),
                          .deepspeed_config = cfg_.deepspeed};
    // A plugin block (fabric.scaler, ...) passes the plugin itself, as Fabric(plugins=[...]).
    as_fabric_section_check(cfg_, [&] {
      if (auto plugin = precision_plugin_for(cfg_, config_device_type(cfg_))) {
        options.plugins = {plugin};
        options.precision.clear();
      }
    });
    // The config resolved the fsdp section only under an fsdp strategy; ZeRO-3 keeps its own.
    if (is_fsdp_strategy(cfg_)) options.fsdp = fsdp_options(cfg_);
    std::optional<Fabric> made;
    make_fabric(made, cfg_, options);
    Fabric& fab = *made;
    fab.launch();
    const bool rank0 = fab.global_rank() == 0;
    std::ostream& out = rank0 ? out_ : null_stream();

    // Everything that can fail on the user's config comes first, so that a bad config leaves
    // nothing written.
    Fabric::seed_everything(uint64_t(t.seed));
    Parts parts = set_up(fab, is_fsdp(fab));
    RunData& data = parts.data;
    FabricModule& model = parts.model;
    FabricOptimizer& opt = parts.opt;
    optim::Optimizer* optimizer = parts.optimizer.get();
    const std::shared_ptr<nn::Module>& net = parts.net;
    data::DataLoader loader = make_loader(data.train, fab);
    const int64_t total = steps_for(cfg_, loader.batches_per_epoch(), start_point(fab));
    auto scheduler = build_scheduler(cfg_, *optimizer, total);
    plateau_ = build_plateau_scheduler(cfg_, *optimizer);

    // A resume reads its checkpoint before the run directory changes: a checkpoint that does not
    // fit the config (a --set that changed the model) leaves the run resumable as it was.
    int64_t step = 0;
    if (resuming_) step = restore(fab, model, opt, scheduler.get(), loader, rank0);
    const bool validating = t.val_every > 0 && data.val;
    // The config's checks need val_every and val_fraction for plateau; a split too small to hold
    // a validation example is known only now.
    if (plateau_ && !validating)
      throw ConfigError(
          "scheduler.name: plateau steps on val_loss, but data.val_fraction leaves no validation "
          "example");
    if (rank0) create_run_directory(data, validating);
    fab.barrier("run directory");
    if (rank0) {
      if (csv_) fab.add_logger(csv_);
      if (cfg_.logger.tensorboard) {
        auto tensorboard = std::make_shared<TensorBoardLogger>(run_dir_ + "/tensorboard");
        // The steps after the checkpoint's are logged again: TensorBoard purges the earlier
        // run's points from there on (metrics.csv is cut back the same way below).
        if (resuming_) tensorboard->log_session_start(step + 1);
        else if (earlier_tensorboard_)
          tensorboard->log_session_start(0);
        fab.add_logger(tensorboard);
      }
    }
    if (csv_ && resuming_) csv_->truncate_after(step);
    const int64_t first_step = step;

    const bool tokens = data.train->access() == data::Access::windows || cfg_.model.name == "gpt";
    const std::string unit = tokens ? "tokens" : "samples";
    out << "fabric-train: " << cfg_.model.name << " (" << net->num_parameters() << " parameters), "
        << data.train->describe() << ", precision " << fab.precision_name() << ", " << total
        << (total == 1 ? " step" : " steps")
        << (fab.world_size() > 1
                ? ", " + fab.strategy() + " over " + std::to_string(fab.world_size()) + " processes"
                : std::string())
        << (resuming_ ? " (resuming at step " + std::to_string(step) + ")" : "") << "\n";
    Progress progress(out, step, total, t.log_every, interactive_ && rank0, unit);
    cpu_allocator().reset_peak();

    double last_loss = std::nan(""), last_val_loss = std::nan("");
    int64_t last_val_step = 0;
    for (; step < total; ++step) {
      opt.zero_grad();
      double loss_sum = 0;
      int64_t items = 0;
      // The epoch of this step's batches: after an epoch's last batch the loader already counts
      // the next one.
      const int64_t epoch = loader.epoch();
      // The accumulation window: accumulate_grad_batches micro-batches, fewer at the end of an
      // epoch, which ends with an optimizer step as in Lightning (the ranks' loaders agree on it).
      const int64_t window = std::min(t.accumulate_grad_batches, loader.batches_per_epoch() - loader.state().batch_in_epoch);
      for (int64_t micro = 0; micro < window; ++micro) {
        data::Batch b = loader.next();
        // Gradient accumulation: only the last micro-batch's backward communicates.
        auto no_sync = fab.no_backward_sync(model, micro + 1 < window);
        // Throughput counts every rank's items (the ranks draw equal batches).
        items += (tokens ? b.targets.numel() : b.inputs.size(0)) * fab.world_size();
        double value = 0;
        Tensor loss = model.run([&] { return step_loss(model, b, value); });
        // Divided by accumulate_grad_batches also in a shorter window, as Lightning's automatic
        // optimization does: each micro-batch's gradient weighs the same in every step.
        if (t.accumulate_grad_batches > 1) loss = loss * (1.0 / double(t.accumulate_grad_batches));
        fab.backward(loss);
        loss_sum += value;
      }
      loss_sum /= double(window);  // the logged loss: the mean over the window's micro-batches
      if (t.clip_grad_norm > 0) fab.clip_gradients(model, opt, {.max_norm = t.clip_grad_norm, .error_if_nonfinite = false});
      if (t.clip_grad_val > 0) fab.clip_gradients(model, opt, {.clip_val = t.clip_grad_val});
      const double lr = optimizer->lr(0);
      opt.step();
      if (scheduler) scheduler->step();
      // With several processes the logged loss is the mean over the ranks' batches, i.e. the loss
      // of the global batch.
      last_loss = fab.world_size() > 1 ? fab.all_reduce(loss_sum, "mean") : loss_sum;
      const int64_t done = step + 1;
      progress.update(done, epoch, last_loss, lr, items);
      if (done % t.log_every == 0 || done == total) fab.log_dict({{"train_loss", last_loss}, {"lr", lr}}, done);
      if (validating && done % t.val_every == 0) {
        last_val_loss = validate(fab, model, *data.val);
        last_val_step = done;
        fab.log("val_loss", last_val_loss, done);
        if (plateau_) plateau_->step(last_val_loss);  // the lr of the next step on
        progress.message("step " + std::to_string(done) + ": val_loss " + std::to_string(last_val_loss));
      }
      if (t.checkpoint_every > 0 && done % t.checkpoint_every == 0 && done < total) {
        // `last` first, as at the end below: a kill between the two saves then leaves `last` the
        // newest complete checkpoint (the resume point), never behind a step-N of a later step.
        save(fab, model, opt, scheduler.get(), loader, done, data, "last");
        save(fab, model, opt, scheduler.get(), loader, done, data, "step-" + std::to_string(done));
        if (rank0) prune();
      }
    }
    progress.finish();
    for (const auto& l : fab.loggers()) l->finalize();
    FitResult r;
    r.step = step;
    r.last_loss = last_loss;
    r.last_val_loss = last_val_loss;
    r.run_dir = run_dir_;
    // A resume with nothing left to do (max_steps reached) writes nothing: its `last` already holds
    // this state (rewriting it would only fail where the disk is full).
    const std::string last = run_dir_ + "/checkpoints/last";
    const bool nothing_done = resuming_ && step == first_step && complete_checkpoint(last);
    r.last_checkpoint =
        nothing_done ? last : save(fab, model, opt, scheduler.get(), loader, step, data, "last");
    if (!nothing_done && t.checkpoint_every > 0 && step > 0 && step % t.checkpoint_every == 0) {
      save(fab, model, opt, scheduler.get(), loader, step, data, "step-" + std::to_string(step));
      if (rank0) prune();
    }
    out << summary(first_step, step, progress, unit, last_loss, last_val_loss, last_val_step) << "\n";
    if (rank0 && cfg_.model.name == "gpt" && cfg_.data.kind == "text" && t.sample_tokens > 0) {
      // A model that diverged has no distribution to draw from: said, while the run itself (its
      // checkpoints, its metrics) stands as done.
      try {
        r.sample = sample_checkpoint(r.last_checkpoint, configured_sample_prompt(t.sample_prompt),
                                     t.sample_tokens, 0.8, 0, uint64_t(t.seed));
        out << "--- sample ---\n" << r.sample << "\n--------------\n";
      } catch (const ValueError& e) {
        std::cerr << "fabric-train: warning: no sample at the end of the run: " << e.what() << "\n";
      }
    }
    out << "checkpoint: " << r.last_checkpoint << "\n";
    return r;
  }

  // What fit checks before it writes anything, on one CPU process with the config's precision
  // (fabric-train validate and fit --print-config): ConfigError on a problem, nothing written.
  void check() {
    check_fabric_section(cfg_);
    std::optional<Fabric> fab;
    try {
      FabricOptions options{.accelerator = "cpu", .precision = cfg_.fabric.precision};
      if (auto plugin = precision_plugin_for(cfg_, DeviceType::cpu)) {
        options.plugins = {plugin};
        options.precision.clear();
      }
      fab.emplace(options);
    } catch (const Error& e) {
      throw ConfigError("fabric.precision: " + std::string(e.what()));
    }
    Fabric::seed_everything(uint64_t(cfg_.trainer.seed));
    Parts parts = set_up(*fab, is_fsdp_strategy(cfg_));
    (void)make_loader(parts.data.train, *fab);
  }

 private:
  // What a run trains: its data, the model as Fabric set it up and the optimizer.
  struct Parts {
    RunData data;
    std::shared_ptr<nn::Module> net;
    FabricModule model;
    std::shared_ptr<optim::Optimizer> optimizer;
    FabricOptimizer opt;
  };

  // Everything that depends on the user's config, in the order fit needs it: data, model with its
  // init weights, precision conversion, LoRA, optimizer, one example through model and loss. A
  // problem is a ConfigError, found before anything is written.
  Parts set_up(Fabric& fab, bool fsdp) {
    RunData data = load_data(cfg_, run_dir_, resuming_);
    // model.vocab_size 0 took the largest id of the data + 1: config.yaml and the checkpoints
    // keep the size the model was built with, so that a resume on data holding larger ids is
    // refused naming model.vocab_size and data.path, not as a checkpoint that does not fit.
    if (cfg_.model.name == "gpt" && cfg_.model.vocab_size <= 0 && cfg_.data.kind != "text")
      cfg_.model.vocab_size = data.vocab_size;
    std::shared_ptr<nn::Module> net;
    // model.init's file loads where its layout fits: a float file into the model as built (the
    // precision plugin then converts it as any weights), a quantized or FP8 one into the converted
    // layers, which read their own statistics (runtime/model_init.h).
    std::optional<nn::StateDict> init;
    InitStage init_stage = InitStage::built;
    {
      // Bitsandbytes' ignore_modules refuses init_module (as the reference); the tensor context
      // gives the same default dtype, as a Lightning user would build the model then.
      auto guard =
          cfg_.fabric.bitsandbytes.ignore_modules.empty() ? fab.init_module() : fab.init_tensor();
      net = build_model_from_config(cfg_, data.vocab_size);
      if (!cfg_.model.init.empty() && !resuming_) {  // a resume loads the checkpoint's weights
        init = read_init();
        init_stage = model_init_stage(*net, *init);
        if (init_stage == InitStage::built) load_init(*net, *init);
      }
    }
    // As Lightning's Trainer(sync_batchnorm=True): before the precision plugin and the strategy
    // see the model; with one process there is no other batch to synchronise with.
    if (cfg_.trainer.sync_batchnorm && fab.world_size() > 1)
      net = distributed::convert_sync_batchnorm(net);
    if (fsdp) check_fsdp_policies(cfg_, *net);
    // The precision plugin converts the module first (quantized or FP8 layers replace Linear ones),
    // then LoRA adapters go on top, and only then is the module set up: the strategy (DDP's reducer,
    // FSDP's shards) must see the adapters as they will train. setup_module converts again, which
    // leaves converted layers (and the adapters) as they are. The optimizer sees only what is left
    // trainable.
    convert_for_precision(fab.precision(), *net);
    if (init && init_stage == InitStage::converted) load_init(*net, *init);
    if (cfg_.lora.rank > 0) add_lora(*net, cfg_);
    if (init && init_stage == InitStage::with_lora) load_init(*net, *init);
    FabricModule model = fab.setup_module(net);
    std::vector<Tensor> trainable;
    for (const Tensor& p : net->parameters())
      if (p.requires_grad()) trainable.push_back(p);
    auto optimizer = build_optimizer_from_config(cfg_, trainable);
    FabricOptimizer opt = fab.setup_optimizer(*optimizer);
    check_model_fits_data(model, *data.train, fab.device());
    // The prompt of the sample at the end of a text GPT run.
    if (data.vocab && cfg_.model.name == "gpt" && cfg_.trainer.sample_tokens > 0)
      (void)encode_prompt(*data.vocab, configured_sample_prompt(cfg_.trainer.sample_prompt),
                          "trainer.sample_prompt");
    return Parts{std::move(data), net, model, optimizer, opt};
  }

  nn::StateDict read_init() const {
    try {
      return read_model_init(cfg_.model.init);
    } catch (const Error& e) {
      throw ConfigError("model.init: " + cfg_.model.init + ": " + e.what());
    }
  }

  // Weights that do not fit the model are the config's fault; a file saved under another
  // precision, or with other LoRA adapters, says which keys would let it load.
  void load_init(nn::Module& net, const nn::StateDict& file) const {
    try {
      load_model_init(net, file);
    } catch (const Error& e) {
      std::string hint;
      const int64_t rank = lora_rank_saved(file);
      if (rank > 0 && rank != cfg_.lora.rank)
        hint += "; the file holds LoRA adapters of rank " + std::to_string(rank) +
                ": fit with --set lora.rank=" + std::to_string(rank) +
                " and lora.target naming the layers they adapt";
      // A quantized or FP8 file under another precision: that is the cause, whatever the load
      // said first (a tie of the unconverted model, keys of another layout).
      const std::string saved = precision_saved_under(file);
      const std::string ours = precision::canonical_precision(cfg_.fabric.precision);
      if (!saved.empty() && saved != ours)
        throw ConfigError("model.init: " + cfg_.model.init + " was saved under fabric.precision " +
                          saved + ", whose weight layout a model under fabric.precision " + ours +
                          " cannot load: fit with --set fabric.precision=" + saved +
                          " (a file of float weights loads under any precision)" + hint +
                          ". Loading it said: " + e.what());
      throw ConfigError("model.init: " + cfg_.model.init + ": " + e.what() +
                        (hint.empty() ? "" : " (" + hint.substr(2) + ")"));
    }
  }

  // A model the precision plugin cannot convert (bitsandbytes on a model without Linear layers)
  // is the config's fault.
  void convert_for_precision(precision::Precision& plugin, nn::Module& net) const {
    try {
      plugin.convert_module(net);
    } catch (const Error& e) {
      throw ConfigError("fabric.precision: " + cfg_.fabric.precision + " cannot convert the " + cfg_.model.name +
                        " model: " + e.what());
    }
  }

  // trainer.batch_size is per process, as in Lightning; each rank reads its share of the data.
  data::DataLoader make_loader(const std::shared_ptr<const data::Dataset>& train, const Fabric& fab) const {
    const auto& t = cfg_.trainer;
    // Text and token data batch batch_size random windows (not a share of the data set): a huge
    // batch_size failed in the loader with "empty: a int64 tensor of shape (9223372036854775807,)
    // ... overflows", naming neither the key nor the memory. Its int64 inputs and targets alone
    // are a lower bound of what a step holds.
    if (train->access() == data::Access::windows) {
      const double bytes = double(t.batch_size) * double(cfg_.model.block_size) * 16.0;
      const double memory = usable_memory_bytes();
      if (bytes > memory) {
        char buf[256];
        std::snprintf(buf, sizeof buf, "%.3g GiB, more than this machine's %.3g GiB of memory",
                      bytes / (1024.0 * 1024 * 1024), memory / (1024.0 * 1024 * 1024));
        throw ConfigError("trainer.batch_size: " + std::to_string(t.batch_size) +
                          " windows of model.block_size " + std::to_string(cfg_.model.block_size) +
                          " tokens per process take, as int64 inputs and " + "targets alone, " +
                          buf + " (RAM and swap, or ulimit -v); expected a batch that fits");
      }
    }
    try {
      return data::DataLoader(train, {.batch_size = t.batch_size,
                                      .shuffle = cfg_.data.shuffle,
                                      .drop_last = cfg_.data.drop_last,
                                      .seed = uint64_t(t.seed),
                                      .rank = fab.global_rank(),
                                      .world_size = fab.world_size(),
                                      .prefetch = 2,
                                      .device = fab.device()});
    } catch (const ValueError& e) {  // drop_last with fewer examples than a batch
      throw ConfigError("trainer.batch_size: " + std::string(e.what()));
    }
  }

  // trainer.run_dir and its checkpoints/ folder, or an IOError naming the key and the part of the
  // path in the way (a regular file, a read-only or missing mount) rather than std::filesystem's
  // bare "cannot create directories: Not a directory [...]".
  void make_run_directory() const {
    const fs::path checkpoints = fs::path(run_dir_) / "checkpoints";
    std::error_code ec;
    fs::create_directories(checkpoints, ec);
    if (!ec && fs::is_directory(checkpoints)) return;
    std::string why = ec ? ec.message() : "it is not a directory";
    for (fs::path p = checkpoints; !p.empty() && p != p.parent_path(); p = p.parent_path()) {
      std::error_code st;
      if (fs::exists(p, st) && !fs::is_directory(p, st)) {
        why = "'" + p.string() + "' is a file, not a directory";
        break;
      }
    }
    throw IOError("trainer.run_dir: cannot create " + checkpoints.string() + ": " + why +
                  "; expected a directory that can be created and written");
  }

  // Rank 0, once the run is set up: config.yaml, vocab.json, checkpoints/ (without the leftovers
  // of a process killed while saving) and metrics.csv with its header, so that it exists from the
  // start (a max_steps 0 run has only the header).
  void create_run_directory(const RunData& data, bool validating) {
    make_run_directory();
    lock_ = std::make_unique<RunDirectoryLock>(run_dir_);  // before anything in it is touched
    remove_stale_temporaries(run_dir_ + "/checkpoints");
    remove_stale_file_temporaries(run_dir_);
    if (!resuming_) warn_of_earlier_checkpoints();
    if (!resuming_) {
      // metrics.csv starts anew; an earlier run's TensorBoard events stay (the user's files, as
      // Lightning never deletes logs): the new events file starts a session at step 0, which
      // TensorBoard reads as "the earlier points are superseded" (the resume's purge, below).
      const std::string csv = run_dir_ + "/metrics.csv";
      FABRIC_CHECK(!fs::is_directory(csv), IOError, csv,
                   " is a directory; a fit writes its metrics there (move it away)");
      fs::remove(csv);
      earlier_tensorboard_ = fs::exists(run_dir_ + "/tensorboard");
    }
    // Before config.yaml: a resume's metrics.csv that cannot be read (an IOError naming its line)
    // leaves the run directory as it was.
    if (cfg_.logger.csv) {
      std::vector<std::string> columns = {"train_loss", "lr"};
      if (validating) columns.push_back("val_loss");
      csv_ = std::make_shared<CSVLogger>(run_dir_ + "/metrics.csv", /*append=*/resuming_, /*flush_every=*/1, columns);
    }
    write_text_atomically(run_dir_ + "/config.yaml", dump_train_config(cfg_));
    const std::string vocab_path = run_dir_ + "/vocab.json";
    if (data.vocab &&
        (!resuming_ || !fs::exists(vocab_path) || !vocab_file_is(vocab_path, *data.vocab)))
      data.vocab->save(vocab_path);
  }

  // A fit into a run directory that holds an earlier run's checkpoints would mix them with its own
  // (Lightning's ModelCheckpoint warns "Checkpoint directory ... exists and is not empty"). They
  // are the user's: said once, never deleted, and keep_last prunes only this run's.
  void warn_of_earlier_checkpoints() const {
    const std::vector<std::string> earlier = committed_checkpoints(run_dir_ + "/checkpoints");
    if (earlier.empty()) return;
    std::string names;
    for (const auto& n : earlier) names += (names.empty() ? "" : ", ") + n;
    std::cerr << "fabric-train: warning: checkpoint directory " << run_dir_
              << "/checkpoints exists and is not empty: it holds an earlier run's checkpoints ("
              << names
              << "). This fit replaces those it writes under the same names and leaves the others "
                 "(nothing is deleted; keep_last prunes only this run's), and metrics.csv starts "
                 "anew. To continue the earlier run use `fabric-train resume "
              << run_dir_ << "`; to keep the runs apart set another trainer.run_dir.\n";
  }

  // One example through the model and the loss, before anything is written: a model that does not
  // fit the data (an mlp on text, model.sizes[0] unlike the features, a cnn on flat vectors) is a
  // config error here instead of a shape error after the run directory exists. Evaluation mode
  // without gradients, as validate(), and every buffer put back as it was: no state of the run
  // changes (an FP8 layer records its amaxes in its history's row 0 even without gradients, as
  // Transformer Engine's inference does, and they would join the first step's scale update; a
  // run that never saw this example would not have them).
  void check_model_fits_data(FabricModule& model, const data::Dataset& train,
                             const Device& device) {
    if (train.size() <= 0) return;
    const int64_t first = 0;
    data::Batch b = train.get(std::span<const int64_t>(&first, 1));
    b.inputs = b.inputs.to(device);  // where the loaders hand the batches out
    b.targets = b.targets.to(device);
    struct Restore {
      FabricModule& m;
      std::vector<std::pair<Tensor, Tensor>> buffers;  // (the buffer, its value before)
      ~Restore() {
        NoGradGuard no_grad;
        for (auto& [buffer, before] : buffers) buffer.copy_(before);
        m.train();
      }
    } restore{model, {}};
    for (const auto& [name, buffer] : model.module().named_buffers())
      if (buffer.defined()) restore.buffers.emplace_back(buffer, buffer.clone());
    try {
      NoGradGuard no_grad;
      model.eval();
      double value = 0;
      model.run([&] { return step_loss(model, b, value); });
    } catch (const ConfigError&) {
      throw;
    } catch (const Error& e) {
      const std::string key = key_at_fault(b.inputs);
      throw ConfigError((key.empty() ? "model.name: " + cfg_.model.name : key) +
                        " does not fit data.kind " + cfg_.data.kind + " (an example's inputs " +
                        describe(b.inputs) + ", targets " + describe(b.targets) + ", loss " +
                        cfg_.loss + "): " + e.what());
    }
  }

  // The hyper-parameter an example's inputs show to be wrong when the model fails on it (the
  // mlp's input features, the cnn's channels or image size, the gpt's block size); empty when it
  // is the model itself (an mlp on token ids, a cnn on flat vectors).
  std::string key_at_fault(const Tensor& x) const {
    const auto& m = cfg_.model;
    const auto n = [](int64_t v) { return std::to_string(v); };
    if (m.name == "gpt")
      return x.dim() == 2 && x.size(1) > m.block_size
                 ? "model.block_size: " + n(m.block_size) + " (windows of " + n(x.size(1)) + ")"
                 : "";
    if (!is_floating(x.dtype()) || x.dim() == 0) return "";
    // 32-true casts no input (as Lightning's Precision): float64 data (numpy's default) meets
    // float32 weights.
    if (x.dtype() != DType::float32 &&
        precision::canonical_precision(cfg_.fabric.precision) == "32-true")
      return "data.path: its " + std::string(dtype_name(x.dtype())) +
             " inputs (fabric.precision 32-true casts no input, as Lightning's: save them as "
             "float32, or train under 64-true)";
    if (m.name == "mlp" && !m.sizes.empty() && x.size(-1) != m.sizes.front())
      return "model.sizes: the first size, " + n(m.sizes.front()) +
             " input features (the data's have " + n(x.size(-1)) + "),";
    if (m.name == "cnn" && x.dim() == 4 && x.size(1) != m.in_channels)
      return "model.in_channels: " + n(m.in_channels) + " (the data's images have " + n(x.size(1)) +
             ")";
    if (m.name == "cnn" && x.dim() == 4 && (x.size(2) != m.image_size || x.size(3) != m.image_size))
      return "model.image_size: " + n(m.image_size) + " (the data's images are " + n(x.size(2)) +
             "x" + n(x.size(3)) + ")";
    return "";
  }

  // The steps and time of this invocation (a resume says where the run now stands).
  std::string summary(int64_t first_step, int64_t step, const Progress& progress, const std::string& unit,
                      double train_loss, double val_loss, int64_t val_step) const {
    char buf[320];
    const long long steps = step - first_step;
    std::snprintf(buf, sizeof buf, "done: %lld %s in %.1f s, %.0f %s/s", steps,
                  steps == 1 ? "step" : "steps", progress.elapsed_seconds(),
                  progress.items_per_second(), unit.c_str());
    std::string s = buf;
    if (resuming_) s += " (resumed at step " + std::to_string(first_step) + ", now at step " + std::to_string(step) + ")";
    if (!std::isnan(train_loss)) {  // no step ran (max_steps: 0, or a resume of a finished run)
      std::snprintf(buf, sizeof buf, ", final train_loss %.4f", train_loss);
      s += buf;
    }
    if (!std::isnan(val_loss)) {
      std::snprintf(buf, sizeof buf, ", val_loss %.4f", val_loss);
      s += buf;
      if (val_step != step) s += " (step " + std::to_string(val_step) + ")";
    }
    std::snprintf(buf, sizeof buf, ", peak memory %.0f MiB (tensors %.0f MiB)", peak_rss_mib(),
                  double(cpu_allocator().stats().peak_allocated_bytes) / (1 << 20));
    return s + buf;
  }

  // The loss of one batch, computed inside the precision context on the module's own output: a
  // 64-true run keeps float64 through the loss (the reference converts outputs to float32 first,
  // which would round every gradient), while half outputs are widened to float32 so that the loss
  // itself is not computed in 16 bits. `value` receives the loss before any conversion.
  // `rows`: the loss of the batch's first `rows` examples only (validation leaves a
  // DistributedSampler's repeats out); none: the whole batch. No loss at all for 0 rows: value 0,
  // the output returned.
  Tensor step_loss(FabricModule& model, const data::Batch& b, double& value,
                   std::optional<int64_t> rows = std::nullopt) {
    Tensor out = model.module()(model.convert_input(b.inputs));
    if (is_floating(out.dtype()) && itemsize(out.dtype()) < 4) out = out.to(DType::float32);
    Tensor targets = b.targets;
    if (rows && *rows < targets.size(0)) {
      value = 0;
      if (*rows == 0) return out;
      out = out.narrow(0, 0, *rows);
      targets = targets.narrow(0, 0, *rows);
    }
    Tensor loss = compute_loss(cfg_, out, targets);
    value = loss.item<double>();
    return loss;
  }

  // The mean loss over the validation examples (over the targets counted, for token models),
  // whatever the batch size and the number of processes: each batch's mean is weighted by what it
  // averaged over, each process validates its DistributedSampler share (val_batches batches of
  // batch_size), and the sums are all-reduced. 1 process with batches of 2B and 2 with B agree.
  double validate(Fabric& fab, FabricModule& model, const data::Dataset& val) {
    NoGradGuard no_grad;
    model.eval();
    // A fixed seed: every validation sees the same batches.
    data::DataLoader vl(std::shared_ptr<const data::Dataset>(&val, [](const data::Dataset*) {}),
                        {.batch_size = cfg_.trainer.batch_size,
                         .seed = 1234,
                         .rank = fab.global_rank(),
                         .world_size = fab.world_size(),
                         .prefetch = 0,
                         .device = fab.device()});
    const int64_t n = std::min<int64_t>(cfg_.trainer.val_batches, vl.batches_per_epoch());
    // DistributedSampler pads the ranks' shares to one length by repeating examples from the start
    // of the order: rank r's positions j with r + j * W >= size. Those repeats are left out, so
    // that each example counts once, as on one process (Lightning counts them).
    const int64_t W = fab.world_size(), r = fab.global_rank(), B = cfg_.trainer.batch_size;
    const int64_t own = val.access() == data::Access::indexed ? (val.size() - r + W - 1) / W : -1;
    double sum = 0, count = 0;
    for (int64_t i = 0; i < n; ++i) {
      data::Batch b = vl.next();
      // Every rank runs every forward (FSDP gathers in it); only the loss leaves the repeats out.
      const int64_t rows = b.targets.size(0);
      const int64_t keep = own < 0 ? rows : std::clamp<int64_t>(own - i * B, 0, rows);
      double value = 0;
      model.run([&] { return step_loss(model, b, value, keep); });
      if (keep == 0) continue;
      if (keep < rows) b.targets = b.targets.narrow(0, 0, keep);
      const double c = double(terms_of_loss(b.targets));
      if (c > 0) sum += value * c, count += c;
    }
    model.train();
    if (fab.world_size() > 1) {
      const std::vector<double> both = fab.all_reduce(from_vector<double>({sum, count}, {2}), "sum").to_vector<double>();
      sum = both[0], count = both[1];
    }
    return count > 0 ? sum / count : std::nan("");
  }

  // What the configured loss's mean divides by for these targets: the elements (the element-wise
  // losses: mse, l1, ...), or the targets cross_entropy counts (ignore_index -1 left out).
  int64_t terms_of_loss(const Tensor& targets) const {
    if (cfg_.loss != "cross_entropy") return targets.numel();
    return sum(ne(targets, Scalar(-1))).to(DType::int64).item<int64_t>();
  }

  std::string save(Fabric& fab, FabricModule& model, FabricOptimizer& opt, optim::LRScheduler* sched,
                   const data::DataLoader& loader, int64_t step, const RunData& data, const std::string& name) {
    State state{{"model", model}, {"optimizer", opt}, {"step", step}, {"config", dump_train_config(cfg_)}};
    state.emplace(kRunIdKey, run_id_);
    state.emplace(kGlobalBatchKey, cfg_.trainer.batch_size * int64_t(fab.world_size()));
    if (!data.vocab_json.empty()) state.emplace("vocab", data.vocab_json);
    const GeneratorState rng = default_generator().state();
    state.emplace("rng.seed", int64_t(rng.seed));
    state.emplace("rng.offset", int64_t(rng.offset));
    for (const auto& [k, v] : loader.state().to_map()) state.emplace("data." + k, v);
    if (sched)
      for (const auto& [k, v] : sched->state_dict().flatten("scheduler.")) state.emplace(k, v);
    if (plateau_)
      for (const auto& [k, v] : plateau_->state_dict().flatten("scheduler.")) state.emplace(k, v);
    const std::string dir = run_dir_ + "/checkpoints/" + name;
    fab.save(dir, state);
    if (name != "last") own_steps_.insert(step);
    return dir;
  }

  // A resume's step and data position, read from its checkpoint's description before anything is
  // built (the run length, which the schedule is made for, counts the epochs already done). A
  // checkpoint that cannot be read gives a fit's start here; restore() then reports it.
  StartPoint start_point(const Fabric& fab) const {
    if (!resuming_) return {};
    try {
      const std::string dir = checkpoint_to_resume(run_dir_, /*say=*/false);
      const auto read = [&](const char* key) {
        const std::optional<StateEntry> v = read_checkpoint_value(dir, key);
        const int64_t* i = v ? std::get_if<int64_t>(&v->value()) : nullptr;
        return i ? std::max<int64_t>(*i, 0) : 0;
      };
      return {read("step"), read("data.epoch"),
              batch_in_epoch_for(read("data.batch_in_epoch"), read(kGlobalBatchKey),
                                 global_batch(fab))};
    } catch (const Error&) {
      return {};
    }
  }

  // A data position saved under another global batch, moved to the same place of the epoch's
  // order in today's batches (batch_in_epoch_for); an epoch that those batches have finished
  // continues with the next one. Said on stdout when it moves. Checkpoints from before the global
  // batch was saved (0) keep their batch index.
  void regroup_position(data::DataLoaderState& position, int64_t saved_global, const Fabric& fab,
                        const data::DataLoader& loader, bool rank0) const {
    const int64_t global = global_batch(fab);
    if (saved_global <= 0 || saved_global == global || position.batch_in_epoch == 0) return;
    const int64_t was = position.batch_in_epoch;
    position.batch_in_epoch = batch_in_epoch_for(was, saved_global, global);
    if (position.batch_in_epoch >= loader.batches_per_epoch()) {
      ++position.epoch;
      position.batch_in_epoch = 0;
    }
    if (rank0)
      out_ << "fabric-train: resume: the global batch changed from " << saved_global << " to "
           << global << " examples (trainer.batch_size × processes): the run goes on at batch "
           << position.batch_in_epoch << " of epoch " << position.epoch << " (was batch " << was
           << " of " << saved_global << ")\n";
  }

  int64_t global_batch(const Fabric& fab) const {
    return cfg_.trainer.batch_size * int64_t(fab.world_size());
  }

  int64_t restore(Fabric& fab, FabricModule& model, FabricOptimizer& opt, optim::LRScheduler* sched,
                  data::DataLoader& loader, bool rank0) {
    // The schedule as built, before the checkpoint's optimizer state replaces the groups' values:
    // replayed when the checkpoint holds no state this scheduler takes (another scheduler.name).
    const optim::SchedulerState built = sched ? sched->state_dict() : optim::SchedulerState{};
    std::vector<optim::HyperParams> built_groups;
    for (size_t g = 0; g < opt.optimizer().num_param_groups(); ++g)
      built_groups.push_back(opt.optimizer().group_hyper_params(g));
    const std::string dir = checkpoint_to_resume(run_dir_, /*say=*/rank0);
    if (rank0) {
      const std::string aside = set_aside_incomplete_last(run_dir_);
      if (!aside.empty())
        std::cerr << "fabric-train: resume: moved the incomplete " << run_dir_
                  << "/checkpoints/last to " << aside << " (the run saves a new last)\n";
    }
    // The counters (step, rng.*, data.*) come back in `rest`, checked by counter() below.
    State state{{"model", model}, {"optimizer", opt}};
    State rest;
    try {
      rest = fab.load(dir, state);
    } catch (const IOError&) {
      throw;  // unreadable or incomplete files: not the config's fault
    } catch (const DistributedError&) {
      throw;  // a peer that failed to load (it says why) broke the group: not the config's fault
    } catch (const Error& e) {
      // A precision of another weight layout is the cause; --set model.* values may be another.
      const std::string precision = precision_change(dir);
      // data.* too: another text or tokens file gives another vocabulary, so other shapes.
      const std::string model = likely_cause({"model.", "data."}, "model.* or data.*");
      const std::string cause = precision.empty()                  ? model
                                : model.rfind("did --set", 0) == 0 ? precision + "; " + model
                                                                   : precision;
      throw ConfigError("resume: " + dir + " does not fit the config (" + cause + "): " + e.what());
    }
    // The file that holds the counters, for the messages of a damaged one.
    const std::string file = dir + (is_sharded_checkpoint(dir) ? "/meta.json" : "/state.json");
    const int64_t step = counter(rest, "step", file, /*count=*/true);
    // The run's own step-N checkpoints so far, which keep_last goes on pruning (not an earlier
    // run's that a fit into this directory left alone: they hold another run id).
    std::optional<int64_t> run_id;
    if (rest.count(kRunIdKey)) run_id = counter(rest, kRunIdKey, file, /*count=*/false);
    own_steps_ = steps_of_run(run_dir_ + "/checkpoints", step, run_id);
    if (run_id) run_id_ = *run_id;
    const int64_t rng_seed = counter(rest, "rng.seed", file, /*count=*/false);  // a uint64 seed, stored as int64
    const int64_t rng_offset = counter(rest, "rng.offset", file, /*count=*/true);
    std::map<std::string, int64_t> ds;
    std::vector<std::pair<std::string, Tensor>> sched_items;
    for (auto& [k, v] : rest) {
      if (k.rfind("data.", 0) == 0) ds[k.substr(5)] = counter(rest, k, file, /*count=*/k != "data.generator_seed");
      if (k.rfind("scheduler.", 0) == 0) {
        if (!std::holds_alternative<Tensor>(v.value()))
          throw IOError("resume: " + file + ": '" + k + "' is a " + v.kind() +
                        ", not the tensor fabric-train saves there (the checkpoint is damaged or was edited)");
        sched_items.emplace_back(k, std::get<Tensor>(v.value()));
      }
    }
    default_generator().set_state({uint64_t(rng_seed), uint64_t(rng_offset)});
    try {
      data::DataLoaderState position = data::DataLoaderState::from_map(ds);
      regroup_position(position, ds.count("global_batch") ? ds["global_batch"] : 0, fab, loader,
                       rank0);
      loader.set_state(position);
    } catch (const KeyError& e) {
      throw IOError("resume: " + file + " holds no data position (not a checkpoint fabric-train wrote?): " +
                    e.what());
    } catch (const ValueError& e) {
      throw ConfigError(
          "resume: the data position in " + dir + " does not fit the config (" +
          likely_cause({"trainer.batch_size=", "data.", "fabric.devices=", "fabric.num_nodes="},
                       "trainer.batch_size, fabric.devices, fabric.num_nodes or data.*") +
          "): " + e.what());
    }
    // A checkpoint of another scheduler.name holds no state the new scheduler takes (constant
    // none at all, plateau its own kind): the new one takes effect from the resumed step as if it
    // had run from the first step, as the README's resume rules say of a schedule's shape.
    if (plateau_) {
      try {
        plateau_->load_state_dict(optim::PlateauState::unflatten(sched_items, "scheduler."));
      } catch (const ValueError&) {
        // No plateau state: the plateau scheduler starts with no history, from the restored lr.
      }
    }
    if (sched) {
      bool loaded = false;
      try {
        sched->load_state_dict(optim::SchedulerState::unflatten(sched_items, "scheduler."));
        loaded = true;
      } catch (const ValueError&) {
      }
      if (!loaded) replay_schedule(*sched, opt.optimizer(), built, built_groups, step);
      // A resume may lengthen the run (--set trainer.max_steps): the cosine then continues on the
      // new length's curve from the next step, not from the old one's last lr. (A onecycle
      // shortened below the saved step has no lr there: a config error.)
      try {
        sched->reapply();
      } catch (const ValueError& e) {
        throw ConfigError("resume: scheduler: " + std::string(e.what()));
      }
    }
    return step;
  }

  // The schedule `sched` as a run of `steps` steps left it: its built state and the groups'
  // built hyper-parameters (lr, and the momentum onecycle cycles) back, then one step per step.
  static void replay_schedule(optim::LRScheduler& sched, optim::Optimizer& optimizer,
                              const optim::SchedulerState& built,
                              const std::vector<optim::HyperParams>& groups, int64_t steps) {
    for (size_t g = 0; g < groups.size(); ++g) optimizer.set_group_hyper_params(g, groups[g]);
    sched.load_state_dict(built);
    for (int64_t i = 0; i < steps; ++i) sched.step();
  }

  // A resume under another fabric.precision than the run's, whose checkpoint does not load: the
  // weights are stored in the layout of the run's precision (nf4's packed 4-bit weights with their
  // statistics, int8's with its scales, FP8 layers' scaling state), which the new precision's
  // layers do not hold. "" when the precision is the run's.
  std::string precision_change(const std::string& dir) const {
    if (trained_precision_.empty()) return "";
    const std::string now = precision::canonical_precision(cfg_.fabric.precision);
    if (now == trained_precision_) return "";
    return "fabric.precision " + now + " is not the run's " + trained_precision_ +
           ": the checkpoint's weights are stored in " + trained_precision_ +
           "'s layout, which a model under " + now +
           " does not load (fabric.* keys take effect on a resume, but not a precision that "
           "changes the weights' layout); resume with fabric.precision " +
           trained_precision_ +
           ", or fit a new run from the weights: " + fit_from_weights_advice(run_dir_, dir) +
           " (a quantized or FP8 file loads under the precision it was saved with)";
  }

  // Why a checkpoint may not fit the config: the resume's --set values under `prefixes`, or, with
  // none, an edited or damaged checkpoint or config.yaml (the old "did a --set change model.*?"
  // asked it of a resume given no --set at all).
  std::string likely_cause(std::initializer_list<const char*> prefixes,
                           const std::string& keys) const {
    std::string sets;
    for (const std::string& s : resume_sets_)
      for (const char* p : prefixes)
        if (s.rfind(p, 0) == 0) {
          sets += (sets.empty() ? "" : " ") + s;
          break;
        }
    if (!sets.empty()) return "did --set " + sets + " change it?";
    return "no --set changed " + keys +
           ": was the checkpoint or the run's config.yaml edited, or is the checkpoint "
           "damaged?";
  }

  // A counter of the checkpoint's state: an integer, and for a count (all but seeds) not negative.
  // Anything else is a damaged or hand-edited checkpoint file: an IOError (exit 1, as any damaged
  // file; nothing is written yet) naming the file, the key and what it must be, instead of a loop
  // from a negative step. (A config error, exit 2, is a checkpoint that does not fit the config.)
  static int64_t counter(const State& rest, const std::string& key, const std::string& file, bool count) {
    auto it = rest.find(key);
    if (it == rest.end())
      throw IOError("resume: " + file + " holds no '" + key + "' (not a checkpoint fabric-train wrote?)");
    const int64_t* v = std::get_if<int64_t>(&it->second.value());
    if (!v)
      throw IOError("resume: " + file + ": '" + key + "' is a " + it->second.kind() +
                    ", not an integer (the checkpoint is damaged or was edited)");
    if (count && *v < 0)
      throw IOError("resume: " + file + ": '" + key + "' is " + std::to_string(*v) +
                    ", a count that must be >= 0 (the checkpoint is damaged or was edited)");
    return *v;
  }

  void prune() {
    prune_step_checkpoints(run_dir_ + "/checkpoints", cfg_.trainer.keep_last, own_steps_);
    // The steps pruned leave the set, which grew by one per save over a long run otherwise.
    std::erase_if(own_steps_, [&](int64_t step) {
      return !fs::exists(run_dir_ + "/checkpoints/step-" + std::to_string(step));
    });
  }

  TrainConfig cfg_;
  std::ostream& out_;
  bool resuming_;
  bool earlier_tensorboard_ = false;  // a fit found an earlier run's tensorboard/ (kept)
  std::string run_dir_;
  bool interactive_ = false;
  std::unique_ptr<RunDirectoryLock> lock_;  // rank 0, from create_run_directory on
  std::shared_ptr<CSVLogger> csv_;
  // The step-N checkpoints this run wrote (a resume: and those of the run it continues): the only
  // ones keep_last may remove.
  std::set<int64_t> own_steps_;
  // Saved in every checkpoint (kRunIdKey): drawn by a fit, the checkpoint's by a resume. Only
  // rank 0's is written, and only rank 0 prunes.
  int64_t run_id_ =
      static_cast<int64_t>((uint64_t(std::random_device{}()) << 32) ^ std::random_device{}());
  std::vector<std::string> resume_sets_;
  // A resume's: fabric.precision as the run was trained (config.yaml's before the --set values).
  std::string trained_precision_;
  // scheduler.name plateau: stepped with each validation's val_loss; its state is saved and
  // restored with the checkpoints under "scheduler." as a per-step scheduler's is.
  std::unique_ptr<optim::ReduceLROnPlateau> plateau_;
};

}  // namespace

FitResult fit(const TrainConfig& cfg, const FitOptions& options) { return Run(cfg, options, false).go(); }

void check_fit_config(const TrainConfig& cfg) { Run(cfg, {}, false).check(); }

FitResult resume(const std::string& run_dir, const std::vector<std::string>& overrides, const FitOptions& options) {
  const std::string path = run_dir + "/config.yaml";
  // A directory that exists but is no run is not what resume reads (exit 1, as sample and export
  // say of a directory that is no checkpoint); fabric-train refuses a RUN_DIR that does not exist
  // before calling this (exit 2).
  if (!fs::exists(path)) throw IOError(path + ": not a run directory (no config.yaml)");
  ResumeOverrides o = split_resume_overrides(path, run_dir, overrides);
  if (!o.ignored.empty() && first_process_of_node())
    std::cerr << "fabric-train: warning: " << o.warning(run_dir) << "\n";
  if (first_process_of_node())
    if (const std::string drift = config_drift_warning(path, run_dir); !drift.empty())
      std::cerr << "fabric-train: warning: " << drift << "\n";
  std::vector<std::string> sets = o.effective;
  o.effective.push_back(string_override("trainer.run_dir", run_dir));
  // The weights are the checkpoint's: model.init's file, which may be gone by now, is neither
  // looked for nor read; config.yaml keeps naming it.
  o.effective.push_back("model.init=");
  // As fit's config, the run's folds in Lightning's LT_* variables (config.yaml holds what the
  // run was fit with, so the same variables agree with it), and the environment is set to agree.
  TrainConfig cfg = load_train_config(path, o.effective, {}, lightning_environment());
  cfg.model.init = o.model_init;
  align_lightning_environment(cfg);
  return Run(cfg, options, true, std::move(sets), o.trained_precision).go();
}

}  // namespace fabric
