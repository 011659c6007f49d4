// Fabric callbacks (Lightning's `callbacks=`, `Fabric.call`): hook order, callbacks without the
// hook, named arguments and their errors, on_after_setup (setup, not setup_module) and
// on_after_optimizer_step (once per step, skipped steps included).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "nn/linear.h"
#include "optim/optim.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

// Records every notification it receives, tagged with its name.
struct Recorder : Callback {
  explicit Recorder(std::string name, std::vector<std::string>* log, bool with_epoch_hook = true)
      : name_(std::move(name)), log_(log) {
    if (with_epoch_hook)
      define_hook("on_epoch_end", [this](const HookArgs& a) {
        log_->push_back(name_ + ":epoch " + std::to_string(a.integer("epoch")));
      });
  }
  void on_after_setup(Fabric& fabric, nn::Module& module) override {
    log_->push_back(name_ + ":setup " + module.type_name());
    last_fabric = &fabric;
  }
  void on_after_optimizer_step(distributed::Strategy& strategy,
                               optim::Optimizer& optimizer) override {
    log_->push_back(name_ + ":step");
    last_strategy = &strategy;
    last_optimizer = &optimizer;
  }
  std::string name_;
  std::vector<std::string>* log_;
  Fabric* last_fabric = nullptr;
  distributed::Strategy* last_strategy = nullptr;
  optim::Optimizer* last_optimizer = nullptr;
};

std::shared_ptr<nn::Linear> small_linear() {
  return nn::make<nn::Linear>({.in_features = 2, .out_features = 1});
}

TEST(FabricCallbacks, CallRunsEachCallbackThatHasTheHookInOrder) {
  std::vector<std::string> log;
  auto a = std::make_shared<Recorder>("a", &log);
  auto silent = std::make_shared<Recorder>("silent", &log, /*with_epoch_hook=*/false);
  auto b = std::make_shared<Recorder>("b", &log);
  Fabric fab({.callbacks = {a, silent, b}});
  ASSERT_EQ(fab.callbacks().size(), 3u);
  EXPECT_EQ(fab.callbacks()[1], silent);
  fab.call("on_epoch_end", {{"epoch", 7}, {"unused", "extra arguments are ignored"}});
  EXPECT_EQ(log, (std::vector<std::string>{"a:epoch 7", "b:epoch 7"}));
  log.clear();
  fab.call("on_nothing_defines_this", {{"epoch", 1}});  // no callback has it: nothing happens
  EXPECT_TRUE(log.empty());
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    Fabric({.callbacks = {a, nullptr}});
                  }),
                  "null callback");
}

TEST(FabricCallbacks, HookArgsReadByNameWithTypedErrors) {
  Fabric fab;
  const Tensor loss = scalar_tensor(0.5, {.dtype = DType::float64});
  const HookArgs args{
      {"fabric", fab}, {"loss", loss}, {"batch_idx", 3}, {"lr", 0.25}, {"tag", "warm"}};
  EXPECT_EQ(&args.fabric(), &fab);
  EXPECT_TRUE(args.tensor("loss").is_same(loss));
  EXPECT_EQ(args.integer("batch_idx"), 3);
  EXPECT_EQ(args.number("batch_idx"), 3.0);  // an integer reads as a number, as a Python int would
  EXPECT_EQ(args.number("lr"), 0.25);
  EXPECT_EQ(args.string("tag"), "warm");
  EXPECT_EQ(args.names(), (std::vector<std::string>{"batch_idx", "fabric", "loss", "lr", "tag"}));
  struct Case {
    const char* what;
    std::function<void()> read;
    bool missing;  // KeyError; else DTypeError
    std::vector<const char*> in_message;
  };
  const std::vector<Case> cases = {
      {"missing",
       [&] { args.integer("epoch"); },
       true,
       {"'epoch'", "integer", "'batch_idx'", "'tag'"}},
      {"number as integer",
       [&] { args.integer("lr"); },
       false,
       {"'lr'", "is a number", "expected an integer"}},
      {"string as number",
       [&] { args.number("tag"); },
       false,
       {"'tag'", "is a string", "expected a number"}},
      {"tensor as string", [&] { args.string("loss"); }, false, {"'loss'", "is a tensor"}},
      {"integer as tensor",
       [&] { args.tensor("batch_idx"); },
       false,
       {"'batch_idx'", "is an integer"}},
      {"string as fabric", [&] { args.fabric("tag"); }, false, {"'tag'", "expected a fabric"}},
      {"no arguments", [] { HookArgs().fabric(); }, true, {"'fabric'", "no arguments"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string msg = c.missing ? thrown<KeyError>(c.read) : thrown<DTypeError>(c.read);
    for (const char* part : c.in_message) EXPECT_CONTAINS(msg, part);
  }
}

TEST(FabricCallbacks, AHookErrorPropagatesAndStopsTheLaterCallbacks) {
  std::vector<std::string> log;
  auto failing = std::make_shared<Callback>();
  failing->define_hook("on_epoch_end", [](const HookArgs& a) { a.integer("epoch"); });
  auto after = std::make_shared<Recorder>("after", &log);
  Fabric fab({.callbacks = {failing, after}});
  EXPECT_CONTAINS(thrown<KeyError>([&] { fab.call("on_epoch_end"); }), "'epoch'");
  EXPECT_TRUE(log.empty());
  EXPECT_THROW(failing->define_hook("", [](const HookArgs&) {}), ValueError);
  EXPECT_THROW(failing->define_hook("x", nullptr), ValueError);
  EXPECT_THROW(failing->run_hook("absent", {}), KeyError);
}

// Lightning: setup() fires on_after_setup once everything is wrapped; setup_module() does not.
TEST(FabricCallbacks, OnAfterSetupFiredBySetupNotBySetupModule) {
  std::vector<std::string> log;
  auto rec = std::make_shared<Recorder>("r", &log);
  Fabric fab({.callbacks = {rec}});
  struct Case {
    const char* what;
    std::function<void()> run;
    std::vector<std::string> expected;
  };
  auto lin_a = small_linear(), lin_b = small_linear(), lin_c = small_linear();
  optim::SGD sgd_b(lin_b->parameters(), {.lr = 0.1}), sgd_c(lin_c->parameters(), {.lr = 0.1});
  const std::vector<Case> cases = {
      {"setup(module)", [&] { fab.setup(lin_a); }, {"r:setup Linear"}},
      {"setup(module, optimizer)", [&] { fab.setup(lin_b, sgd_b); }, {"r:setup Linear"}},
      {"setup_module", [&] { fab.setup_module(lin_c); }, {}},
      {"setup_optimizers", [&] { fab.setup_optimizers(sgd_c); }, {}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    log.clear();
    c.run();
    EXPECT_EQ(log, c.expected);
  }
  EXPECT_EQ(rec->last_fabric, &fab);
}

TEST(FabricCallbacks, OnAfterOptimizerStepOncePerStepWithTheOptimizer) {
  std::vector<std::string> log;
  auto first = std::make_shared<Recorder>("first", &log),
       second = std::make_shared<Recorder>("second", &log);
  // 16-mixed: a step with inf gradients is skipped by the scaler, and still notified (Lightning
  // fires the hook after strategy.optimizer_step, whatever it did).
  Fabric fab({.precision = "16-mixed", .callbacks = {first, second}});
  auto lin = small_linear();
  optim::SGD sgd(lin->parameters(), {.lr = 0.1});
  auto [model, opt] = fab.setup(lin, sgd);
  log.clear();
  const Tensor x = ones({3, 2});
  struct Case {
    const char* what;
    double loss_factor;
    bool stepped;
  };
  // (1e-3: the scaled gradients stay within float16 at the default scale of 65536.)
  for (const Case& c : {Case{"finite", 1e-3, true}, Case{"inf gradients: skipped", INFINITY, false},
                        Case{"finite again", 1e-3, true}}) {
    SCOPED_TRACE(c.what);
    opt.zero_grad();
    fab.backward(mul(sum(model(x)), Scalar(c.loss_factor)));
    EXPECT_EQ(opt.step(), c.stepped);
    EXPECT_EQ(log, (std::vector<std::string>{"first:step", "second:step"}));
    log.clear();
  }
  EXPECT_EQ(first->last_optimizer, &sgd);
  EXPECT_EQ(first->last_strategy, &fab.strategy_object());
  EXPECT_EQ(second->last_optimizer, &sgd);
}

}  // namespace
}  // namespace fabric
