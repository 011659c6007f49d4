// An optimizer's state in PyTorch's state_dict layout (per-parameter state keyed by the parameter's
// index in param_groups order, plus each group's hyper-parameters and parameter indices), and its
// flattening to named tensors so it can be written to safetensors next to a model's weights.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "tensor/tensor.h"

namespace fabric::optim {

// One parameter's state, e.g. {"step", "exp_avg", "exp_avg_sq"} or {"momentum_buffer"}.
using ParamState = std::map<std::string, Tensor>;

// A hyper-parameter value as PyTorch keeps it in a param group: a number, a flag or a tuple
// (Adam's betas).
using HyperParam = std::variant<double, bool, std::vector<double>>;

// How OptimizerState::unflatten found a hyper-parameter in a file: the file holds it in any dtype
// (another tool may write lr as F32, a flag as U8, a count as I64), converted to a double by value.
// Kept beside the value so that read_hyper_param, which knows the optimizer and what the key must
// be, can say what the file held when it does not fit.
struct StoredHyperParam {
  std::string key;      // its name in the file, e.g. "param_groups.0.lr"
  DType dtype;          // its dtype there
  std::string inexact;  // an int64 held there that a double cannot hold exactly, else ""
};

// A group's hyper-parameters by PyTorch's names. `stored` describes those read from a file (empty
// for values set in memory); it rides along with the values through copies so that the checks in
// read_hyper_param can name the stored dtype, and it takes no part in comparisons.
struct HyperParams : std::map<std::string, HyperParam> {
  using std::map<std::string, HyperParam>::map;
  std::map<std::string, StoredHyperParam> stored;
};

// Typed reads of a HyperParams entry; absent keys leave `value` unchanged (PyTorch fills keys a
// saved group lacks from the optimizer's defaults). A value of the wrong kind raises ValueError
// naming `who` and the key (and, for a value read from a file, its key and dtype there). A value
// read from a file is taken by value whatever its dtype (a BOOL as the number 0 or 1), except an
// int64 beyond +-2^53, which a double cannot hold exactly (a float64 whose dtype was edited to I64
// without its bytes reads as such a number), and a non-finite lr, which no optimizer takes: IOError
// for both, as for any damaged file.
void read_hyper_param(const HyperParams& h, const std::string& key, double& value, const char* who);
void read_hyper_param(const HyperParams& h, const std::string& key, bool& value, const char* who);
void read_hyper_param(const HyperParams& h, const std::string& key, std::vector<double>& value, size_t size,
                      const char* who);

struct GroupState {
  HyperParams options;
  std::vector<int64_t> params;  // indices into the optimizer's parameters, in param_groups order
};

struct OptimizerState {
  std::map<int64_t, ParamState> state;  // only parameters that have state (were stepped)
  std::vector<GroupState> param_groups;

  // Named tensors, keys under `prefix`:
  //   state.<index>.<name>         the state tensor (`step` is a 0-dim float64 tensor)
  //   param_groups.<g>.<name>      a number: 0-dim float64; a flag: 0-dim bool; a tuple: 1-D float64
  //   param_groups.<g>.params      1-D int64 parameter indices
  // The tensors are the live state (not copies), as PyTorch's state_dict() returns references.
  std::vector<std::pair<std::string, Tensor>> flatten(const std::string& prefix = "") const;
  // The inverse of flatten. Only keys starting with `prefix` are read (the rest of a checkpoint is
  // ignored); a key under the prefix that is neither form, a group index gap or a group without
  // `params` raises ValueError. Hyper-parameters of any dtype are taken by value, each with its
  // StoredHyperParam (checked when an optimizer reads it).
  static OptimizerState unflatten(const std::vector<std::pair<std::string, Tensor>>& items,
                                  const std::string& prefix = "");
};

}  // namespace fabric::optim
