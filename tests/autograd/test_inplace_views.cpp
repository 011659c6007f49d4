// In-place writes into views while autograd records, as PyTorch has them (torch 1.13 gives the
// numbers and names in the comments): the base takes CopySlices history, the view
// AsStridedBackward0, and other views of the base see the write. One table of writes (each kind of
// view, each in-place op with an autograd form, chains of views, stale views) is checked against
// float64 finite differences; the errors and the names follow.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

using V = std::vector<double>;
constexpr DType f64 = DType::float64;

Tensor leaf(V v, Shape s) { return from_vector(v, s, {.dtype = f64, .requires_grad = true}); }
Tensor plain(V v, Shape s) { return from_vector(v, s, {.dtype = f64}); }

// Distinct values in [0.5, 1.5] (safe divisors), the same on every call.
Tensor values(const Shape& s) {
  V v(static_cast<size_t>(numel_of(s)));
  for (size_t k = 0; k < v.size(); ++k) v[k] = 0.5 + static_cast<double>((k * 37 + 3) % 11) / 10.0;
  return plain(v, s);
}

// A write into a view: `run` takes the leaves and returns {loss, base, view}. base and view (when
// defined) are the written view and its base, whose grad_fn names are checked after the write.
struct ViewWrite {
  std::string name;
  std::vector<Shape> leaves;
  std::function<std::vector<Tensor>(const std::vector<Tensor>&)> run;
};

// A weighting that makes every element's gradient different.
Tensor weights(const Shape& s) { return add(values(s), 1.0); }

const std::vector<ViewWrite>& view_writes() {
  static const std::vector<ViewWrite> cases = {
      {"narrow/mul_ scalar",
       {{3, 4}},
       [](const auto& in) {
         Tensor a = mul(in[0], 2.0);
         Tensor v = a.narrow(0, 0, 1);
         v.mul_(3);
         return std::vector<Tensor>{sum(mul(a, a)), a, v};
       }},
      {"select/add_ operand",
       {{3, 4}, {4}},
       [](const auto& in) {
         Tensor a = mul(in[0], 2.0);
         Tensor v = a.select(0, 1);
         v.add_(mul(in[1], in[1]));
         return std::vector<Tensor>{sum(mul(a, a)), a, v};
       }},
      {"select dim 1/copy_",
       {{3, 4}, {3}},
       [](const auto& in) {
         Tensor a = mul(in[0], 2.0);
         Tensor v = a.select(1, 2);
         v.copy_(in[1]);
         return std::vector<Tensor>{sum(mul(a, weights({3, 4}))), a, v};
       }},
      {"copy_ broadcast from a smaller source",
       {{3, 4}, {1}},
       [](const auto& in) {
         Tensor a = mul(in[0], 2.0);
         Tensor v = a.narrow(1, 1, 2);
         v.copy_(in[1]);
         return std::vector<Tensor>{sum(mul(a, a)), a, v};
       }},
      {"t/zero_",
       {{3, 4}},
       [](const auto& in) {
         Tensor a = mul(in[0], 2.0);
         Tensor v = a.t();
         v.zero_();
         return std::vector<Tensor>{sum(mul(a, in[0])), a, v};
       }},
      {"transpose+slice/div_ operand",
       {{3, 4}, {2, 3}},
       [](const auto& in) {
         Tensor a = mul(in[0], 2.0);
         Tensor v = a.transpose(0, 1).slice(0, 1, 3);
         v.div_(in[1]);
         return std::vector<Tensor>{sum(mul(a, a)), a, v};
       }},
      {"view+narrow/sub_ alpha",
       {{3, 4}, {5}},
       [](const auto& in) {
         Tensor a = mul(in[0], 2.0);
         Tensor v = a.view({12}).narrow(0, 2, 5);
         v.sub_(mul(in[1], in[1]), 2.0);
         return std::vector<Tensor>{sum(mul(a, a)), a, v};
       }},
      {"reshape view+select/fill_",
       {{3, 4}},
       [](const auto& in) {
         Tensor a = mul(in[0], 2.0);
         Tensor v = a.reshape({2, 6}).select(0, 1);
         v.fill_(7.0);
         return std::vector<Tensor>{sum(mul(a, in[0])), a, v};
       }},
      {"slice with step/mul_ operand",
       {{3, 4}, {3, 2}},
       [](const auto& in) {
         Tensor a = mul(in[0], 2.0);
         Tensor v = a.slice(1, 0, 4, 2);
         v.mul_(in[1]);
         return std::vector<Tensor>{sum(mul(a, a)), a, v};
       }},
      {"permute+select+unsqueeze/add_ scalar, view used after",
       {{2, 3, 4}},
       [](const auto& in) {
         Tensor a = mul(in[0], in[0]);
         Tensor v = a.permute({2, 0, 1}).select(0, 1).unsqueeze(0);  // (1, 2, 3)
         v.add_(1.5);
         return std::vector<Tensor>{add(sum(mul(a, a)), sum(mul(v, v))), a, v};
       }},
      {"view of a view: the root is the base",
       {{3, 4}, {}},
       [](const auto& in) {
         Tensor a = mul(in[0], 2.0);
         Tensor rows = a.narrow(0, 1, 2);
         Tensor v = rows.select(1, 3);
         v.mul_(in[1]);
         return std::vector<Tensor>{add(sum(mul(a, a)), sum(mul(rows, rows))), a, v};
       }},
      {"expanded view/fill_, then used",
       {{3}},
       [](const auto& in) {
         Tensor a = mul(in[0], 2.0);
         Tensor v = a.narrow(0, 0, 2).unsqueeze(0).expand({3, 2});
         v.fill_(1.5);
         return std::vector<Tensor>{add(sum(mul(a, a)), sum(mul(v, weights({3, 2})))), a, v};
       }},
      {"uniform_ into a view",
       {{3, 4}},
       [](const auto& in) {
         Tensor a = mul(in[0], 2.0);
         Tensor v = a.narrow(0, 1, 1);
         Generator g(7);
         v.uniform_(-1, 1, &g);
         return std::vector<Tensor>{sum(mul(a, a)), a, v};
       }},
      {"normal_ into a view",
       {{3, 4}},
       [](const auto& in) {
         Tensor a = mul(in[0], 2.0);
         Tensor v = a.select(1, 0);
         Generator g(7);
         v.normal_(0, 1, &g);
         return std::vector<Tensor>{sum(mul(a, a)), a, v};
       }},
      {"two writes into one view",
       {{3}},
       [](const auto& in) {
         Tensor a = mul(in[0], 2.0);
         Tensor v = a.narrow(0, 0, 2);
         v.mul_(2);
         v.add_(mul(in[0].narrow(0, 1, 2), in[0].narrow(0, 0, 2)));
         return std::vector<Tensor>{add(sum(mul(v, v)), sum(mul(a, a))), a, v};
       }},
      {"a sibling view as operand",
       {{3, 4}},
       [](const auto& in) {
         Tensor a = mul(in[0], 2.0);
         Tensor v = a.select(0, 0);
         v.add_(mul(a.select(0, 1), 3.0));  // (a rule that saved a would see the write: see below)
         return std::vector<Tensor>{sum(mul(a, a)), a, v};
       }},
      // A view made before a write through its base or a sibling sees the write (its history is
      // rebuilt as AsStridedBackward0 of the base's).
      {"stale view: written through a sibling",
       {{3, 4}},
       [](const auto& in) {
         Tensor a = mul(in[0], 2.0);
         Tensor rows = a.narrow(0, 0, 2);
         Tensor v = a.select(0, 1);
         v.mul_(3);
         return std::vector<Tensor>{sum(mul(rows, rows)), Tensor(), rows};
       }},
      {"stale view: written through the base",
       {{3, 4}, {3, 4}},
       [](const auto& in) {
         Tensor a = mul(in[0], 2.0);
         Tensor v = a.select(0, 0);
         a.mul_(in[1]);
         Tensor w = a.select(0, 2);
         w.mul_(5);  // then through the stale view itself
         return std::vector<Tensor>{add(sum(mul(v, v)), sum(mul(a, a))), Tensor(), v};
       }},
      // A base that needs no grad takes the written value's: a view made before then follows it.
      {"buffer that needs no grad",
       {{2, 2}, {2}},
       [](const auto& in) {
         Tensor buf = zeros({3, 2}, {.dtype = f64});
         Tensor last = buf.select(0, 2);
         buf.narrow(0, 0, 2).copy_(in[0]);
         last.add_(mul(in[1], in[1]));
         return std::vector<Tensor>{sum(mul(buf, mul(buf, weights({3, 2})))), buf, last};
       }},
  };
  return cases;
}

// d(loss)/d(leaf) by central differences in float64, the leaves needing no grad.
std::vector<V> finite_differences(const ViewWrite& c, const std::vector<Tensor>& start) {
  NoGradGuard no_grad;
  const double h = 1e-6;
  std::vector<V> out;
  for (size_t i = 0; i < start.size(); ++i) {
    const V base = start[i].to_vector<double>();
    V g(base.size());
    for (size_t k = 0; k < base.size(); ++k) {
      double f[2];
      for (int s = 0; s < 2; ++s) {
        std::vector<Tensor> in;
        for (const Tensor& t : start) in.push_back(t.detach().clone());
        V moved = base;
        moved[k] += s == 0 ? h : -h;
        in[i] = plain(moved, start[i].sizes());
        f[s] = c.run(in)[0].item<double>();
      }
      g[k] = (f[0] - f[1]) / (2 * h);
    }
    out.push_back(g);
  }
  return out;
}

TEST(InplaceViews, GradientsMatchFiniteDifferences) {
  for (const ViewWrite& c : view_writes()) {
    SCOPED_TRACE(c.name);
    std::vector<Tensor> leaves;
    for (const Shape& s : c.leaves) leaves.push_back(values(s).set_requires_grad(true));
    const std::vector<Tensor> out = c.run(leaves);
    if (out[1].defined()) EXPECT_EQ(grad_fn_name(out[1]), "CopySlices");
    if (out[2].defined()) EXPECT_EQ(grad_fn_name(out[2]), "AsStridedBackward0");
    out[0].backward();
    const std::vector<V> expected = finite_differences(c, leaves);
    for (size_t i = 0; i < leaves.size(); ++i) {
      ASSERT_TRUE(leaves[i].grad().defined()) << "leaf " << i;
      const V got = leaves[i].grad().to_vector<double>();
      for (size_t k = 0; k < got.size(); ++k)
        EXPECT_NEAR(got[k], expected[i][k], 1e-6 * (1 + std::abs(expected[i][k])))
            << "leaf " << i << " [" << k << "]";
    }
  }
}

// torch 1.13: x = ones(3, 2); a = x * 2; a.narrow(0, 0, 1).mul_(3); a[1].add_(y * y);
// a.select(1, 1).copy_(z); (a * a).sum().backward() gives a = [[6, 1], [27, 2], [2, 3]],
// x.grad = [[72, 0], [108, 0], [8, 0]], y.grad = [540, 0], z.grad = [2, 4, 6].
TEST(InplaceViews, TheBriefsExampleInClosedForm) {
  Tensor x = leaf(V(6, 1.0), {3, 2}), y = leaf({5, 7}, {2}), z = leaf({1, 2, 3}, {3});
  Tensor a = mul(x, 2.0);
  a.narrow(0, 0, 1).mul_(3);
  a[1].add_(mul(y, y));
  a.select(1, 1).copy_(z);
  EXPECT_EQ(a.to_vector<double>(), V({6, 1, 27, 2, 2, 3}));
  EXPECT_EQ(grad_fn_name(a), "CopySlices");
  EXPECT_EQ(grad_fn_name(a.narrow(0, 0, 1)), "SliceBackward0");  // a new view: an ordinary one
  sum(mul(a, a)).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), V({72, 0, 108, 0, 8, 0}));
  EXPECT_EQ(y.grad().to_vector<double>(), V({540, 0}));
  EXPECT_EQ(z.grad().to_vector<double>(), V({2, 4, 6}));
}

// torch 1.13: buf = zeros(3, 2); v0 = buf[2]; buf.narrow(0, 0, 2).copy_(y) makes buf require grad
// (CopySlices, not a leaf) and v0 too (AsStridedBackward0).
TEST(InplaceViews, BaseThatNeedsNoGradTakesTheWrittenValuesHistory) {
  Tensor buf = zeros({3, 2}, {.dtype = f64});
  Tensor y = leaf({1, 2, 3, 4}, {2, 2});
  Tensor v0 = buf.select(0, 2);
  EXPECT_FALSE(v0.requires_grad());
  buf.narrow(0, 0, 2).copy_(y);
  EXPECT_TRUE(buf.requires_grad());
  EXPECT_FALSE(is_leaf(buf));
  EXPECT_EQ(grad_fn_name(buf), "CopySlices");
  EXPECT_TRUE(v0.requires_grad());
  EXPECT_EQ(grad_fn_name(v0), "AsStridedBackward0");
  v0.add_(1.0);
  sum(mul(buf, buf)).backward();
  EXPECT_EQ(y.grad().to_vector<double>(), V({2, 4, 6, 8}));
}

// torch 1.13 raises "a view of a leaf Variable that requires grad is being used in an in-place
// operation." in grad mode; under no_grad the write goes through, and the view's history becomes
// AsStridedBackward0 (its storage changed).
TEST(InplaceViews, ViewOfALeafThatRequiresGradRefusesInGradMode) {
  Tensor x = leaf({1, 2, 3}, {3});
  Tensor v = x.narrow(0, 0, 2);
  for (const auto& write : std::vector<std::function<void()>>{[&] { v.mul_(2); },
                                                              [&] {
                                                                v.copy_(plain({0, 0}, {2}));
                                                              },
                                                              [&] { v.zero_(); },
                                                              [&] {
                                                                v.add_(leaf({1, 1}, {2}));
                                                              },
                                                              [&] { uniform_(v); }}) {
    EXPECT_CONTAINS(thrown<Error>(write), "a view of a leaf Variable that requires grad");
  }
  EXPECT_EQ(x.to_vector<double>(), V({1, 2, 3})) << "a refused write leaves the values";
  {
    NoGradGuard no_grad;
    v.mul_(3);
  }
  EXPECT_EQ(x.to_vector<double>(), V({3, 6, 3}));
  EXPECT_TRUE(is_leaf(x));
  EXPECT_EQ(grad_fn_name(v), "AsStridedBackward0");
  sum(mul(v, v)).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), V({6, 12, 0}));
}

// A tensor a backward rule saved, written through a view before backward: backward raises
// rather than return a wrong gradient (torch: exp saves its result; v.mul_(v) saves v).
TEST(InplaceViews, ModifiedSavedTensorIsRefusedInBackward) {
  Tensor x = leaf({1, 2, 3}, {3});
  Tensor a = exp(x);
  a.narrow(0, 0, 2).mul_(3);
  EXPECT_CONTAINS(thrown<Error>([&] { sum(a).backward(); }), "modified by an inplace operation");

  Tensor x2 = leaf({1, 2, 3}, {3});
  Tensor a2 = mul(x2, 2.0);
  Tensor v = a2.narrow(0, 0, 2);
  v.mul_(v);
  EXPECT_CONTAINS(thrown<Error>([&] { sum(a2).backward(); }), "modified by an inplace operation");

  // A view of the base saved by a rule (mul saves both operands), then the base written through
  // another view: torch raises too.
  Tensor x4 = leaf(V(12, 1.0), {3, 4});
  Tensor a4 = mul(x4, 2.0);
  a4.select(0, 0).add_(mul(a4.select(0, 1), a4.select(0, 2)));
  EXPECT_CONTAINS(thrown<Error>([&] { sum(a4).backward(); }), "modified by an inplace operation");

  // Saved before the write, by a rule that saved nothing of the base: unaffected.
  Tensor x3 = leaf({1, 2, 3}, {3});
  Tensor a3 = mul(x3, 2.0);
  Tensor b3 = add(a3, 1.0);
  a3.narrow(0, 1, 2).mul_(3);
  sum(add(a3, b3)).backward();
  EXPECT_EQ(x3.grad().to_vector<double>(), V({4, 8, 8}));
}

// torch 1.13 refuses a view made under no_grad (of a tensor that requires grad) being written in
// grad mode, or being used after its base was written.
TEST(InplaceViews, ViewMadeInNoGradModeRefusesWrites) {
  Tensor x = leaf({1, 2, 3}, {3});
  Tensor a = mul(x, 2.0);
  Tensor v, w;
  {
    NoGradGuard no_grad;
    v = a.narrow(0, 0, 2);
    w = a.narrow(0, 1, 2);
  }
  EXPECT_CONTAINS(
      thrown<Error>([&] { v.mul_(3); }),
      "a view was created in no_grad mode and is being modified inplace with grad mode enabled");
  Tensor u = v.narrow(0, 0, 1);  // a view of such a view is one too
  EXPECT_CONTAINS(thrown<Error>([&] { u.mul_(3); }), "created in no_grad mode");
  a.mul_(2);
  EXPECT_CONTAINS(
      thrown<Error>([&] { mul(w, 2.0); }),
      "was created in no_grad mode and its base (shape (3,)) or another view of its base has been "
      "modified inplace");
  NoGradGuard no_grad;
  v.mul_(3);  // both under no_grad: an ordinary write
  EXPECT_EQ(a.to_vector<double>(), V({12, 24, 12}));
}

// An expanded view repeats elements: only fill_ (and zero_) may write it, as in PyTorch.
TEST(InplaceViews, ExpandedViewsTakeOnlyFill) {
  Tensor x = leaf({1, 2, 3}, {3});
  Tensor a = mul(x, 2.0);
  Tensor e = a.unsqueeze(0).expand({2, 3});
  EXPECT_CONTAINS(thrown<ValueError>([&] { e.mul_(2); }), "refers to a single memory location");
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    e.copy_(plain(V(6, 1.0), {2, 3}));
                  }),
                  "single memory location");
  e.fill_(4);
  EXPECT_EQ(grad_fn_name(a), "CopySlices");
  sum(mul(e, plain({1, 2, 3, 4, 5, 6}, {2, 3}))).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), V({0, 0, 0}));
}

// A detached tensor is a view autograd does not follow: it is the base of its own views
// (torch 1.13: b = a.detach(); b[:2].mul_(y) gives b CopySlices; a keeps MulBackward0).
TEST(InplaceViews, DetachedTensorIsItsViewsBase) {
  Tensor x = leaf({1, 2, 3}, {3}), y = leaf({4, 5}, {2});
  Tensor a = mul(x, 2.0);
  Tensor b = a.detach();
  b.narrow(0, 0, 2).mul_(y);
  EXPECT_EQ(grad_fn_name(b), "CopySlices");
  EXPECT_EQ(grad_fn_name(a), "MulBackward0");
  sum(b).backward();
  EXPECT_EQ(y.grad().to_vector<double>(), V({2, 4}));
  EXPECT_FALSE(x.grad().defined());
}

// The op's saved tensors live in CopySlices: freed after backward unless retain_graph (torch 1.13:
// x.grad = [32, 72, 8] then [64, 144, 16], w.grad = [16, 24] then [32, 48]); autograd::grad
// reaches an operand through it.
TEST(InplaceViews, RetainGraphAndGradThroughCopySlices) {
  Tensor x = leaf({1, 1, 1}, {3}), w = leaf({2, 3}, {2});
  Tensor a = mul(x, 2.0);
  a.narrow(0, 0, 2).mul_(w);
  Tensor s = sum(mul(a, a));
  s.backward(Tensor(), /*retain_graph=*/true);
  EXPECT_EQ(x.grad().to_vector<double>(), V({32, 72, 8}));
  s.backward();
  EXPECT_EQ(x.grad().to_vector<double>(), V({64, 144, 16}));
  EXPECT_EQ(w.grad().to_vector<double>(), V({32, 48}));
  EXPECT_CONTAINS(thrown<Error>([&] { s.backward(); }), "a second time");

  Tensor x2 = leaf({1, 1, 1}, {3}), w2 = leaf({2, 3}, {2});
  Tensor a2 = mul(x2, 2.0);
  a2.narrow(0, 0, 2).mul_(w2);
  const std::vector<Tensor> g = grad({sum(mul(a2, a2))}, {w2});
  EXPECT_EQ(g[0].to_vector<double>(), V({16, 24}));
  EXPECT_FALSE(w2.grad().defined());
}

// A write that converts: a float32 source copied into a float64 view gets a float32 gradient.
TEST(InplaceViews, ConvertingCopyGivesTheSourceItsDtype) {
  Tensor x = leaf({1, 2, 3}, {3});
  Tensor src = from_vector<float>({1.5f}, {1}, {.requires_grad = true});
  Tensor a = mul(x, 2.0);
  a.narrow(0, 1, 2).copy_(src);
  sum(a).backward();
  EXPECT_EQ(src.grad().dtype(), DType::float32);
  EXPECT_EQ(src.grad().to_vector<double>(), V({2}));
  EXPECT_EQ(x.grad().to_vector<double>(), V({2, 0, 0}));
}

}  // namespace
}  // namespace fabric
