// Callbacks (Lightning Fabric's `callbacks=`): objects Fabric notifies after setup() and after each
// optimizer step, and whose named hooks `Fabric::call(hook, args)` runs. A hook receives its
// arguments by name in a HookArgs and reads only those it needs (Lightning filters the keyword
// arguments to the hook's signature), so a caller may pass more than any one hook uses.
//
//   struct PrintLoss : fabric::Callback {
//     PrintLoss() {
//       define_hook("on_train_epoch_end", [](const fabric::HookArgs& a) {
//         std::cout << "epoch " << a.integer("epoch") << ": " << a.number("loss") << "\n";
//       });
//     }
//   };
//   fabric::Fabric fab({.callbacks = {std::make_shared<PrintLoss>()}});
//   fab.call("on_train_epoch_end", {{"epoch", 3}, {"loss", 0.25}});
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "tensor/tensor.h"

namespace fabric {

class Fabric;
namespace nn {
class Module;
}
namespace optim {
class Optimizer;
}
namespace distributed {
class Strategy;
}

// One argument of a hook: a tensor, a number, an integer, a string or the Fabric object. One
// constructor per kind keeps `{"batch_idx", 3}` an integer and `{"lr", 0.1}` a number.
class HookValue {
 public:
  HookValue(Tensor t) : v_(std::move(t)) {}           // NOLINT: implicit, as the values of a dict
  HookValue(double d) : v_(d) {}                      // NOLINT
  HookValue(float f) : v_(static_cast<double>(f)) {}  // NOLINT
  HookValue(int i) : v_(static_cast<int64_t>(i)) {}   // NOLINT
  HookValue(long i) : v_(static_cast<int64_t>(i)) {}  // NOLINT
  HookValue(long long i) : v_(static_cast<int64_t>(i)) {}      // NOLINT
  HookValue(unsigned i) : v_(static_cast<int64_t>(i)) {}       // NOLINT
  HookValue(unsigned long i) : v_(static_cast<int64_t>(i)) {}  // NOLINT
  HookValue(std::string s) : v_(std::move(s)) {}               // NOLINT
  HookValue(const char* s) : v_(std::string(s)) {}             // NOLINT
  HookValue(Fabric* f) : v_(f) {}                              // NOLINT
  HookValue(Fabric& f) : v_(&f) {}                             // NOLINT
  // "tensor", "number", "integer", "string" or "fabric": what an error message names.
  std::string kind() const;

 private:
  friend class HookArgs;
  std::variant<Tensor, double, int64_t, std::string, Fabric*> v_;
};

// The named arguments of one hook call. The typed getters raise KeyError for a missing name and
// DTypeError for a value of another kind, naming the argument and what was expected. An integer
// also reads as a number (as a Python int passed where a float is expected).
class HookArgs {
 public:
  HookArgs() = default;
  HookArgs(std::initializer_list<std::pair<const std::string, HookValue>> args) : args_(args) {}
  HookArgs& set(const std::string& name, HookValue value);
  bool has(const std::string& name) const { return args_.count(name) > 0; }
  std::vector<std::string> names() const;

  const Tensor& tensor(const std::string& name) const;
  double number(const std::string& name) const;
  int64_t integer(const std::string& name) const;
  const std::string& string(const std::string& name) const;
  Fabric& fabric(const std::string& name = "fabric") const;

 private:
  const HookValue& at(const std::string& name, const char* expected) const;
  [[noreturn]] void mistyped(const std::string& name, const HookValue& v,
                             const char* expected) const;
  std::map<std::string, HookValue> args_;
};

using Hook = std::function<void(const HookArgs&)>;

class Callback {
 public:
  Callback() = default;
  virtual ~Callback() = default;
  // Hooks may hold `this` (they usually do): a copy would run them on the original.
  Callback(const Callback&) = delete;
  Callback& operator=(const Callback&) = delete;

  // Fired by Fabric::setup(module, optimizers...) once everything is wrapped; not by
  // setup_module (as Lightning). `module` is the module that was set up.
  virtual void on_after_setup(Fabric& fabric, nn::Module& module) { (void)fabric, (void)module; }
  // Fired after every FabricOptimizer::step, also one a loss scaler skipped (as Lightning, which
  // fires it after strategy.optimizer_step whatever that did).
  virtual void on_after_optimizer_step(distributed::Strategy& strategy,
                                       optim::Optimizer& optimizer) {
    (void)strategy, (void)optimizer;
  }

  // Named hooks for Fabric::call. Defining a name again replaces its hook (as assigning a
  // method); an empty name or function is a ValueError.
  void define_hook(const std::string& name, Hook hook);
  bool has_hook(const std::string& name) const { return hooks_.count(name) > 0; }
  // Runs the hook; KeyError when this callback has none of that name.
  void run_hook(const std::string& name, const HookArgs& args) const;

 private:
  std::map<std::string, Hook> hooks_;
};

}  // namespace fabric
