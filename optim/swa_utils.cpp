// torch.optim.swa_utils: AveragedModel, update_bn and SWALR.
#include "optim/swa_utils.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>
#include <optional>
#include <string>
#include <utility>

#include "autograd/grad_mode.h"
#include "nn/lazy_module.h"
#include "nn/normalization.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

// SWALR's formulas round as torch's Python does, one operation at a time (see lr_scheduler.cpp).
#pragma GCC optimize("fp-contract=off")

namespace fabric::optim {

Tensor equal_average(const Tensor& averaged, const Tensor& current, int64_t num_averaged) {
  const Tensor a = averaged.is_floating_point() ? averaged : averaged.to(DType::float64);
  const Tensor c = current.is_floating_point() ? current : current.to(DType::float64);
  return add(a, div(sub(c, a), Scalar(static_cast<double>(num_averaged + 1))));
}

AvgFn ema_avg_fn(double decay) {
  FABRIC_CHECK(decay >= 0 && decay <= 1, ValueError, "ema_avg_fn: decay must be in [0, 1], got ",
               decay);
  return [decay](const Tensor& averaged, const Tensor& current, int64_t) {
    const Tensor a = averaged.is_floating_point() ? averaged : averaged.to(DType::float64);
    const Tensor c = current.is_floating_point() ? current : current.to(DType::float64);
    return add(mul(a, Scalar(decay)), mul(c, Scalar(1.0 - decay)));
  };
}

namespace {

// Parameters, then buffers with use_buffers (torch's itertools.chain of the two).
std::vector<Tensor> averaged_tensors(const nn::Module& m, bool use_buffers) {
  std::vector<Tensor> out = m.parameters();
  if (use_buffers) {
    for (Tensor& b : m.buffers()) out.push_back(std::move(b));
  }
  return out;
}

// What deepcopy gives each of `copy`'s tensors (matched to `model`'s by name): the original's
// values, dtype, device and layout, and for parameters its requires_grad. set_data keeps each
// handle's identity, so the layers' members see the change.
void copy_tensors_from(const nn::Module& model, const nn::Module& copy) {
  NoGradGuard no_grad;
  const auto take = [](const nn::Module::NamedTensors& from, const nn::Module::NamedTensors& to,
                       bool parameters) {
    const std::map<std::string, Tensor> mine(to.begin(), to.end());
    for (const auto& [name, original] : from) {
      const auto it = mine.find(name);
      if (it == mine.end()) continue;
      Tensor t = it->second;
      t.set_data(original.detach().clone());
      if (parameters) t.set_requires_grad(original.requires_grad());
    }
  };
  take(model.named_parameters(), copy.named_parameters(), true);
  take(model.named_buffers(), copy.named_buffers(), false);
}

// Each of `copy`'s modules takes the training flag of the model's module of its name. train() sets
// a module's whole subtree, so the modules go in pre-order: descendants are set after it.
void copy_training_flags(const nn::Module& model, nn::Module& copy) {
  copy.train(model.is_training());
  std::map<std::string, std::shared_ptr<nn::Module>> mine;
  for (const auto& [name, m] : copy.named_modules()) mine.emplace(name, m);
  for (const auto& [name, m] : model.named_modules()) {
    const auto it = mine.find(name);
    if (it != mine.end()) it->second->train(m->is_training());
  }
}

}  // namespace

AveragedModel::AveragedModel(const nn::Module& model, const Factory& make_copy, AvgFn avg_fn,
                             bool use_buffers)
    : avg_fn_(avg_fn ? std::move(avg_fn) : AvgFn(equal_average)), use_buffers_(use_buffers) {
  FABRIC_CHECK(make_copy != nullptr, ValueError, "AveragedModel: make_copy is empty");
  std::shared_ptr<nn::Module> copy = make_copy();
  FABRIC_CHECK(copy != nullptr, ValueError, "AveragedModel: make_copy returned no module");
  FABRIC_CHECK(copy.get() != &model, ValueError,
               "AveragedModel: make_copy returned the model itself; it must build a new module");
  // load_state_dict checks that the copy has the model's keys and shapes (ValueError listing
  // them); then each tensor and module takes what deepcopy would give it.
  copy->load_state_dict(model.state_dict());
  copy_tensors_from(model, *copy);
  copy_training_flags(model, *copy);
  module_ = register_module("module", copy);
  n_averaged_ = register_buffer("n_averaged", zeros({}, {.dtype = DType::int64}));
}

int64_t AveragedModel::n_averaged() const { return n_averaged_.item<int64_t>(); }

void AveragedModel::update_parameters(const nn::Module& model) {
  const std::vector<Tensor> mine = averaged_tensors(*module_, use_buffers_);
  const std::vector<Tensor> theirs = averaged_tensors(model, use_buffers_);
  // torch zips the two lists; a model of another architecture would be averaged into the wrong
  // tensors, so the counts and shapes must match.
  const char* what = use_buffers_ ? "parameters and buffers" : "parameters";
  FABRIC_CHECK(mine.size() == theirs.size(), ValueError,
               "AveragedModel.update_parameters: the model has ", theirs.size(), " ", what,
               " but the averaged copy has ", mine.size());
  for (size_t i = 0; i < mine.size(); ++i) {
    FABRIC_CHECK(mine[i].sizes() == theirs[i].sizes(), ValueError,
                 "AveragedModel.update_parameters: tensor ", i, " of the model's ", what,
                 " has shape ", shape_str(theirs[i].sizes()), " but the averaged copy's has ",
                 shape_str(mine[i].sizes()));
  }
  NoGradGuard no_grad;
  const int64_t n = n_averaged();
  for (size_t i = 0; i < mine.size(); ++i) {
    Tensor target = mine[i].detach();
    const Tensor current = theirs[i].detach().to(target.device());
    if (n == 0) {
      target.copy_(current);
    } else {
      target.copy_(avg_fn_(target, current, n));
    }
  }
  n_averaged_.add_(1);
}

Tensor AveragedModel::forward(const Tensor& x) { return (*module_)(x); }

namespace {

// torch's update_bn reads every BatchNorm's running statistics (zeros_like(running_mean)): one
// built with track_running_stats=false has none, and torch raises TypeError there.
void check_running_stats(const nn::Module& m, const std::string& name) {
  const auto* bn = nn::as_layer<nn::BatchNorm>(m);
  FABRIC_CHECK(bn == nullptr || (bn->running_mean.defined() && bn->running_var.defined()),
               ValueError, "update_bn: ", m.type_name(), " '", name,
               "' has no running statistics to recompute (track_running_stats=false); torch "
               "1.13 raises TypeError here too");
}

}  // namespace

void update_bn(const std::vector<Tensor>& batches, nn::Module& model) {
  check_running_stats(model, "<model>");
  for (const auto& [name, m] : model.named_modules()) check_running_stats(*m, name);
  std::vector<std::pair<nn::BatchNorm*, std::optional<double>>> momenta;
  model.apply([&](nn::Module& m) {
    if (auto* bn = nn::as_layer<nn::BatchNorm>(m)) {
      bn->running_mean.zero_();
      bn->running_var.fill_(1);
      momenta.emplace_back(bn, bn->options().momentum);
    }
  });
  if (momenta.empty()) return;
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.train();
  for (auto& [bn, momentum] : momenta) {
    bn->set_momentum(std::nullopt);
    if (bn->num_batches_tracked.defined()) bn->num_batches_tracked.zero_();
  }
  for (const Tensor& batch : batches) model(batch);
  for (auto& [bn, momentum] : momenta) bn->set_momentum(momentum);
  model.train(was_training);
}

SWALR::SWALR(Optimizer& optimizer, std::vector<double> swa_lrs, int64_t anneal_epochs,
             const std::string& anneal_strategy)
    : LRScheduler(optimizer, "SWALR"), anneal_epochs_(anneal_epochs) {
  const size_t groups = optimizer.num_param_groups();
  if (swa_lrs.size() == 1) swa_lrs.assign(groups, swa_lrs[0]);
  FABRIC_CHECK(swa_lrs.size() == groups, ValueError,
               "SWALR: swa_lr must have the same length as optimizer.param_groups: swa_lr has ",
               swa_lrs.size(), ", optimizer.param_groups has ", groups);
  FABRIC_CHECK(anneal_strategy == "cos" || anneal_strategy == "linear", ValueError,
               "SWALR: anneal_strategy must be one of 'cos' or 'linear', instead got '",
               anneal_strategy, "'");
  FABRIC_CHECK(anneal_epochs >= 0, ValueError,
               "SWALR: anneal_epochs must be equal or greater than 0, got ", anneal_epochs);
  swa_lrs_ = std::move(swa_lrs);
  cosine_ = anneal_strategy == "cos";
  // torch's group['swa_lr'] = swa_lr: the optimizer's state carries it.
  for (size_t g = 0; g < groups; ++g) optimizer.set_scheduled_group_value(g, "swa_lr", swa_lrs_[g]);
  initial_step();
}

std::vector<double> SWALR::swa_lrs() const {
  const Optimizer& opt = optimizer();
  std::vector<double> out;
  for (size_t g = 0; g < opt.num_param_groups(); ++g) {
    const std::optional<double> saved = opt.scheduled_group_value(g, "swa_lr");
    FABRIC_CHECK(saved || g < swa_lrs_.size(), KeyError, "SWALR: parameter group ", g,
                 " has no 'swa_lr' (added after the scheduler was built)");
    out.push_back(saved ? *saved : swa_lrs_[g]);
  }
  return out;
}

double SWALR::anneal(double t) const {
  return cosine_ ? (1 - std::cos(std::numbers::pi * t)) / 2 : t;
}

void SWALR::step() {
  ++step_count_;
  try {
    LRScheduler::step();
  } catch (...) {  // a group without swa_lr: the step changed nothing
    --step_count_;
    throw;
  }
}

void SWALR::step_to(int64_t epoch) {
  ++step_count_;
  try {
    LRScheduler::step_to(epoch);
  } catch (...) {
    --step_count_;
    throw;
  }
}

void SWALR::initial_step_again() {
  step_count_ = 0;
  step();
}

SchedulerState SWALR::state_dict() const {
  SchedulerState s = LRScheduler::state_dict();
  s.extra = {{"_step_count", static_cast<double>(step_count_)}};
  return s;
}

void SWALR::load_state_dict(const SchedulerState& s) {
  std::optional<double> count;
  for (const auto& [name, value] : s.extra)
    if (name == "_step_count") count = value;
  FABRIC_CHECK(!count || (*count >= 0 && *count == std::floor(*count) && *count < 9.2e18),
               ValueError, "SWALR.load_state_dict: expected an integer _step_count >= 0, got ",
               count.value_or(0));
  LRScheduler::load_state_dict(s);
  step_count_ = count ? static_cast<int64_t>(*count) : last_epoch_ + 1;
}

// torch's SWALR.get_lr, from its _step_count - 1: the lr the annealing started from is recovered
// from the current lr and the previous step's alpha, then moved to this step's.
std::vector<double> SWALR::get_lr() const {
  int64_t step = step_count_ - 1;
  if (anneal_epochs_ == 0) step = std::max<int64_t>(1, step);
  const double span = static_cast<double>(std::max<int64_t>(1, anneal_epochs_));
  const double prev_t = std::max(0.0, std::min(1.0, static_cast<double>(step - 1) / span));
  const double prev_alpha = anneal(prev_t);
  const double t = std::max(0.0, std::min(1.0, static_cast<double>(step) / span));
  const double alpha = anneal(t);
  std::vector<double> lrs = current_lrs();
  const std::vector<double> swa = swa_lrs();
  for (size_t g = 0; g < lrs.size(); ++g) {
    const double start =
        prev_alpha == 1 ? swa[g] : (lrs[g] - prev_alpha * swa[g]) / (1 - prev_alpha);
    lrs[g] = swa[g] * alpha + start * (1 - alpha);
  }
  return lrs;
}

}  // namespace fabric::optim
