// LazyModule: the placeholders, the initialising pre-hook, materialization and the load hook.
#include "nn/lazy_module.h"

#include <utility>

#include "autograd/grad_mode.h"
#include "nn/init.h"
#include "tensor/factory.h"

namespace fabric::nn {

namespace {

// The one 0-byte storage every placeholder is made on: is_lazy() tells a placeholder (and a
// detached state_dict value of one, which shares its storage) by it.
const Storage& placeholder_storage() {
  static const Storage storage = std::make_shared<StorageImpl>(0, Device::cpu());
  return storage;
}

Tensor placeholder() {
  return Tensor::from_storage(placeholder_storage(), default_float_dtype(), {0}, {1}, 0);
}

std::optional<Shape> shape_in(const Module::NamedTensors& entries, const std::string& name) {
  for (const auto& [n, t] : entries)
    if (n == name) return t.sizes();
  return std::nullopt;
}

}  // namespace

bool is_lazy(const Tensor& t) {
  return t.defined() && t.storage().get() == placeholder_storage().get();
}

LazyModule::LazyModule(std::string lazy_name) : lazy_name_(std::move(lazy_name)) {
  // Registered before any the user adds: theirs see the materialized parameters, as in torch.
  init_hook_ = register_forward_pre_hook([this](Module&, const Tensor& x) {
    materialize(x);
    return Tensor();
  });
}

Tensor LazyModule::lazy_parameter(const std::string& name) {
  uninitialized_.insert(name);
  return register_parameter(name, placeholder());
}

Tensor LazyModule::lazy_buffer(const std::string& name) {
  uninitialized_.insert(name);
  return register_buffer(name, placeholder());
}

std::string LazyModule::type_name() const { return eager_ ? eager_->type_name() : lazy_name_; }

std::string LazyModule::extra_repr() const { return eager_ ? eager_->extra_repr() : lazy_repr_; }

Tensor LazyModule::forward(const Tensor& x) {
  FABRIC_CHECK(eager_ != nullptr, ValueError, lazy_name_,
               ": Can't use the uninitialized parameters of a lazy module: call the module as "
               "module(x) on a dry-run batch first (forward(x) skips the pre-hook that infers "
               "the input size and initialises them), or load a state_dict into it");
  // The eager layer is not a child (it would add state_dict keys): it follows this mode here.
  eager_->train(is_training());
  return eager_->forward(x);
}

void LazyModule::materialize(const Tensor& x) {
  if (eager_) return;
  const std::optional<int64_t> size = infer_size(x);
  if (!size) raise_bad_input(x);
  std::shared_ptr<Module> eager;
  {
    init::EmptyInitGuard no_draws;
    eager = build_eager(*size);
  }
  NoGradGuard no_grad;
  // torch's initialize_parameters runs (and resets every value) only while something is lazy:
  // after a load_state_dict gave them all their shapes and values, the first call keeps them.
  const bool reset = has_uninitialized_params();
  const NamedTensors params = eager->named_parameters(false);
  const NamedTensors buffers = eager->named_buffers(false);
  for (const std::string& name : std::set(uninitialized_)) {
    std::optional<Shape> shape = shape_in(params, name);
    if (!shape) shape = shape_in(buffers, name);
    FABRIC_CHECK(shape.has_value(), ValueError, lazy_name_, ": the eager ", eager->type_name(),
                 " has no parameter or buffer \"", name, "\" to take the shape of");
    materialize_entry(name, *shape);
  }
  adopt(*eager, reset);
  eager->train(is_training());
  eager_ = std::move(eager);
  remove_forward_hook(init_hook_);
}

void LazyModule::materialize_entry(const std::string& name, const Shape& shape) const {
  const Tensor t = own_tensor(name);
  t.set_data(empty(shape, {.dtype = t.dtype(), .device = t.device()}));
  uninitialized_.erase(name);
}

// A dim count the eager layer does not take: its forward names it, as torch's first call gives
// the eager module's error (a layer of a size it accepts stands in; it never becomes this one).
void LazyModule::raise_bad_input(const Tensor& x) const {
  std::shared_ptr<Module> probe;
  {
    init::EmptyInitGuard no_draws;
    probe = build_eager(probe_size());
  }
  NoGradGuard no_grad;
  probe->train(is_training());
  probe->forward(x);
  throw ShapeError(detail::cat(lazy_name_, ": can't infer the input size from an input of shape ",
                               shape_str(x.sizes())));
}

void LazyModule::prepare_loaded_state(const std::string& prefix, StateDict& state) const {
  NoGradGuard no_grad;
  for (const std::string& name : std::set(uninitialized_)) {
    const Tensor* src = state.find(prefix + name);
    // A placeholder in the state (another lazy module's state_dict) gives no shape.
    if (src == nullptr || !src->defined() || is_lazy(*src)) continue;
    materialize_entry(name, src->sizes());
  }
}

std::string lazy_size_repr(const std::string& eager_repr, int64_t probe) {
  const std::string lead = std::to_string(probe);
  const bool leads =
      eager_repr.compare(0, lead.size(), lead) == 0 && eager_repr.compare(lead.size(), 1, ",") == 0;
  return leads ? "0" + eager_repr.substr(lead.size()) : eager_repr;
}

}  // namespace fabric::nn
