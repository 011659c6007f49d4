// One description of an optimizer's options (each hyper-parameter's PyTorch name and the Options
// member that holds it), from which both to_hyper_params and from_hyper_params follow, and the
// argument checks PyTorch's optimizers share. The optimizers' own files keep what differs.
#pragma once
#include <array>
#include <cstddef>
#include <type_traits>
#include <variant>
#include <vector>

#include "optim/state_dict.h"

namespace fabric::optim::hyper_fields {

// A hyper-parameter: a number, a switch, or a pair (betas, etas, ...: a 2-element list in the
// state, as PyTorch's tuples).
template <class Options>
struct Field {
  const char* key;
  std::variant<double Options::*, bool Options::*, std::array<double, 2> Options::*> member;
};

template <class Options, size_t N>
using Fields = std::array<Field<Options>, N>;

template <class Options, size_t N>
HyperParams to_hyper_params(const Fields<Options, N>& fields, const Options& o) {
  HyperParams h;
  for (const Field<Options>& f : fields) {
    std::visit(
        [&](auto member) {
          const auto& value = o.*member;
          if constexpr (std::is_same_v<std::decay_t<decltype(value)>, std::array<double, 2>>) {
            h.emplace(f.key, std::vector<double>{value[0], value[1]});
          } else {
            h.emplace(f.key, value);
          }
        },
        f.member);
  }
  return h;
}

// Reads the fields `h` holds (the rest keep their values); ValueError naming `who` for a value of
// the wrong kind.
template <class Options, size_t N>
void from_hyper_params(const Fields<Options, N>& fields, const HyperParams& h, Options& o,
                       const char* who) {
  for (const Field<Options>& f : fields) {
    std::visit(
        [&](auto member) {
          auto& value = o.*member;
          if constexpr (std::is_same_v<std::decay_t<decltype(value)>, std::array<double, 2>>) {
            std::vector<double> pair{value[0], value[1]};
            read_hyper_param(h, f.key, pair, 2, who);
            value = {pair[0], pair[1]};
          } else {
            read_hyper_param(h, f.key, value, who);
          }
        },
        f.member);
  }
}

// PyTorch's shared checks (`not 0.0 <= x` also refuses NaN): ValueError "<who>: invalid ..."
// with what the argument may be.
void check_lr(const char* who, double lr);
void check_eps(const char* who, double eps);
void check_betas(const char* who, const std::array<double, 2>& betas);
void check_weight_decay(const char* who, double weight_decay);
// "<who>: invalid <key> <value> (expected <key> >= 0)" unless value >= 0.
void check_non_negative(const char* who, const char* key, double value);

}  // namespace fabric::optim::hyper_fields
