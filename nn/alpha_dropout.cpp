// AlphaDropout/FeatureAlphaDropout and the functional dropout3d/alpha_dropout/
// feature_alpha_dropout: thin layers over torch 1.13's _dropout_impl (nn/channel_dropout.cpp).
#include "nn/alpha_dropout.h"

#include "nn/py_repr.h"

namespace fabric::nn {

AlphaDropout::AlphaDropout(const AlphaDropoutOptions& options) : options_(options) {
  dropout_internal::check_dropout_probability(options.p);
}

std::string AlphaDropout::extra_repr() const {
  return "p=" + py_float(options_.p) + ", inplace=" + (options_.inplace ? "True" : "False");
}

// torch 1.13's AlphaDropout and FeatureAlphaDropout modules call their functional without
// inplace: the option only shows in the repr, and x is never written.
Tensor AlphaDropout::forward(const Tensor& x) {
  return dropout_internal::dropout_impl(x, options_.p, is_training(), {.alpha = true},
                                        options_.generator, type_name());
}

Tensor FeatureAlphaDropout::forward(const Tensor& x) {
  return dropout_internal::dropout_impl(x, options_.p, is_training(),
                                        {.feature = true, .alpha = true}, options_.generator,
                                        type_name());
}

inline namespace functional {

Tensor dropout3d(const Tensor& x, double p, bool training, bool inplace, Generator* gen) {
  FABRIC_CHECK(x.defined(), ValueError, "dropout3d: got an undefined tensor");
  // torch checks p before it warns about the rank.
  dropout_internal::check_dropout_probability(p);
  dropout_internal::warn_dropout3d_rank(x.dim());
  return dropout_internal::dropout_impl(
      x, p, training, {.feature = true, .unbatched = x.dim() != 5, .inplace = inplace}, gen,
      "dropout3d");
}

Tensor alpha_dropout(const Tensor& x, double p, bool training, bool inplace, Generator* gen) {
  return dropout_internal::dropout_impl(x, p, training, {.alpha = true, .inplace = inplace}, gen,
                                        "alpha_dropout");
}

Tensor feature_alpha_dropout(const Tensor& x, double p, bool training, bool inplace,
                             Generator* gen) {
  return dropout_internal::dropout_impl(x, p, training,
                                        {.feature = true, .alpha = true, .inplace = inplace}, gen,
                                        "feature_alpha_dropout");
}

}  // namespace functional
}  // namespace fabric::nn
