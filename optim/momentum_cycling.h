// What the cyclic schedulers (OneCycleLR, CyclicLR) share: their per-group arguments and the
// momentum they cycle against the lr, which is SGD's `momentum` or an Adam-like optimizer's beta1.
#pragma once
#include <cstddef>
#include <vector>

#include "optim/optimizer.h"

namespace fabric::optim::cycling {

// One value per group: `values` holds one for all or one for each (PyTorch's _format_param);
// ValueError naming the scheduler and the argument otherwise.
std::vector<double> per_group(const std::vector<double>& values, size_t groups,
                              const char* scheduler, const char* name);

// Whether the momentum to cycle is beta1 (the optimizer has `betas`) rather than `momentum`;
// ValueError naming the scheduler when the optimizer has neither.
bool momentum_is_beta1(const Optimizer& optimizer, const char* scheduler);

// Writes `momentum` into group `group`'s momentum, or its beta1. The optimizer checks the group's
// changed options (Optimizer::set_group_hyper_params): those torch makes only when the optimizer
// is built do not apply (SGD's Nesterov needs momentum > 0), as torch's scheduler writes
// param_group['momentum'] unchecked.
void set_momentum(Optimizer& optimizer, size_t group, double momentum, bool beta1);

// The momenta (or beta1s) of groups 0 .. momenta.size() - 1, all or none: when a write throws, the
// groups written before it get their values back.
void set_momenta(Optimizer& optimizer, const std::vector<double>& momenta, bool beta1);

// Group `group`'s momentum, or its beta1.
double momentum_of(const Optimizer& optimizer, size_t group, bool beta1);

}  // namespace fabric::optim::cycling
