// The strong-Wolfe line search of torch 1.13's LBFGS (torch.optim.lbfgs._strong_wolfe and its
// _cubic_interpolate, after minFunc/lswolfe.lua), number for number as torch computes it.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <utility>
#include <vector>

#include "optim/lbfgs_numbers.h"

namespace fabric::optim::lbfgs_detail {

// The minimiser of the cubic through (x1, f1) and (x2, f2) with slopes g1 and g2, clamped to
// `bounds` (default: the interval between x1 and x2); the interval's midpoint when the cubic has
// no minimum.
template <class T>
Num<T> cubic_interpolate(Num<T> x1, Num<T> f1, Num<T> g1, Num<T> x2, Num<T> f2, Num<T> g2,
                         std::optional<std::pair<Num<T>, Num<T>>> bounds = std::nullopt);

// The loss and flat gradient at x + t * d (the parameters are put back to x afterwards).
template <class T>
using DirectionalEvaluate = std::function<std::pair<double, std::vector<T>>(Num<T> t)>;

template <class T>
struct LineSearchResult {
  double loss;
  std::vector<T> flat_grad;
  Num<T> t;
  int64_t func_evals;
};

// Searches along d from x (loss f, gradient g, directional derivative gtd) for a step t meeting
// the strong Wolfe conditions, starting at `t`: brackets a point, then zooms in by cubic
// interpolation, at most `max_ls` evaluations after the first.
template <class T>
LineSearchResult<T> strong_wolfe(const DirectionalEvaluate<T>& evaluate, Num<T> t,
                                 const std::vector<T>& d, double f, const std::vector<T>& g,
                                 Num<T> gtd, double c1 = 1e-4, double c2 = 0.9,
                                 double tolerance_change = 1e-9, int64_t max_ls = 25);

}  // namespace fabric::optim::lbfgs_detail
