// What fabric-train builds from a TrainConfig: the model, the optimizer, the LR schedule, the loss
// function, and the distributed timeout its Fabric takes.
#pragma once
#include <chrono>
#include <memory>

#include "nn/module.h"
#include "optim/lr_scheduler.h"
#include "optim/optimizer.h"
#include "optim/plateau.h"
#include "runtime/train_config.h"

namespace fabric {

// mlp | gpt | cnn with the config's hyper-parameters; `vocab_size` is used when the config's is 0
// (gpt). model.init is not read here: its file loads before or after the precision plugin converts
// the model, as its layout needs (runtime/model_init.h, the trainer's set-up).
std::shared_ptr<nn::Module> build_model(const TrainConfig& cfg, int64_t vocab_size);
std::shared_ptr<optim::Optimizer> build_optimizer(const TrainConfig& cfg, const std::vector<Tensor>& params);
// Null for "constant" without warm-up and for "plateau", which build_plateau_scheduler builds.
// total_steps: the run's optimizer steps (cosine decays over them, onecycle cycles over them).
// Every scheduler steps once per optimizer step (cyclic's and multiplicative's too).
// ConfigError for arguments only the run's length makes bad.
std::unique_ptr<optim::LRScheduler> build_scheduler(const TrainConfig& cfg, optim::Optimizer& opt, int64_t total_steps);
// "plateau": ReduceLROnPlateau, stepped with each validation's val_loss (null for other names).
std::unique_ptr<optim::ReduceLROnPlateau> build_plateau_scheduler(const TrainConfig& cfg,
                                                                  optim::Optimizer& opt);
// LoRA adapters on the layers named in cfg.lora.target (everything else frozen). ConfigError when
// no layer matches.
void add_lora(nn::Module& model, const TrainConfig& cfg);
// FabricOptions::timeout from fabric.timeout (seconds, rounded to the nearest millisecond): the
// limit on every collective and on the rendezvous; FabricOptions' own default (30 min, as
// PyTorch's) when the key is not given.
std::chrono::milliseconds distributed_timeout(const TrainConfig& cfg);
// cross_entropy over the last dim (logits (..., C), integer targets (...)), or an element-wise loss
// (mse, l1, smooth_l1, huber, bce_with_logits) of one target per output value.
Tensor compute_loss(const TrainConfig& cfg, const Tensor& output, const Tensor& target);

}  // namespace fabric
