// torch.nn.utils.weight_norm / remove_weight_norm (1.13, the hook version): w = g * v / ||v||, the
// norm taken over every dim but `dim`, so a weight's direction (v) and magnitude (g) are learnt
// apart (Salimans & Kingma, 2016).
#pragma once
#include <optional>
#include <string>

#include "nn/module.h"

namespace fabric::nn {

// Replaces module's parameter `name` by `name`_g (the norms over every dim but `dim`, shaped
// (size(dim), 1, ...) at dim 0) and `name`_v (the weight), and recomputes the weight from them in
// a forward pre-hook (so the layer, called through operator() or an entry point that runs the
// hooks: forward_with_state, forward_packed, MultiheadAttention's operator()(q, k, v, ...), trains
// g and v). dim = -1 or
// nullopt, as torch's dim=None, takes the norm over the whole tensor (g a scalar). Build the
// optimizer after this call: it must see g and v. Returns module.
Module& weight_norm(Module& module, const std::string& name = "weight",
                    std::optional<int64_t> dim = 0);
// Folds g and v back into a plain parameter `name` holding the current weight; removes the hook.
Module& remove_weight_norm(Module& module, const std::string& name = "weight");

}  // namespace fabric::nn
