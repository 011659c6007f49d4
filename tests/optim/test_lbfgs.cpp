// LBFGS: torch 1.13's trajectories (lbfgs_torch_rows.h) bit for bit in float64 (Rosenbrock) and
// float32 (least squares), with a fixed step and with the strong-Wolfe line search; a checkpoint
// round trip that continues identically; torch's param_groups keys; a closure through fabric's
// autograd; and the errors (closure missing, parameter groups, dtypes, options, foreign state).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <functional>
#include <memory>

#include "lbfgs_torch_rows.h"
#include "optim/lbfgs.h"
#include "optim/lbfgs_numbers.h"
#include "optim_test_util.h"
#include "tensor/ops.h"

// The hand-written objectives round as the fixture script's Python does: no fused multiply-adds.
#pragma GCC optimize("fp-contract=off")

namespace fabric::optim {
namespace {
using namespace testing;

// The chained Rosenbrock function and its gradient, in make_lbfgs_rows.py's order (float64).
double rosenbrock(const std::vector<double>& z, std::vector<double>& g) {
  const size_t n = z.size();
  double f = 0.0;
  g.assign(n, 0.0);
  for (size_t i = 0; i + 1 < n; ++i) {
    const double a = z[i + 1] - z[i] * z[i];
    const double b = 1.0 - z[i];
    f = f + (100.0 * a * a + b * b);
    g[i] = g[i] + (-400.0 * z[i] * a - 2.0 * b);
    g[i + 1] = g[i + 1] + 200.0 * a;
  }
  return f;
}

// 0.5 * sum (W a + b - y)^2 with z = [W (2x3) row-major, b (2)], in float32 as the script's numpy.
constexpr float kLsqA[6][3] = {{0.5f, -1.25f, 2.0f},  {1.5f, 0.75f, -0.5f},
                               {-2.0f, 0.25f, 1.0f},  {0.125f, 1.75f, -1.5f},
                               {1.0f, -0.5f, 0.375f}, {-0.75f, -2.25f, 0.625f}};
constexpr float kLsqY[6][2] = {{1.0f, -0.5f}, {2.5f, 0.25f},  {-1.75f, 1.5f},
                               {0.5f, -2.0f}, {1.25f, 0.75f}, {-2.5f, 1.0f}};
double least_squares(const std::vector<double>& zd, std::vector<double>& gd) {
  std::vector<float> z(zd.begin(), zd.end()), g(8, 0.0f);
  float f = 0;
  for (int s = 0; s < 6; ++s) {
    for (int o = 0; o < 2; ++o) {
      float r = z[6 + o];
      for (int j = 0; j < 3; ++j) r = r + z[o * 3 + j] * kLsqA[s][j];
      r = r - kLsqY[s][o];
      f = f + r * r;
      for (int j = 0; j < 3; ++j) g[o * 3 + j] = g[o * 3 + j] + r * kLsqA[s][j];
      g[6 + o] = g[6 + o] + r;
    }
  }
  gd.assign(g.begin(), g.end());
  return 0.5f * f;
}

struct Problem {
  DType dtype;
  std::vector<Shape> shapes;
  std::vector<double> init;
  double (*objective)(const std::vector<double>&, std::vector<double>&);
};

const Problem& problem(const std::string& name) {
  static const Problem rosen{DType::float64, {{3}, {2}}, {-1.5, 2.0, 0.5, -0.75, 1.25}, rosenbrock};
  static const Problem lsq{DType::float32,
                           {{2, 3}, {2}},
                           {0.25, -0.5, 0.125, 1.0, 0.75, -0.25, 0.5, -1.0},
                           least_squares};
  return name == "rosenbrock" ? rosen : lsq;
}

std::vector<double> flat_values(const std::vector<Tensor>& ps) {
  std::vector<double> all;
  for (const Tensor& p : ps) {
    const std::vector<double> v = values(p);
    all.insert(all.end(), v.begin(), v.end());
  }
  return all;
}

// Parameters of `pr`'s shapes holding `flat` (the problem's start by default).
std::vector<Tensor> make_params(const Problem& pr, const std::vector<double>& flat) {
  std::vector<Tensor> ps;
  size_t offset = 0;
  for (const Shape& shape : pr.shapes) {
    int64_t numel = 1;
    for (int64_t s : shape) numel *= s;
    std::vector<double> v(flat.begin() + offset, flat.begin() + offset + numel);
    Tensor p = from_vector<double>(v, shape).to(pr.dtype);
    p.set_requires_grad(true);
    ps.push_back(p);
    offset += static_cast<size_t>(numel);
  }
  return ps;
}

// The closure torch's rows used: evaluates the objective at the parameters, sets their gradients.
std::function<Tensor()> closure_for(const Problem& pr, const std::vector<Tensor>& ps) {
  return [&pr, ps] {
    std::vector<double> g;
    const double f = pr.objective(flat_values(ps), g);
    size_t offset = 0;
    for (const Tensor& p : ps) {
      const auto numel = static_cast<size_t>(p.numel());
      set_grad_values(p, std::vector<double>(g.begin() + offset, g.begin() + offset + numel));
      offset += numel;
    }
    return scalar_tensor(f, {.dtype = pr.dtype});
  };
}

void expect_bitwise(const std::vector<double>& got, const std::vector<double>& want,
                    const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int reported = 0;
  for (size_t i = 0; i < got.size() && reported < 3; ++i) {
    if (std::bit_cast<uint64_t>(got[i]) != std::bit_cast<uint64_t>(want[i])) {
      ADD_FAILURE() << what << " [" << i << "]: " << std::hexfloat << got[i] << " vs torch "
                    << want[i];
      ++reported;
    }
  }
}

// Steps `opt` (through the base class, as Fabric's precision plugins do) over the row's steps
// [from, to), checking each against torch's.
void step_and_check(Optimizer& opt, const LBFGSTorchRow& row, const std::vector<Tensor>& ps,
                    size_t from, size_t to, const std::string& what) {
  const auto closure = closure_for(problem(row.problem), ps);
  for (size_t s = from; s < to; ++s) {
    const LBFGSTorchStep& want = row.steps[s];
    const std::string at = detail::cat(what, " step ", s + 1);
    const Tensor loss = opt.step(closure);
    EXPECT_EQ(std::bit_cast<uint64_t>(loss.item<double>()), std::bit_cast<uint64_t>(want.loss))
        << at << ": loss " << std::hexfloat << loss.item<double>() << " vs torch " << want.loss;
    expect_bitwise(flat_values(ps), want.params, at + " params");
    const ParamState& st = *opt.state(ps[0]);
    EXPECT_EQ(st.at("func_evals").item<int64_t>(), want.func_evals) << at;
    EXPECT_EQ(st.at("n_iter").item<int64_t>(), want.n_iter) << at;
  }
}

TEST(LBFGSTorch, StepsMatchTorchBitForBit) {
  for (const LBFGSTorchRow& row : lbfgs_torch_rows()) {
    const Problem& pr = problem(row.problem);
    const std::vector<Tensor> ps = make_params(pr, pr.init);
    LBFGS opt(ps, row.options);
    step_and_check(opt, row, ps, 0, row.steps.size(), row.name);
    const ParamState& st = *opt.state(ps[0]);
    expect_bitwise(values(st.at("d")), row.d, row.name + " state d");
    expect_bitwise(values(st.at("ro")), row.ro, row.name + " state ro");
    expect_bitwise(values(st.at("prev_flat_grad")), row.prev_flat_grad,
                   row.name + " state prev_flat_grad");
    expect_bitwise({st.at("t").item<double>(), st.at("H_diag").item<double>()}, {row.t, row.H_diag},
                   row.name + " state t, H_diag");
    EXPECT_EQ(st.at("old_dirs").size(0), static_cast<int64_t>(row.ro.size())) << row.name;
  }
}

TEST(LBFGSTorch, StateDictRoundTripContinuesIdentically) {
  for (const LBFGSTorchRow& row : lbfgs_torch_rows()) {
    const Problem& pr = problem(row.problem);
    const size_t before = row.steps.size() / 2;
    const std::vector<Tensor> ps = make_params(pr, pr.init);
    LBFGS opt(ps, row.options);
    step_and_check(opt, row, ps, 0, before, row.name);
    std::vector<std::pair<std::string, Tensor>> saved;
    for (const auto& [key, t] : opt.state_dict().flatten("optimizer."))
      saved.emplace_back(key, t.clone());
    const std::vector<Tensor> resumed = make_params(pr, flat_values(ps));
    LBFGS next(resumed, {});  // the saved param_groups bring the row's options back
    next.load_state_dict(OptimizerState::unflatten(saved, "optimizer."));
    EXPECT_EQ(next.group_hyper_params(0), opt.group_hyper_params(0)) << row.name;
    step_and_check(next, row, resumed, before, row.steps.size(), row.name + " resumed");
  }
}

// The first step's 1 / sum |g| adds up as torch's cascade sum does, over all its levels.
TEST(LBFGSTorch, SumAbsMatchesTorchsCascadeSum) {
  for (const SumAbsRow& row : sum_abs_torch_rows()) {
    std::vector<double> x;
    for (int64_t i = 0; i < row.n; ++i)
      x.push_back(static_cast<double>((7919 * i) % 1000 - 500) / 37.0);
    const double got = row.float64 ? lbfgs_detail::sum_abs(x)
                                   : lbfgs_detail::sum_abs(std::vector<float>(x.begin(), x.end()));
    EXPECT_EQ(std::bit_cast<uint64_t>(got), std::bit_cast<uint64_t>(row.want))
        << (row.float64 ? "float64" : "float32") << " n=" << row.n << ": " << std::hexfloat << got
        << " vs torch " << row.want;
  }
}

TEST(LBFGS, ParamGroupKeysAreTorchs) {
  const struct {
    LBFGSOptions options;
    HyperParams want;
  } cases[] = {
      {{},
       {{"history_size", 100.0},
        {"line_search_fn", false},
        {"lr", 1.0},
        {"max_eval", 25.0},  // torch's default max_iter * 5 // 4
        {"max_iter", 20.0},
        {"tolerance_change", 1e-9},
        {"tolerance_grad", 1e-7}}},
      {{.lr = 0.5, .max_iter = 5, .history_size = 3, .line_search_fn = "strong_wolfe"},
       {{"history_size", 3.0},
        {"line_search_fn", true},
        {"lr", 0.5},
        {"max_eval", 6.0},
        {"max_iter", 5.0},
        {"tolerance_change", 1e-9},
        {"tolerance_grad", 1e-7}}},
  };
  for (const auto& c : cases) {
    LBFGS opt({param({1.0})}, c.options);
    EXPECT_EQ(opt.state_dict().param_groups.at(0).options, c.want);
    EXPECT_STREQ(opt.name(), "LBFGS");
  }
}

// A closure written with fabric's ops and autograd: least squares A W + b ~ Y reaches its optimum.
TEST(LBFGS, MinimisesALeastSquaresModelThroughAutograd) {
  std::vector<double> a, y;
  for (const auto& row : kLsqA) a.insert(a.end(), std::begin(row), std::end(row));
  for (const auto& row : kLsqY) y.insert(y.end(), std::begin(row), std::end(row));
  const Tensor A = from_vector<double>(a, {6, 3}), Y = from_vector<double>(y, {6, 2});
  Tensor W = from_vector<double>(std::vector<double>(6, 0.0), {3, 2}), b = param({0.0, 0.0});
  W.set_requires_grad(true);
  LBFGS opt({W, b}, {.line_search_fn = "strong_wolfe"});
  auto closure = [&] {
    opt.zero_grad();
    Tensor loss = mse_loss(add(matmul(A, W), b), Y, "sum");
    backward(loss);
    return loss;
  };
  for (int s = 0; s < 3; ++s) opt.step(closure);
  // numpy.linalg.lstsq's residual; torch's LBFGS stops as close (its tolerance_change), at a
  // gradient of 1.8e-5.
  const double optimum = 4.908720267103532;
  EXPECT_NEAR(closure().item<double>(), optimum, 1e-10 * optimum);
  for (const Tensor& p : {W, b})
    for (double g : values(p.grad())) EXPECT_LE(std::abs(g), 1e-4);
}

TEST(LBFGS, ErrorsNameWhatWasWrong) {
  const struct {
    const char* what;
    std::function<void()> run;
    const char* message;
  } cases[] = {
      {"two parameter groups",
       [] {
         LBFGS({LBFGS::Group{{param({1.0})}, {}}, LBFGS::Group{{param({2.0})}, {}}});
       },
       "LBFGS doesn't support per-parameter options (parameter groups): got 2 groups"},
      {"a group added later",
       [] {
         LBFGS opt({param({1.0})});
         opt.add_param_group({param({2.0})});
         opt.step([] { return scalar_tensor(0.0); });
       },
       "LBFGS doesn't support per-parameter options (parameter groups): it has 2 groups"},
      {"step() without a closure",
       [] {
         Tensor p = param({1.0});
         LBFGS opt({p});
         set_grad_values(p, {1.0});
         opt.step();
       },
       "LBFGS.step: LBFGS evaluates the loss several times per step, so it needs the closure"},
      {"an empty closure", [] { LBFGS({param({1.0})}).step(std::function<Tensor()>{}); },
       "LBFGS.step: the closure is empty"},
      {"a closure returning no loss",
       [] {
         Tensor p = param({1.0, 2.0});
         LBFGS({p}).step([p] { return p.detach(); });
       },
       "LBFGS.step: the closure must return the loss as one number, got shape (2,)"},
      {"line_search_fn", [] { LBFGS({param({1.0})}, {.line_search_fn = "armijo"}); },
       "LBFGS: invalid line_search_fn 'armijo' (expected \"\" for none or \"strong_wolfe\")"},
      {"history_size", [] { LBFGS({param({1.0})}, {.history_size = 0}); },
       "LBFGS: invalid history_size 0 (expected at least 1 update pair)"},
      {"max_iter", [] { LBFGS({param({1.0})}, {.max_iter = 0}); },
       "LBFGS: invalid max_iter 0 (expected at least 1 iteration per step)"},
      {"lr", [] { LBFGS({param({1.0})}, {.lr = -1}); },
       "LBFGS: invalid learning rate -1 (expected lr >= 0)"},
      {"Adam's state",
       [] {
         Tensor p = param({1.0});
         LBFGS opt({p});
         OptimizerState sd = opt.state_dict();
         sd.state[0]["exp_avg"] = from_vector<double>({0.0});
         opt.load_state_dict(sd);
       },
       "LBFGS.load_state_dict: state.0.exp_avg is not LBFGS state (expected the keys func_evals"},
      {"a flat state of another length",
       [] {
         Tensor p = param({1.0, 2.0});
         LBFGS opt({p});
         OptimizerState sd = opt.state_dict();
         sd.state[0]["d"] = from_vector<double>({0.0, 1.0, 2.0});
         opt.load_state_dict(sd);
       },
       "LBFGS.load_state_dict: state.0.d is float64 of shape (3,) (expected a floating tensor "
       "of shape (2,)"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    EXPECT_CONTAINS(thrown<ValueError>(c.run), c.message);
  }
}

// Other dtypes, mixed dtypes: refused before the closure runs or any state changes.
TEST(LBFGS, UnsupportedDtypesAreRefusedBeforeStateChanges) {
  const struct {
    std::vector<DType> dtypes;
    const char* message;
  } cases[] = {
      {{DType::bfloat16},
       "LBFGS: float32 and float64 parameters are supported (parameter 0 is bfloat16)"},
      {{DType::float64, DType::float32},
       "LBFGS: all parameters must share one dtype for its flat update (parameter 0 is float64, "
       "parameter 1 is float32)"},
  };
  for (const auto& c : cases) {
    std::vector<Tensor> ps;
    for (DType dt : c.dtypes) ps.push_back(param({1.0, 2.0}, dt));
    LBFGS opt(ps);
    int calls = 0;
    EXPECT_CONTAINS(thrown<DTypeError>([&] {
                      opt.step([&] {
                        ++calls;
                        return scalar_tensor(0.0);
                      });
                    }),
                    c.message);
    EXPECT_EQ(calls, 0);
    EXPECT_EQ(opt.state(ps[0]), nullptr);
  }
}

}  // namespace
}  // namespace fabric::optim
