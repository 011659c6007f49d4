// See weight_reparam.h.
#include "nn/weight_reparam.h"

#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "autograd/autograd.h"
#include "autograd/autograd_meta.h"

namespace fabric::nn::reparam {
namespace {

struct Entry {
  Installed hook;
  std::weak_ptr<const void> lifetime;  // a dead module's entry never matches a new one's address
};

std::mutex& hooks_mutex() {
  static std::mutex m;
  return m;
}

std::map<std::pair<const Module*, std::string>, Entry>& hooks() {
  static std::map<std::pair<const Module*, std::string>, Entry> table;
  return table;
}

const char* kind_name(Kind kind) {
  return kind == Kind::weight_norm ? "weight_norm" : "spectral_norm";
}

// Drops the entries of destroyed modules (and with them the handles they kept).
void forget_dead() {
  for (auto it = hooks().begin(); it != hooks().end();)
    it = it->second.lifetime.expired() ? hooks().erase(it) : std::next(it);
}

}  // namespace

Tensor own_parameter(const char* op, const Module& module, const std::string& name) {
  for (const auto& [n, t] : module.named_parameters(/*recurse=*/false))
    if (n == name) return t;
  FABRIC_CHECK(false, ValueError, op, ": ", module.type_name(), " has no parameter '", name,
               "' of its own (a reparametrisation wraps the module that registered it)");
  return Tensor();
}

void set_computed(const Tensor& handle, const Tensor& value) {
  handle.set_data(value);
  AutogradMeta& m = autograd_meta(handle);
  const AutogradMeta* v = autograd_meta_if(value);
  m.grad_fn = v != nullptr ? v->grad_fn : nullptr;
  m.output_nr = v != nullptr ? v->output_nr : 0;
  handle.impl()->requires_grad = value.requires_grad();
}

void restore_parameter(Module& module, const std::string& name, const Tensor& handle,
                       const Tensor& value) {
  handle.set_data(value.detach());
  if (AutogradMeta* m = autograd_meta_if(handle)) m->clear_grad_fn();
  handle.impl()->requires_grad = false;
  module.register_parameter(name, handle);
}

void check_no_hook(const char* op, Kind kind, const Module& module, const std::string& name) {
  std::lock_guard<std::mutex> lock(hooks_mutex());
  forget_dead();
  auto it = hooks().find(std::make_pair(&module, name));
  FABRIC_CHECK(it == hooks().end(), ValueError, op, ": Cannot register two ", kind_name(kind),
               " hooks on the same parameter ", name, " (", module.type_name(), " already has a ",
               it == hooks().end() ? "" : kind_name(it->second.hook.kind), " of '", name, "')");
}

void add_hook(const char* op, const Module& module, const std::string& name, Installed hook) {
  check_no_hook(op, hook.kind, module, name);
  std::lock_guard<std::mutex> lock(hooks_mutex());
  hooks().emplace(std::make_pair(&module, name), Entry{std::move(hook), module.lifetime()});
}

Installed take_hook(const char* op, Kind kind, const Module& module, const std::string& name) {
  std::lock_guard<std::mutex> lock(hooks_mutex());
  forget_dead();
  auto it = hooks().find(std::make_pair(&module, name));
  FABRIC_CHECK(it != hooks().end() && it->second.hook.kind == kind, ValueError, op, ": ",
               kind_name(kind), " of '", name, "' not found in ", module.type_name());
  Installed hook = std::move(it->second.hook);
  hooks().erase(it);
  return hook;
}

}  // namespace fabric::nn::reparam
