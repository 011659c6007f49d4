// Adam/AdamW: option checks, hyper-parameter (de)serialisation and the step over the fused kernel.
#include "optim/adam.h"

#include <vector>

#include "optim/hyper_param_fields.h"
#include "tensor/factory.h"
#include "tensor/optim_kernels.h"

namespace fabric::optim {
namespace {

template <class O>
void validate_adam(const O& o, const char* who) {
  hyper_fields::check_lr(who, o.lr);
  hyper_fields::check_eps(who, o.eps);
  hyper_fields::check_betas(who, o.betas);
  hyper_fields::check_weight_decay(who, o.weight_decay);
}

template <class O>
constexpr hyper_fields::Fields<O, 6> kAdamFields = {{
    {"lr", &O::lr},
    {"betas", &O::betas},
    {"eps", &O::eps},
    {"weight_decay", &O::weight_decay},
    {"amsgrad", &O::amsgrad},
    {"maximize", &O::maximize},
}};

template <class O>
constexpr const char* adam_name() {
  return std::is_same_v<O, AdamWOptions> ? "AdamW" : "Adam";
}

}  // namespace

void validate_options(const AdamOptions& o) { validate_adam(o, "Adam"); }
void validate_options(const AdamWOptions& o) { validate_adam(o, "AdamW"); }
HyperParams to_hyper_params(const AdamOptions& o) {
  return hyper_fields::to_hyper_params(kAdamFields<AdamOptions>, o);
}
HyperParams to_hyper_params(const AdamWOptions& o) {
  return hyper_fields::to_hyper_params(kAdamFields<AdamWOptions>, o);
}
void from_hyper_params(const HyperParams& h, AdamOptions& o) {
  hyper_fields::from_hyper_params(kAdamFields<AdamOptions>, h, o, "Adam");
}
void from_hyper_params(const HyperParams& h, AdamWOptions& o) {
  hyper_fields::from_hyper_params(kAdamFields<AdamWOptions>, h, o, "AdamW");
}

template <class Options, bool kDecoupled>
AdamFamily<Options, kDecoupled>::AdamFamily(std::vector<Tensor> params, const Options& options)
    : GroupedOptimizer<Options>(adam_name<Options>(), std::move(params), options) {}

template <class Options, bool kDecoupled>
AdamFamily<Options, kDecoupled>::AdamFamily(std::vector<Group> groups, const Options& defaults)
    : GroupedOptimizer<Options>(adam_name<Options>(), std::move(groups), defaults) {}

namespace {

bool same_args(const AdamKernelArgs& a, const AdamKernelArgs& b) {
  return a.lr == b.lr && a.beta1 == b.beta1 && a.beta2 == b.beta2 && a.eps == b.eps &&
         a.weight_decay == b.weight_decay && a.step == b.step &&
         a.decoupled_weight_decay == b.decoupled_weight_decay && a.amsgrad == b.amsgrad &&
         a.maximize == b.maximize;
}

// Consecutive contiguous parameters of one device and dtype with the same hyper-parameters and
// step count, for a device with a multi-tensor kernel (CUDA): one call updates them all. Their
// tensors stay referenced until then, so the caching allocator cannot give a temporary gradient's
// memory to a later one before the kernel that reads it is queued.
class AdamBatch {
 public:
  void add(AdamMultiStepFn fn, const Tensor& p, const Tensor& grad, const Tensor& exp_avg,
           const Tensor& exp_avg_sq, const Tensor& max_exp_avg_sq, const AdamKernelArgs& args) {
    if (!ptrs_.empty() &&
        (fn != fn_ || p.device() != device_ || p.dtype() != dtype_ || !same_args(args, args_)))
      flush();
    fn_ = fn;
    device_ = p.device();
    dtype_ = p.dtype();
    args_ = args;
    ptrs_.push_back({p.numel(), p.data_ptr(), grad.data_ptr(), exp_avg.data_ptr(),
                     exp_avg_sq.data_ptr(),
                     max_exp_avg_sq.defined() ? max_exp_avg_sq.data_ptr() : nullptr});
    keep_.insert(keep_.end(), {grad, exp_avg, exp_avg_sq, max_exp_avg_sq});
  }
  void flush() {
    if (!ptrs_.empty()) fn_(dtype_, ptrs_, args_);
    ptrs_.clear();
    keep_.clear();
  }

 private:
  AdamMultiStepFn fn_ = nullptr;
  Device device_ = Device::cpu();
  DType dtype_ = DType::float32;
  AdamKernelArgs args_;
  std::vector<AdamTensorPtrs> ptrs_;
  std::vector<Tensor> keep_;
};

}  // namespace

template <class Options, bool kDecoupled>
void AdamFamily<Options, kDecoupled>::step_impl() {
  int64_t index = 0;
  AdamBatch batch;
  // A parameter that raises leaves the ones before it updated, batched or not (as one launch
  // per tensor did).
  try {
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
        // The kernel first: a device without one raises before this parameter's step moves.
        const AdamMultiStepFn multi =
            p.is_contiguous() ? adam_multi_step_stub.find(p.device()) : nullptr;
        const AdamStepFn kernel = multi ? nullptr : adam_step_stub(p.device());
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
        if (multi != nullptr) {
          batch.add(multi, p, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, args);
          p.storage()->bump_version();
          continue;
        }
        this->update_in_place(p, [&](const Tensor& target) {
          kernel(p.dtype(), p.numel(), target.data_ptr(), grad.data_ptr(), exp_avg.data_ptr(),
                 exp_avg_sq.data_ptr(), o.amsgrad ? max_exp_avg_sq.data_ptr() : nullptr, args);
        });
      }
    }
  } catch (...) {
    batch.flush();
    throw;
  }
  batch.flush();
}

template class AdamFamily<AdamOptions, false>;
template class AdamFamily<AdamWOptions, true>;

}  // namespace fabric::optim
