// torch 1.13's NAdam, RAdam, Adamax, Adadelta, Rprop and ASGD on two parameters in two parameter
// groups, for test_nadam_radam_adamax_adadelta.cpp: the inputs of each dtype and, per row, the
// parameters after every step and their final state, as tools/fixtures/make_optim2_rows.py wrote
// them (optim2_torch_cases.cpp).
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "optim/adadelta.h"
#include "optim/adamax.h"
#include "optim/asgd.h"
#include "optim/nadam.h"
#include "optim/radam.h"
#include "optim/rprop.h"

namespace fabric::optim::testing {

// An optimizer of type Opt over ps[0] (group 0, options a) and ps[1] (group 1, options b).
template <class Opt, class Options>
std::unique_ptr<Optimizer> two_groups(const std::vector<Tensor>& ps, const Options& a,
                                      const Options& b) {
  using Group = typename Opt::Group;
  return std::make_unique<Opt>(std::vector<Group>{Group{{ps.at(0)}, a}, Group{{ps.at(1)}, b}});
}

struct Optim2Inputs {
  DType dtype;
  std::vector<std::vector<double>> init;                // each parameter before the first step
  std::vector<std::vector<std::vector<double>>> grads;  // per step, one gradient per parameter
};

struct Optim2Row {
  const char* name;  // "<optimizer>_<row>_<dtype>"
  DType dtype;
  std::function<std::unique_ptr<Optimizer>(const std::vector<Tensor>&)> make;
  double step;                                                    // state["step"] at the end
  std::vector<std::vector<std::vector<double>>> params;           // per parameter, after each step
  std::vector<std::map<std::string, std::vector<double>>> state;  // per parameter, but "step"
};

const std::vector<Optim2Inputs>& optim2_inputs();
const std::vector<Optim2Row>& optim2_rows();

}  // namespace fabric::optim::testing
