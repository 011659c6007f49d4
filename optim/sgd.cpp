// SGD: option checks, hyper-parameter (de)serialisation and the step over the fused kernel.
#include "optim/sgd.h"

#include <cmath>

#include "tensor/optim_kernels.h"

namespace fabric::optim {

void validate_options(const SGDOptions& o) {
  FABRIC_CHECK(o.lr >= 0, ValueError, "SGD: invalid learning rate ", o.lr, " (expected lr >= 0)");
  FABRIC_CHECK(o.momentum >= 0, ValueError, "SGD: invalid momentum ", o.momentum, " (expected momentum >= 0)");
  FABRIC_CHECK(o.weight_decay >= 0, ValueError, "SGD: invalid weight_decay ", o.weight_decay,
               " (expected weight_decay >= 0)");
  FABRIC_CHECK(!std::isnan(o.dampening), ValueError, "SGD: dampening is NaN");
  FABRIC_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0), ValueError,
               "SGD: Nesterov momentum requires a momentum > 0 and zero dampening (got momentum ", o.momentum,
               ", dampening ", o.dampening, ")");
}

HyperParams to_hyper_params(const SGDOptions& o) {
  return {{"lr", o.lr},           {"momentum", o.momentum}, {"dampening", o.dampening},
          {"weight_decay", o.weight_decay}, {"nesterov", o.nesterov}, {"maximize", o.maximize}};
}

void from_hyper_params(const HyperParams& h, SGDOptions& o) {
  read_hyper_param(h, "lr", o.lr, "SGD");
  read_hyper_param(h, "momentum", o.momentum, "SGD");
  read_hyper_param(h, "dampening", o.dampening, "SGD");
  read_hyper_param(h, "weight_decay", o.weight_decay, "SGD");
  read_hyper_param(h, "nesterov", o.nesterov, "SGD");
  read_hyper_param(h, "maximize", o.maximize, "SGD");
}

SGD::SGD(std::vector<Tensor> params, const SGDOptions& options) : GroupedOptimizer("SGD", options) {
  FABRIC_CHECK(!params.empty(), ValueError, "SGD: got an empty parameter list");
  add_param_group(std::move(params));
}

SGD::SGD(std::vector<Group> groups, const SGDOptions& defaults) : GroupedOptimizer("SGD", defaults) {
  FABRIC_CHECK(!groups.empty(), ValueError, "SGD: got an empty list of parameter groups");
  for (Group& g : groups) add_param_group(std::move(g));
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
