#include "optim/momentum_cycling.h"

namespace fabric::optim::cycling {

std::vector<double> per_group(const std::vector<double>& values, size_t groups,
                              const char* scheduler, const char* name) {
  if (values.size() == 1) return std::vector<double>(groups, values[0]);
  FABRIC_CHECK(values.size() == groups, ValueError, scheduler, ": expected ", groups,
               " values for ", name, " (one per parameter group) or one for all, got ",
               values.size());
  return values;
}

bool momentum_is_beta1(const Optimizer& optimizer, const char* scheduler) {
  const HyperParams h = optimizer.group_hyper_params(0);
  FABRIC_CHECK(h.count("momentum") || h.count("betas"), ValueError, scheduler, ": optimizer ",
               optimizer.name(),
               " must support momentum (a 'momentum' or 'betas' hyper-parameter) with "
               "cycle_momentum enabled");
  return h.count("betas") > 0;
}

void set_momentum(Optimizer& optimizer, size_t group, double momentum, bool beta1) {
  if (beta1) {
    auto betas = std::get<std::vector<double>>(optimizer.group_hyper_params(group).at("betas"));
    betas.at(0) = momentum;
    optimizer.set_group_hyper_params(group, {{"betas", betas}});
  } else {
    optimizer.set_group_hyper_params(group, {{"momentum", momentum}});
  }
}

double momentum_of(const Optimizer& optimizer, size_t group, bool beta1) {
  const HyperParams h = optimizer.group_hyper_params(group);
  if (beta1) return std::get<std::vector<double>>(h.at("betas")).at(0);
  return std::get<double>(h.at("momentum"));
}

void set_momenta(Optimizer& optimizer, const std::vector<double>& momenta, bool beta1) {
  std::vector<double> before;
  for (size_t g = 0; g < momenta.size(); ++g) before.push_back(momentum_of(optimizer, g, beta1));
  size_t written = 0;
  try {
    for (; written < momenta.size(); ++written)
      set_momentum(optimizer, written, momenta[written], beta1);
  } catch (...) {
    // The old values passed the same checks when they were written.
    for (size_t g = 0; g < written; ++g) set_momentum(optimizer, g, before[g], beta1);
    throw;
  }
}

}  // namespace fabric::optim::cycling
