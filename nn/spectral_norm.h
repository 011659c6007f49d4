// torch.nn.utils.spectral_norm / remove_spectral_norm (1.13, the hook version): the weight divided
// by its largest singular value sigma, estimated by power iteration (Miyato et al., 2018).
#pragma once
#include <optional>
#include <string>

#include "nn/module.h"

namespace fabric {
class Generator;
}

namespace fabric::nn {

struct SpectralNormOptions {
  int64_t n_power_iterations = 1;  // per training forward
  double eps = 1e-12;              // normalize()'s floor on the vectors' norms
  // The weight's dim that becomes the matrix's rows; unset: 1 for ConvTranspose1d/2d/3d, else 0.
  std::optional<int64_t> dim = std::nullopt;
  Generator* generator = nullptr;  // draws u and v's initial N(0, 1) values; null: the default
};

// Replaces module's parameter `name` by `name`_orig (the weight itself, a parameter) and the
// buffers `name`_u, `name`_v (the power iteration's left and right singular vector estimates).
// A forward pre-hook sets the weight to orig / sigma, sigma = u . (W v) for W the weight as a
// matrix (`dim` first, the rest flattened); in training it first runs n_power_iterations steps
// v = normalize(W^T u), u = normalize(W v), updating the buffers (no gradient flows through
// them). state_dict keys as torch: ..., weight_orig, ..., weight_u, weight_v. Build the optimizer
// after this call: it must see weight_orig. Returns module.
Module& spectral_norm(Module& module, const std::string& name = "weight",
                      const SpectralNormOptions& options = {});
// Folds weight_orig / sigma (no power iteration) back into a plain parameter `name`; removes the
// hook, weight_orig and the buffers.
Module& remove_spectral_norm(Module& module, const std::string& name = "weight");

}  // namespace fabric::nn
