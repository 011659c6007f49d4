// LBFGS: options, the one-group and dtype checks, torch 1.13's step (two-loop recursion over the
// update history, a fixed step or the strong-Wolfe line search) on a flat view of all parameters,
// and its state under torch's names.
#include "optim/lbfgs.h"

#include <cmath>
#include <deque>
#include <limits>

#include "autograd/grad_mode.h"
#include "optim/strong_wolfe.h"
#include "tensor/factory.h"

// Each rounding below is torch's (std::fma where torch's add_(alpha=) fuses); the compiler must
// fuse none of its own.
#pragma GCC optimize("fp-contract=off")

namespace fabric::optim {

using lbfgs_detail::Num;
using lbfgs_detail::py;
using lbfgs_detail::ten;

namespace {

constexpr const char* kStateKeys =
    "func_evals, n_iter, d, t, old_dirs, old_stps, ro, H_diag, prev_flat_grad, prev_loss, al";

bool is_whole(double v) { return std::isfinite(v) && v == std::floor(v); }

LBFGSOptions resolved(LBFGSOptions o) {
  if (!o.max_eval) o.max_eval = o.max_iter * 5 / 4;  // torch's default, integer division
  return o;
}

}  // namespace

// torch checks none of these; each refuses a value with which its step would fail or never move.
void validate_options(const LBFGSOptions& o) {
  FABRIC_CHECK(o.lr >= 0, ValueError, "LBFGS: invalid learning rate ", o.lr, " (expected lr >= 0)");
  FABRIC_CHECK(o.max_iter >= 1, ValueError, "LBFGS: invalid max_iter ", o.max_iter,
               " (expected at least 1 iteration per step)");
  FABRIC_CHECK(!o.max_eval || *o.max_eval >= 1, ValueError, "LBFGS: invalid max_eval ",
               o.max_eval.value_or(0), " (expected at least 1 evaluation per step)");
  FABRIC_CHECK(o.tolerance_grad >= 0, ValueError, "LBFGS: invalid tolerance_grad ",
               o.tolerance_grad, " (expected tolerance_grad >= 0)");
  FABRIC_CHECK(o.tolerance_change >= 0, ValueError, "LBFGS: invalid tolerance_change ",
               o.tolerance_change, " (expected tolerance_change >= 0)");
  FABRIC_CHECK(o.history_size >= 1, ValueError, "LBFGS: invalid history_size ", o.history_size,
               " (expected at least 1 update pair)");
  FABRIC_CHECK(o.line_search_fn.empty() || o.line_search_fn == "strong_wolfe", ValueError,
               "LBFGS: invalid line_search_fn '", o.line_search_fn,
               "' (expected \"\" for none or \"strong_wolfe\")");
}

HyperParams to_hyper_params(const LBFGSOptions& o) {
  const LBFGSOptions r = resolved(o);
  return {{"lr", r.lr},
          {"max_iter", static_cast<double>(r.max_iter)},
          {"max_eval", static_cast<double>(*r.max_eval)},
          {"tolerance_grad", r.tolerance_grad},
          {"tolerance_change", r.tolerance_change},
          {"history_size", static_cast<double>(r.history_size)},
          {"line_search_fn", r.line_search_fn == "strong_wolfe"}};
}

void from_hyper_params(const HyperParams& h, LBFGSOptions& o) {
  read_hyper_param(h, "lr", o.lr, "LBFGS");
  auto read_count = [&](const char* key, int64_t& value) {
    double v = static_cast<double>(value);
    read_hyper_param(h, key, v, "LBFGS");
    FABRIC_CHECK(is_whole(v), ValueError, "LBFGS: hyper-parameter '", key,
                 "' must be a whole number, got ", v);
    value = static_cast<int64_t>(v);
  };
  read_count("max_iter", o.max_iter);
  int64_t max_eval = resolved(o).max_eval.value();
  read_count("max_eval", max_eval);
  o.max_eval = max_eval;
  read_hyper_param(h, "tolerance_grad", o.tolerance_grad, "LBFGS");
  read_hyper_param(h, "tolerance_change", o.tolerance_change, "LBFGS");
  read_count("history_size", o.history_size);
  bool strong_wolfe = o.line_search_fn == "strong_wolfe";
  read_hyper_param(h, "line_search_fn", strong_wolfe, "LBFGS");
  o.line_search_fn = strong_wolfe ? "strong_wolfe" : "";
}

LBFGS::LBFGS(std::vector<Tensor> params, const LBFGSOptions& options)
    : GroupedOptimizer("LBFGS", resolved(options)) {
  FABRIC_CHECK(!params.empty(), ValueError, "LBFGS: got an empty parameter list");
  add_param_group(std::move(params));
}

LBFGS::LBFGS(std::vector<Group> groups, const LBFGSOptions& defaults)
    : GroupedOptimizer("LBFGS", resolved(defaults)) {
  FABRIC_CHECK(groups.size() == 1, ValueError,
               "LBFGS doesn't support per-parameter options (parameter groups): got ",
               groups.size(), " groups (expected exactly one)");
  groups[0].options = resolved(groups[0].options);
  add_param_group(std::move(groups[0]));
}

void LBFGS::step_impl() {
  throw ValueError(
      "LBFGS.step: LBFGS evaluates the loss several times per step, so it needs the closure: call "
      "step(closure) with a closure that zeroes the gradients, computes the loss, calls backward "
      "and returns the loss (as torch.optim.LBFGS.step(closure))");
}

int64_t LBFGS::flat_numel() const {
  int64_t n = 0;
  for (const Tensor& p : groups_.at(0).params) n += p.numel();
  return n;
}

Tensor LBFGS::step(const std::function<Tensor()>& closure) {
  FABRIC_CHECK(closure != nullptr, ValueError, "LBFGS.step: the closure is empty");
  // Refused before the closure runs or any state changes.
  FABRIC_CHECK(groups_.size() == 1, ValueError,
               "LBFGS doesn't support per-parameter options (parameter groups): it has ",
               groups_.size(), " groups (expected exactly one)");
  const std::vector<Tensor>& params = groups_[0].params;
  const DType dtype = params.at(0).dtype();
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor& p = params[i];
    FABRIC_CHECK(
        p.device() == params.at(0).device(), DeviceError,
        "LBFGS: all parameters must be on one device for its flat update (parameter 0 is on ",
        params.at(0).device().str(), ", parameter ", i, " is on ", p.device().str(), ")");
    FABRIC_CHECK(p.dtype() == DType::float32 || p.dtype() == DType::float64, DTypeError,
                 "LBFGS: float32 and float64 parameters are supported (parameter ", i, " is ",
                 dtype_name(p.dtype()), ")");
    FABRIC_CHECK(p.dtype() == dtype, DTypeError,
                 "LBFGS: all parameters must share one dtype for its flat update (parameter 0 is ",
                 dtype_name(dtype), ", parameter ", i, " is ", dtype_name(p.dtype()), ")");
  }
  NoGradGuard no_grad;
  return dtype == DType::float32 ? step_as<float>(closure) : step_as<double>(closure);
}

namespace {

template <class T>
std::vector<T> read_flat(const ParamState& st, const char* key, std::vector<int64_t> shape) {
  auto it = st.find(key);
  FABRIC_CHECK(it != st.end(), ValueError, "LBFGS: the state has iterated but has no '", key,
               "' (was it loaded from another optimizer?)");
  const Tensor& t = it->second;
  FABRIC_CHECK(t.dtype() == dtype_v<T> && t.sizes() == Shape(shape), ValueError, "LBFGS: state '",
               key, "' is ", dtype_name(t.dtype()), " of shape ", shape_str(t.sizes()),
               " (expected ", dtype_name(dtype_v<T>), " of shape ", shape_str(Shape(shape)), ")");
  return t.contiguous().to_vector<T>();
}

// torch's lists of flat tensors (old_dirs, old_stps), stacked as rows.
template <class T>
std::deque<std::vector<T>> read_rows(const ParamState& st, const char* key, int64_t n) {
  auto it = st.find(key);
  FABRIC_CHECK(it != st.end() && it->second.dim() == 2, ValueError, "LBFGS: state '", key,
               "' is missing or not 2-D (expected history x ", n, ")");
  const std::vector<T> all = read_flat<T>(st, key, {it->second.size(0), n});
  std::deque<std::vector<T>> rows;
  for (int64_t r = 0; r < it->second.size(0); ++r)
    rows.emplace_back(all.begin() + r * n, all.begin() + (r + 1) * n);
  return rows;
}

template <class T>
Tensor rows_tensor(const std::deque<std::vector<T>>& rows, int64_t n) {
  std::vector<T> all;
  for (const auto& r : rows) all.insert(all.end(), r.begin(), r.end());
  return from_vector<T>(all, {static_cast<int64_t>(rows.size()), n});
}

template <class T>
Num<T> read_num(const ParamState& st, const char* key) {
  auto it = st.find(key);
  FABRIC_CHECK(it != st.end() && it->second.numel() == 1, ValueError, "LBFGS: state '", key,
               "' is missing or not one number (was it loaded from another optimizer?)");
  const double v = it->second.item<double>();
  return it->second.dtype() == DType::float64 ? py<T>(v) : ten<T>(static_cast<T>(v));
}

template <class T>
Tensor num_tensor(Num<T> n) {
  return n.tensor ? scalar_tensor(n.value, {.dtype = dtype_v<T>})
                  : scalar_tensor(n.value, {.dtype = DType::float64});
}

int64_t read_count(ParamState& st, const char* key) {
  auto it = st.find(key);
  return it == st.end() ? 0 : static_cast<int64_t>(it->second.item<double>());
}

Tensor count_tensor(int64_t v) { return scalar_tensor(v, {.dtype = DType::int64}); }

}  // namespace

template <class T>
Tensor LBFGS::step_as(const std::function<Tensor()>& closure) {
  const LBFGSOptions& o = groups_[0].options;
  const std::vector<Tensor>& params = groups_[0].params;
  const int64_t n = flat_numel();
  const int64_t max_eval = resolved(o).max_eval.value();
  const auto history_size = static_cast<size_t>(o.history_size);

  // Flat views over the parameters, in group order.
  auto evaluate = [&]() -> std::pair<Tensor, double> {
    Tensor loss;
    {
      EnableGradGuard grad_on;
      loss = closure();
    }
    FABRIC_CHECK(
        loss.defined() && loss.numel() == 1, ValueError,
        "LBFGS.step: the closure must return the loss as one number, got ",
        loss.defined() ? "shape " + shape_str(loss.sizes()) : std::string("an undefined tensor"));
    return {loss, loss.item<double>()};
  };
  // The flat vectors live in host memory whatever the parameters' device: parameters on a GPU
  // are read into them and written back from them (torch's LBFGS computes the same numbers there
  // with tensor ops; the closure, the costly part, runs on the parameters' device either way).
  auto gather_flat_grad = [&] {
    std::vector<T> flat(static_cast<size_t>(n), T(0));  // a missing gradient counts as zeros
    size_t offset = 0;
    for (size_t i = 0; i < params.size(); ++i) {
      const Tensor g = prepared_grad(params[i], static_cast<int64_t>(i));
      if (g.defined()) {
        const Tensor host = g.to(Device::cpu()).contiguous();
        std::copy_n(host.data<T>(), host.numel(), flat.begin() + offset);
      }
      offset += static_cast<size_t>(params[i].numel());
    }
    return flat;
  };
  auto for_each_param = [&](auto&& body) {
    size_t offset = 0;
    for (const Tensor& p : params) {
      update_in_place(p, [&](const Tensor& target) {
        if (target.device().is_cpu()) return body(target.data<T>(), offset, target.numel());
        Tensor host = target.to(Device::cpu()).contiguous();
        body(host.data<T>(), offset, host.numel());
        Tensor(target).copy_(host);
      });
      offset += static_cast<size_t>(p.numel());
    }
  };
  auto add_grad = [&](Num<T> t, const std::vector<T>& d) {  // p.add_(d, alpha=t): one fma
    const T alpha = lbfgs_detail::as_t(t);
    for_each_param([&](T* x, size_t off, int64_t len) {
      for (int64_t i = 0; i < len; ++i) x[i] = std::fma(d[off + i], alpha, x[i]);
    });
  };
  auto clone_params = [&] {
    std::vector<T> x;
    for (const Tensor& p : params) {
      const std::vector<T> v = p.detach().contiguous().template to_vector<T>();
      x.insert(x.end(), v.begin(), v.end());
    }
    return x;
  };
  auto set_params = [&](const std::vector<T>& x) {
    for_each_param(
        [&](T* dst, size_t off, int64_t len) { std::copy_n(x.begin() + off, len, dst); });
  };
  auto max_abs = [](const std::vector<T>& v) { return ten<T>(lbfgs_detail::max_abs(v)); };
  auto dot = [](const std::vector<T>& a, const std::vector<T>& b) {
    return ten<T>(lbfgs_detail::dot(a, b));
  };

  ParamState& state = state_for(params[0]);
  int64_t func_evals = read_count(state, "func_evals");
  int64_t state_n_iter = read_count(state, "n_iter");
  state["func_evals"] =
      count_tensor(func_evals);  // torch's setdefault: kept even on an early return
  state["n_iter"] = count_tensor(state_n_iter);

  auto [orig_loss, loss] = evaluate();
  int64_t current_evals = 1;
  state["func_evals"] = count_tensor(++func_evals);
  std::vector<T> flat_grad = gather_flat_grad();
  bool opt_cond = max_abs(flat_grad) <= py<T>(o.tolerance_grad);
  if (opt_cond) return orig_loss;

  // The state carried between steps (read only once this step has iterated before).
  std::vector<T> d, prev_flat_grad;
  Num<T> t = py<T>(0), h_diag = py<T>(1);
  std::deque<std::vector<T>> old_dirs, old_stps;
  std::deque<T> ro;
  const bool has_al = state.count("al") > 0;
  std::vector<T> al =
      has_al ? read_flat<T>(state, "al", {state.at("al").numel()}) : std::vector<T>{};
  if (state_n_iter > 0) {
    d = read_flat<T>(state, "d", {n});
    t = read_num<T>(state, "t");
    old_dirs = read_rows<T>(state, "old_dirs", n);
    old_stps = read_rows<T>(state, "old_stps", n);
    const std::vector<T> r = read_flat<T>(state, "ro", {static_cast<int64_t>(old_dirs.size())});
    ro.assign(r.begin(), r.end());
    FABRIC_CHECK(old_stps.size() == old_dirs.size(), ValueError, "LBFGS: state 'old_stps' has ",
                 old_stps.size(), " rows but 'old_dirs' has ", old_dirs.size());
    h_diag = read_num<T>(state, "H_diag");
    prev_flat_grad = read_flat<T>(state, "prev_flat_grad", {n});
  }
  double prev_loss = state.count("prev_loss") ? state.at("prev_loss").item<double>() : 0.;

  int64_t n_iter = 0;
  while (n_iter < o.max_iter) {
    ++n_iter;
    ++state_n_iter;
    // The descent direction: the negative gradient first, then the two-loop recursion.
    if (state_n_iter == 1) {
      d.resize(flat_grad.size());
      for (size_t i = 0; i < d.size(); ++i) d[i] = -flat_grad[i];
      old_dirs.clear();
      old_stps.clear();
      ro.clear();
      h_diag = py<T>(1);
    } else {
      const T step = lbfgs_detail::as_t(t);
      std::vector<T> y(flat_grad.size()), s(flat_grad.size());
      for (size_t i = 0; i < y.size(); ++i) {
        y[i] = static_cast<T>(flat_grad[i] - prev_flat_grad[i]);
        s[i] = static_cast<T>(d[i] * step);
      }
      const Num<T> ys = dot(y, s);
      if (ys > py<T>(1e-10)) {  // keep the pair only with positive curvature
        if (old_dirs.size() == history_size) {
          old_dirs.pop_front();
          old_stps.pop_front();
          ro.pop_front();
        }
        old_dirs.push_back(y);
        old_stps.push_back(s);
        ro.push_back(lbfgs_detail::as_t(py<T>(1.) / ys));
        h_diag = ys / dot(y, y);  // the initial inverse Hessian's scale
      }
      const size_t num_old = old_dirs.size();
      if (al.size() < std::max(num_old, has_al ? size_t{0} : history_size))
        al.resize(std::max(num_old, history_size), std::numeric_limits<T>::quiet_NaN());
      std::vector<T> q(flat_grad.size());
      for (size_t i = 0; i < q.size(); ++i) q[i] = -flat_grad[i];
      for (size_t i = num_old; i-- > 0;) {
        al[i] = lbfgs_detail::as_t(dot(old_stps[i], q) * ten<T>(ro[i]));
        const T alpha = -al[i];
        for (size_t j = 0; j < q.size(); ++j) q[j] = std::fma(old_dirs[i][j], alpha, q[j]);
      }
      const T h = lbfgs_detail::as_t(h_diag);
      for (size_t j = 0; j < q.size(); ++j) d[j] = static_cast<T>(q[j] * h);
      for (size_t i = 0; i < num_old; ++i) {
        const Num<T> be_i = dot(old_dirs[i], d) * ten<T>(ro[i]);
        const T alpha = lbfgs_detail::as_t(ten<T>(al[i]) - be_i);
        for (size_t j = 0; j < d.size(); ++j) d[j] = std::fma(old_stps[i][j], alpha, d[j]);
      }
    }
    prev_flat_grad = flat_grad;
    prev_loss = loss;

    // The step length: lr, and at the very first iteration no more than 1 / sum |g|.
    t = state_n_iter == 1 ? lbfgs_detail::py_min(
                                py<T>(1.), py<T>(1.) / ten<T>(lbfgs_detail::sum_abs(flat_grad))) *
                                py<T>(o.lr)
                          : py<T>(o.lr);
    const Num<T> gtd = dot(flat_grad, d);  // the directional derivative
    if (gtd > py<T>(-o.tolerance_change)) break;

    int64_t ls_func_evals = 0;
    if (o.line_search_fn == "strong_wolfe") {
      const std::vector<T> x_init = clone_params();
      const lbfgs_detail::DirectionalEvaluate<T> directional = [&](Num<T> step) {
        add_grad(step, d);
        const double l = evaluate().second;
        std::vector<T> g = gather_flat_grad();
        set_params(x_init);
        return std::pair{l, std::move(g)};
      };
      auto found = lbfgs_detail::strong_wolfe<T>(directional, t, d, loss, flat_grad, gtd, 1e-4, 0.9,
                                                 o.tolerance_change, 25);
      loss = found.loss;
      flat_grad = std::move(found.flat_grad);
      t = found.t;
      ls_func_evals = found.func_evals;
      add_grad(t, d);
      opt_cond = max_abs(flat_grad) <= py<T>(o.tolerance_grad);
    } else {
      add_grad(t, d);
      if (n_iter != o.max_iter) {  // the last iteration's loss would go unused: not evaluated
        loss = evaluate().second;
        flat_grad = gather_flat_grad();
        opt_cond = max_abs(flat_grad) <= py<T>(o.tolerance_grad);
        ls_func_evals = 1;
      }
    }
    current_evals += ls_func_evals;
    func_evals += ls_func_evals;

    if (n_iter == o.max_iter || current_evals >= max_eval || opt_cond) break;
    std::vector<T> move(d.size());
    const T step = lbfgs_detail::as_t(t);
    for (size_t i = 0; i < d.size(); ++i) move[i] = static_cast<T>(d[i] * step);
    if (max_abs(move) <= py<T>(o.tolerance_change)) break;       // no progress in the parameters
    if (std::abs(loss - prev_loss) < o.tolerance_change) break;  // nor in the loss
  }

  state["func_evals"] = count_tensor(func_evals);
  state["n_iter"] = count_tensor(state_n_iter);
  state["d"] = from_vector<T>(d, {n});
  state["t"] = num_tensor(t);
  state["old_dirs"] = rows_tensor(old_dirs, n);
  state["old_stps"] = rows_tensor(old_stps, n);
  state["ro"] =
      from_vector<T>(std::vector<T>(ro.begin(), ro.end()), {static_cast<int64_t>(ro.size())});
  state["H_diag"] = scalar_tensor(h_diag.value, {.dtype = dtype_v<T>});
  state["prev_flat_grad"] = from_vector<T>(prev_flat_grad, {n});
  state["prev_loss"] = scalar_tensor(prev_loss, {.dtype = DType::float64});
  if (!al.empty()) state["al"] = from_vector<T>(al, {static_cast<int64_t>(al.size())});
  return orig_loss;
}

Tensor LBFGS::loaded_state_tensor(int64_t index, const std::string& key, const Tensor& saved,
                                  const Tensor& param) const {
  FABRIC_CHECK(index == 0, ValueError, "LBFGS.load_state_dict: state.", index, ".", key,
               ": LBFGS keeps its state as the state of parameter 0 only");
  auto one_number = [&] {
    FABRIC_CHECK(saved.numel() == 1, ValueError, "LBFGS.load_state_dict: state.0.", key,
                 " must hold one number, got shape ", shape_str(saved.sizes()));
    return saved.item<double>();
  };
  if (key == "func_evals" || key == "n_iter") {
    const double v = one_number();
    FABRIC_CHECK(is_whole(v) && v >= 0, ValueError, "LBFGS.load_state_dict: state.0.", key,
                 " must be a count, got ", v);
    return count_tensor(static_cast<int64_t>(v));
  }
  if (key == "t" || key == "prev_loss") {  // a Python float (float64) or, for t, a tensor
    const bool as_float64 = key == "prev_loss" || saved.dtype() == DType::float64;
    return scalar_tensor(one_number(), {.dtype = as_float64 ? DType::float64 : param.dtype()});
  }
  if (key == "H_diag") return scalar_tensor(one_number(), {.dtype = param.dtype()});
  const int64_t n = flat_numel();
  Shape expected;
  if (key == "d" || key == "prev_flat_grad") {
    expected = {n};
  } else if (key == "old_dirs" || key == "old_stps") {
    expected = {saved.dim() == 2 ? saved.size(0) : -1, n};
  } else if (key == "ro" || key == "al") {
    expected = {saved.dim() == 1 ? saved.size(0) : -1};
  } else {
    throw ValueError(detail::cat("LBFGS.load_state_dict: state.0.", key,
                                 " is not LBFGS state (expected the keys ", kStateKeys,
                                 "; was it saved by another optimizer?)"));
  }
  FABRIC_CHECK(is_floating(saved.dtype()) && saved.sizes() == expected, ValueError,
               "LBFGS.load_state_dict: state.0.", key, " is ", dtype_name(saved.dtype()),
               " of shape ", shape_str(saved.sizes()), " (expected a floating tensor of shape ",
               shape_str(expected), "; -1: any size)");
  Tensor c = saved.detach().to(param.device()).to(param.dtype()).contiguous();
  if (c.storage() == saved.storage()) c = c.clone();  // never alias the caller's tensors
  return c;
}

}  // namespace fabric::optim
