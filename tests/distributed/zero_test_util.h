// Shared by the ZeRO and FSDP tests (test_zero.cpp, test_zero_checkpoint.cpp, test_fsdp*.cpp): the problems, models and
// optimizers both sides train, the ZeRO training loop, the data-parallel references (float32
// weights; half weights with float32 masters) and the Fabric options of a 2-rank run.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "distributed/zero.h"
#include "nn/gpt.h"
#include "nn/mlp.h"
#include "optim/adagrad.h"
#include "optim/adam.h"
#include "optim/clip_grad.h"
#include "optim/rmsprop.h"
#include "optim/sgd.h"
#include "precision/deepspeed_precision.h"
#include "precision/mixed_precision.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/distributed/dist_test_util.h"

namespace fabric::zero_test {

using dist_test::self_argv;
using namespace std::chrono_literals;

constexpr int64_t kSteps = 20, kB = 6;
constexpr int64_t kIn = 8, kHidden = 16, kOut = 4;
inline const nn::GPTConfig kGPT{.vocab_size = 32, .block_size = 16, .n_layer = 2, .n_head = 2, .n_embd = 32};

struct Case {
  std::string model = "mlp";      // "mlp" | "gpt"
  std::string optimizer = "sgd";  // "sgd" (momentum, two groups) | "adamw" | "rmsprop" | "adagrad"
  std::string precision = "32-true";
  int micro = 1;                  // micro-batches per step, all but the last in no_backward_sync
  double max_norm = 0;            // > 0: clip by norm before every step
  double clip_val = 0;            // > 0: clip by value before every step
  double norm_type = 2.0;
  // Every micro-batch synchronises (no no_backward_sync): the reduced partition gradients
  // accumulate over the step (in the half dtype under a half mode, as DeepSpeed).
  bool sync_each_micro = false;
  // Before each step's zero_grad, a synchronised backward on other rows whose gradients that
  // zero_grad must discard (the reference never sees it).
  bool discarded_backward = false;
  // The micro-batches run in a closure passed to step (no clip_gradients then).
  bool closure = false;
  // > 0: the DeepSpeed config's gradient_clipping (the plugin clips inside its step); shared by
  // the cases of one launch (half modes).
  double ds_clip = 0;
  // Before training, another optimizer shards the module, runs a synchronised backward and is
  // destroyed without a step: the optimizer that trains shards the same parameters again (float32:
  // a half mode's first master would have taken the float32 values that the second cannot see).
  bool replaced_optimizer = false;
};

struct Problem {
  Tensor x, y;  // mlp: (kSteps, 2kB, kIn), (kSteps, 2kB, kOut); gpt: (kSteps, 2kB, T) tokens, both
};

inline Problem make_problem(const std::string& model) {
  Generator g(1234);
  if (model == "gpt") {
    Tensor tok = randint(0, kGPT.vocab_size, {kSteps, 2 * kB, kGPT.block_size + 1}, {.dtype = DType::int64}, &g);
    return {tok.narrow(2, 0, kGPT.block_size).contiguous(), tok.narrow(2, 1, kGPT.block_size).contiguous()};
  }
  return {randn({kSteps, 2 * kB, kIn}, {.dtype = DType::float32}, &g),
          randn({kSteps, 2 * kB, kOut}, {.dtype = DType::float32}, &g)};
}

inline std::shared_ptr<nn::Module> make_model(const std::string& model, uint64_t seed) {
  manual_seed(seed);
  if (model == "gpt") return std::make_shared<nn::GPT>(kGPT);
  return std::make_shared<nn::MLP>(nn::MLPConfig{.sizes = {kIn, kHidden, kHidden, kOut}, .activation = "tanh"});
}

// SGD gets two groups (the first parameter alone, with another lr) so that every group is sharded
// on its own; AdamW, RMSprop (momentum, centered) and Adagrad (lr decay, a non-zero initial
// accumulator: its state exists before the sharding replaces the parameters) one group.
inline std::unique_ptr<optim::Optimizer> make_optimizer(const std::string& name, const std::vector<Tensor>& params) {
  if (name == "rmsprop")
    return std::make_unique<optim::RMSprop>(
        params, optim::RMSpropOptions{.lr = 1e-3, .momentum = 0.9, .centered = true});
  if (name == "adagrad")
    return std::make_unique<optim::Adagrad>(
        params,
        optim::AdagradOptions{.lr = 5e-2, .lr_decay = 0.01, .initial_accumulator_value = 0.1});
  if (name == "sgd") {
    auto opt = std::make_unique<optim::SGD>(std::vector<Tensor>{params.front()},
                                            optim::SGDOptions{.lr = 0.05, .momentum = 0.9});
    opt->add_param_group({std::vector<Tensor>(params.begin() + 1, params.end()),
                          optim::SGDOptions{.lr = 0.03, .momentum = 0.9, .weight_decay = 1e-3}});
    return opt;
  }
  return std::make_unique<optim::AdamW>(params, optim::AdamWOptions{.lr = 1e-2, .eps = 1e-6});
}

inline Tensor loss_of(const std::string& model, const Tensor& out, const Tensor& y) {
  if (model == "gpt") return cross_entropy(out.reshape({-1, kGPT.vocab_size}), y.reshape({-1}));
  return mse_loss(out, y);
}

inline std::vector<Tensor> snapshot(const nn::Module& m) {
  std::vector<Tensor> out;
  for (const Tensor& p : m.parameters()) out.push_back(p.clone());
  return out;
}

inline double max_rel_diff(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const Tensor da = a[i].to(DType::float64), db = b[i].to(DType::float64);
    const double num = amax(abs(da - db)).item<double>();
    const double den = std::max(amax(abs(db)).item<double>(), 1e-12);
    worst = std::max(worst, num / den);
  }
  return worst;
}

// The values the optimizer steps, in parameter order: the module's parameters, or under a half
// mode of ZeRO their float32 masters (module_state_to_save: collective).
inline std::vector<Tensor> master_weights(Fabric& f, nn::Module& m) {
  const nn::StateDict sd = f.strategy_object().module_state_to_save(m);
  std::vector<Tensor> out;
  for (const auto& [name, q] : m.named_parameters()) out.push_back(sd.at(name).clone());
  return out;
}

struct ZeroRun {
  std::vector<Tensor> weights;           // master_weights
  std::vector<Tensor> module_weights;    // the module's parameters as they are (half under a half mode)
  std::vector<distributed::ZeroStrategy::GroupLayout> layout;
  std::vector<int64_t> shard_numel;      // the optimizer's parameters after setup
  std::vector<int64_t> state_numel;      // every floating state tensor with more than one element
};

inline ZeroRun train_zero(Fabric& f, const Problem& p, const Case& c, int64_t bucket_elements,
                   std::vector<double>* norms = nullptr) {
  auto& zero = dynamic_cast<distributed::ZeroStrategy&>(f.strategy_object());
  zero.set_reduce_bucket_elements(bucket_elements);
  // A different seed per rank: setup must broadcast rank 0's weights.
  auto module = make_model(c.model, 7 + 100 * uint64_t(f.global_rank()));
  const int64_t r = f.global_rank(), rows = kB / c.micro;
  FabricModule model = f.setup_module(module);
  if (c.replaced_optimizer) {
    auto first = make_optimizer(c.optimizer, module->parameters());
    FabricOptimizer first_fopt = f.setup_optimizers(*first);
    f.backward(loss_of(c.model, model(p.x[1].narrow(0, r * kB, kB)), p.y[1].narrow(0, r * kB, kB)));
    first_fopt.zero_grad();
  }
  auto opt = make_optimizer(c.optimizer, module->parameters());
  FabricOptimizer fopt = f.setup_optimizers(*opt);
  ZeroRun run;
  run.layout = zero.layout(*opt);
  for (const Tensor& q : opt->parameters()) run.shard_numel.push_back(q.numel());
  for (int64_t s = 0; s < kSteps; ++s) {
    if (c.discarded_backward) {
      const int64_t other = (s + 1) % kSteps;
      f.backward(loss_of(c.model, model(p.x[other].narrow(0, r * kB, kB)), p.y[other].narrow(0, r * kB, kB)));
    }
    fopt.zero_grad();
    auto micro_batches = [&] {
      Tensor total;
      for (int m = 0; m < c.micro; ++m) {
        const Tensor x = p.x[s].narrow(0, r * kB + m * rows, rows);
        const Tensor y = p.y[s].narrow(0, r * kB + m * rows, rows);
        auto guard = f.no_backward_sync(model, /*enabled=*/!c.sync_each_micro && m + 1 < c.micro);
        const Tensor loss = loss_of(c.model, model(x), y) * (1.0 / c.micro);
        f.backward(loss);
        total = loss;
      }
      return total;
    };
    if (c.closure) {
      EXPECT_TRUE(c.max_norm == 0 && c.clip_val == 0) << "a closure leaves no room to clip";
      fopt.step(micro_batches);
      continue;
    }
    micro_batches();
    if (c.max_norm > 0) {
      const double n = f.clip_gradients(model, fopt, {.max_norm = c.max_norm, .norm_type = c.norm_type}).item<double>();
      if (norms) norms->push_back(n);
    }
    if (c.clip_val > 0) f.clip_gradients(model, fopt, {.clip_val = c.clip_val});
    fopt.step();
  }
  for (const Tensor& q : opt->parameters()) {
    if (const auto* st = opt->state(q))
      for (const auto& [key, t] : *st)
        if (t.is_floating_point() && t.numel() > 1) run.state_numel.push_back(t.numel());
  }
  run.weights = master_weights(f, *module);
  run.module_weights = snapshot(*module);
  return run;
}

// Data parallelism written out in the launched processes: every rank runs its kB rows, the
// gradients are averaged with the group's all-reduce, every rank steps the full model. The
// precision plugin is applied by hand, as FabricModule and Fabric.backward/step apply it.
inline std::vector<Tensor> train_dp(Fabric& f, const Problem& p, const Case& c, std::vector<double>* norms = nullptr) {
  auto model = make_model(c.model, 7);
  auto opt = make_optimizer(c.optimizer, model->parameters());
  std::unique_ptr<precision::MixedPrecision> mp;
  if (c.precision != "32-true") mp = std::make_unique<precision::MixedPrecision>(c.precision, DeviceType::cpu);
  const int64_t r = f.global_rank(), rows = kB / c.micro;
  for (int64_t s = 0; s < kSteps; ++s) {
    opt->zero_grad();
    for (int m = 0; m < c.micro; ++m) {
      Tensor x = p.x[s].narrow(0, r * kB + m * rows, rows);
      const Tensor y = p.y[s].narrow(0, r * kB + m * rows, rows);
      Tensor out;
      if (mp) {
        x = mp->convert_input(x);
        precision::ContextGuard guard = mp->forward_context();
        out = model->forward(x);
      } else {
        out = model->forward(x);
      }
      if (mp) out = mp->convert_output(out);
      const Tensor loss = loss_of(c.model, out, y) * (1.0 / c.micro);
      if (mp) {
        mp->backward(loss, nullptr);
      } else {
        backward(loss);
      }
    }
    {
      NoGradGuard no_grad;
      for (const Tensor& q : model->parameters()) {
        Tensor g = q.grad();
        if (g.defined()) g.copy_(f.all_reduce(g, "mean"));
      }
      if (c.max_norm > 0) {
        const double n = optim::clip_grad_norm_(model->parameters(), c.max_norm, c.norm_type).item<double>();
        if (norms) norms->push_back(n);
      }
      if (c.clip_val > 0) optim::clip_grad_value_(model->parameters(), c.clip_val);
    }
    if (mp) {
      mp->optimizer_step(*opt, nullptr);
    } else {
      opt->step();
    }
  }
  return snapshot(*model);
}

// Data parallelism with DeepSpeed's half weights written out (spec §10), in the launched processes:
// float32 master weights, which the optimizer steps; every step the forward and backward run on a
// half copy of them under the plugin's forward context (autocast for the mixed modes, the half
// default dtype for the true modes); the half gradients (of the scaled loss under 16-mixed),
// accumulated over the micro-batches, are divided by the world size and summed across ranks in
// half (with sync_each_micro: every micro-batch's, the reduced gradients accumulated in half, as
// DeepSpeed accumulates its partition gradients), cast to float32 at the step, optionally clipped
// (unscaled first, as Fabric.clip_gradients does) and stepped through the plugin (overflow check,
// unscale, scale update). The true modes start from the half-rounded initial weights (the module
// is cast before the masters are taken).
inline std::vector<Tensor> train_dp_half_weights(Fabric& f, const Problem& p, const Case& c,
                                                 std::vector<double>* norms = nullptr) {
  precision::DeepSpeedPrecision ds(c.precision, DeviceType::cpu, std::nullopt, c.ds_clip);
  const DType half = ds.dtype();
  auto master = make_model(c.model, 7);
  auto copy = make_model(c.model, 7);
  copy->to(half);
  std::vector<Tensor> mp = master->parameters(), hp = copy->parameters();
  if (c.precision.find("-true") != std::string::npos) {
    NoGradGuard no_grad;
    for (size_t i = 0; i < mp.size(); ++i) mp[i].copy_(hp[i]);
  }
  auto opt = make_optimizer(c.optimizer, mp);
  const int64_t r = f.global_rank(), rows = kB / c.micro;
  const double n = static_cast<double>(f.world_size());
  for (int64_t s = 0; s < kSteps; ++s) {
    opt->zero_grad();
    copy->zero_grad();
    {
      NoGradGuard no_grad;
      for (size_t i = 0; i < mp.size(); ++i) hp[i].copy_(mp[i]);
    }
    std::vector<Tensor> reduced(mp.size());  // (sync_each_micro) in half
    for (int m = 0; m < c.micro; ++m) {
      const Tensor x = p.x[s].narrow(0, r * kB + m * rows, rows);
      const Tensor y = p.y[s].narrow(0, r * kB + m * rows, rows);
      Tensor out;
      {
        precision::ContextGuard guard = ds.forward_context();
        out = copy->forward(ds.convert_input(x));
      }
      ds.backward(loss_of(c.model, ds.convert_output(out), y) * (1.0 / c.micro), nullptr);
      if (c.sync_each_micro) {
        NoGradGuard no_grad;
        for (size_t i = 0; i < mp.size(); ++i) {
          const Tensor g = hp[i].grad();
          if (!g.defined()) continue;
          const Tensor r = f.all_reduce(g / n, "sum");
          if (reduced[i].defined()) {
            add_(reduced[i], r);
          } else {
            reduced[i] = r;
          }
          zero_grad(hp[i]);
        }
      }
    }
    {
      NoGradGuard no_grad;
      for (size_t i = 0; i < mp.size(); ++i) {
        if (c.sync_each_micro) {
          if (reduced[i].defined()) set_grad(mp[i], reduced[i].to(DType::float32));
          continue;
        }
        const Tensor g = hp[i].grad();
        if (!g.defined()) continue;
        set_grad(mp[i], f.all_reduce(g / n, "sum").to(DType::float32));
      }
      if (c.max_norm > 0 || c.clip_val > 0) ds.unscale_gradients(*opt);
      if (c.max_norm > 0) {
        const double n = optim::clip_grad_norm_(mp, c.max_norm, c.norm_type).item<double>();
        if (norms) norms->push_back(n);
      }
      if (c.clip_val > 0) optim::clip_grad_value_(mp, c.clip_val);
    }
    ds.optimizer_step(*opt, nullptr);
  }
  return snapshot(*master);
}

inline bool is_half_mode(const std::string& precision) { return precision != "32-true"; }

// The weights after one good step, with (first) and without (second) a backward before it that
// raised mid-way on every rank (a hook on the MLP's first layer output): ZeRO's and FSDP's
// ABackwardThatRaisesLeavesNoStateBehind expect them equal.
inline std::pair<std::vector<Tensor>, std::vector<Tensor>> weights_after_a_failed_backward(
    Fabric& f, const Problem& p) {
  const int64_t r = f.global_rank();
  auto run = [&](bool fail_first) {
    auto module = make_model("mlp", 7);
    bool armed = false;
    module->get_submodule("layers.0")
        ->register_forward_hook([&](nn::Module&, const Tensor&, const Tensor& out) {
          register_hook(out, [&](const Tensor& g) -> Tensor {
            if (armed) throw ValueError("injected failure in backward");
            return g;
          });
          return out;
        });
    FabricModule model = f.setup_module(module);
    auto opt = make_optimizer("adamw", module->parameters());
    FabricOptimizer fopt = f.setup_optimizers(*opt);
    auto rows = [&](int64_t s, const Tensor& t) { return t[s].narrow(0, r * kB, kB); };
    if (fail_first) {
      armed = true;
      fopt.zero_grad();
      bool raised = false;
      try {
        f.backward(loss_of("mlp", model(rows(1, p.x)), rows(1, p.y)));
      } catch (const ValueError& e) {
        raised = std::string(e.what()).find("injected failure") != std::string::npos;
      }
      EXPECT_TRUE(raised) << "the injected failure did not surface from Fabric.backward";
      armed = false;
    }
    fopt.zero_grad();
    f.backward(loss_of("mlp", model(rows(0, p.x)), rows(0, p.y)));
    fopt.step();
    return master_weights(f, *module);
  };
  return {run(true), run(false)};
}

inline FabricOptions zero_options(int stage, const std::string& precision = "32-true") {
  return {.accelerator = "cpu",
          .strategy = "deepspeed_stage_" + std::to_string(stage),
          .devices = 2,
          .precision = precision,
          .timeout = 60s,
          .launch_argv = self_argv()};
}

}  // namespace fabric::zero_test
