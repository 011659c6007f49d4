// torch 1.13's RMSprop, Adagrad, Adam, AdamW and SGD on one parameter, for
// test_adaptive_optim_torch.cpp: the inputs of each dtype and, per argument set, the parameter
// after every step and the final state, as tools/fixtures/make_optim_fixtures.py wrote them
// (adaptive_optim_torch_cases.cpp).
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "optim/adagrad.h"
#include "optim/adam.h"
#include "optim/rmsprop.h"
#include "optim/sgd.h"

namespace fabric::optim::testing {

struct TorchOptimInputs {
  DType dtype;
  std::vector<double> init;                // the parameter before the first step
  std::vector<std::vector<double>> grads;  // one gradient per step
};

struct TorchOptimCase {
  const char* name;
  const char* optimizer;  // "rmsprop", "adagrad", "adam", "adamw" or "sgd": which options apply
  DType dtype;
  RMSpropOptions rmsprop;
  AdagradOptions adagrad;
  AdamOptions adam;
  AdamWOptions adamw;
  SGDOptions sgd;
  std::optional<double> step;                        // state["step"] after the last step (no SGD's)
  std::vector<std::vector<double>> params;           // after each step
  std::map<std::string, std::vector<double>> state;  // the final per-parameter state but "step"
};

const std::vector<TorchOptimInputs>& torch_optim_inputs();
const std::vector<TorchOptimCase>& torch_optim_cases();

}  // namespace fabric::optim::testing
