// Optimizer base: parameter checks, zero_grad/step, per-parameter state and PyTorch-layout
// state_dict/load_state_dict.
#include "optim/optimizer.h"

#include <cmath>
#include <unordered_set>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "tensor/factory.h"

namespace fabric::optim {
namespace {

bool kernel_dtype(DType t) {
  return t == DType::float64 || t == DType::float32 || t == DType::bfloat16 || t == DType::float16;
}

}  // namespace

void Optimizer::step() {
  NoGradGuard no_grad;
  step_impl();
}

Tensor Optimizer::step(const std::function<Tensor()>& closure) {
  FABRIC_CHECK(closure != nullptr, ValueError, name(), ".step: the closure is empty");
  Tensor loss;
  {
    EnableGradGuard grad_on;
    loss = closure();
  }
  step();
  return loss;
}

void Optimizer::zero_grad(bool set_to_none) {
  for (size_t g = 0; g < num_param_groups(); ++g) {
    for (const Tensor& p : group_params(g)) fabric::zero_grad(p, set_to_none);
  }
}

std::vector<Tensor> Optimizer::parameters() const {
  std::vector<Tensor> all;
  for (size_t g = 0; g < num_param_groups(); ++g) {
    const auto& ps = group_params(g);
    all.insert(all.end(), ps.begin(), ps.end());
  }
  return all;
}

const ParamState* Optimizer::state(const Tensor& param) const {
  auto it = state_.find(param.impl());
  return it == state_.end() ? nullptr : &it->second;
}

std::optional<double> Optimizer::initial_lr(size_t group) const {
  FABRIC_CHECK(group < num_param_groups(), IndexError, name(), ": parameter group ", group,
               " out of range (", num_param_groups(), " groups)");
  return group < initial_lrs_.size() ? initial_lrs_[group] : std::nullopt;
}

void Optimizer::set_initial_lr(size_t group, double lr) {
  FABRIC_CHECK(group < num_param_groups(), IndexError, name(), ": parameter group ", group,
               " out of range (", num_param_groups(), " groups)");
  if (initial_lrs_.size() <= group) initial_lrs_.resize(group + 1);
  initial_lrs_[group] = lr;
}

void Optimizer::set_scheduled_group_value(size_t group, const std::string& key, double value) {
  FABRIC_CHECK(group < num_param_groups(), IndexError, name(), ": parameter group ", group,
               " out of range (", num_param_groups(), " groups)");
  if (scheduled_values_.size() <= group) scheduled_values_.resize(group + 1);
  scheduled_values_[group][key] = value;
}

void Optimizer::replace_group_params(size_t group, std::vector<Tensor> params) {
  (void)params;
  throw NotImplementedError(std::string(name()) + ".replace_group_params (group " + std::to_string(group) +
                            "): this optimizer does not support replacing a group's parameters");
}

void Optimizer::check_new_params(const std::vector<Tensor>& params, size_t replacing) const {
  std::unordered_set<const TensorImpl*> seen;
  for (size_t g = 0; g < num_param_groups(); ++g) {
    if (g == replacing) continue;
    for (const Tensor& p : group_params(g)) seen.insert(p.impl());
  }
  std::unordered_set<const TensorImpl*> fresh;
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor& p = params[i];
    FABRIC_CHECK(p.defined(), ValueError, name(), ": parameter ", i, " of the new group is an undefined tensor");
    // A frozen tensor of another dtype (a quantized weight's packed bytes beside LoRA's adapters
    // in model.parameters()) is taken and skipped while it has no gradient, as torch takes it;
    // prepared_grad refuses it if it ever gets one.
    FABRIC_CHECK(kernel_dtype(p.dtype()) || !p.requires_grad(), DTypeError, name(), ": parameter ",
                 i, " of the new group has dtype ", dtype_name(p.dtype()),
                 "; optimizers update float64, float32, bfloat16 or float16 parameters");
    FABRIC_CHECK(is_leaf(p), ValueError, name(), ": can't optimize a non-leaf tensor (parameter ", i,
                 " of the new group, produced by ", grad_fn_name(p), ")");
    FABRIC_CHECK(!seen.count(p.impl()), ValueError, name(), ": parameter ", i,
                 " of the new group already belongs to another parameter group");
    FABRIC_CHECK(fresh.insert(p.impl()).second, ValueError, name(), ": parameter ", i,
                 " appears more than once in the new group");
  }
}

Tensor Optimizer::prepared_grad(const Tensor& param, int64_t index) const {
  Tensor g = param.grad();
  if (!g.defined()) return g;
  FABRIC_CHECK(kernel_dtype(param.dtype()), DTypeError, name(), ": parameter ", index, " has dtype ",
               dtype_name(param.dtype()), "; optimizers update float64, float32, bfloat16 or float16 parameters");
  FABRIC_CHECK(g.sizes() == param.sizes(), ShapeError, name(), ": the gradient of parameter ", index, " has shape ",
               shape_str(g.sizes()), " but the parameter has shape ", shape_str(param.sizes()));
  FABRIC_CHECK(g.device() == param.device(), DeviceError, name(), ": the gradient of parameter ", index,
               " is on ", g.device().str(), " but the parameter is on ", param.device().str());
  FABRIC_CHECK(is_floating(g.dtype()), DTypeError, name(), ": the gradient of parameter ", index, " has dtype ",
               dtype_name(g.dtype()), " (expected a floating dtype)");
  // Kernels take one dtype; a gradient kept in another precision is rounded to the parameter's.
  return g.to(param.dtype()).contiguous();
}

double& Optimizer::step_count(ParamState& st, int64_t index, bool create_if_missing) const {
  if (create_if_missing && !st.count("step"))
    st["step"] = scalar_tensor(0.0, {.dtype = DType::float64});
  auto it = st.find("step");
  FABRIC_CHECK(it != st.end() && it->second.defined() && it->second.numel() == 1 &&
                   it->second.dtype() == DType::float64 && it->second.device().is_cpu(),
               ValueError, name(), ": parameter ", index,
               " has state without a 0-dim float64 'step' on the CPU (was it loaded from another "
               "optimizer?)");
  return *it->second.data<double>();
}

Tensor Optimizer::state_buffer(ParamState& st, const std::string& key, const Tensor& param, int64_t index,
                               bool create_if_missing) const {
  auto it = st.find(key);
  if (it == st.end()) {
    FABRIC_CHECK(create_if_missing, ValueError, name(), ": parameter ", index, " has state but no '", key,
                 "' (was the state loaded from another optimizer or configuration?)");
    Tensor t = zeros(param.sizes(), {.dtype = param.dtype(), .device = param.device()});
    st[key] = t;
    return t;
  }
  const Tensor& t = it->second;
  FABRIC_CHECK(t.defined() && t.sizes() == param.sizes(), ValueError, name(), ": state '", key, "' of parameter ",
               index, " has shape ", t.defined() ? shape_str(t.sizes()) : std::string("<undefined>"),
               " but the parameter has shape ", shape_str(param.sizes()));
  FABRIC_CHECK(t.dtype() == param.dtype(), DTypeError, name(), ": state '", key, "' of parameter ", index,
               " has dtype ", dtype_name(t.dtype()), " but the parameter is ", dtype_name(param.dtype()),
               " (was the model cast after the optimizer stepped? load_state_dict converts state)");
  FABRIC_CHECK(t.device() == param.device(), DeviceError, name(), ": state '", key, "' of parameter ", index,
               " is on ", t.device().str(), " but the parameter is on ", param.device().str());
  FABRIC_CHECK(t.is_contiguous(), ValueError, name(), ": state '", key, "' of parameter ", index,
               " is not contiguous (strides ", shape_str(t.strides()), ")");
  return t;
}

void Optimizer::update_in_place(const Tensor& param, const std::function<void(const Tensor&)>& update) {
  if (param.is_contiguous()) {
    update(param);
  } else {
    Tensor work = param.detach().contiguous();
    update(work);
    Tensor dst = param;
    dst.copy_(work);
  }
  param.storage()->bump_version();
}

Tensor Optimizer::loaded_state_tensor(int64_t index, const std::string& key, const Tensor& t,
                                      const Tensor& p) const {
  const char* who = name();
  if (key == "step") {
    FABRIC_CHECK(t.numel() == 1, ValueError, who, ".load_state_dict: state.", index,
                 ".step must hold one number, got shape ", shape_str(t.sizes()));
    return scalar_tensor(t.item<double>(), {.dtype = DType::float64});
  }
  if (key == "mu_product") {
    // NAdam's running product of momentum coefficients: a float32 CPU scalar, as torch's.
    FABRIC_CHECK(t.numel() == 1, ValueError, who, ".load_state_dict: state.", index,
                 ".mu_product must hold one number, got shape ", shape_str(t.sizes()));
    return scalar_tensor(t.item<double>(), {.dtype = DType::float32});
  }
  if (!is_floating(t.dtype())) return t.detach().clone();
  FABRIC_CHECK(t.sizes() == p.sizes(), ValueError, who, ".load_state_dict: state.", index, ".", key,
               " has shape ", shape_str(t.sizes()), " but parameter ", index, " has shape ",
               shape_str(p.sizes()));
  Tensor c = t.detach().to(p.device()).to(p.dtype());
  if (c.storage() == t.storage()) c = c.clone();  // never alias the caller's tensors
  return c;
}

OptimizerState Optimizer::state_dict() const {
  OptimizerState sd;
  int64_t index = 0;
  for (size_t g = 0; g < num_param_groups(); ++g) {
    GroupState gs{group_hyper_params(g), {}};
    // torch keeps a scheduler's initial_lr in the param group, so it travels with the state: a
    // scheduler built after a load takes it as its base lr, not the lr reached so far.
    if (const std::optional<double> initial = initial_lr(g)) gs.options["initial_lr"] = *initial;
    if (g < scheduled_values_.size())
      for (const auto& [key, value] : scheduled_values_[g]) gs.options[key] = value;
    for (const Tensor& p : group_params(g)) {
      gs.params.push_back(index);
      auto it = state_.find(p.impl());
      if (it != state_.end() && !it->second.empty()) sd.state[index] = it->second;
      ++index;
    }
    sd.param_groups.push_back(std::move(gs));
  }
  return sd;
}

void Optimizer::load_state_dict(const OptimizerState& sd) {
  const char* who = name();
  FABRIC_CHECK(sd.param_groups.size() == num_param_groups(), ValueError, who, ".load_state_dict: the state dict has ",
               sd.param_groups.size(), " parameter groups but the optimizer has ", num_param_groups());
  std::unordered_map<int64_t, Tensor> by_index;
  for (size_t g = 0; g < num_param_groups(); ++g) {
    const auto& params = group_params(g);
    const auto& ids = sd.param_groups[g].params;
    FABRIC_CHECK(ids.size() == params.size(), ValueError, who, ".load_state_dict: parameter group ", g, " holds ",
                 ids.size(), " parameters in the state dict but ", params.size(), " in the optimizer");
    for (size_t j = 0; j < ids.size(); ++j) {
      FABRIC_CHECK(by_index.emplace(ids[j], params[j]).second, ValueError, who, ".load_state_dict: parameter index ",
                   ids[j], " appears more than once in the state dict's param_groups");
    }
  }
  std::unordered_map<const TensorImpl*, ParamState> next;
  for (const auto& [index, saved] : sd.state) {
    auto it = by_index.find(index);
    FABRIC_CHECK(it != by_index.end(), ValueError, who, ".load_state_dict: state.", index,
                 " belongs to no parameter listed in the state dict's param_groups");
    const Tensor& p = it->second;
    ParamState st;
    for (const auto& [key, t] : saved) {
      FABRIC_CHECK(t.defined(), ValueError, who, ".load_state_dict: state.", index, ".", key, " is undefined");
      st[key] = loaded_state_tensor(index, key, t, p);
    }
    next[p.impl()] = std::move(st);
  }
  // torch's load replaces each param group by the saved one: its initial_lr is the saved one, or
  // none when the state has none.
  std::vector<std::optional<double>> initial(num_param_groups());
  std::vector<std::map<std::string, double>> scheduled(num_param_groups());
  for (size_t g = 0; g < num_param_groups(); ++g) {
    const HyperParams& options = sd.param_groups[g].options;
    for (const char* key : kScheduledGroupKeys) {
      if (!options.contains(key)) continue;
      double v = 0;
      read_hyper_param(options, key, v, who);
      scheduled[g][key] = v;
    }
    if (!options.contains("initial_lr")) continue;
    double lr = 0;
    read_hyper_param(options, "initial_lr", lr, who);
    FABRIC_CHECK(std::isfinite(lr), ValueError, who, ".load_state_dict: param_groups.", g,
                 ".initial_lr is ", lr, " (expected a finite number)");
    initial[g] = lr;
  }
  std::vector<HyperParams> hyper;
  for (const GroupState& gs : sd.param_groups) hyper.push_back(gs.options);
  load_group_hyper_params(hyper);  // validates all groups before changing any
  state_ = std::move(next);
  initial_lrs_ = std::move(initial);
  scheduled_values_ = std::move(scheduled);
}

}  // namespace fabric::optim
