// Harness cases for the differentiable functions of tensor/shape_extra.h,
// tensor/matrix_builders.h, tensor/numeric_calculus.h and nn/as_strided.h: each against a naive
// float64 reference written element by element from the function's definition (not from the
// composition that implements it), with finite-difference gradients. Copies and views run in
// every dtype and layout; the arithmetic ones (vander, the integrals, cov, corrcoef) in float64
// and float32. torch's own values are in tests/tensor/test_*.cpp (shape_extra_torch_rows.h).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "nn/as_strided.h"
#include "tensor/matrix_builders.h"
#include "tensor/numeric_calculus.h"
#include "tensor/shape_extra.h"
#include "tests/ops/op_harness.h"

namespace fabric::harness {
namespace {

using V = std::vector<Tensor>;
using Index = std::vector<int64_t>;
const std::vector<DType> kF64F32 = {DType::float64, DType::float32};

// A reference tensor of `shape` whose element at each multi-index is f(index).
RefTensor build(const Shape& shape, const std::function<double(const Index&)>& f) {
  RefTensor out{shape, std::vector<double>(static_cast<size_t>(numel_of(shape)))};
  Index idx(shape.size(), 0);
  for (double& v : out.v) {
    v = f(idx);
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

// All pieces flattened end to end: one tensor for functions that return several.
Tensor joined(const std::vector<Tensor>& pieces) {
  std::vector<Tensor> flat;
  for (const Tensor& p : pieces) flat.push_back(p.reshape({-1}));
  return cat(flat);
}

// Sample covariance of the rows of x (vars, obs) with weights w (empty: 1) and correction, as
// numpy.cov defines it with aweights = w and the given correction.
RefTensor ref_cov(const RefTensor& x, std::vector<double> w, const std::vector<double>& aw,
                  double correction) {
  const int64_t nv = x.shape[0], no = x.shape[1];
  if (w.empty()) w.assign(static_cast<size_t>(no), 1.0);
  double wsum = 0, wawsum = 0;
  for (int64_t o = 0; o < no; ++o) {
    wsum += w[o];
    wawsum += w[o] * (aw.empty() ? 1.0 : aw[o]);
  }
  std::vector<double> mean(static_cast<size_t>(nv), 0.0);
  for (int64_t v = 0; v < nv; ++v)
    for (int64_t o = 0; o < no; ++o) mean[v] += w[o] * x.at({v, o}) / wsum;
  const double norm = aw.empty() ? wsum - correction : wsum - correction * wawsum / wsum;
  return build({nv, nv}, [&](const Index& i) {
    double s = 0;
    for (int64_t o = 0; o < no; ++o)
      s += w[o] * (x.at({i[0], o}) - mean[i[0]]) * (x.at({i[1], o}) - mean[i[1]]);
    return s / norm;
  });
}

std::vector<OpCase> shape_extra_cases() {
  std::vector<OpCase> c;
  auto add = [&](std::string name, std::vector<InputSpec> in, OpFn run, RefFn ref,
                 std::vector<DType> dtypes = {}) {
    OpCase k{std::move(name), std::move(in), std::move(run), std::move(ref)};
    if (!dtypes.empty()) k.dtypes = std::move(dtypes);
    c.push_back(std::move(k));
    return &c.back();
  };

  // ---- views and stacks -------------------------------------------------------------------
  add(
      "movedim/two_dims", {F({2, 3, 4, 5})},
      [](const V& x) {
        return movedim(x[0], {0, 1}, {-1, 0});
      },
      [](const std::vector<RefTensor>& r) {
        return build({3, 4, 5, 2}, [&](const Index& i) {
          return r[0].at({i[3], i[0], i[1], i[2]});
        });
      });
  add(
      "swapaxes/0_2", {F({2, 3, 4})}, [](const V& x) { return swapaxes(x[0], 0, -1); },
      [](const std::vector<RefTensor>& r) {
        return build({4, 3, 2}, [&](const Index& i) { return r[0].at({i[2], i[1], i[0]}); });
      });
  add(
      "tensor_split/overlapping_indices", {F({7, 2})},
      [](const V& x) {
        const std::vector<Tensor> p = tensor_split(x[0], std::vector<int64_t>{5, 3});
        return joined({p[0], p[2]});  // rows 0..4, then rows 3..6
      },
      [](const std::vector<RefTensor>& r) {
        return build({18}, [&](const Index& i) {
          const int64_t row = i[0] < 10 ? i[0] / 2 : 3 + (i[0] - 10) / 2;
          return r[0].at({row, i[0] % 2});
        });
      });
  add(
      "tensor_split/sections_dim1", {F({2, 7})},
      [](const V& x) { return joined(tensor_split(x[0], 3, 1)); },
      [](const std::vector<RefTensor>& r) {
        // pieces of 3, 2 and 2 columns, each flattened row-major
        const int64_t starts[] = {0, 3, 5}, widths[] = {3, 2, 2}, offsets[] = {0, 6, 10};
        return build({14}, [&](const Index& i) {
          int p = i[0] >= 10 ? 2 : i[0] >= 6 ? 1 : 0;
          const int64_t k = i[0] - offsets[p];
          return r[0].at({k / widths[p], starts[p] + k % widths[p]});
        });
      });
  add(
      "hstack/2d", {F({2, 1}), F({2, 3})}, [](const V& x) { return hstack(x); },
      [](const std::vector<RefTensor>& r) {
        return build({2, 4}, [&](const Index& i) {
          return i[1] < 1 ? r[0].at({i[0], 0}) : r[1].at({i[0], i[1] - 1});
        });
      });
  add(
      "vstack/1d_2d", {F({3}), F({2, 3})}, [](const V& x) { return vstack(x); },
      [](const std::vector<RefTensor>& r) {
        return build({3, 3}, [&](const Index& i) {
          return i[0] == 0 ? r[0].at({i[1]}) : r[1].at({i[0] - 1, i[1]});
        });
      });
  add(
      "dstack/2d", {F({2, 3}), F({2, 3})}, [](const V& x) { return dstack(x); },
      [](const std::vector<RefTensor>& r) {
        return build({2, 3, 2}, [&](const Index& i) { return r[i[2]].at({i[0], i[1]}); });
      });
  add(
      "column_stack/1d_2d", {F({3}), F({3, 2})}, [](const V& x) { return column_stack(x); },
      [](const std::vector<RefTensor>& r) {
        return build({3, 3}, [&](const Index& i) {
          return i[1] == 0 ? r[0].at({i[0]}) : r[1].at({i[0], i[1] - 1});
        });
      });
  add(
      "atleast_3d/1d", {F({4})}, [](const V& x) { return atleast_3d(x[0]); },
      [](const std::vector<RefTensor>& r) {
        return build({1, 4, 1}, [&](const Index& i) { return r[0].at({i[1]}); });
      });
  add(
      "rot90/k1", {F({3, 4})}, [](const V& x) { return rot90(x[0]); },
      [](const std::vector<RefTensor>& r) {
        return build({4, 3}, [&](const Index& i) { return r[0].at({i[1], 3 - i[0]}); });
      });
  add(
      "rot90/k2_dims_1_2", {F({2, 3, 4})},
      [](const V& x) {
        return rot90(x[0], 2, {1, 2});
      },
      [](const std::vector<RefTensor>& r) {
        return build({2, 3, 4}, [&](const Index& i) {
          return r[0].at({i[0], 2 - i[1], 3 - i[2]});
        });
      });
  add(
      "rot90/k3_dims_2_0", {F({2, 3, 4})},
      [](const V& x) {
        return rot90(x[0], 3, {2, 0});
      },
      [](const std::vector<RefTensor>& r) {
        return build({4, 3, 2}, [&](const Index& i) { return r[0].at({i[2], i[1], 3 - i[0]}); });
      });

  // ---- matrix builders --------------------------------------------------------------------
  add(
      "meshgrid/xy", {F({2}), F({3})}, [](const V& x) { return stack(meshgrid(x, "xy")); },
      [](const std::vector<RefTensor>& r) {
        return build({2, 3, 2},
                     [&](const Index& i) { return i[0] == 0 ? r[0].at({i[2]}) : r[1].at({i[1]}); });
      });
  add(
      "cartesian_prod/two", {F({2}), F({3})}, [](const V& x) { return cartesian_prod(x); },
      [](const std::vector<RefTensor>& r) {
        return build({6, 2}, [&](const Index& i) {
          return i[1] == 0 ? r[0].at({i[0] / 3}) : r[1].at({i[0] % 3});
        });
      });
  add(
      "combinations/r2", {F({4})}, [](const V& x) { return combinations(x[0]); },
      [](const std::vector<RefTensor>& r) {
        std::vector<std::pair<int64_t, int64_t>> pairs;
        for (int64_t a = 0; a < 4; ++a)
          for (int64_t b = a + 1; b < 4; ++b) pairs.push_back({a, b});
        return build({6, 2}, [&](const Index& i) {
          return r[0].at({i[1] == 0 ? pairs[i[0]].first : pairs[i[0]].second});
        });
      });
  add(
      "combinations/r3_with_replacement", {F({3})},
      [](const V& x) { return combinations(x[0], 3, true); },
      [](const std::vector<RefTensor>& r) {
        std::vector<Index> rows;
        for (int64_t a = 0; a < 3; ++a)
          for (int64_t b = a; b < 3; ++b)
            for (int64_t d = b; d < 3; ++d) rows.push_back({a, b, d});
        return build({10, 3}, [&](const Index& i) { return r[0].at({rows[i[0]][i[1]]}); });
      });
  add(
      "kron/2x3_3x2", {F({2, 3}), F({3, 2})}, [](const V& x) { return kron(x[0], x[1]); },
      [](const std::vector<RefTensor>& r) {
        return build({6, 6}, [&](const Index& i) {
          return r[0].at({i[0] / 3, i[1] / 2}) * r[1].at({i[0] % 3, i[1] % 2});
        });
      });
  add(
      "kron/1d_3d", {F({2}), F({2, 1, 3})}, [](const V& x) { return kron(x[0], x[1]); },
      [](const std::vector<RefTensor>& r) {
        return build({2, 1, 6}, [&](const Index& i) {
          return r[0].at({i[2] / 3}) * r[1].at({i[0], 0, i[2] % 3});
        });
      });
  add(
      "block_diag/mixed_ranks", {F({2, 2}), F({3}), F({})},
      [](const V& x) { return block_diag(x); },
      [](const std::vector<RefTensor>& r) {
        return build({4, 6}, [&](const Index& i) {
          if (i[0] < 2) return i[1] < 2 ? r[0].at({i[0], i[1]}) : 0.0;
          if (i[0] == 2) return i[1] >= 2 && i[1] < 5 ? r[1].at({i[1] - 2}) : 0.0;
          return i[1] == 5 ? r[2].v[0] : 0.0;
        });
      });
  add(
      "vander/N5", {F({4}, -1.5, 1.5)}, [](const V& x) { return vander(x[0], 5); },
      [](const std::vector<RefTensor>& r) {
        return build({4, 5}, [&](const Index& i) { return std::pow(r[0].at({i[0]}), 4 - i[1]); });
      },
      kF64F32);
  add(
      "vander/increasing_default_N", {F({3}, -1.5, 1.5)},
      [](const V& x) { return vander(x[0], std::nullopt, true); },
      [](const std::vector<RefTensor>& r) {
        return build({3, 3}, [&](const Index& i) { return std::pow(r[0].at({i[0]}), i[1]); });
      },
      kF64F32);

  // ---- differences and integrals ----------------------------------------------------------
  add(
      "diff/n2_prepend_append", {F({3, 4}), F({3, 1}), F({3, 2})},
      [](const V& x) { return diff(x[0], 2, 1, x[1], x[2]); },
      [](const std::vector<RefTensor>& r) {
        auto joined_at = [&](int64_t row, int64_t col) {  // [prepend | input | append]
          if (col < 1) return r[1].at({row, col});
          if (col < 5) return r[0].at({row, col - 1});
          return r[2].at({row, col - 5});
        };
        return build({3, 5}, [&](const Index& i) {
          return joined_at(i[0], i[1] + 2) - 2 * joined_at(i[0], i[1] + 1) + joined_at(i[0], i[1]);
        });
      });
  add(
      "diff/dim0", {F({4, 3})}, [](const V& x) { return diff(x[0], 1, 0); },
      [](const std::vector<RefTensor>& r) {
        return build({3, 3}, [&](const Index& i) {
          return r[0].at({i[0] + 1, i[1]}) - r[0].at({i[0], i[1]});
        });
      });
  add(
      "trapezoid/dx", {F({3, 5})}, [](const V& x) { return trapezoid(x[0], 0.5, 1); },
      [](const std::vector<RefTensor>& r) {
        return build({3}, [&](const Index& i) {
          double s = 0;
          for (int64_t k = 0; k + 1 < 5; ++k)
            s += 0.5 * (r[0].at({i[0], k}) + r[0].at({i[0], k + 1})) / 2;
          return s;
        });
      },
      kF64F32);
  add(
      "trapezoid/x", {F({3, 5}), F({5})}, [](const V& x) { return trapezoid(x[0], x[1]); },
      [](const std::vector<RefTensor>& r) {
        return build({3}, [&](const Index& i) {
          double s = 0;
          for (int64_t k = 0; k + 1 < 5; ++k)
            s += (r[1].at({k + 1}) - r[1].at({k})) * (r[0].at({i[0], k}) + r[0].at({i[0], k + 1})) /
                 2;
          return s;
        });
      },
      kF64F32);
  add(
      "cumulative_trapezoid/x_dim0", {F({4, 3}), F({4})},
      [](const V& x) { return cumulative_trapezoid(x[0], x[1], 0); },
      [](const std::vector<RefTensor>& r) {
        return build({3, 3}, [&](const Index& i) {
          double s = 0;
          for (int64_t k = 0; k <= i[0]; ++k)
            s += (r[1].at({k + 1}) - r[1].at({k})) * (r[0].at({k, i[1]}) + r[0].at({k + 1, i[1]})) /
                 2;
          return s;
        });
      },
      kF64F32);
  add(
      "cumulative_trapezoid/dx", {F({2, 6})},
      [](const V& x) { return cumulative_trapezoid(x[0], 1.5); },
      [](const std::vector<RefTensor>& r) {
        return build({2, 5}, [&](const Index& i) {
          double s = 0;
          for (int64_t k = 0; k <= i[1]; ++k)
            s += 1.5 * (r[0].at({i[0], k}) + r[0].at({i[0], k + 1})) / 2;
          return s;
        });
      },
      kF64F32);

  // ---- covariance --------------------------------------------------------------------------
  add(
      "cov/default", {F({4, 7})}, [](const V& x) { return cov(x[0]); },
      [](const std::vector<RefTensor>& r) { return ref_cov(r[0], {}, {}, 1); }, kF64F32);
  add(
      "cov/weights_correction2", {F({3, 6}), I({6}, 1, 4), P({6}, 0.2, 2)},
      [](const V& x) { return cov(x[0], 2, x[1], x[2]); },
      [](const std::vector<RefTensor>& r) {
        std::vector<double> w(6);
        for (size_t o = 0; o < 6; ++o) w[o] = r[1].v[o] * r[2].v[o];
        return ref_cov(r[0], w, r[2].v, 2);
      },
      kF64F32);
  add(
      "corrcoef/3x8", {F({3, 8})}, [](const V& x) { return corrcoef(x[0]); },
      [](const std::vector<RefTensor>& r) {
        const RefTensor c = ref_cov(r[0], {}, {}, 1);
        return build({3, 3}, [&](const Index& i) {
          const double v = c.at(i) / std::sqrt(c.at({i[0], i[0]}) * c.at({i[1], i[1]}));
          return std::fmin(1.0, std::fmax(-1.0, v));
        });
      },
      kF64F32);

  // ---- as_strided: reads storage, so contiguous inputs only ---------------------------------
  OpCase* windows = add(
      "as_strided/overlapping_windows", {F({3, 4})},
      [](const V& x) {
        return as_strided(x[0], {3, 3}, {1, 1}, 2);
      },
      [](const std::vector<RefTensor>& r) {
        return build({3, 3}, [&](const Index& i) { return r[0].v[2 + i[0] + i[1]]; });
      });
  windows->layouts = false;
  OpCase* expanded = add(
      "as_strided/stride0_and_gap", {F({12})},
      [](const V& x) {
        return as_strided(x[0], {2, 3, 2}, {0, 4, 1}, 1);
      },
      [](const std::vector<RefTensor>& r) {
        return build({2, 3, 2}, [&](const Index& i) { return r[0].v[1 + 4 * i[1] + i[2]]; });
      });
  expanded->layouts = false;
  return c;
}

TEST(OpHarness, ShapeExtra) { run_cases(shape_extra_cases()); }
TEST(OpHarnessCuda, ShapeExtra) { run_cases_on_cuda(shape_extra_cases()); }

}  // namespace
}  // namespace fabric::harness
