// How an op hands itself to autograd without the tensor layer knowing autograd: after computing,
// an op calls record_op() with its id, inputs, outputs and an op-specific attribute struct
// (declared in op_attrs.h). The autograd layer installs the recorder; with none installed, or
// when no input requires grad, recording costs one branch.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string_view>

#include "tensor/op_list.h"
#include "tensor/tensor.h"

namespace fabric {

enum class OpId : uint16_t {
#define FABRIC_OP_ENUM(name, cpu, cuda) name,
  FABRIC_OP_LIST(FABRIC_OP_ENUM)
#undef FABRIC_OP_ENUM
      num_ops
};

std::string_view op_name(OpId id);

struct OpRecord {
  OpId op;
  const Tensor* inputs;   // the tensors the op read, after autocast (undefined = absent optional)
  size_t num_inputs;
  Tensor* outputs;        // autograd attaches grad_fn to these
  size_t num_outputs;
  const void* attrs;      // op-specific struct from op_attrs.h, or nullptr
  // PyTorch's name for the op's backward node where it is not the op's own (t() records a
  // transpose that torch calls TBackward0; sum over given dims is SumBackward1). Null: the op's.
  const char* node_name = nullptr;
};

using AutogradRecorder = void (*)(const OpRecord&);
void set_autograd_recorder(AutogradRecorder recorder);
AutogradRecorder autograd_recorder();

// Tensor::backward() forwards here; the autograd layer installs the engine.
using BackwardEntry = void (*)(const Tensor& root, const Tensor& gradient,
                               std::optional<bool> retain_graph, bool create_graph);
void set_backward_entry(BackwardEntry entry);
BackwardEntry backward_entry();

// True when any defined input requires grad and a recorder is installed.
bool needs_record(std::initializer_list<const Tensor*> inputs);

// Whether autograd records ops on this thread now (its grad mode; false without autograd). The
// autograd layer installs the query. For ops that, as torch, refuse an argument they have no
// derivative for only when a graph would be built (no_grad lets it through).
using GradModeQuery = bool (*)();
void set_grad_mode_query(GradModeQuery query);
bool grad_mode_enabled();

// In-place ops under autograd, with PyTorch's rules. An in-place op whose self or operand
// requires grad asks inplace_joins_graph() before writing: autograd raises for a leaf that
// requires grad (in grad mode) or a view of one, and answers whether the write must join the
// graph. One that must computes the out-of-place op (on a copy of self's old value when its rule
// needs it), writes that result into self without recording, and then rebase_history(self,
// result) makes the result's history self's (for a view: its base's, PyTorch's CopySlices).
struct InplaceHooks {
  bool (*joins_graph)(const char* op, const Tensor& self) = nullptr;
  void (*rebase)(const Tensor& self, const Tensor& result) = nullptr;
};
void set_inplace_hooks(const InplaceHooks& hooks);
// False without hooks, when neither self nor an operand requires grad, or in no-grad mode.
bool inplace_joins_graph(const char* op, const Tensor& self, std::initializer_list<const Tensor*> operands);
void rebase_history(const Tensor& self, const Tensor& result);

// Records when needed. Inputs/outputs are copied into spans by the caller.
void record_op(OpId op, std::initializer_list<Tensor> inputs,
               std::initializer_list<Tensor*> outputs, const void* attrs = nullptr,
               const char* node_name = nullptr);

}  // namespace fabric
