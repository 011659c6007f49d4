// The row replay of shape_extra_check.h: builds each row's inputs as the fixture did, runs the
// fabric call and compares outputs and gradients with torch's.
#include "tests/tensor/shape_extra_check.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <set>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/tensor/shape_extra_torch_rows.h"

namespace fabric::shape_extra_check {
namespace {

using shape_extra_torch::ErrorRow;
using shape_extra_torch::Row;
using shape_extra_torch::TorchTensor;

// The weight of output k's element i, as the fixture's weights().
std::vector<double> weights(size_t k, int64_t n) {
  std::vector<double> w(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    w[i] = static_cast<double>((3 * i + 5 * static_cast<int64_t>(k)) % 7 + 1) / 8.0 *
           (i % 2 == 0 ? 1 : -1);
  return w;
}

Tensor tensor_of(const std::vector<double>& values, const Shape& shape, DType dtype) {
  const Tensor t = shape.empty() ? scalar_tensor(values.at(0), {.dtype = DType::float64})
                                 : from_vector(values, shape, {.dtype = DType::float64});
  return t.to(dtype);
}

// The fixture's laid_out(): the layout the op gets a leaf in.
Tensor laid_out(const Tensor& leaf, int layout) {
  switch (layout) {
    case 1:
      return leaf.transpose(0, -1).contiguous().transpose(0, -1);
    case 2: {
      const Tensor pad = from_vector(std::vector<double>{0.5, -1.5, 2.5}, {3}).to(leaf.dtype());
      const Tensor buffer = cat({pad, leaf.flatten()});
      return buffer.slice(0, 3, buffer.numel()).view(leaf.sizes());
    }
    case 3: {
      Shape s = leaf.sizes();
      s.insert(s.begin(), 2);
      return leaf.expand(s);
    }
    default:
      return leaf;
  }
}

struct Inputs {
  std::vector<Tensor> leaves, laid;
};

Inputs inputs_of(const std::vector<TorchTensor>& specs, bool require_grad) {
  Inputs r;
  for (const TorchTensor& s : specs) {
    Tensor leaf = tensor_of(s.values, s.shape, dtype_from_name(s.dtype));
    if (require_grad && leaf.is_floating_point()) leaf.set_requires_grad(true);
    r.leaves.push_back(leaf);
    r.laid.push_back(laid_out(leaf, s.layout));
  }
  return r;
}

// Largest relative difference max(|got - want| / max(1, |want|)); +inf where a NaN or infinity
// or a zero's sign differs (tol 0 means bits).
double worst_difference(const std::vector<double>& got, const std::vector<double>& want) {
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double g = got[i], w = want[i];
    if (std::isnan(w) || std::isnan(g)) {
      if (std::isnan(w) != std::isnan(g)) return INFINITY;
      continue;
    }
    if (std::isinf(w) || std::isinf(g)) {
      if (g != w) return INFINITY;
      continue;
    }
    if (g == 0 && w == 0 && std::signbit(g) != std::signbit(w)) worst = std::max(worst, 1e-300);
    worst = std::max(worst, std::abs(g - w) / std::max(1.0, std::abs(w)));
  }
  return worst;
}

void expect_values(const Tensor& got, const TorchTensor& want, double tol, const std::string& what,
                   double& worst_seen) {
  ASSERT_TRUE(got.defined()) << what << " is undefined";
  EXPECT_EQ(dtype_name(got.dtype()), want.dtype) << what;
  ASSERT_EQ(got.sizes(), want.shape) << what;
  const double d = worst_difference(got.to_vector<double>(), want.values);
  worst_seen = std::max(worst_seen, d);
  EXPECT_LE(d, tol) << what << ": values differ from torch's by " << d << " (tolerance " << tol
                    << ")\n  got  " << got.str();
}

// How close the rows that have a tolerance came to torch's bits, for the record.
struct Tally {
  int value_rows = 0, value_exact = 0, grad_rows = 0, grad_exact = 0;
  double value_worst = 0, grad_worst = 0;
  std::string inexact;  // the rows that were not torch's bits
};

void check_row(const Row& r, const CallFn& fn, Tally& tally) {
  SCOPED_TRACE(std::string(r.op) + "/" + r.name);
  Inputs in = inputs_of(r.inputs, r.inputs_require_grad);
  std::vector<Tensor> outs;
  try {
    outs = fn(Call{in.laid, r.ints, r.reals, r.text});
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw " << e.what();
    return;
  }
  ASSERT_EQ(outs.size(), r.outputs.size());
  double worst = 0;
  for (size_t k = 0; k < outs.size(); ++k) {
    const TorchTensor& want = r.outputs[k];
    const std::string what = "output " + std::to_string(k);
    expect_values(outs[k], want, r.tol, what, worst);
    if (outs[k].sizes() != want.shape) continue;
    EXPECT_EQ(outs[k].requires_grad(), want.requires_grad) << what;
    // As the fixture: an empty storage has no address to share.
    const bool shares = !in.laid.empty() && in.laid[0].storage()->nbytes() > 0 &&
                        outs[k].storage() == in.laid[0].storage();
    EXPECT_EQ(shares, want.shares) << what << " shares input 0's storage";
    if (outs[k].numel() == 0) continue;
    // Strides of size-1 dims are never stepped along: torch and fabric may pick different ones.
    for (int64_t d = 0; d < outs[k].dim(); ++d) {
      if (want.shape[d] > 1) {
        EXPECT_EQ(outs[k].stride(d), want.strides[d]) << what << " stride of dim " << d;
      }
    }
    if (want.shares) {
      EXPECT_EQ(outs[k].storage_offset(), want.offset) << what << " storage offset";
    }
  }
  if (r.tol > 0) {
    ++tally.value_rows;
    tally.value_exact += worst == 0;
    if (worst > 0) tally.inexact += std::string(" ") + r.op + "/" + r.name;
    tally.value_worst = std::max(tally.value_worst, worst);
  }
  if (r.grads.empty() || r.backward_raises) return;
  Tensor loss;
  for (size_t k = 0; k < outs.size(); ++k) {
    if (!outs[k].requires_grad()) continue;
    const Tensor w = tensor_of(weights(k, outs[k].numel()), outs[k].sizes(), outs[k].dtype());
    const Tensor term = sum(mul(outs[k], w));
    loss = loss.defined() ? add(loss, term) : term;
  }
  ASSERT_TRUE(loss.defined()) << "no output requires grad";
  loss.backward();
  double grad_worst = 0;
  for (size_t i = 0; i < in.leaves.size(); ++i) {
    const TorchTensor& want = r.grads[i];
    const Tensor g = in.leaves[i].grad();
    const std::string what = "gradient of input " + std::to_string(i);
    if (std::string(want.dtype) == "none") {
      EXPECT_TRUE(!g.defined() || !any(ne(g, 0)).item<bool>()) << what << " should be none";
      continue;
    }
    expect_values(g.defined() ? g : zeros_like(in.leaves[i]), want, r.grad_tol, what, grad_worst);
  }
  if (r.grad_tol > 0) {
    ++tally.grad_rows;
    tally.grad_exact += grad_worst == 0;
    if (grad_worst > 0) tally.inexact += std::string(" ") + r.op + "/" + r.name + "(grad)";
    tally.grad_worst = std::max(tally.grad_worst, grad_worst);
  }
}

// "tensor_split_indices" -> "tensor_split": the function a row's op name stands for.
std::string function_of(std::string op) {
  for (const char* suffix : {"_list", "_indices"}) {
    const std::string s = suffix;
    if (op.size() > s.size() && op.compare(op.size() - s.size(), s.size(), s) == 0)
      op.resize(op.size() - s.size());
  }
  return op;
}

}  // namespace

void check_rows(const std::string& group, const CallTable& table) {
  std::set<std::string> used;
  size_t count = 0;
  Tally tally;
  for (const Row& r : shape_extra_torch::rows()) {
    if (group != r.group) continue;
    ++count;
    used.insert(r.op);
    const auto it = table.find(r.op);
    if (it == table.end()) {
      ADD_FAILURE() << "no fabric call for row op " << r.op << " (" << r.name << ")";
      continue;
    }
    check_row(r, it->second, tally);
  }
  for (const ErrorRow& e : shape_extra_torch::error_rows())
    if (group == e.group) used.insert(e.op);
  for (const auto& [op, fn] : table) EXPECT_TRUE(used.count(op)) << op << " has no torch row";
  EXPECT_GT(count, 0u) << "no rows for group " << group;
  // For the record: how far the rows with a tolerance were from torch's bits.
  std::cout << "[ " << group << " ] " << count << " torch rows; with a tolerance: values in "
            << tally.value_rows << " (bit-exact in " << tally.value_exact
            << ", largest relative difference " << tally.value_worst << "), gradients in "
            << tally.grad_rows << " (bit-exact in " << tally.grad_exact
            << ", largest relative difference " << tally.grad_worst << ")"
            << (tally.inexact.empty() ? "" : "; not bit-exact:" + tally.inexact) << "\n";
}

void check_error_rows(const std::string& group, const CallTable& table) {
  size_t count = 0;
  for (const ErrorRow& r : shape_extra_torch::error_rows()) {
    if (group != r.group) continue;
    ++count;
    SCOPED_TRACE(std::string(r.op) + "/" + r.name + " (torch: " + r.torch_message + ")");
    const auto it = table.find(r.op);
    if (it == table.end()) {
      ADD_FAILURE() << "no fabric call for error row op " << r.op;
      continue;
    }
    Inputs in = inputs_of(r.inputs, false);
    try {
      it->second(Call{in.laid, r.ints, r.reals, r.text});
      ADD_FAILURE() << "no error thrown";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(r.needle), std::string::npos) << msg;
      EXPECT_EQ(msg.rfind(function_of(r.op), 0), 0u) << "does not start with the function: " << msg;
      if (std::string(r.torch_type) == "IndexError") {
        EXPECT_NE(dynamic_cast<const IndexError*>(&e), nullptr) << "not an IndexError: " << msg;
      }
    } catch (const std::exception& e) {
      ADD_FAILURE() << "threw a non-fabric error: " << e.what();
    }
  }
  EXPECT_GT(count, 0u) << "no error rows for group " << group;
}

}  // namespace fabric::shape_extra_check
