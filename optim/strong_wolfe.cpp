// The strong-Wolfe line search: torch 1.13's Python, kept in its order and with its kinds of
// numbers (see lbfgs_numbers.h), so that LBFGS with line_search_fn "strong_wolfe" steps as torch's.
#include "optim/strong_wolfe.h"

// Each rounding below is torch's; the compiler must fuse none.
#pragma GCC optimize("fp-contract=off")

namespace fabric::optim::lbfgs_detail {

template <class T>
Num<T> cubic_interpolate(Num<T> x1, Num<T> f1, Num<T> g1, Num<T> x2, Num<T> f2, Num<T> g2,
                         std::optional<std::pair<Num<T>, Num<T>>> bounds) {
  Num<T> xmin_bound = x2, xmax_bound = x1;
  if (bounds) {
    xmin_bound = bounds->first;
    xmax_bound = bounds->second;
  } else if (x1 <= x2) {
    xmin_bound = x1;
    xmax_bound = x2;
  }
  // d1 = g1 + g2 - 3 (f1 - f2) / (x1 - x2);  d2 = sqrt(d1^2 - g1 g2)
  const Num<T> d1 = g1 + g2 - py<T>(3) * (f1 - f2) / (x1 - x2);
  const Num<T> d2_square = square(d1) - g1 * g2;
  if (!(d2_square >= py<T>(0))) return (xmin_bound + xmax_bound) / py<T>(2.);
  const Num<T> d2 = sqrt(d2_square);
  const Num<T> min_pos = x1 <= x2 ? x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + py<T>(2) * d2))
                                  : x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + py<T>(2) * d2));
  return py_min(py_max(min_pos, xmin_bound), xmax_bound);
}

namespace {

// One end of the search's bracket.
template <class T>
struct Point {
  Num<T> t;
  double f;
  std::vector<T> g;
  Num<T> gtd;
};

}  // namespace

template <class T>
LineSearchResult<T> strong_wolfe(const DirectionalEvaluate<T>& evaluate, Num<T> t,
                                 const std::vector<T>& d, double f, const std::vector<T>& g,
                                 Num<T> gtd, double c1, double c2, double tolerance_change,
                                 int64_t max_ls) {
  const Num<T> d_norm = ten<T>(max_abs(d));
  auto [f_new, g_new] = evaluate(t);
  int64_t func_evals = 1;
  Num<T> gtd_new = ten<T>(dot(g_new, d));
  // Armijo: sufficient decrease from f along d. Curvature: |slope| shrunk by c2.
  auto armijo_fails = [&](Num<T> step, double loss) {
    return py<T>(loss) > py<T>(f) + py<T>(c1) * step * gtd;
  };
  auto curvature_holds = [&](Num<T> slope) { return abs(slope) <= -py<T>(c2) * gtd; };

  // Bracketing: grow t until [t_prev, t] holds a point satisfying the conditions.
  Point<T> prev{py<T>(0), f, g, gtd};
  std::vector<Point<T>> bracket;
  bool done = false;
  int64_t ls_iter = 0;
  while (ls_iter < max_ls) {
    if (armijo_fails(t, f_new) || (ls_iter > 1 && f_new >= prev.f)) {
      bracket = {prev, {t, f_new, g_new, gtd_new}};
      break;
    }
    if (curvature_holds(gtd_new)) {
      bracket = {{t, f_new, g_new, gtd_new}};
      done = true;
      break;
    }
    if (gtd_new >= py<T>(0)) {
      bracket = {prev, {t, f_new, g_new, gtd_new}};
      break;
    }
    // Extrapolate by cubic interpolation, between 1.01 t and 10 t.
    const Num<T> min_step = t + py<T>(0.01) * (t - prev.t);
    const Num<T> max_step = t * py<T>(10);
    const Num<T> tmp = t;
    t = cubic_interpolate<T>(prev.t, py<T>(prev.f), prev.gtd, t, py<T>(f_new), gtd_new,
                             std::pair{min_step, max_step});
    prev = {tmp, f_new, g_new, gtd_new};
    std::tie(f_new, g_new) = evaluate(t);
    ++func_evals;
    gtd_new = ten<T>(dot(g_new, d));
    ++ls_iter;
  }
  // Out of evaluations: the bracket is [0, t] (its slopes are never read: no zoom follows).
  if (ls_iter == max_ls) bracket = {{py<T>(0), f, g, gtd}, {t, f_new, g_new, gtd_new}};

  // Zoom: shrink the bracket by cubic interpolation until a point meets the conditions.
  bool insuf_progress = false;
  size_t low = 0, high = 1;
  auto order = [&] {
    const bool first_low = bracket[0].f <= bracket.back().f;
    low = first_low ? 0 : 1;
    high = first_low ? 1 : 0;
  };
  order();
  while (!done && ls_iter < max_ls) {
    if (abs(bracket[1].t - bracket[0].t) * d_norm < py<T>(tolerance_change)) break;
    t = cubic_interpolate(bracket[0].t, py<T>(bracket[0].f), bracket[0].gtd, bracket[1].t,
                          py<T>(bracket[1].f), bracket[1].gtd);
    // A point too close to an end (within a tenth of the bracket) twice running, or outside it,
    // is moved a tenth of the bracket inside.
    const Num<T> b_max = py_max(bracket[0].t, bracket[1].t);
    const Num<T> b_min = py_min(bracket[0].t, bracket[1].t);
    const Num<T> eps = py<T>(0.1) * (b_max - b_min);
    if (py_min(b_max - t, t - b_min) < eps) {
      if (insuf_progress || t >= b_max || t <= b_min) {
        t = abs(t - b_max) < abs(t - b_min) ? b_max - eps : b_min + eps;
        insuf_progress = false;
      } else {
        insuf_progress = true;
      }
    } else {
      insuf_progress = false;
    }
    std::tie(f_new, g_new) = evaluate(t);
    ++func_evals;
    gtd_new = ten<T>(dot(g_new, d));
    ++ls_iter;
    if (armijo_fails(t, f_new) || f_new >= bracket[low].f) {
      bracket[high] = {t, f_new, g_new, gtd_new};
      order();
    } else {
      if (curvature_holds(gtd_new)) {
        done = true;
      } else if (gtd_new * (bracket[high].t - bracket[low].t) >= py<T>(0)) {
        bracket[high] = bracket[low];  // the old high end becomes the new low end
      }
      bracket[low] = {t, f_new, g_new, gtd_new};
    }
  }
  Point<T>& best = bracket[low];
  return {best.f, std::move(best.g), best.t, func_evals};
}

template Num<float> cubic_interpolate(Num<float>, Num<float>, Num<float>, Num<float>, Num<float>,
                                      Num<float>, std::optional<std::pair<Num<float>, Num<float>>>);
template Num<double> cubic_interpolate(Num<double>, Num<double>, Num<double>, Num<double>,
                                       Num<double>, Num<double>,
                                       std::optional<std::pair<Num<double>, Num<double>>>);
template LineSearchResult<float> strong_wolfe(const DirectionalEvaluate<float>&, Num<float>,
                                              const std::vector<float>&, double,
                                              const std::vector<float>&, Num<float>, double, double,
                                              double, int64_t);
template LineSearchResult<double> strong_wolfe(const DirectionalEvaluate<double>&, Num<double>,
                                               const std::vector<double>&, double,
                                               const std::vector<double>&, Num<double>, double,
                                               double, double, int64_t);

}  // namespace fabric::optim::lbfgs_detail
