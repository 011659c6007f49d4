// Module registration, traversal, mode/dtype/device changes and state_dict loading.
#include "nn/module.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <ostream>
#include <sstream>
#include <unordered_set>

#include "autograd/autograd.h"
#include "autograd/checkpoint.h"
#include "autograd/grad_mode.h"

namespace fabric::nn {

// ---- StateDict --------------------------------------------------------------------------------

void StateDict::insert(const std::string& name, const Tensor& t) {
  auto it = index_.find(name);
  if (it != index_.end()) {
    items_[it->second].second = t;
    return;
  }
  index_.emplace(name, items_.size());
  items_.emplace_back(name, t);
}

const Tensor* StateDict::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &items_[it->second].second;
}

const Tensor& StateDict::at(std::string_view name) const {
  const Tensor* t = find(name);
  FABRIC_CHECK(t != nullptr, ValueError, "StateDict: no key \"", name, "\" among its ",
               items_.size(), " keys");
  return *t;
}

bool StateDict::erase(std::string_view name) {
  auto it = index_.find(std::string(name));
  if (it == index_.end()) return false;
  const size_t pos = it->second;
  items_.erase(items_.begin() + static_cast<std::ptrdiff_t>(pos));
  index_.erase(it);
  for (auto& [k, i] : index_) {
    if (i > pos) --i;
  }
  return true;
}

std::vector<std::string> StateDict::keys() const {
  std::vector<std::string> out;
  out.reserve(items_.size());
  for (const auto& [k, v] : items_) out.push_back(k);
  return out;
}

// ---- registration -----------------------------------------------------------------------------

void Module::check_new_name(const std::string& name, const char* what) const {
  FABRIC_CHECK(!name.empty(), ValueError, type_name(), ": ", what, " name can't be empty");
  FABRIC_CHECK(name.find('.') == std::string::npos, ValueError, type_name(), ": ", what, " name \"",
               name, "\" can't contain \".\"");
  auto in = [&](const auto& list) {
    return std::any_of(list.begin(), list.end(), [&](const auto& e) {
      if constexpr (requires { e.name; }) {
        return e.name == name;
      } else {
        return e.first == name;
      }
    });
  };
  const std::string w = what;
  const bool clash = (w != "parameter" && in(params_)) || (w != "buffer" && in(buffers_)) ||
                     (w != "module" && in(children_));
  FABRIC_CHECK(!clash, ValueError, type_name(), ": cannot register ", what, " \"", name,
               "\": the name is already used by another parameter, buffer or module");
}

Tensor Module::register_parameter(const std::string& name, Tensor t, bool requires_grad) {
  check_new_name(name, "parameter");
  if (t.defined()) {
    FABRIC_CHECK(is_leaf(t), ValueError, type_name(), ": parameter \"", name,
                 "\" must be a leaf tensor (it was produced by ", grad_fn_name(t),
                 "); register a detached tensor instead");
    FABRIC_CHECK(!requires_grad || t.is_floating_point(), DTypeError, type_name(), ": parameter \"",
                 name, "\" of dtype ", dtype_name(t.dtype()),
                 " cannot require gradients; pass requires_grad = false");
    t.set_requires_grad(requires_grad);
  }
  for (auto& e : params_) {
    if (e.name == name) {
      e.tensor = t;
      return t;
    }
  }
  params_.push_back({name, t, true});
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t, bool persistent) {
  check_new_name(name, "buffer");
  for (auto& e : buffers_) {
    if (e.name == name) {
      e.tensor = t;
      e.persistent = persistent;
      return t;
    }
  }
  buffers_.push_back({name, t, persistent});
  return t;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m) {
  check_new_name(name, "module");
  FABRIC_CHECK(m != nullptr, ValueError, type_name(), ": cannot register a null module as \"", name,
               "\"");
  FABRIC_CHECK(m.get() != this, ValueError, type_name(), ": a module cannot be its own child (\"",
               name, "\")");
  for (auto& [n, c] : children_) {
    if (n == name) {
      c = std::move(m);
      child_replaced(name, c);
      return;
    }
  }
  children_.emplace_back(name, m);
  child_added(name, m);
}

Tensor Module::own_tensor(const std::string& name) const {
  for (const auto& e : params_) {
    if (e.name == name) return e.tensor;
  }
  for (const auto& e : buffers_) {
    if (e.name == name) return e.tensor;
  }
  throw ValueError(detail::cat(type_name(), " has no parameter or buffer \"", name, "\""));
}

// ---- traversal --------------------------------------------------------------------------------

void Module::collect_modules(const std::string& prefix, NamedModules& out,
                             std::unordered_set<const Module*>& seen) const {
  for (const auto& [name, child] : children_) {
    if (!seen.insert(child.get()).second) continue;  // shared: listed once, under its first name
    const std::string full = prefix.empty() ? name : prefix + "." + name;
    out.emplace_back(full, child);
    child->collect_modules(full, out, seen);
  }
}

Module::NamedModules Module::named_modules() const {
  NamedModules out;
  std::unordered_set<const Module*> seen{this};
  collect_modules("", out, seen);
  return out;
}

std::vector<std::pair<std::string, const Module*>> Module::all_modules() const {
  std::vector<std::pair<std::string, const Module*>> out{{"", this}};
  for (const auto& [n, m] : named_modules()) out.emplace_back(n, m.get());
  return out;
}

Module::NamedModules Module::named_children() const {
  NamedModules out;
  for (const auto& [n, c] : children_) {
    const bool seen =
        std::any_of(out.begin(), out.end(), [&c = c](const auto& e) { return e.second == c; });
    if (!seen) out.emplace_back(n, c);
  }
  return out;
}

void Module::set_state_key(const std::string& name, const std::string& key) {
  FABRIC_CHECK(!key.empty(), ValueError, type_name(), ".set_state_key: empty key for '", name, "'");
  for (auto* entries : {&params_, &buffers_}) {
    for (auto& e : *entries) {
      if (e.name == name) {
        e.key = key;
        return;
      }
    }
  }
  throw ValueError(type_name() + ".set_state_key: no parameter or buffer named '" + name + "'");
}

void Module::set_state_resizable(const std::string& name) {
  for (auto& e : buffers_) {
    if (e.name != name) continue;
    FABRIC_CHECK(e.tensor.defined() && e.tensor.dim() == 1, ValueError, type_name(),
                 ".set_state_resizable: '", name, "' must be a 1-D buffer");
    e.resizable = true;
    return;
  }
  throw ValueError(type_name() + ".set_state_resizable: no buffer named '" + name + "'");
}

void Module::keep_buffer_dtype(const std::string& name) {
  for (auto& e : buffers_) {
    if (e.name != name) continue;
    e.keeps_dtype = true;
    return;
  }
  throw ValueError(type_name() + ".keep_buffer_dtype: no buffer named '" + name + "'");
}

Module& Module::child(const std::string& name) const {
  for (const auto& [n, m] : children_)
    if (n == name) return *m;
  throw ValueError(type_name() + ": no child module named '" + name + "'");
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (const auto& [n, c] : named_children()) out.push_back(c);
  return out;
}

namespace {
template <class Get>
Module::NamedTensors collect_named(const std::vector<std::pair<std::string, const Module*>>& mods,
                                   Get get) {
  Module::NamedTensors out;
  std::unordered_set<const TensorImpl*> seen;
  for (const auto& [prefix, m] : mods) {
    for (const auto& [name, t] : get(*m)) {
      if (!t.defined() || !seen.insert(t.impl()).second) continue;
      out.emplace_back(prefix.empty() ? name : prefix + "." + name, t);
    }
  }
  return out;
}
}  // namespace

Module::NamedTensors Module::named_parameters(bool recurse) const {
  auto mods =
      recurse ? all_modules() : std::vector<std::pair<std::string, const Module*>>{{"", this}};
  return collect_named(mods, [](const Module& m) {
    NamedTensors own;
    for (const auto& e : m.params_) own.emplace_back(e.name, e.tensor);
    return own;
  });
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

Module::NamedTensors Module::named_buffers(bool recurse) const {
  auto mods =
      recurse ? all_modules() : std::vector<std::pair<std::string, const Module*>>{{"", this}};
  return collect_named(mods, [](const Module& m) {
    NamedTensors own;
    for (const auto& e : m.buffers_) own.emplace_back(e.name, e.tensor);
    return own;
  });
}

std::vector<Tensor> Module::buffers(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_buffers(recurse)) out.push_back(t);
  return out;
}

std::shared_ptr<Module> Module::get_submodule(const std::string& path) const {
  FABRIC_CHECK(!path.empty(), ValueError, type_name(), ".get_submodule: empty path");
  const Module* cur = this;
  std::shared_ptr<Module> found;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t dot = path.find('.', start);
    const std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    found.reset();
    for (const auto& [n, c] : cur->children_) {
      if (n == part) found = c;
    }
    FABRIC_CHECK(found != nullptr, ValueError, type_name(), ".get_submodule(\"", path,
                 "\"): ", cur->type_name(), " has no submodule \"", part, "\"");
    cur = found.get();
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return found;
}

Tensor Module::get_parameter(const std::string& path) const {
  const size_t dot = path.rfind('.');
  const Module* owner = this;
  std::shared_ptr<Module> holder;
  if (dot != std::string::npos) {
    holder = get_submodule(path.substr(0, dot));
    owner = holder.get();
  }
  const std::string leaf = dot == std::string::npos ? path : path.substr(dot + 1);
  for (const auto& e : owner->params_) {
    if (e.name == leaf && e.tensor.defined()) return e.tensor;
  }
  throw ValueError(detail::cat(type_name(), ".get_parameter(\"", path, "\"): ", owner->type_name(),
                               " has no parameter \"", leaf, "\""));
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

// ---- modes and moves ----------------------------------------------------------------------------

Module& Module::train(bool mode) {
  training_ = mode;
  for (auto& [n, c] : children_) c->train(mode);
  return *this;
}

Module& Module::apply(const std::function<void(Module&)>& fn) {
  for (auto& [n, c] : named_children()) c->apply(fn);  // a child listed twice: once, as torch
  fn(*this);
  return *this;
}

namespace {
// Moves every distinct tensor once (tied weights share one TensorImpl), and its .grad with it.
void move_tensors(const std::vector<Tensor>& ts,
                  const std::function<Tensor(const Tensor&)>& convert,
                  const std::function<bool(const Tensor&)>& applies) {
  NoGradGuard no_grad;
  for (const Tensor& t : ts) {
    if (!applies(t)) continue;
    Tensor moved = convert(t);
    if (!moved.is_same(t)) t.set_data(moved);
    Tensor g = t.grad();
    if (g.defined() && applies(g)) {
      Tensor mg = convert(g);
      if (!mg.is_same(g)) set_grad(t, mg);
    }
  }
}
}  // namespace

Module& Module::to(DType dtype) {
  FABRIC_CHECK(is_floating(dtype), DTypeError, type_name(), ".to: expects a floating dtype, got ",
               dtype_name(dtype), " (only floating parameters and buffers are converted)");
  auto convert = [dtype](const Tensor& t) { return t.to(dtype); };
  auto floating = [](const Tensor& t) { return t.is_floating_point(); };
  move_tensors(parameters(), convert, floating);
  std::vector<Tensor> buffers;
  for (const auto& [name, m] : all_modules())
    for (const Entry& e : m->buffers_)
      if (e.tensor.defined() && !e.keeps_dtype) buffers.push_back(e.tensor);
  move_tensors(buffers, convert, floating);
  return *this;
}

Module& Module::to(Device device) {
  auto convert = [device](const Tensor& t) { return t.to(device); };
  auto all = [](const Tensor&) { return true; };
  move_tensors(parameters(), convert, all);
  move_tensors(buffers(), convert, all);
  return *this;
}

void Module::zero_grad(bool set_to_none) {
  for (const Tensor& p : parameters()) fabric::zero_grad(p, set_to_none);
}

Module& Module::requires_grad_(bool requires_grad) {
  for (Tensor p : parameters()) p.set_requires_grad(requires_grad);
  return *this;
}

// ---- state
// ----------------------------------------------------------------------------------------

void Module::collect_state(const std::string& prefix, StateDict& out) const {
  // No deduplication: like torch's state_dict, a tied or shared tensor appears under every name.
  for (const auto& e : params_) {
    if (e.tensor.defined()) out.insert(prefix + e.state_key(), e.tensor.detach());
  }
  for (const auto& e : buffers_) {
    if (e.tensor.defined() && e.persistent) out.insert(prefix + e.state_key(), e.tensor.detach());
  }
  for (const auto& [n, c] : children_) c->collect_state(prefix + n + ".", out);
}

StateDict Module::state_dict() const {
  StateDict out;
  collect_state("", out);
  return out;
}

LoadResult Module::load_state_dict(const StateDict& given, bool strict) {
  // Each module may first rewrite its own entries (prepare_loaded_state), in a copy of the handles.
  StateDict state = given;
  // The live entries under their state_dict names (their handles are undetached, so copy_ writes
  // into the module).
  std::vector<std::pair<std::string, Entry*>> own;
  const auto first_part = [](const std::string& key) { return key.substr(0, key.find('.')); };
  // Each module's prefix and the names a key's next part may take there, in traversal order:
  // torch reports an unexpected key at the module whose prefix it has and whose next name is
  // neither a child nor one of the module's own state entries ("weight.absmax" is not reported:
  // its first part is a parameter's name).
  std::vector<std::pair<std::string, std::unordered_set<std::string>>> modules;
  std::function<void(Module&, const std::string&)> walk = [&](Module& m, const std::string& prefix) {
    m.prepare_loaded_state(prefix, state);
    std::unordered_set<std::string> known_names;
    for (const auto& [n, c] : m.children_) known_names.insert(n);
    for (auto& e : m.params_) {
      if (!e.tensor.defined()) continue;
      own.emplace_back(prefix + e.state_key(), &e);
      known_names.insert(first_part(e.state_key()));
    }
    for (auto& e : m.buffers_) {
      if (!e.tensor.defined() || !e.persistent) continue;
      own.emplace_back(prefix + e.state_key(), &e);
      known_names.insert(first_part(e.state_key()));
    }
    modules.emplace_back(prefix, std::move(known_names));
    for (const auto& [n, c] : m.children_) walk(*c, prefix + n + ".");
  };
  walk(*this, "");
  const auto replaced = [](const Entry& e, const Tensor& src) {
    return e.resizable && src.dim() == 1 && src.sizes() != e.tensor.sizes();
  };
  // torch's backward compatibility with checkpoints from before 0-dim tensors (0.3): a (1,)
  // tensor loads into a 0-dim parameter or buffer. (torch takes element 0 of any 1-dim tensor;
  // a longer one is a size mismatch here, rather than losing the rest silently.)
  const auto legacy_scalar = [](const Entry& e, const Tensor& src) {
    return e.tensor.dim() == 0 && src.dim() == 1 && src.numel() == 1;
  };

  LoadResult result;
  std::vector<std::string> mismatched;
  std::unordered_set<std::string> own_names;
  for (const auto& [name, e] : own) {
    own_names.insert(name);
    const Tensor& t = e->tensor;
    const Tensor* src = state.find(name);
    if (src == nullptr || !src->defined()) {
      result.missing_keys.push_back(name);
      continue;
    }
    if (src->sizes() != t.sizes() && !replaced(*e, *src) && !legacy_scalar(*e, *src)) {
      mismatched.push_back(detail::cat(name, ": expected shape ", shape_str(t.sizes()),
                                       " (in the model), got ", shape_str(src->sizes()),
                                       " (in the state_dict)"));
    }
  }
  // torch's order: grouped by module in traversal order, each group in the state's order.
  for (const auto& [prefix, known_names] : modules) {
    for (const auto& [name, t] : state) {
      if (own_names.count(name) || name.compare(0, prefix.size(), prefix) != 0) continue;
      const std::string rest = name.substr(prefix.size());
      if (!known_names.count(first_part(rest))) result.unexpected_keys.push_back(name);
    }
  }

  const bool key_errors =
      strict && (!result.missing_keys.empty() || !result.unexpected_keys.empty());
  if (key_errors || !mismatched.empty()) {
    std::ostringstream msg;
    msg << "Error(s) in loading state_dict for " << type_name() << ":";
    auto list = [&](const char* what, const std::vector<std::string>& keys) {
      if (keys.empty()) return;
      msg << "\n  " << what << " (" << keys.size() << "): ";
      for (size_t i = 0; i < keys.size(); ++i) msg << (i ? ", " : "") << '"' << keys[i] << '"';
      msg << ".";
    };
    if (strict) {
      list("Missing key(s) in state_dict", result.missing_keys);
      list("Unexpected key(s) in state_dict", result.unexpected_keys);
    }
    for (const auto& m : mismatched) msg << "\n  size mismatch for " << m << ".";
    throw ValueError(msg.str());
  }

  // Validated: only now copy, so a failed load leaves the module untouched.
  NoGradGuard no_grad;
  for (auto& [name, e] : own) {
    Tensor& t = e->tensor;
    const Tensor* src = state.find(name);
    if (src == nullptr || !src->defined() || src->is_same(t)) continue;
    if (replaced(*e, *src)) {
      t = src->to(t.dtype()).to(t.device()).clone();
      continue;
    }
    const bool same_storage = src->storage().get() == t.storage().get();
    if (same_storage && src->storage_offset() == t.storage_offset() &&
        src->strides() == t.strides() && src->dtype() == t.dtype()) {
      continue;  // the module's own state_dict: same memory, nothing to copy
    }
    // Another view of the same memory (a transpose of the weight) is read whole first.
    Tensor from = legacy_scalar(*e, *src) ? src->reshape({}) : *src;
    if (same_storage) from = from.clone();
    try {
      t.copy_(from);
    } catch (const Error& err) {
      throw ValueError(detail::cat("While copying the parameter named \"", name,
                                   "\", whose dimensions in the model are ", shape_str(t.sizes()),
                                   " and whose dimensions in the checkpoint are ",
                                   shape_str(src->sizes()), ": ", err.what()));
    }
  }
  return result;
}

// ---- calling and printing
// -------------------------------------------------------------------------

Tensor Module::forward(const Tensor&) {
  throw NotImplementedError(detail::cat(type_name(), " has no single-input forward(x)"));
}

Tensor Module::operator()(const Tensor& x) {
  if (is_called_plainly()) return forward(x);
  return call_forward({x}, [this](const std::vector<Tensor>& in) { return forward(in.front()); });
}

namespace {

// A hook's result replaces the value unless it is undefined: torch's hook returning None, which
// changes nothing.
void keep_unless_undefined(Tensor& value, Tensor result) {
  if (result.defined()) value = std::move(result);
}

// The functions of a hook list, in order: what one call keeps for its backward.
template <class Hook>
std::vector<Hook> hook_functions(const std::vector<std::pair<int64_t, Hook>>& hooks) {
  std::vector<Hook> out;
  for (const auto& [id, hook] : hooks) out.push_back(hook);
  return out;
}

}  // namespace

// torch's _call_impl order: forward pre-hooks, the inputs' backward-hook node, forward, forward
// hooks (seeing the inputs forward got), the output's backward-hook node.
Tensor Module::run_with_hooks(std::vector<Tensor> inputs, const MultiInputForward& run) {
  // Copies: a hook may register or remove hooks.
  for (auto [id, hook] : std::vector(pre_hooks_))
    keep_unless_undefined(inputs[0], hook(*this, inputs[0]));
  std::optional<BackwardHookCall> backward_hooks;
  if (has_backward_hooks()) {
    backward_hooks.emplace(*this, hook_functions(backward_pre_hooks_),
                           hook_functions(backward_hooks_));
    inputs = backward_hooks->setup_inputs(std::move(inputs));
  }
  Tensor out = run(inputs);
  if (backward_hooks) backward_hooks->check_inputs_unmodified();
  for (auto [id, hook] : std::vector(post_hooks_))
    keep_unless_undefined(out, hook(*this, inputs[0], out));
  if (backward_hooks) out = backward_hooks->setup_output(std::move(out));
  return out;
}

Tensor Module::call_with_hooks(const Tensor& first,
                               const std::function<Tensor(const Tensor&)>& run) {
  if (pre_hooks_.empty() && post_hooks_.empty() && !has_backward_hooks()) return run(first);
  return run_with_hooks({first}, [&run](const std::vector<Tensor>& in) { return run(in[0]); });
}

Tensor Module::call_forward(std::vector<Tensor> inputs, MultiInputForward run) {
  return call_forward_outputs(
             std::move(inputs),
             [run](const std::vector<Tensor>& in) { return std::vector<Tensor>{run(in)}; })
      .front();
}

std::vector<Tensor> Module::call_forward_outputs(std::vector<Tensor> inputs,
                                                 MultiOutputForward run) {
  FABRIC_CHECK(!inputs.empty(), ValueError, type_name(), ".call_forward: no inputs");
  std::vector<Tensor> outputs;
  Tensor first = run_with_hooks(std::move(inputs), [&](const std::vector<Tensor>& in) {
    outputs = checkpointing_ && grad_enabled() ? checkpoint(run, in) : run(in);
    FABRIC_CHECK(!outputs.empty(), ValueError, type_name(), ": the forward returned no outputs");
    return outputs.front();
  });
  outputs.front() = first;  // as the forward hooks left it
  return outputs;
}

namespace {
int64_t next_hook_handle() {
  static std::atomic<int64_t> next{1};
  return next++;
}

// Appends `hook` to `hooks` under a new handle, which it returns.
template <class Hook>
int64_t add_hook(std::vector<std::pair<int64_t, Hook>>& hooks, Hook hook, const Module& m,
                 const char* what) {
  FABRIC_CHECK(hook != nullptr, ValueError, m.type_name(), ".", what, ": the hook is empty");
  const int64_t id = next_hook_handle();
  hooks.emplace_back(id, std::move(hook));
  return id;
}

// Removes the hook with this handle from `hooks`; false when there is none.
template <class Hook>
bool erase_hook(std::vector<std::pair<int64_t, Hook>>& hooks, int64_t handle) {
  auto it =
      std::find_if(hooks.begin(), hooks.end(), [&](const auto& h) { return h.first == handle; });
  if (it == hooks.end()) return false;
  hooks.erase(it);
  return true;
}
}  // namespace

int64_t Module::register_forward_pre_hook(ForwardPreHook hook) {
  return add_hook(pre_hooks_, std::move(hook), *this, "register_forward_pre_hook");
}

int64_t Module::register_forward_hook(ForwardHook hook) {
  return add_hook(post_hooks_, std::move(hook), *this, "register_forward_hook");
}

int64_t Module::register_full_backward_pre_hook(BackwardPreHook hook) {
  return add_hook(backward_pre_hooks_, std::move(hook), *this, "register_full_backward_pre_hook");
}

int64_t Module::register_full_backward_hook(BackwardHook hook) {
  return add_hook(backward_hooks_, std::move(hook), *this, "register_full_backward_hook");
}

bool Module::remove_backward_hook(int64_t handle) {
  return erase_hook(backward_pre_hooks_, handle) || erase_hook(backward_hooks_, handle);
}

bool Module::remove_forward_hook(int64_t handle) {
  return erase_hook(pre_hooks_, handle) || erase_hook(post_hooks_, handle);
}

// torch's Module.__repr__: the extra_repr's lines, then "(name): " and each child's printout
// (its later lines indented by 2); a single extra line without children stays on the header line,
// anything else goes one item a line, indented by 2, the ")" on a line of its own.
std::string Module::str() const {
  std::vector<std::string> lines;
  const std::string extra = extra_repr();
  size_t extra_lines = 0;
  if (!extra.empty()) {
    for (size_t start = 0;;) {
      const size_t end = extra.find('\n', start);
      lines.push_back(extra.substr(start, end - start));
      ++extra_lines;
      if (end == std::string::npos) break;
      start = end + 1;
    }
  }
  for (const auto& [n, c] : children_) {
    std::string child = c->str();
    for (size_t at = child.find('\n'); at != std::string::npos; at = child.find('\n', at + 3))
      child.insert(at + 1, "  ");
    lines.push_back("(" + n + "): " + child);
  }
  std::string out = type_name() + "(";
  if (extra_lines == 1 && children_.empty()) {
    out += lines[0];
  } else if (!lines.empty()) {
    for (const std::string& line : lines) out += "\n  " + line;
    out += '\n';
  }
  return out + ")";
}

std::ostream& operator<<(std::ostream& os, const Module& m) { return os << m.str(); }

}  // namespace fabric::nn
