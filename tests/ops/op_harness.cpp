// The harness runner: input generation, layouts, the float64 reference and tolerances.
#include "tests/ops/op_harness.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "autograd/autograd.h"
#include "tests/cuda/cuda_test_util.h"

namespace fabric::harness {

int64_t RefTensor::index(const std::vector<int64_t>& idx) const {
  int64_t flat = 0;
  for (size_t d = 0; d < shape.size(); ++d) flat = flat * shape[d] + idx[d];
  return flat;
}

RefTensor to_ref(const Tensor& t) { return {t.sizes(), t.to_vector<double>()}; }

namespace {

// Tolerances relative to max(1, |reference|): one or two units in the last place of the dtype,
// scaled by the case for long reductions.
double tolerance(DType t) {
  switch (t) {
    case DType::float64: return 1e-10;
    case DType::float32: return 2e-5;
    case DType::bfloat16: return 2e-2;
    case DType::float16: return 4e-3;
    default: return 0;
  }
}

std::vector<double> random_values(const InputSpec& s, std::mt19937_64& rng) {
  const int64_t n = numel_of(s.shape);
  if (!s.values.empty()) return s.values;
  std::vector<double> v(n);
  std::uniform_real_distribution<double> u(s.lo, s.hi);
  for (int64_t i = 0; i < n; ++i) {
    switch (s.kind) {
      case InputSpec::Kind::floating:
      case InputSpec::Kind::positive: v[i] = u(rng); break;
      case InputSpec::Kind::integer: v[i] = std::floor(u(rng)); break;
      case InputSpec::Kind::boolean: v[i] = (rng() & 1) ? 1.0 : 0.0; break;
      case InputSpec::Kind::index: v[i] = static_cast<double>(rng() % static_cast<uint64_t>(std::max(1.0, s.hi))); break;
    }
  }
  return v;
}

// Makes a tensor of `dtype` holding `vals` with the requested layout: 0 contiguous, 1 the
// transpose of a contiguous buffer (last two dims), 2 a stride-2 slice of a larger buffer.
// Every layout is made on `device` itself, so a device's kernels see its own strided views.
Tensor make_input(const std::vector<double>& vals, const Shape& shape, DType dtype, int layout,
                  Device device = Device::cpu()) {
  Tensor dense = from_vector(vals, shape.empty() ? Shape{} : shape, {.dtype = DType::float64});
  if (shape.empty()) dense = scalar_tensor(vals[0], {.dtype = DType::float64});
  dense = dense.to(dtype).to(device);
  if (layout == 0 || shape.empty()) return dense;
  if (layout == 1 && shape.size() >= 2) {
    const int64_t a = static_cast<int64_t>(shape.size()) - 2, b = a + 1;
    return dense.transpose(a, b).contiguous().transpose(a, b);
  }
  if (layout == 2) {
    Shape big = shape;
    big.back() *= 2;
    Tensor buf = zeros(big, {.dtype = dtype, .device = device});
    Tensor view = buf.slice(-1, 0, big.back(), 2);
    view.copy_(dense);
    return view;
  }
  return dense;
}

// Rounds reference inputs to what the case dtype can hold, so low-precision runs and the float64
// reference see the same input values.
std::vector<double> round_to(const std::vector<double>& v, DType t) {
  if (!is_floating(t) || t == DType::float64) return v;
  return from_vector(v, {}, {.dtype = DType::float64}).to(t).to_vector<double>();
}

std::string layout_name(int l) { return l == 0 ? "contiguous" : l == 1 ? "transposed" : "strided"; }

void compare(const OpCase& c, DType dt, int layout, const Tensor& result, const RefTensor& want,
             bool against_naive) {
  SCOPED_TRACE(::testing::Message() << c.name << " device=" << (result.defined() ? result.device().str() : "?")
                                    << " dtype=" << dtype_name(dt) << " layout=" << layout_name(layout)
                                    << (against_naive ? " vs naive reference" : " vs float64 run"));
  ASSERT_TRUE(result.defined());
  const Tensor got = result.to(Device::cpu());
  ASSERT_EQ(got.sizes(), want.shape) << "result shape " << shape_str(got.sizes()) << " expected "
                                     << shape_str(want.shape);
  std::vector<double> g = got.to_vector<double>();
  const double tol = c.exact ? 0.0 : tolerance(dt) * c.tol_scale * (against_naive && dt == DType::float64 ? 10 : 1);
  double worst = 0;
  int64_t worst_i = -1;
  for (size_t i = 0; i < g.size(); ++i) {
    const double w = want.v[i];
    if (std::isnan(w) && std::isnan(g[i])) continue;
    if (std::isinf(w) && g[i] == w) continue;
    const double err = std::abs(g[i] - w) / std::max(1.0, std::abs(w));
    if (!(err <= tol) && (worst_i < 0 || err > worst || std::isnan(err))) {
      worst = err;
      worst_i = static_cast<int64_t>(i);
    }
  }
  EXPECT_LT(worst_i, 0) << "element " << worst_i << ": got " << (worst_i >= 0 ? g[worst_i] : 0) << " expected "
                        << (worst_i >= 0 ? want.v[worst_i] : 0) << " (rel err " << worst << " > tol " << tol << ")";
}

// Central differences of sum(run(x) * w) against autograd's gradient, in float64. Large inputs
// are checked on a random subset of elements.
void grad_check(const OpCase& c, const std::vector<std::vector<double>>& vals, std::mt19937_64& rng,
                Device device) {
  SCOPED_TRACE(::testing::Message() << c.name << " gradient check on " << device.str());
  std::vector<Tensor> in;
  std::vector<size_t> float_inputs;
  for (size_t i = 0; i < vals.size(); ++i) {
    const bool fl = c.inputs[i].kind == InputSpec::Kind::floating || c.inputs[i].kind == InputSpec::Kind::positive;
    DType dt = fl ? DType::float64
                  : c.inputs[i].kind == InputSpec::Kind::boolean ? DType::bool_ : c.inputs[i].int_dtype;
    Tensor t = make_input(vals[i], c.inputs[i].shape, dt, 0, device);
    if (fl && t.numel() > 0 && c.inputs[i].differentiable) {
      t.set_requires_grad(true);
      float_inputs.push_back(i);
    }
    in.push_back(t);
  }
  if (float_inputs.empty()) return;
  Tensor out = c.run(in);
  if (!out.defined() || !is_floating(out.dtype()) || out.numel() == 0 || !out.requires_grad()) return;
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<double> wv(out.numel());
  for (double& x : wv) x = u(rng);
  Tensor w = from_vector(wv, out.sizes(), {.dtype = DType::float64});
  if (out.dim() == 0) w = scalar_tensor(wv[0], {.dtype = DType::float64});
  w = w.to(device);
  std::vector<Tensor> wrt;
  for (size_t i : float_inputs) wrt.push_back(in[i]);
  std::vector<Tensor> analytic;
  try {
    analytic =
        grad({sum(mul(out, w))}, wrt, {}, false, /*create_graph=*/false, /*allow_unused=*/true);
  } catch (const std::exception& e) {
    ADD_FAILURE() << c.name << ": backward threw: " << e.what();
    return;
  }
  auto objective = [&](std::vector<Tensor>& inputs) {
    NoGradGuard ng;
    return sum(mul(c.run(inputs), w)).item<double>();
  };
  const double h = 1e-6;
  for (size_t k = 0; k < float_inputs.size(); ++k) {
    const size_t i = float_inputs[k];
    const int64_t n = in[i].numel();
    std::vector<int64_t> elems(n);
    for (int64_t e = 0; e < n; ++e) elems[e] = e;
    if (n > 48) {
      std::shuffle(elems.begin(), elems.end(), rng);
      elems.resize(48);
    }
    std::vector<double> ga = analytic[k].defined() ? analytic[k].to_vector<double>() : std::vector<double>(n, 0.0);
    for (int64_t e : elems) {
      std::vector<Tensor> probe;
      for (const Tensor& t : in) probe.push_back(t.detach());
      auto eval_at = [&](double delta) {
        std::vector<double> v = vals[i];
        v[e] += delta;
        probe[i] = make_input(v, c.inputs[i].shape, DType::float64, 0, device);
        return objective(probe);
      };
      const double numeric = (eval_at(h) - eval_at(-h)) / (2 * h);
      const double err = std::abs(numeric - ga[e]) / std::max(1.0, std::abs(numeric));
      EXPECT_LE(err, 1e-5 * c.tol_scale) << c.name << ": d/d input " << i << " element " << e << ": autograd "
                                         << ga[e] << " vs finite difference " << numeric;
    }
  }
}

}  // namespace

void run_cases(const std::vector<OpCase>& cases, Device device) {
  std::mt19937_64 rng(1234);
  for (const OpCase& c : cases) {
    std::vector<std::vector<double>> base;
    for (const auto& s : c.inputs) base.push_back(random_values(s, rng));
    for (DType dt : c.dtypes) {
      // Inputs rounded to the case dtype, then the float64 reference on exactly those values.
      std::vector<std::vector<double>> vals(base.size());
      for (size_t i = 0; i < base.size(); ++i) {
        const bool fl = c.inputs[i].kind == InputSpec::Kind::floating || c.inputs[i].kind == InputSpec::Kind::positive;
        vals[i] = fl ? round_to(base[i], dt) : base[i];
      }
      auto input_dtype = [&](size_t i, DType fdt) {
        switch (c.inputs[i].kind) {
          case InputSpec::Kind::floating:
          case InputSpec::Kind::positive: return fdt;
          case InputSpec::Kind::boolean: return DType::bool_;
          default: return c.inputs[i].int_dtype;
        }
      };
      RefTensor want;
      bool naive = static_cast<bool>(c.reference);
      try {
        if (naive) {
          std::vector<RefTensor> refs;
          for (size_t i = 0; i < vals.size(); ++i) refs.push_back({c.inputs[i].shape, vals[i]});
          want = c.reference(refs);
        } else {
          std::vector<Tensor> in64;
          for (size_t i = 0; i < vals.size(); ++i)
            in64.push_back(make_input(vals[i], c.inputs[i].shape, input_dtype(i, DType::float64), 0));
          want = to_ref(c.run(in64));
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << c.name << ": reference threw: " << e.what();
        continue;
      }
      if (dt == DType::float64 && c.grad_check && !c.exact) grad_check(c, vals, rng, device);
      const int nlayouts = c.layouts ? 3 : 1;
      for (int layout = 0; layout < nlayouts; ++layout) {
        std::vector<Tensor> in;
        for (size_t i = 0; i < vals.size(); ++i)
          in.push_back(make_input(vals[i], c.inputs[i].shape, input_dtype(i, dt), layout, device));
        try {
          compare(c, dt, layout, c.run(in), want, naive);
        } catch (const std::exception& e) {
          ADD_FAILURE() << c.name << " device=" << device.str() << " dtype=" << dtype_name(dt)
                        << " layout=" << layout_name(layout) << ": threw " << e.what();
        }
      }
    }
  }
}

void run_cases_on_cuda(const std::vector<OpCase>& cases) {
  std::string why;
  if (test::cuda_devices(&why) == 0) GTEST_SKIP() << "no usable GPU: " << why;
  run_cases(cases, Device::cuda(0));
}

RefFn ref_unary(std::function<double(double)> f) {
  return [f](const std::vector<RefTensor>& in) {
    RefTensor out{in[0].shape, in[0].v};
    for (double& x : out.v) x = f(x);
    return out;
  };
}

RefFn ref_binary(std::function<double(double, double)> f) {
  return [f](const std::vector<RefTensor>& in) {
    const Shape s = broadcast_shapes(in[0].shape, in[1].shape, "ref_binary");
    RefTensor out{s, std::vector<double>(numel_of(s))};
    std::vector<int64_t> idx(s.size(), 0);
    auto pick = [&](const RefTensor& t) {
      int64_t flat = 0;
      const size_t lead = s.size() - t.shape.size();
      for (size_t d = 0; d < t.shape.size(); ++d) flat = flat * t.shape[d] + (t.shape[d] == 1 ? 0 : idx[lead + d]);
      return t.v[flat];
    };
    for (int64_t i = 0; i < out.numel(); ++i) {
      out.v[i] = f(pick(in[0]), pick(in[1]));
      for (size_t d = s.size(); d-- > 0;) {
        if (++idx[d] < s[d]) break;
        idx[d] = 0;
      }
    }
    return out;
  };
}

}  // namespace fabric::harness
