// Fabric::save / Fabric::load: a checkpoint is a directory, so that each part stays in the format
// its readers expect:
//   <key>.safetensors   one per module (its state_dict keys: readable by PyTorch/NumPy as model
//                       weights) and one per optimizer (OptimizerState::flatten keys)
//   tensors.safetensors plain tensors of the state, under their keys (when there are any)
//   state.json          what each key is, the plain values (numbers, flags, strings) and the
//                       precision plugin's state (a loss scaler's), which is saved by default:
//                       {"format": "fabric-checkpoint", "version": 1, "entries": {<key>: {"kind":
//                       "int" | "float" | "bool" | "string", "value": v} | {"kind": "tensor" |
//                       "module" | "optimizer"} | {"kind": "precision", "name": s, "state": {...}}}}
// Plain values are JSON's numbers, flags and strings, except a non-finite float (JSON has none):
// {"float": "inf"}, {"float": "-inf"} or {"float": "nan"}, in an entry's "value" and in a
// precision state alike. (Finite floats stay numbers, so earlier checkpoints read unchanged.)
// Strings must be valid UTF-8, as JSON's are: save raises ValueError naming the key otherwise.
// A filtered save (SaveFilter) writes only the kept tensors of an entry's file, and leaves out an
// entry that kept none.
// A malformed state.json is an IOError "checkpoint <path>: ..." on load.
// Writing is atomic: everything goes to a temporary sibling directory, is fsynced, and replaces
// `path` only when complete, so an interrupted save leaves the previous checkpoint loadable.
#pragma once
#include <concepts>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "nn/module.h"
#include "optim/optimizer.h"
#include "precision/precision.h"
#include "runtime/wrappers.h"

namespace fabric {

// One value of a checkpoint state: a stateful object (restored in place on load) or a plain value
// (written back into the caller's map on load). Objects are held by pointer: they must outlive
// the save/load call.
class StateEntry {
 public:
  using Value = std::variant<nn::Module*, optim::Optimizer*, precision::Precision*, Tensor, int64_t, double,
                             bool, std::string>;
  StateEntry(nn::Module& m) : value_(&m) {}                           // NOLINT: implicit by design
  StateEntry(const std::shared_ptr<nn::Module>& m) : value_(m.get()) {}  // NOLINT
  template <class M>
    requires std::derived_from<M, nn::Module>
  StateEntry(const std::shared_ptr<M>& m) : value_(static_cast<nn::Module*>(m.get())) {}  // NOLINT
  template <class O>
    requires std::derived_from<O, optim::Optimizer>
  StateEntry(const std::shared_ptr<O>& o) : value_(static_cast<optim::Optimizer*>(o.get())) {}  // NOLINT
  StateEntry(FabricModule& m) : value_(&m.module()) {}        // NOLINT
  StateEntry(optim::Optimizer& o) : value_(&o) {}             // NOLINT
  StateEntry(FabricOptimizer& o) : value_(&o.optimizer()) {}  // NOLINT
  StateEntry(precision::Precision& p) : value_(&p) {}         // NOLINT
  StateEntry(Tensor t) : value_(std::move(t)) {}              // NOLINT
  StateEntry(int v) : value_(int64_t(v)) {}                   // NOLINT
  StateEntry(int64_t v) : value_(v) {}                        // NOLINT
  StateEntry(double v) : value_(v) {}                         // NOLINT
  StateEntry(bool v) : value_(v) {}                           // NOLINT
  StateEntry(std::string v) : value_(std::move(v)) {}         // NOLINT
  StateEntry(const char* v) : value_(std::string(v)) {}       // NOLINT
  // Any other integer type (size_t, unsigned, long long): an int64 value (one past its range is a
  // ValueError); without this a size_t loop counter did not compile (ambiguous conversions).
  template <std::integral I>
  requires(!std::same_as<I, bool>) StateEntry(I v) : value_(as_int64(v)) {}  // NOLINT
  // Pointers to what the entries above take by reference, for code that holds raw pointers.
  template <class M>
  requires std::derived_from<M, nn::Module> StateEntry(M* m)
      : value_(static_cast<nn::Module*>(non_null(m))) {}  // NOLINT
  template <class O>
  requires std::derived_from<O, optim::Optimizer> StateEntry(O* o)
      : value_(static_cast<optim::Optimizer*>(non_null(o))) {}           // NOLINT
  StateEntry(FabricModule* m) : value_(&non_null(m)->module()) {}        // NOLINT
  StateEntry(FabricOptimizer* o) : value_(&non_null(o)->optimizer()) {}  // NOLINT
  template <class P>
  requires std::derived_from<P, precision::Precision> StateEntry(P* p)
      : value_(static_cast<precision::Precision*>(non_null(p))) {}  // NOLINT
  // Any other pointer (a Tensor*, say) would convert to bool and be saved as `true`.
  template <class T>
  StateEntry(T*) = delete;

  const Value& value() const { return value_; }
  Value& value() { return value_; }
  template <class T>
  const T& get() const { return std::get<T>(value_); }
  // "module", "optimizer", "precision", "tensor", "int", "float", "bool", "string".
  std::string kind() const;

 private:
  template <std::integral I>
  static int64_t as_int64(I v) {
    if constexpr (std::is_unsigned_v<I> && sizeof(I) >= sizeof(int64_t))
      if (v > static_cast<I>(std::numeric_limits<int64_t>::max()))
        throw ValueError("Fabric state entry: the integer " + std::to_string(v) +
                         " is past int64's range");
    return static_cast<int64_t>(v);
  }
  template <class P>
  static P* non_null(P* p) {
    if (p == nullptr)
      throw ValueError("Fabric state entry: a null pointer; pass the module, optimizer or value");
    return p;
  }
  Value value_;
};

using State = std::map<std::string, StateEntry>;

// Fabric.save's filter (the reference's `filter`): per state key of a module or optimizer, which of
// its tensors to write. Called with each tensor's name — a state_dict name for a module, an
// OptimizerState::flatten name ("state.0.exp_avg", "param_groups.0.lr") for an optimizer — and the
// tensor; true keeps it. An entry whose filter keeps nothing is left out of the checkpoint, as in
// the reference. E.g. only the LoRA weights:
//   {{"model", [](const std::string& n, const Tensor&) { return n.find("lora_") != n.npos; }}}
using SaveFilter = std::function<bool(const std::string& name, const Tensor& value)>;
using SaveFilters = std::map<std::string, SaveFilter>;
// ValueError for what Fabric.save refuses in `state` itself (an empty key or one holding '/', a
// reserved file name, an undefined tensor, a string that is not UTF-8), without writing anything.
void check_savable(const State& state);

// ValueError when a key of `filters` is not in `state` (naming it and listing the state's keys),
// holds an empty function, or names an entry that is not a module or an optimizer (nothing to
// select from: a plain value or a precision plugin is saved whole or not at all).
void check_save_filters(const State& state, const SaveFilters& filters);

// One entry of a checkpoint as Fabric.load(path) returns it (no state given: nothing restored).
struct CheckpointEntry {
  // As StateEntry::kind(): "module", "optimizer", "precision", "tensor", "int", "float", ...
  std::string kind;
  // module: its state_dict; optimizer: its state under OptimizerState::flatten's names (unflatten
  // turns them back into an OptimizerState). A filtered save's subset in either case.
  std::map<std::string, Tensor> tensors;
  std::optional<StateEntry> value;  // tensor, int, float, bool, string
  std::string name;                 // precision: the plugin's name; optimizer: its type ("AdamW")
  precision::PrecisionState precision_state;  // precision: the plugin's saved state
};
using Checkpoint = std::map<std::string, CheckpointEntry>;

// Every entry of the checkpoint `path` (full or sharded layout), restoring nothing. IOError as
// load_checkpoint for a missing or malformed checkpoint.
Checkpoint read_checkpoint_contents(const std::string& path);

// The plain value (int, float, bool or string) saved under `key` in the checkpoint `path`, read
// from its description alone (no tensor file is opened); nullopt when the checkpoint has no such
// key. IOError as load_checkpoint for a missing or malformed checkpoint, and when `key` holds a
// module, optimizer, precision plugin or tensor.
std::optional<StateEntry> read_checkpoint_value(const std::string& path, const std::string& key);

// Fabric.load_raw's files: a plain state-dict file, not a checkpoint directory. A module's is one
// safetensors file of its state_dict (what torch's safetensors save_file(model.state_dict())
// writes, or a checkpoint's <key>.safetensors); an optimizer's is the file a checkpoint writes for
// one optimizer (OptimizerState::flatten names; ValueError when its "optimizer" metadata names
// another type than `expected_type`). IOError naming `path` when it is missing, a directory or not
// safetensors.
nn::StateDict read_raw_module_state(const std::string& path);
optim::OptimizerState read_raw_optimizer_state(const std::string& path,
                                               const std::string& expected_type);

// Writes `state` (plus `precision`'s state under "precision" unless the state holds a plugin
// already or precision is null) to the directory `path`. ValueError for keys that are empty or
// hold '/', or that collide with the reserved file names.
// `optimizer_state` (when set) gives the state written for an optimizer entry instead of its
// state_dict() (a sharding strategy's gathered, single-process layout).
// `module_state` likewise gives the state_dict written for a module entry (a sharding strategy's
// gathered parameters).
using OptimizerStateSource = std::function<optim::OptimizerState(const optim::Optimizer&)>;
using ModuleStateSource = std::function<nn::StateDict(const nn::Module&)>;
// `filters` (check_save_filters) select the tensors written for module and optimizer entries.
void save_checkpoint(const std::string& path, const State& state,
                     const precision::Precision* precision,
                     const OptimizerStateSource& optimizer_state = {},
                     const ModuleStateSource& module_state = {}, const SaveFilters& filters = {});

// Loads the directory `path` into `state`: modules and optimizers in place (modules honour
// `strict`), plain values and tensors written back into the map, the precision plugin's state
// into `precision` (when saved and precision is non-null; a state saved by another kind of plugin
// or scaler does not fail the load: its loss scale is carried over where the two scalers have one,
// else it is skipped, and either way a warning is added to `warnings`). With strict, a key of `state` missing
// from the checkpoint is a KeyError naming it; a missing or unreadable checkpoint an IOError. Returns the checkpoint's entries that `state`
// did not ask for, as plain values and tensors (modules and optimizers come back as their tensors
// under "<key>.<name>").
// `load_optimizer` (when set) restores an optimizer entry instead of its load_state_dict (a
// sharding strategy keeps its partition).
// `load_module` likewise restores a module entry instead of its load_state_dict.
using OptimizerStateSink = std::function<void(optim::Optimizer&, const optim::OptimizerState&)>;
using ModuleStateSink = std::function<void(nn::Module&, const nn::StateDict&, bool strict)>;
State load_checkpoint(const std::string& path, State& state, precision::Precision* precision, bool strict = true,
                      const OptimizerStateSink& load_optimizer = {}, const ModuleStateSink& load_module = {},
                      std::vector<std::string>* warnings = nullptr);

}  // namespace fabric
