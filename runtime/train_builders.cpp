// Model, optimizer, scheduler and loss construction for fabric-train, and its distributed timeout.
#include "runtime/train_builders.h"

#include <algorithm>
#include <cmath>

#include "nn/cnn.h"
#include "nn/gpt.h"
#include "nn/lora.h"
#include "nn/mlp.h"
#include "optim/adadelta.h"
#include "optim/adagrad.h"
#include "optim/adam.h"
#include "optim/adamax.h"
#include "optim/asgd.h"
#include "optim/cyclic_lr.h"
#include "optim/lr_decay.h"
#include "optim/lr_warm_restarts.h"
#include "optim/multiplicative_lr.h"
#include "optim/nadam.h"
#include "optim/one_cycle_lr.h"
#include "optim/plateau.h"
#include "optim/radam.h"
#include "optim/rmsprop.h"
#include "optim/rprop.h"
#include "optim/sgd.h"
#include "runtime/fabric.h"
#include "runtime/model_memory.h"
#include "tensor/ops.h"

namespace fabric {

std::chrono::milliseconds distributed_timeout(const TrainConfig& cfg) {
  if (!cfg.fabric.timeout) return FabricOptions{}.timeout;
  // The config's checks keep it within [0.001, a year]; a TrainConfig built in code is clamped
  // there too (the strategy requires a positive limit; NaN counts as the least).
  const double ms = std::round(*cfg.fabric.timeout * 1000.0);
  constexpr double kYearMs = 365.0 * 24 * 3600 * 1000;
  return std::chrono::milliseconds(static_cast<int64_t>(ms >= 1 ? std::min(ms, kYearMs) : 1.0));
}

std::shared_ptr<nn::Module> build_model(const TrainConfig& cfg, int64_t vocab_size) {
  const auto& m = cfg.model;
  check_model_fits_memory(m, m.vocab_size > 0 ? m.vocab_size : vocab_size, usable_memory_bytes());
  std::shared_ptr<nn::Module> model;
  if (m.name == "mlp") {
    model = nn::make<nn::MLP>({.sizes = m.sizes, .activation = m.activation, .bias = m.bias});
  } else if (m.name == "gpt") {
    const int64_t v = m.vocab_size > 0 ? m.vocab_size : vocab_size;
    FABRIC_CHECK(v > 0, ValueError, "model.vocab_size: 0 means 'from the data', but the data gives no vocabulary");
    model = nn::make<nn::GPT>({.vocab_size = v,
                               .block_size = m.block_size,
                               .n_layer = m.n_layer,
                               .n_head = m.n_head,
                               .n_embd = m.n_embd,
                               .dropout = m.dropout,
                               .bias = m.bias,
                               .gelu = m.gelu});
  } else if (m.name == "cnn") {
    model = nn::make<nn::CNN>({.in_channels = m.in_channels,
                               .image_size = m.image_size,
                               .num_classes = m.num_classes,
                               .channels1 = m.channels1,
                               .channels2 = m.channels2,
                               .batch_norm = m.batch_norm});
  } else {
    throw ConfigError("model.name: unknown model '" + m.name + "'");
  }
  return model;
}

std::shared_ptr<optim::Optimizer> build_optimizer(const TrainConfig& cfg, const std::vector<Tensor>& params) {
  const auto& o = cfg.optimizer;
  if (o.name == "sgd")
    return std::make_shared<optim::SGD>(params, optim::SGDOptions{.lr = o.lr,
                                                                  .momentum = o.momentum,
                                                                  .dampening = o.dampening,
                                                                  .weight_decay = o.weight_decay,
                                                                  .nesterov = o.nesterov});
  if (o.name == "rmsprop")
    return std::make_shared<optim::RMSprop>(
        params, optim::RMSpropOptions{.lr = o.lr,
                                      .alpha = o.alpha,
                                      .eps = o.eps.value_or(optim::RMSpropOptions{}.eps),
                                      .weight_decay = o.weight_decay,
                                      .momentum = o.momentum,
                                      .centered = o.centered});
  if (o.name == "adagrad")
    return std::make_shared<optim::Adagrad>(
        params, optim::AdagradOptions{.lr = o.lr,
                                      .lr_decay = o.lr_decay,
                                      .weight_decay = o.weight_decay,
                                      .initial_accumulator_value = o.initial_accumulator_value,
                                      .eps = o.eps.value_or(optim::AdagradOptions{}.eps)});
  if (o.name == "adadelta")
    return std::make_shared<optim::Adadelta>(
        params, optim::AdadeltaOptions{.lr = o.lr,
                                       .rho = o.rho,
                                       .eps = o.eps.value_or(optim::AdadeltaOptions{}.eps),
                                       .weight_decay = o.weight_decay});
  // torch.optim.Rprop (1.13) takes no weight_decay.
  if (o.name == "rprop")
    return std::make_shared<optim::Rprop>(
        params, optim::RpropOptions{.lr = o.lr,
                                    .etas = {o.etas.at(0), o.etas.at(1)},
                                    .step_sizes = {o.step_sizes.at(0), o.step_sizes.at(1)}});
  if (o.name == "asgd")
    return std::make_shared<optim::ASGD>(params,
                                         optim::ASGDOptions{.lr = o.lr,
                                                            .lambd = o.lambd,
                                                            .alpha = o.alpha,
                                                            .t0 = o.t0,
                                                            .weight_decay = o.weight_decay});
  const std::array<double, 2> betas = {o.betas.at(0), o.betas.at(1)};
  // AdamW's, NAdam's, RAdam's and Adamax's are the same.
  const double eps = o.eps.value_or(optim::AdamOptions{}.eps);
  if (o.name == "nadam")
    return std::make_shared<optim::NAdam>(params,
                                          optim::NAdamOptions{.lr = o.lr,
                                                              .betas = betas,
                                                              .eps = eps,
                                                              .weight_decay = o.weight_decay,
                                                              .momentum_decay = o.momentum_decay});
  if (o.name == "radam")
    return std::make_shared<optim::RAdam>(
        params, optim::RAdamOptions{
                    .lr = o.lr, .betas = betas, .eps = eps, .weight_decay = o.weight_decay});
  if (o.name == "adamax")
    return std::make_shared<optim::Adamax>(
        params, optim::AdamaxOptions{
                    .lr = o.lr, .betas = betas, .eps = eps, .weight_decay = o.weight_decay});
  if (o.name == "adam")
    return std::make_shared<optim::Adam>(
        params,
        optim::AdamOptions{.lr = o.lr, .betas = betas, .eps = eps, .weight_decay = o.weight_decay});
  return std::make_shared<optim::AdamW>(
      params,
      optim::AdamWOptions{.lr = o.lr, .betas = betas, .eps = eps, .weight_decay = o.weight_decay});
}

namespace {

// PyTorch's schedulers by the config's names; null for the names build_scheduler handles itself.
std::unique_ptr<optim::LRScheduler> build_torch_scheduler(const TrainConfig::Scheduler& s,
                                                          optim::Optimizer& opt, int64_t total) {
  if (s.name == "multistep")
    return std::make_unique<optim::MultiStepLR>(opt, s.milestones, s.gamma);
  if (s.name == "exponential") return std::make_unique<optim::ExponentialLR>(opt, s.gamma);
  if (s.name == "linear")
    return std::make_unique<optim::LinearLR>(opt, s.start_factor, s.end_factor, s.total_iters);
  if (s.name == "polynomial")
    return std::make_unique<optim::PolynomialLR>(opt, s.total_iters, s.power);
  if (s.name == "multiplicative") {
    const double factor = s.factor;
    return std::make_unique<optim::MultiplicativeLR>(opt, [factor](int64_t) { return factor; });
  }
  if (s.name == "cyclic")
    return std::make_unique<optim::CyclicLR>(
        opt,
        optim::CyclicOptions{
            .base_lr = {s.base_lr.value_or(opt.lr(0))},
            .max_lr = {s.max_lr},
            .step_size_up = double(s.step_size_up),
            .step_size_down =
                s.step_size_down ? std::optional<double>(double(*s.step_size_down)) : std::nullopt,
            .mode = s.mode,
            .gamma = s.gamma,
            .cycle_momentum = s.cycle_momentum,
            .base_momentum = {s.base_momentum},
            .max_momentum = {s.max_momentum}});
  if (s.name == "cosine_warm_restarts")
    return std::make_unique<optim::CosineAnnealingWarmRestarts>(opt, s.t_0, s.t_mult, s.min_lr);
  if (s.name == "onecycle") {
    const double max_lr = s.max_lr > 0 ? s.max_lr : opt.lr(0);
    return std::make_unique<optim::OneCycleLR>(
        opt, optim::OneCycleOptions{.max_lr = {max_lr},
                                    .total_steps = total,
                                    .pct_start = s.pct_start,
                                    .anneal_strategy = s.anneal_strategy,
                                    .cycle_momentum = s.cycle_momentum,
                                    .base_momentum = {s.base_momentum},
                                    .max_momentum = {s.max_momentum},
                                    .div_factor = s.div_factor,
                                    .final_div_factor = s.final_div_factor,
                                    .three_phase = s.three_phase});
  }
  return nullptr;
}

}  // namespace

std::unique_ptr<optim::LRScheduler> build_scheduler(const TrainConfig& cfg, optim::Optimizer& opt, int64_t total_steps) {
  const auto& s = cfg.scheduler;
  if (s.name == "step") return std::make_unique<optim::StepLR>(opt, s.step_size, s.gamma);
  const int64_t total = std::max<int64_t>(total_steps, 1);
  try {
    // What the config's checks cannot know before the run's length is (OneCycleLR's phases).
    if (auto torch_scheduler = build_torch_scheduler(s, opt, total)) return torch_scheduler;
  } catch (const ValueError& e) {
    throw ConfigError("scheduler: " + std::string(e.what()));
  }
  // The warm-up keeps its length whatever the run's: a run shorter than it (a quick
  // `--set trainer.max_steps=2` of a long config) ends inside it, and one extended by a resume goes
  // on where the uninterrupted run would be (as transformers' schedules do).
  const int64_t warmup = s.warmup_steps;
  if (s.name == "cosine") return std::make_unique<optim::CosineWithWarmup>(opt, warmup, total, s.min_lr);
  // Only constant's lr warms up on its own; plateau's reductions must not be undone by a warm-up
  // that sets the base lr at every step (the config check says a warm-up given to it is ignored).
  if (warmup > 0 && s.name == "constant") return std::make_unique<optim::LinearWarmup>(opt, warmup);
  return nullptr;
}

std::unique_ptr<optim::ReduceLROnPlateau> build_plateau_scheduler(const TrainConfig& cfg,
                                                                  optim::Optimizer& opt) {
  const auto& s = cfg.scheduler;
  if (s.name != "plateau") return nullptr;
  try {
    return std::make_unique<optim::ReduceLROnPlateau>(
        opt, optim::PlateauOptions{.mode = s.mode,
                                   .factor = s.factor,
                                   .patience = s.patience,
                                   .threshold = s.threshold,
                                   .threshold_mode = s.threshold_mode,
                                   .cooldown = s.cooldown,
                                   .min_lr = {s.min_lr}});
  } catch (const ValueError& e) {
    throw ConfigError("scheduler: " + std::string(e.what()));
  }
}

void add_lora(nn::Module& model, const TrainConfig& cfg) {
  // The adapters' size before any is made: rank x (in + out) per targeted layer, so that a rank no
  // memory holds is the config's error (as an oversized model is), not the allocator's.
  double adapter_params = 0;
  // The layers apply_lora will adapt, by its rule (a dotted tail "h.0.attn.c_attn" counts too).
  for (const auto& [path, m] : model.named_modules()) {
    if (!nn::lora_targets(path, cfg.lora.target)) continue;
    try {
      const auto [in, out] = nn::linear_features(*m);
      adapter_params += double(cfg.lora.rank) * double(in + out);
    } catch (const ValueError&) {  // apply_lora names a target that is no linear layer
    }
  }
  const double memory = usable_memory_bytes();
  // The adapters are float32 but under 64-true, whose model is float64 throughout.
  const bool f64 = cfg.fabric.precision == "64-true" || cfg.fabric.precision == "64";
  if (adapter_params * (f64 ? 8.0 : 4.0) > memory)
    throw ConfigError("lora.rank: " + std::to_string(cfg.lora.rank) + " gives adapters of " +
                      std::to_string(static_cast<long long>(std::min(adapter_params, 9e18))) +
                      " parameters (rank x (in + out) per targeted layer), more than this "
                      "machine's memory (RAM and swap, or ulimit -v) holds as " +
                      (f64 ? "float64" : "float32") + "; expected a rank that fits");
  try {
    nn::apply_lora(model, {.rank = cfg.lora.rank, .alpha = cfg.lora.alpha, .dropout = cfg.lora.dropout,
                           .target = cfg.lora.target});
  } catch (const ValueError& e) {
    throw ConfigError(std::string("lora: ") + e.what());  // e.g. no layer matches lora.target
  }
}

Tensor compute_loss(const TrainConfig& cfg, const Tensor& output, const Tensor& target) {
  if (cfg.loss == "cross_entropy") {
    const int64_t classes = output.size(-1);
    return cross_entropy(output.reshape({-1, classes}), target.reshape({-1}).to(DType::int64),
                         /*ignore_index=*/-1);
  }
  // The element-wise losses broadcast as PyTorch's do: class indices (N,) against outputs (N, C)
  // would train on a meaningless number. One target per output value, in any shape ((N,) for
  // (N, 1) too); bce_with_logits' multi-label 0/1 targets as well.
  if (target.numel() != output.numel())
    throw ConfigError("loss: " + cfg.loss + " needs one target per output value, got targets " +
                      shape_str(target.sizes()) + " for the model's output " +
                      shape_str(output.sizes()) + " (class indices need loss: cross_entropy)");
  const Tensor t = target.reshape(output.sizes()).to(output.dtype());
  if (cfg.loss == "mse") return mse_loss(output, t);
  if (cfg.loss == "l1") return l1_loss(output, t);
  if (cfg.loss == "smooth_l1") return smooth_l1_loss(output, t);  // PyTorch's default beta 1
  if (cfg.loss == "huber") return huber_loss(output, t);          // PyTorch's default delta 1
  if (cfg.loss == "bce_with_logits") return binary_cross_entropy_with_logits(output, t);
  throw ConfigError("loss: unknown loss '" + cfg.loss + "'");  // the key's choices keep this out
}

}  // namespace fabric
