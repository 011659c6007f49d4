// SGD: option checks, hyper-parameter (de)serialisation and the step over the fused kernel.
#include "optim/sgd.h"

#include <cmath>

#include "optim/hyper_param_fields.h"
#include "tensor/optim_kernels.h"

namespace fabric::optim {

void validate_options(const SGDOptions& o) {
  hyper_fields::check_lr("SGD", o.lr);
  hyper_fields::check_non_negative("SGD", "momentum", o.momentum);
  hyper_fields::check_weight_decay("SGD", o.weight_decay);
  FABRIC_CHECK(!std::isnan(o.dampening), ValueError, "SGD: dampening is NaN");
}

namespace {
// torch checks Nesterov's needs in SGD's constructor, on its defaults only: a group (given to the
// constructor, added later, written by a scheduler or loaded) may pair nesterov with momentum 0,
// and then steps without momentum.
void check_nesterov_defaults(const SGDOptions& o) {
  FABRIC_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0), ValueError,
               "SGD: Nesterov momentum requires a momentum > 0 and zero dampening (got momentum ",
               o.momentum, ", dampening ", o.dampening, ")");
}
}  // namespace

namespace {
constexpr hyper_fields::Fields<SGDOptions, 6> kSGDFields = {{
    {"lr", &SGDOptions::lr},
    {"momentum", &SGDOptions::momentum},
    {"dampening", &SGDOptions::dampening},
    {"weight_decay", &SGDOptions::weight_decay},
    {"nesterov", &SGDOptions::nesterov},
    {"maximize", &SGDOptions::maximize},
}};
}  // namespace

HyperParams to_hyper_params(const SGDOptions& o) {
  return hyper_fields::to_hyper_params(kSGDFields, o);
}

void from_hyper_params(const HyperParams& h, SGDOptions& o) {
  hyper_fields::from_hyper_params(kSGDFields, h, o, "SGD");
}

SGD::SGD(std::vector<Tensor> params, const SGDOptions& options)
    : GroupedOptimizer("SGD", std::move(params), options) {
  check_nesterov_defaults(options);
}

SGD::SGD(std::vector<Group> groups, const SGDOptions& defaults)
    : GroupedOptimizer("SGD", std::move(groups), defaults) {
  check_nesterov_defaults(defaults);
}

void SGD::step_impl() {
  int64_t index = 0;
  for (Group& group : groups_) {
    const SGDOptions& o = group.options;
    for (const Tensor& p : group.params) {
      const int64_t idx = index++;
      const Tensor grad = prepared_grad(p, idx);
      if (!grad.defined()) continue;
      const SgdStepFn kernel = sgd_step_stub(p.device());  // before any state changes
      SgdKernelArgs args{.lr = o.lr, .momentum = o.momentum, .dampening = o.dampening,
                         .weight_decay = o.weight_decay, .nesterov = o.nesterov, .maximize = o.maximize};
      Tensor buf;
      if (o.momentum != 0) {
        ParamState& st = state_for(p);
        args.first_step = !st.count("momentum_buffer");
        buf = state_buffer(st, "momentum_buffer", p, idx, true);
      }
      update_in_place(p, [&](const Tensor& target) {
        kernel(p.dtype(), p.numel(), target.data_ptr(), grad.data_ptr(), buf.defined() ? buf.data_ptr() : nullptr,
               args);
      });
    }
  }
}

}  // namespace fabric::optim
