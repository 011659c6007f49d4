// Adam/AdamW: option checks, hyper-parameter (de)serialisation and the step over the fused kernel.
#include "optim/adam.h"

#include "tensor/factory.h"
#include "tensor/optim_kernels.h"

namespace fabric::optim {
namespace {

template <class O>
void validate_adam(const O& o, const char* who) {
  FABRIC_CHECK(o.lr >= 0, ValueError, who, ": invalid learning rate ", o.lr, " (expected lr >= 0)");
  FABRIC_CHECK(o.eps >= 0, ValueError, who, ": invalid epsilon ", o.eps, " (expected eps >= 0)");
  for (int i = 0; i < 2; ++i) {
    FABRIC_CHECK(o.betas[i] >= 0 && o.betas[i] < 1, ValueError, who, ": invalid beta parameter at index ", i, ": ",
                 o.betas[i], " (expected 0 <= beta < 1)");
  }
  FABRIC_CHECK(o.weight_decay >= 0, ValueError, who, ": invalid weight_decay ", o.weight_decay,
               " (expected weight_decay >= 0)");
}

template <class O>
HyperParams adam_hyper(const O& o) {
  return {{"lr", o.lr},
          {"betas", std::vector<double>{o.betas[0], o.betas[1]}},
          {"eps", o.eps},
          {"weight_decay", o.weight_decay},
          {"amsgrad", o.amsgrad},
          {"maximize", o.maximize}};
}

template <class O>
void adam_from_hyper(const HyperParams& h, O& o, const char* who) {
  read_hyper_param(h, "lr", o.lr, who);
  std::vector<double> betas{o.betas[0], o.betas[1]};
  read_hyper_param(h, "betas", betas, 2, who);
  o.betas = {betas[0], betas[1]};
  read_hyper_param(h, "eps", o.eps, who);
  read_hyper_param(h, "weight_decay", o.weight_decay, who);
  read_hyper_param(h, "amsgrad", o.amsgrad, who);
  read_hyper_param(h, "maximize", o.maximize, who);
}

template <class O>
constexpr const char* adam_name() {
  return std::is_same_v<O, AdamWOptions> ? "AdamW" : "Adam";
}

}  // namespace

void validate_options(const AdamOptions& o) { validate_adam(o, "Adam"); }
void validate_options(const AdamWOptions& o) { validate_adam(o, "AdamW"); }
HyperParams to_hyper_params(const AdamOptions& o) { return adam_hyper(o); }
HyperParams to_hyper_params(const AdamWOptions& o) { return adam_hyper(o); }
void from_hyper_params(const HyperParams& h, AdamOptions& o) { adam_from_hyper(h, o, "Adam"); }
void from_hyper_params(const HyperParams& h, AdamWOptions& o) { adam_from_hyper(h, o, "AdamW"); }

template <class Options, bool kDecoupled>
AdamFamily<Options, kDecoupled>::AdamFamily(std::vector<Tensor> params, const Options& options)
    : GroupedOptimizer<Options>(adam_name<Options>(), options) {
  FABRIC_CHECK(!params.empty(), ValueError, this->name(), ": got an empty parameter list");
  this->add_param_group(std::move(params));
}

template <class Options, bool kDecoupled>
AdamFamily<Options, kDecoupled>::AdamFamily(std::vector<Group> groups, const Options& defaults)
    : GroupedOptimizer<Options>(adam_name<Options>(), defaults) {
  FABRIC_CHECK(!groups.empty(), ValueError, this->name(), ": got an empty list of parameter groups");
  for (Group& g : groups) this->add_param_group(std::move(g));
}

template <class Options, bool kDecoupled>
void AdamFamily<Options, kDecoupled>::step_impl() {
  int64_t index = 0;
  for (Group& group : this->groups_) {
    const Options& o = group.options;
    for (const Tensor& p : group.params) {
      const int64_t idx = index++;
      const Tensor grad = this->prepared_grad(p, idx);
      if (!grad.defined()) continue;
      ParamState& st = this->state_for(p);
      const bool fresh = st.empty();  // PyTorch's lazy state initialisation
      double& step = this->step_count(st, idx, fresh);
      const Tensor exp_avg = this->state_buffer(st, "exp_avg", p, idx, fresh);
      const Tensor exp_avg_sq = this->state_buffer(st, "exp_avg_sq", p, idx, fresh);
      Tensor max_exp_avg_sq;
      if (o.amsgrad) max_exp_avg_sq = this->state_buffer(st, "max_exp_avg_sq", p, idx, fresh);
      const AdamStepFn kernel = adam_step_stub(p.device());
      step += 1;
      const AdamKernelArgs args{.lr = o.lr,
                                .beta1 = o.betas[0],
                                .beta2 = o.betas[1],
                                .eps = o.eps,
                                .weight_decay = o.weight_decay,
                                .step = step,
                                .decoupled_weight_decay = kDecoupled,
                                .amsgrad = o.amsgrad,
                                .maximize = o.maximize};
      this->update_in_place(p, [&](const Tensor& target) {
        kernel(p.dtype(), p.numel(), target.data_ptr(), grad.data_ptr(), exp_avg.data_ptr(), exp_avg_sq.data_ptr(),
               o.amsgrad ? max_exp_avg_sq.data_ptr() : nullptr, args);
      });
    }
  }
}

template class AdamFamily<AdamOptions, false>;
template class AdamFamily<AdamWOptions, true>;

}  // namespace fabric::optim
