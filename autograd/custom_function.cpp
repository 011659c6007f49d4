// See custom_function.h: the node a custom function's apply() builds, as a FunctionNode whose
// closure calls the user's backward and whose saved tensors are the ones save_for_backward took.
#include "autograd/custom_function.h"

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>

#include "autograd/connect_node.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "tensor/factory.h"

namespace fabric {
namespace {

// torch names a custom function's node after its class: MulConstant -> "MulConstantBackward".
std::string node_name_of(const std::type_info& type) {
  int status = 0;
  char* demangled = abi::__cxa_demangle(type.name(), nullptr, nullptr, &status);
  std::string name = status == 0 && demangled ? demangled : type.name();
  std::free(demangled);
  // Drop a trailing template argument list (Scale<2> -> Scale), then the scopes before the name.
  if (!name.empty() && name.back() == '>') {
    int depth = 0;
    for (size_t i = name.size(); i-- > 0;) {
      depth += name[i] == '>' ? 1 : name[i] == '<' ? -1 : 0;
      if (depth == 0) {
        name.resize(i);
        break;
      }
    }
  }
  if (const size_t colons = name.rfind("::"); colons != std::string::npos)
    name = name.substr(colons + 2);
  return name + "Backward";
}

int index_of(const std::vector<Tensor>& ts, const TensorImpl* impl) {
  for (size_t i = 0; i < ts.size(); ++i)
    if (ts[i].defined() && ts[i].impl() == impl) return static_cast<int>(i);
  return -1;
}

struct OutputMeta {
  bool defined = false;
  bool differentiable = false;
  Shape shape;
  DType dtype = DType::float32;
  Device device;
};

// Maps backward's per-argument result onto the node's edges (one per tensor input), checking it
// as torch's CppNode does.
std::vector<Tensor> per_tensor_input(std::vector<Tensor> grads, const std::vector<bool>& is_tensor,
                                     const std::string& name) {
  const size_t expected = is_tensor.size();
  if (grads.size() > expected) {
    const bool extras_undefined =
        std::all_of(grads.begin() + static_cast<ptrdiff_t>(expected), grads.end(),
                    [](const Tensor& g) { return !g.defined(); });
    FABRIC_CHECK(extras_undefined, ValueError, "function ", name,
                 " returned an incorrect number of gradients (expected ", expected, ", got ",
                 grads.size(), ")");
    grads.resize(expected);
  }
  FABRIC_CHECK(grads.size() == expected, ValueError, "function ", name,
               " returned an incorrect number of gradients (expected ", expected, ", got ",
               grads.size(), ")");
  std::vector<Tensor> out;
  for (size_t i = 0; i < expected; ++i) {
    if (is_tensor[i]) {
      out.push_back(std::move(grads[i]));
      continue;
    }
    FABRIC_CHECK(!grads[i].defined(), ValueError, "function ", name,
                 " returned a gradient different than None at position ", i + 1,
                 ", but the corresponding forward input was not a Variable");
  }
  return out;
}

}  // namespace

void AutogradContext::save_for_backward(std::vector<Tensor> tensors) {
  to_save_ = std::move(tensors);
}

std::vector<Tensor> AutogradContext::get_saved_variables() const { return saved_; }

void AutogradContext::mark_non_differentiable(const std::vector<Tensor>& outputs) {
  for (const Tensor& t : outputs)
    if (t.defined()) non_differentiable_.push_back(t.impl());
}

bool AutogradContext::needs_input_grad(size_t i) const {
  FABRIC_CHECK(i < needs_input_grad_.size(), IndexError, "needs_input_grad: index ", i,
               " out of range for ", needs_input_grad_.size(), " tensor inputs");
  return needs_input_grad_[i];
}

CustomForwardScope::CustomForwardScope() : prev_(grad_enabled()) { set_grad_enabled(false); }
CustomForwardScope::~CustomForwardScope() { set_grad_enabled(prev_); }

bool CustomFunctionCall::begin(const std::type_info& type) {
  ctx->node_name_ = node_name_of(type);
  for (const Tensor& t : tensor_inputs)
    ctx->needs_input_grad_.push_back(t.defined() && t.requires_grad());
  records_ = grad_enabled() && std::any_of(ctx->needs_input_grad_.begin(),
                                           ctx->needs_input_grad_.end(), [](bool b) { return b; });
  return records_;
}

std::vector<Tensor> CustomFunctionCall::finish(std::vector<Tensor> outputs, Backward backward) {
  AutogradContext& c = *ctx;
  const auto differentiable = [&](const Tensor& o) {
    return o.defined() && is_floating(o.dtype()) &&
           std::find(c.non_differentiable_.begin(), c.non_differentiable_.end(), o.impl()) ==
               c.non_differentiable_.end();
  };
  if (!records_) {
    c.to_save_.clear();
    return outputs;
  }
  std::vector<OutputMeta> metas;
  for (const Tensor& o : outputs) {
    metas.push_back(o.defined()
                        ? OutputMeta{true, differentiable(o), o.sizes(), o.dtype(), o.device()}
                        : OutputMeta{});
  }
  // Saved tensors: detached aliases, with the storage version now and which input or output of
  // the node each is (the history create_graph gives it back).
  std::vector<SavedVersion> saved;
  bool double_backward = true;
  for (const Tensor& t : c.to_save_) {
    if (!t.defined()) {
      c.saved_.emplace_back();
      continue;
    }
    Tensor alias = t.detach();
    const int in = index_of(tensor_inputs, t.impl());
    const int out = in >= 0 ? -1 : index_of(outputs, t.impl());
    const int out_nr = out >= 0 && metas[out].differentiable ? out : -1;
    // A tensor requiring grad that is neither (one forward closes over) would be a constant to
    // a second differentiation: refused instead, as for the built-in ops.
    if (in < 0 && out_nr < 0 && t.requires_grad()) double_backward = false;
    saved.push_back({t.storage(), t.storage()->version(), t.sizes(), t.dtype(), alias, in, out_nr});
    c.saved_.push_back(alias);
  }
  c.to_save_.clear();

  const std::string name = c.node_name_;
  auto node = std::make_shared<FunctionNode>(
      name,
      [ctx = ctx, backward = std::move(backward), metas, is_tensor = argument_is_tensor,
       name](const std::vector<Tensor>& grad_outputs) {
        std::vector<Tensor> grads(metas.size());
        for (size_t k = 0; k < metas.size(); ++k) {
          if (k < grad_outputs.size() && grad_outputs[k].defined()) {
            grads[k] = grad_outputs[k];
          } else if (ctx->materialize_grads_ && metas[k].defined) {
            grads[k] = zeros(metas[k].shape, {.dtype = metas[k].dtype, .device = metas[k].device});
          }
        }
        return per_tensor_input(backward(ctx.get(), std::move(grads)), is_tensor, name);
      },
      name.c_str());
  node->set_saved_versions(std::move(saved));
  node->set_supports_double_backward(double_backward);
  node->set_called_without_gradients(true);
  node->num_outputs = static_cast<int>(outputs.size());
  add_input_edges(*node, tensor_inputs);
  for (size_t k = 0; k < outputs.size(); ++k) {
    Tensor& o = outputs[k];
    if (!o.defined() || !is_floating(o.dtype())) continue;
    // A fresh handle: forward may have returned an input, whose own history must not change.
    o = o.detach();
    if (metas[k].differentiable) set_grad_fn(o, node, static_cast<int>(k));
  }
  return outputs;
}

}  // namespace fabric
