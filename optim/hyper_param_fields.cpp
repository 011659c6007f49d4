// The argument checks PyTorch's optimizers share, with its wording.
#include "optim/hyper_param_fields.h"

#include "tensor/error.h"

namespace fabric::optim::hyper_fields {

void check_lr(const char* who, double lr) {
  FABRIC_CHECK(lr >= 0, ValueError, who, ": invalid learning rate ", lr, " (expected lr >= 0)");
}

void check_eps(const char* who, double eps) {
  FABRIC_CHECK(eps >= 0, ValueError, who, ": invalid epsilon ", eps, " (expected eps >= 0)");
}

void check_betas(const char* who, const std::array<double, 2>& betas) {
  for (int i = 0; i < 2; ++i) {
    FABRIC_CHECK(betas[i] >= 0 && betas[i] < 1, ValueError, who,
                 ": invalid beta parameter at index ", i, ": ", betas[i],
                 " (expected 0 <= beta < 1)");
  }
}

void check_weight_decay(const char* who, double weight_decay) {
  check_non_negative(who, "weight_decay", weight_decay);
}

void check_non_negative(const char* who, const char* key, double value) {
  FABRIC_CHECK(value >= 0, ValueError, who, ": invalid ", key, " ", value, " (expected ", key,
               " >= 0)");
}

}  // namespace fabric::optim::hyper_fields
