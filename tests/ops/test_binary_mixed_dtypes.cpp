// add/sub/mul/div with float operands of different dtypes (f32 + bf16, f64 * f16, ...): the CPU
// kernel reads an operand that widens exactly to the compute dtype in its own dtype instead of
// a cast copy. Widening is exact, so every result must be bit for bit that of the op on operands
// cast to the result dtype first (the path every other case still takes), in every layout the
// loop meets (contiguous, broadcast, transposed, stepped, 0-d, empty), in place or not, at 1 and
// 2 threads; autograd and version counters behave as on the cast path.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/omp_threads.h"
#include "tests/common/same_bits.h"

namespace fabric {
namespace {

const std::vector<DType> kFloats = {DType::float16, DType::bfloat16, DType::float32,
                                    DType::float64};

// Special values first (NaN, infinities, signed zeros, subnormals of each dtype, values that
// overflow fp16), then random ones of assorted magnitudes; n elements in dt, shaped `shape`.
Tensor values(const Shape& shape, DType dt, uint64_t salt) {
  const int64_t n = numel_of(shape);
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> v = {std::nan(""), inf,     -inf, -0.0, 0.0,  1e-40, 3e-8,
                           -6e-5,        65000.0, 1e5,  1.0,  -1.0, 0.1,   1e-310};
  const std::vector<double> r = randn({n + 1}, {.dtype = DType::float64}).to_vector<double>();
  const int64_t start = static_cast<int64_t>(salt % v.size());
  std::vector<double> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = i + start;
    out[i] = k < static_cast<int64_t>(v.size()) ? v[k] : r[i] * std::ldexp(1.0, (i % 21) - 10);
  }
  return from_vector(out, shape, {.dtype = DType::float64}).to(dt);
}

struct OpCase {
  std::string name;
  std::function<Tensor(const Tensor&, const Tensor&)> out_of_place;
  std::function<void(Tensor&, const Tensor&)> in_place;
};

const std::vector<OpCase>& op_cases() {
  static const std::vector<OpCase> cases = {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); },
       [](Tensor& a, const Tensor& b) { a.add_(b); }},
      {"add(alpha=-0.37)", [](const Tensor& a, const Tensor& b) { return add(a, b, -0.37); },
       [](Tensor& a, const Tensor& b) { a.add_(b, -0.37); }},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); },
       [](Tensor& a, const Tensor& b) { a.sub_(b); }},
      {"sub(alpha=2.5)", [](const Tensor& a, const Tensor& b) { return sub(a, b, 2.5); },
       [](Tensor& a, const Tensor& b) { a.sub_(b, 2.5); }},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); },
       [](Tensor& a, const Tensor& b) { a.mul_(b); }},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); },
       [](Tensor& a, const Tensor& b) { a.div_(b); }},
  };
  return cases;
}

// The operands' layouts: make(dtype a, dtype b) gives (a, b); in_place: a has the broadcast
// shape, so a.op_(b) is allowed.
struct Layout {
  std::string name;
  std::function<std::pair<Tensor, Tensor>(DType, DType)> make;
  bool in_place;
};

const std::vector<Layout>& layouts() {
  static const std::vector<Layout> cases = {
      {"contiguous 7x37",
       [](DType da, DType db) {
         return std::pair{values({7, 37}, da, 0), values({7, 37}, db, 5)};
       },
       true},
      {"contiguous 100003 (threads split it)",
       [](DType da, DType db) {
         return std::pair{values({100003}, da, 1), values({100003}, db, 9)};
       },
       true},
      {"b broadcast along rows",
       [](DType da, DType db) {
         return std::pair{values({6, 35}, da, 2), values({35}, db, 3)};
       },
       true},
      {"b broadcast along columns",
       [](DType da, DType db) {
         return std::pair{values({6, 35}, da, 4), values({6, 1}, db, 0)};
       },
       true},
      {"outer: a (9,1) with b (1,33)",
       [](DType da, DType db) {
         return std::pair{values({9, 1}, da, 6), values({1, 33}, db, 1)};
       },
       false},
      {"a transposed",
       [](DType da, DType db) {
         return std::pair{values({37, 7}, da, 7).t(), values({7, 37}, db, 2)};
       },
       true},
      {"b transposed",
       [](DType da, DType db) {
         return std::pair{values({7, 37}, da, 8), values({37, 7}, db, 4).t()};
       },
       true},
      {"both stepped slices",
       [](DType da, DType db) {
         return std::pair{values({5, 66}, da, 3).slice(1, 0, 66, 2),
                          values({5, 99}, db, 6).slice(1, 1, 99, 3)};
       },
       true},
      {"b 0-d",
       [](DType da, DType db) {
         return std::pair{values({5, 19}, da, 9), values({}, db, 12)};
       },
       true},
      {"a 0-d",
       [](DType da, DType db) {
         return std::pair{values({}, da, 10), values({5, 19}, db, 2)};
       },
       false},
      {"both 0-d",
       [](DType da, DType db) {
         return std::pair{values({}, da, 12), values({}, db, 10)};
       },
       true},
      {"empty",
       [](DType da, DType db) {
         return std::pair{values({0, 8}, da, 0), values({8}, db, 0)};
       },
       true},
  };
  return cases;
}

std::string describe(const std::string& op, const std::string& layout, DType da, DType db,
                     int threads) {
  return op + " " + std::string(dtype_name(da)) + " with " + std::string(dtype_name(db)) + ", " +
         layout + ", " + std::to_string(threads) + " thread(s)";
}

TEST(BinaryMixedDTypes, OutOfPlaceMatchesTheCastOperands) {
  for (int threads : {1, 2}) {
    OmpThreads scope(threads);
    for (const Layout& layout : layouts()) {
      for (DType da : kFloats) {
        for (DType db : kFloats) {
          const auto [a, b] = layout.make(da, db);
          for (const OpCase& op : op_cases()) {
            const std::string what = describe(op.name, layout.name, da, db, threads);
            const Tensor got = op.out_of_place(a, b);
            const DType ct = got.dtype();
            expect_same_bits(got, op.out_of_place(a.to(ct), b.to(ct)), what);
          }
        }
      }
    }
  }
}

// The old in-place path: compute on operands cast to the result dtype, then copy into a.
TEST(BinaryMixedDTypes, InPlaceMatchesTheCastOperands) {
  for (int threads : {1, 2}) {
    OmpThreads scope(threads);
    for (const Layout& layout : layouts()) {
      if (!layout.in_place) continue;
      for (DType da : kFloats) {
        for (DType db : kFloats) {
          const auto [a0, b] = layout.make(da, db);
          for (const OpCase& op : op_cases()) {
            const std::string what = describe(op.name + "_", layout.name, da, db, threads);
            const DType ct = op.out_of_place(a0, b).dtype();
            Tensor want = a0.clone();
            want.copy_(op.out_of_place(a0.to(ct), b.to(ct)));
            // A fresh copy of a0, non-contiguous (transposed) where a0 is: a strided output.
            Tensor a = a0.detach().clone();
            if (!a0.is_contiguous() && a0.dim() == 2) a = a0.detach().t().clone().t();
            const uint64_t v0 = a.storage()->version();
            op.in_place(a, b);
            expect_same_bits(a, want, what);
            if (a.numel() > 0) {
              EXPECT_EQ(a.storage()->version(), v0 + 1) << what << ": one version bump";
            }
          }
        }
      }
    }
  }
}

// f32 + bf16 large enough for the kernel's non-temporal stores (16 MiB outputs) and for several
// threads' chunks, with unaligned starts.
TEST(BinaryMixedDTypes, LargeContiguousMatchesTheCastOperands) {
  const int64_t n = (int64_t{1} << 22) + 5;
  const Tensor a = values({n + 1}, DType::float32, 3).slice(0, 1, n + 1);
  const Tensor b = values({n}, DType::bfloat16, 4);
  for (int threads : {1, 2}) {
    OmpThreads scope(threads);
    const std::string t = std::to_string(threads) + " thread(s)";
    expect_same_bits(add(a, b), add(a, b.to(DType::float32)), "add f32 + bf16, " + t);
    expect_same_bits(add(b, a), add(b.to(DType::float32), a), "add bf16 + f32, " + t);
    expect_same_bits(sub(a, b, 3), sub(a, b.to(DType::float32), 3), "sub f32 - 3 bf16, " + t);
    Tensor x = a.clone(), want = a.clone();
    x.add_(b);
    want.add_(b.to(DType::float32));
    expect_same_bits(x, want, "add_ f32 += bf16, " + t);
  }
}

// The autograd record is on the original operands as before: each gradient comes back in its
// operand's dtype, equal to that of the graph with an explicit cast.
TEST(BinaryMixedDTypes, GradientsMatchTheExplicitCast) {
  const Tensor av = values({4, 9}, DType::float32, 20), bv = values({9}, DType::bfloat16, 21);
  const Tensor g = values({4, 9}, DType::float32, 22);
  for (const OpCase& op : op_cases()) {
    Tensor a = av.clone().set_requires_grad(true), b = bv.clone().set_requires_grad(true);
    op.out_of_place(a, b).backward(g);
    Tensor a2 = av.clone().set_requires_grad(true), b2 = bv.clone().set_requires_grad(true);
    op.out_of_place(a2, b2.to(DType::float32)).backward(g);
    expect_same_bits(a.grad(), a2.grad(), op.name + ": a's gradient");
    expect_same_bits(b.grad(), b2.grad(), op.name + ": b's gradient");

    // In place on a non-leaf under autograd (the out-of-place op computes it).
    Tensor c = av.clone().set_requires_grad(true), d = bv.clone().set_requires_grad(true);
    Tensor x = mul(c, 1.0);
    op.in_place(x, d);
    x.backward(g);
    expect_same_bits(c.grad(), a2.grad(), op.name + "_: a's gradient");
    expect_same_bits(d.grad(), b2.grad(), op.name + "_: b's gradient");
  }
}

}  // namespace
}  // namespace fabric
