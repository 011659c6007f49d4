// L-BFGS as torch 1.13's torch.optim.LBFGS: a full-batch quasi-Newton method whose step calls a
// closure (re-evaluating the loss and gradients) several times, optionally with a strong-Wolfe
// line search. One parameter group; CPU float32/float64 parameters of one dtype.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "optim/optimizer.h"

namespace fabric::optim {

struct LBFGSOptions {
  double lr = 1;
  int64_t max_iter = 20;            // iterations per step
  std::optional<int64_t> max_eval;  // closure calls per step; default max_iter * 5 / 4
  double tolerance_grad = 1e-7;     // stop when max |gradient| <= this
  double tolerance_change = 1e-9;   // stop when the loss or the step changes less
  int64_t history_size = 100;       // update pairs kept
  std::string line_search_fn;       // "" (a fixed step of lr) or "strong_wolfe"
};
void validate_options(const LBFGSOptions& o);
// PyTorch's keys; "line_search_fn" is a flag (true: "strong_wolfe", false: None) since a group's
// hyper-parameters hold numbers, flags and tuples.
HyperParams to_hyper_params(const LBFGSOptions& o);
void from_hyper_params(const HyperParams& h, LBFGSOptions& o);

// step(closure) is torch's, op for op and rounding for rounding: bit-identical trajectories in
// float32 and float64 when the closure computes the same losses and gradients (the first step's
// initial step length follows torch's AVX2 sum, see lbfgs_numbers.h).
// The closure zeroes the gradients, computes the loss, calls backward and returns the loss; the
// step calls it with grad mode on and returns the loss of its first call.
// The state is global, kept (as torch keeps it) as the state of the first parameter, under torch's
// names: "func_evals", "n_iter" (0-dim int64), "d", "prev_flat_grad" (flat, the length of all
// parameters together), "t", "prev_loss" (0-dim; "t" is float64 where torch has a Python float and
// in the parameters' dtype where torch has a tensor), "H_diag" (0-dim), "old_dirs", "old_stps"
// (history x length: torch's lists stacked), "ro" (history), "al" (history_size; NaN where torch
// holds None).
class LBFGS : public GroupedOptimizer<LBFGSOptions> {
 public:
  LBFGS(std::vector<Tensor> params, const LBFGSOptions& options = {});
  // Torch's signature; ValueError unless `groups` holds exactly one group.
  LBFGS(std::vector<Group> groups, const LBFGSOptions& defaults = {});

  using Optimizer::step;  // plain step() raises ValueError: LBFGS needs the closure
  Tensor step(const std::function<Tensor()>& closure) override;

 protected:
  void step_impl() override;
  Tensor loaded_state_tensor(int64_t index, const std::string& key, const Tensor& saved,
                             const Tensor& param) const override;

 private:
  template <class T>
  Tensor step_as(const std::function<Tensor()>& closure);
  int64_t flat_numel() const;
};

}  // namespace fabric::optim
