// The optimizer base: parameter groups with their hyper-parameters, per-parameter state,
// zero_grad/step, and state_dict/load_state_dict in PyTorch's layout. Updates happen in place on
// the parameters' storage: the optimizer and the module share the same tensors.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "optim/state_dict.h"
#include "tensor/tensor.h"

namespace fabric::optim {

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;  // a copy would alias the state tensors
  Optimizer& operator=(const Optimizer&) = delete;
  Optimizer(Optimizer&&) = default;
  Optimizer& operator=(Optimizer&&) = default;

  // "SGD", "Adam", "AdamW": used in error messages.
  const char* name() const { return name_; }
  // Expires when this optimizer is destroyed or another is move-assigned into it: lets Fabric tell a
  // new optimizer at a reused address from one it set up, without holding on to anything of it.
  std::weak_ptr<const void> lifetime() const { return lifetime_.token; }

  // Updates every parameter that has a gradient (parameters without one are skipped), without
  // recording autograd history.
  void step();
  // Runs `closure` with grad mode on (it re-evaluates the model and returns the loss), then
  // steps; returns the closure's loss, as PyTorch's step(closure). Virtual because an optimizer
  // such as LBFGS calls the closure itself, several times per step (Fabric's precision plugins
  // reach it through this base).
  virtual Tensor step(const std::function<Tensor()>& closure);
  // Clears every parameter's .grad: undefined (set_to_none, PyTorch's default) or zero-filled.
  void zero_grad(bool set_to_none = true);

  // ---- groups, type-erased (schedulers, Fabric, checkpoints) -------------------------------
  virtual size_t num_param_groups() const = 0;
  virtual const std::vector<Tensor>& group_params(size_t group) const = 0;
  virtual double lr(size_t group) const = 0;
  virtual void set_lr(size_t group, double lr) = 0;
  // The group's hyper-parameters under PyTorch's names (lr, betas, eps, weight_decay, ...).
  virtual HyperParams group_hyper_params(size_t group) const = 0;
  // Sets the keys `changes` names (PyTorch's names, as group_hyper_params gives them), leaving the
  // rest: how OneCycleLR cycles SGD's momentum or Adam's beta1. The group's options are checked as
  // a new group's are (SGD's Nesterov needs are checked on the constructor's options only, as
  // torch's); ValueError, nothing changed when a value is bad.
  virtual void set_group_hyper_params(size_t group, const HyperParams& changes) = 0;
  // PyTorch's param_group['initial_lr']: the first scheduler built on this optimizer records each
  // group's lr here (OneCycleLR its own start), and every scheduler takes it as its base lr, so
  // that schedulers composed on one optimizer (SequentialLR, ChainedScheduler) scale the same lrs.
  // Empty until a scheduler sets it. Saved in state_dict as param_groups.<g>.initial_lr, as torch
  // saves it; load_state_dict takes the saved one (none when the state has none).
  std::optional<double> initial_lr(size_t group) const;
  void set_initial_lr(size_t group, double lr);
  // The other numbers a torch scheduler keeps in a param group (OneCycleLR's max_lr, min_lr,
  // max_momentum, base_momentum; SWALR's swa_lr), saved as param_groups.<g>.<key> so that torch
  // can resume the schedule from fabric's state; load_state_dict takes the saved ones, and drops
  // those the state lacks, for the keys of kScheduledGroupKeys.
  void set_scheduled_group_value(size_t group, const std::string& key, double value);
  // The value of `key` in group `group` (set, or loaded), none when the group has none.
  std::optional<double> scheduled_group_value(size_t group, const std::string& key) const {
    if (group >= scheduled_values_.size()) return std::nullopt;
    const auto it = scheduled_values_[group].find(key);
    if (it == scheduled_values_[group].end()) return std::nullopt;
    return it->second;
  }
  static constexpr const char* kScheduledGroupKeys[] = {"max_lr", "min_lr", "max_momentum",
                                                        "base_momentum", "swa_lr"};
  // Every parameter of every group, in param_groups order (the indices of state_dict).
  std::vector<Tensor> parameters() const;
  // Makes group `group` update `params` instead of its current parameters, keeping its
  // hyper-parameters (schedulers keep working) and dropping the old parameters' state: how a
  // sharding strategy makes the user's optimizer step only this rank's flat shard. The new
  // parameters are checked as add_param_group checks them (they may not belong to another group).
  virtual void replace_group_params(size_t group, std::vector<Tensor> params);

  // The state of one parameter (PyTorch's optimizer.state[p]); null before its first step.
  const ParamState* state(const Tensor& param) const;

  // PyTorch's layout. The state tensors are the live ones (not copies).
  OptimizerState state_dict() const;
  // Checks the group count, each group's parameter count and each state tensor's shape against
  // this optimizer's parameters (ValueError naming the offending group/index/key), then replaces
  // the state with copies converted to each parameter's dtype and device (`step` stays float64)
  // and takes the groups' hyper-parameters. Nothing changes when a check fails.
  void load_state_dict(const OptimizerState& sd);

 protected:
  explicit Optimizer(const char* name) : name_(name) {}
  virtual void step_impl() = 0;
  // Validates and applies every group's saved hyper-parameters at once (all or nothing).
  virtual void load_group_hyper_params(const std::vector<HyperParams>& groups) = 0;
  // load_state_dict's copy of the saved state tensor `key` of parameter `index` (`param`), checked
  // and converted (ValueError when it does not fit). The default handles per-parameter state:
  // "step", "mu_product" and tensors shaped like the parameter; LBFGS keeps flat, whole-model state.
  virtual Tensor loaded_state_tensor(int64_t index, const std::string& key, const Tensor& saved,
                                     const Tensor& param) const;

  // Checks parameters about to join a group: defined, floating point, leaves, not in any group yet
  // (ValueError/DTypeError naming the optimizer and the parameter's position).
  // `replacing` names a group whose current parameters are about to leave (replace_group_params).
  void check_new_params(const std::vector<Tensor>& params, size_t replacing = SIZE_MAX) const;
  // Forgets the state of `param` (its tensors are freed once nothing else holds them).
  void drop_state(const Tensor& param) { state_.erase(param.impl()); }
  ParamState& state_for(const Tensor& param) { return state_[param.impl()]; }

  // The gradient of `param` ready for a fused kernel (contiguous, the parameter's dtype), or an
  // undefined tensor when it has none. Throws for unsupported dtypes or mismatched shapes.
  Tensor prepared_grad(const Tensor& param, int64_t index) const;
  // The state tensor `key` of `param`, checked against the parameter (shape, dtype, device,
  // contiguity); created zero-filled (`create` true) when absent, else ValueError.
  Tensor state_buffer(ParamState& st, const std::string& key, const Tensor& param, int64_t index,
                      bool create_if_missing) const;
  // The parameter's step count (a 0-dim float64 CPU tensor, PyTorch's state['step']), created at 0
  // when `create_if_missing`; ValueError when it is absent or of another kind (state loaded from
  // another optimizer).
  double& step_count(ParamState& st, int64_t index, bool create_if_missing) const;
  // Runs `update(target)` on the parameter's storage: the parameter itself when contiguous, else
  // a contiguous copy that is written back afterwards.
  static void update_in_place(const Tensor& param, const std::function<void(const Tensor&)>& update);

 private:
  const char* name_;
  std::unordered_map<const TensorImpl*, ParamState> state_;
  std::vector<std::optional<double>> initial_lrs_;  // by group; shorter when later groups have none
  std::vector<std::map<std::string, double>> scheduled_values_;  // by group, likewise
  // Every object keeps its own token: moves carry the contents, not the identity.
  struct Lifetime {
    std::shared_ptr<const bool> token = std::make_shared<const bool>(true);
    Lifetime() = default;
    Lifetime(Lifetime&&) : Lifetime() {}
    Lifetime& operator=(Lifetime&&) {
      token = std::make_shared<const bool>(true);
      return *this;
    }
  };
  Lifetime lifetime_;
};

// A group: its parameters and its hyper-parameters. Edit `options` freely (e.g. the lr); add
// parameters with add_param_group, which checks them.
template <class Options>
struct ParamGroup {
  std::vector<Tensor> params;
  Options options{};
};

// An optimizer whose groups hold `Options`. Options types provide (found by ADL):
//   void validate_options(const Options&)                       ValueError for bad values
//   HyperParams to_hyper_params(const Options&)
//   void from_hyper_params(const HyperParams&, Options&)         ValueError for wrong kinds
template <class Options>
class GroupedOptimizer : public Optimizer {
 public:
  using Group = ParamGroup<Options>;

  const Options& defaults() const { return defaults_; }
  std::vector<Group>& param_groups() { return groups_; }
  const std::vector<Group>& param_groups() const { return groups_; }

  // A group with the optimizer's default hyper-parameters.
  void add_param_group(std::vector<Tensor> params) { add_param_group(Group{std::move(params), defaults_}); }
  void add_param_group(Group group) {
    validate_options(group.options);
    check_new_params(group.params);
    groups_.push_back(std::move(group));
  }

  size_t num_param_groups() const override { return groups_.size(); }
  const std::vector<Tensor>& group_params(size_t g) const override { return group(g).params; }
  double lr(size_t g) const override { return group(g).options.lr; }
  void set_lr(size_t g, double lr) override { group_mut(g).options.lr = lr; }
  HyperParams group_hyper_params(size_t g) const override { return to_hyper_params(group(g).options); }
  void set_group_hyper_params(size_t g, const HyperParams& changes) override {
    Options o = group(g).options;
    from_hyper_params(changes, o);
    validate_changed_options(o, g, ".set_group_hyper_params");
    group_mut(g).options = o;
  }
  void replace_group_params(size_t g, std::vector<Tensor> params) override {
    Group& grp = group_mut(g);
    check_new_params(params, g);
    for (const Tensor& p : grp.params) drop_state(p);
    grp.params = std::move(params);
  }

 protected:
  GroupedOptimizer(const char* name, const Options& defaults) : Optimizer(name), defaults_(defaults) {
    validate_options(defaults_);
  }
  // The two constructors every optimizer offers: one group of `params`, or `groups`, each with
  // complete options of its own (a field its initializer leaves out takes the Options struct's
  // default, not `defaults`', unlike torch's group dicts: copy `defaults` to start from them;
  // `defaults` serves add_param_group(params)); ValueError naming the optimizer when there is
  // nothing to add.
  GroupedOptimizer(const char* name, std::vector<Tensor> params, const Options& defaults)
      : GroupedOptimizer(name, defaults) {
    FABRIC_CHECK(!params.empty(), ValueError, name, ": got an empty parameter list");
    add_param_group(std::move(params));
  }
  GroupedOptimizer(const char* name, std::vector<Group> groups, const Options& defaults)
      : GroupedOptimizer(name, defaults) {
    FABRIC_CHECK(!groups.empty(), ValueError, name, ": got an empty list of parameter groups");
    for (Group& g : groups) add_param_group(std::move(g));
  }

  void load_group_hyper_params(const std::vector<HyperParams>& saved) override {
    std::vector<Options> next;
    for (size_t g = 0; g < groups_.size(); ++g) {
      Options o = groups_[g].options;
      from_hyper_params(saved.at(g), o);
      validate_changed_options(o, g, ".load_state_dict");
      next.push_back(o);
    }
    for (size_t g = 0; g < groups_.size(); ++g) groups_[g].options = next[g];
  }

  // The checks of a group's changed options (set_group_hyper_params, load_state_dict): the
  // constructor's, except that the lr may be any finite value, as a scheduler left it. set_lr
  // takes any lr (as torch's param_group['lr'] = ...), and torch's OneCycleLR with linear
  // annealing steps once past a run's end to one below 0, which a finished run's checkpoint holds
  // and a resume reloads (torch's load_state_dict checks nothing) before OneCycleLR sets the
  // momentum again. Only a non-finite lr is a damaged state.
  void validate_changed_options(const Options& o, size_t g, const char* what) const {
    FABRIC_CHECK(std::isfinite(o.lr), ValueError, name(), what, ": parameter group ", g, " has lr ",
                 o.lr, " (expected a finite number)");
    Options checked = o;
    checked.lr = std::abs(o.lr);
    validate_options(checked);
  }

  const Group& group(size_t g) const {
    FABRIC_CHECK(g < groups_.size(), IndexError, name(), ": parameter group ", g, " out of range (",
                 groups_.size(), " groups)");
    return groups_[g];
  }
  Group& group_mut(size_t g) { return const_cast<Group&>(static_cast<const GroupedOptimizer*>(this)->group(g)); }

  Options defaults_;
  std::vector<Group> groups_;
};

}  // namespace fabric::optim
