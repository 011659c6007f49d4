// Custom autograd functions (torch's C++ torch::autograd::Function<T>, Python's
// torch.autograd.Function): an op written as a forward and a backward of one's own.
//
//   struct MulConstant : Function<MulConstant> {
//     static Tensor forward(AutogradContext* ctx, const Tensor& x, double c) {
//       ctx->saved_data["c"] = c;
//       return mul(x, c);
//     }
//     static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
//       return {mul(g[0], std::any_cast<double>(ctx->saved_data["c"])), Tensor()};
//     }
//   };
//   Tensor y = MulConstant::apply(x, 2.5);
//
// forward runs under no-grad and returns a Tensor or a std::vector<Tensor>; apply returns the
// same, each floating-point output with the function's node as its grad_fn (named
// "MulConstantBackward") when grad mode is on and a tensor argument requires grad. backward gets
// one gradient per output (zeros where none arrived, unless set_materialize_grads(false)) and
// returns one per forward argument, as torch's: a Tensor argument, each tensor of a
// std::vector<Tensor> argument and a std::optional<Tensor> argument count one each, and so does
// every other argument, whose entry must be undefined. Extra trailing undefined entries are
// allowed. Tensors saved with save_for_backward are checked for in-place writes before backward,
// freed after it (unless retain_graph), and under create_graph carry their history, so a
// backward made of differentiable ops can be differentiated again. Not provided: mark_dirty
// (in-place custom functions).
#pragma once
#include <any>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace fabric {

class AutogradContext {
 public:
  // Tensors backward needs: inputs or outputs of forward (which then carry their history under
  // create_graph), or other tensors (constants then). Call once, in forward.
  void save_for_backward(std::vector<Tensor> tensors);
  // In backward: the saved tensors, in save order. (A backward after the node's saved tensors
  // were freed raises before it is called.)
  std::vector<Tensor> get_saved_variables() const;
  // Outputs that get no gradient (indices, masks): they keep no history, and backward receives
  // zeros (or undefined without materialized grads) for them.
  void mark_non_differentiable(const std::vector<Tensor>& outputs);
  // true (the default): undefined incoming gradients reach backward as zeros of the output's
  // shape; false: as undefined tensors.
  void set_materialize_grads(bool value) { materialize_grads_ = value; }
  // Whether the i-th tensor input (counting tensors only, as torch's) needs a gradient.
  bool needs_input_grad(size_t i) const;
  // Anything else backward needs (torch's ctx->saved_data): numbers, shapes, flags.
  std::unordered_map<std::string, std::any> saved_data;

 private:
  friend struct CustomFunctionCall;
  std::vector<Tensor> to_save_;  // as given in forward
  std::vector<Tensor> saved_;    // the aliases backward sees
  std::vector<const TensorImpl*> non_differentiable_;
  bool materialize_grads_ = true;
  std::vector<bool> needs_input_grad_;
  std::string node_name_;
};

// What Function<T>::apply collects and hands over; not for direct use.
struct CustomFunctionCall {
  std::shared_ptr<AutogradContext> ctx = std::make_shared<AutogradContext>();
  std::vector<Tensor> tensor_inputs;     // every tensor argument, in order (undefined if absent)
  std::vector<bool> argument_is_tensor;  // per gradient slot backward returns

  void add(const Tensor& t) {
    tensor_inputs.push_back(t);
    argument_is_tensor.push_back(true);
  }
  void add(const std::optional<Tensor>& t) { add(t ? *t : Tensor()); }
  void add(const std::vector<Tensor>& ts) {
    for (const Tensor& t : ts) add(t);
  }
  template <typename X>
  void add(const X&) {
    argument_is_tensor.push_back(false);
  }

  using Backward = std::function<std::vector<Tensor>(AutogradContext*, std::vector<Tensor>)>;
  // Before forward: whether a graph is recorded, and ctx's needs_input_grad.
  bool begin(const std::type_info& type);
  // After forward: wires the node (when recording) and returns the outputs to hand back.
  std::vector<Tensor> finish(std::vector<Tensor> outputs, Backward backward);

 private:
  bool records_ = false;
};

// Runs forward under no-grad (a scope that restores the mode on exit).
struct CustomForwardScope {
  CustomForwardScope();
  ~CustomForwardScope();
  CustomForwardScope(const CustomForwardScope&) = delete;
  CustomForwardScope& operator=(const CustomForwardScope&) = delete;

 private:
  bool prev_;
};

template <class T>
struct Function {
  template <typename... Args>
  static auto apply(Args&&... args) {
    using Out = decltype(T::forward(static_cast<AutogradContext*>(nullptr), args...));
    static_assert(std::is_same_v<Out, Tensor> || std::is_same_v<Out, std::vector<Tensor>>,
                  "forward must return a Tensor or a std::vector<Tensor>");
    CustomFunctionCall call;
    (call.add(args), ...);
    call.begin(typeid(T));
    std::vector<Tensor> outputs;
    {
      CustomForwardScope no_grad;
      if constexpr (std::is_same_v<Out, Tensor>) {
        outputs.push_back(T::forward(call.ctx.get(), std::forward<Args>(args)...));
      } else {
        outputs = T::forward(call.ctx.get(), std::forward<Args>(args)...);
      }
    }
    outputs = call.finish(std::move(outputs), [](AutogradContext* ctx, std::vector<Tensor> g) {
      return T::backward(ctx, std::move(g));
    });
    if constexpr (std::is_same_v<Out, Tensor>) {
      return outputs[0];
    } else {
      return outputs;
    }
  }
};

}  // namespace fabric
