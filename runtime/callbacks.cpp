// HookArgs' typed getters and Callback's named hooks.
#include "runtime/callbacks.h"

#include "tensor/error.h"

namespace fabric {
namespace {
std::string with_article(const std::string& kind) {
  return (kind == "integer" ? "an " : "a ") + kind;
}
}  // namespace

std::string HookValue::kind() const {
  switch (v_.index()) {
    case 0:
      return "tensor";
    case 1:
      return "number";
    case 2:
      return "integer";
    case 3:
      return "string";
    default:
      return "fabric";
  }
}

HookArgs& HookArgs::set(const std::string& name, HookValue value) {
  FABRIC_CHECK(!name.empty(), ValueError, "HookArgs.set: the argument name is empty");
  args_.insert_or_assign(name, std::move(value));
  return *this;
}

std::vector<std::string> HookArgs::names() const {
  std::vector<std::string> out;
  for (const auto& [name, value] : args_) out.push_back(name);
  return out;
}

const HookValue& HookArgs::at(const std::string& name, const char* expected) const {
  auto it = args_.find(name);
  if (it == args_.end()) {
    std::string given;
    for (const auto& [n, v] : args_) given += (given.empty() ? "'" : ", '") + n + "'";
    throw KeyError("hook argument '" + name + "' (" + with_article(expected) +
                   ") was not passed; the call passed " +
                   (given.empty() ? std::string("no arguments") : given));
  }
  return it->second;
}

void HookArgs::mistyped(const std::string& name, const HookValue& v, const char* expected) const {
  throw DTypeError("hook argument '" + name + "' is " + with_article(v.kind()) + ", expected " +
                   with_article(expected));
}

const Tensor& HookArgs::tensor(const std::string& name) const {
  const HookValue& v = at(name, "tensor");
  if (const auto* t = std::get_if<Tensor>(&v.v_)) return *t;
  mistyped(name, v, "tensor");
}

double HookArgs::number(const std::string& name) const {
  const HookValue& v = at(name, "number");
  if (const auto* d = std::get_if<double>(&v.v_)) return *d;
  if (const auto* i = std::get_if<int64_t>(&v.v_)) return static_cast<double>(*i);
  mistyped(name, v, "number");
}

int64_t HookArgs::integer(const std::string& name) const {
  const HookValue& v = at(name, "integer");
  if (const auto* i = std::get_if<int64_t>(&v.v_)) return *i;
  mistyped(name, v, "integer");
}

const std::string& HookArgs::string(const std::string& name) const {
  const HookValue& v = at(name, "string");
  if (const auto* s = std::get_if<std::string>(&v.v_)) return *s;
  mistyped(name, v, "string");
}

Fabric& HookArgs::fabric(const std::string& name) const {
  const HookValue& v = at(name, "fabric");
  const auto* f = std::get_if<Fabric*>(&v.v_);
  if (!f) mistyped(name, v, "fabric");
  FABRIC_CHECK(*f != nullptr, ValueError, "hook argument '", name, "' is a null Fabric pointer");
  return **f;
}

void Callback::define_hook(const std::string& name, Hook hook) {
  FABRIC_CHECK(!name.empty(), ValueError, "Callback.define_hook: the hook name is empty");
  FABRIC_CHECK(hook != nullptr, ValueError, "Callback.define_hook: the hook '", name,
               "' is an empty function");
  hooks_.insert_or_assign(name, std::move(hook));
}

void Callback::run_hook(const std::string& name, const HookArgs& args) const {
  auto it = hooks_.find(name);
  FABRIC_CHECK(it != hooks_.end(), KeyError, "Callback.run_hook: this callback has no hook '", name,
               "'");
  it->second(args);
}

}  // namespace fabric
