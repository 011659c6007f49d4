// The products against torch 1.13 itself: float64 values and input gradients of einsum, cdist,
// cross, bilinear, addmm/baddbmm/addbmm, tensordot, diagonal, trace and dist
// (tools/fixtures/make_products_rows.py); then what the rows cannot show: beta = 0 ignoring a
// NaN self, diagonal writing through to its base, the autocast classes and the errors. The
// naive-reference and finite-difference checks are the harness rows of op_cases_products.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"
#include "tests/ops/products_torch_rows.h"

namespace fabric {
namespace {

Tensor from_array(const ProductsTorchArray& a) {
  // Made 1-D and then shaped: an empty shape is a 0-dim tensor here, not from_vector's default.
  const int64_t n = static_cast<int64_t>(a.values.size());
  return from_vector(a.values, {n}, {.dtype = DType::float64}).reshape(a.shape);
}

void expect_close(const Tensor& got, const ProductsTorchArray& want, double tol, const char* what) {
  ASSERT_EQ(got.sizes(), Shape(want.shape.begin(), want.shape.end())) << what;
  const std::vector<double> g = got.to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i)
    EXPECT_LE(std::abs(g[i] - want.values[i]), std::max(tol, 1e-10 * std::abs(want.values[i])))
        << what << " " << i << ": " << g[i] << " vs torch " << want.values[i];
}

using Op = std::function<Tensor(const ProductsTorchRow&, const std::vector<Tensor>&)>;
const std::map<std::string, Op>& ops_by_name() {
  static const std::map<std::string, Op> ops = {
      {"einsum", [](const ProductsTorchRow& r,
                    const std::vector<Tensor>& t) { return einsum(r.equation, t); }},
      {"cdist", [](const ProductsTorchRow& r,
                   const std::vector<Tensor>& t) { return cdist(t[0], t[1], r.p); }},
      {"cross", [](const ProductsTorchRow& r,
                   const std::vector<Tensor>& t) { return cross(t[0], t[1], r.dim); }},
      {"bilinear",
       [](const ProductsTorchRow&, const std::vector<Tensor>& t) {
         return bilinear(t[0], t[1], t[2], t.size() > 3 ? t[3] : Tensor());
       }},
      {"addmm",
       [](const ProductsTorchRow& r, const std::vector<Tensor>& t) {
         return addmm(t[0], t[1], t[2], r.beta, r.alpha);
       }},
      {"baddbmm",
       [](const ProductsTorchRow& r, const std::vector<Tensor>& t) {
         return baddbmm(t[0], t[1], t[2], r.beta, r.alpha);
       }},
      {"addbmm",
       [](const ProductsTorchRow& r, const std::vector<Tensor>& t) {
         return addbmm(t[0], t[1], t[2], r.beta, r.alpha);
       }},
      {"tensordot", [](const ProductsTorchRow& r,
                       const std::vector<Tensor>& t) { return tensordot(t[0], t[1], r.dim); }},
      {"diagonal", [](const ProductsTorchRow& r,
                      const std::vector<Tensor>& t) { return diagonal(t[0], r.offset, r.dim, 0); }},
      {"trace", [](const ProductsTorchRow&, const std::vector<Tensor>& t) { return trace(t[0]); }},
      {"dist", [](const ProductsTorchRow& r,
                  const std::vector<Tensor>& t) { return dist(t[0], t[1], r.p); }},
  };
  return ops;
}

TEST(ProductsTorch, ValuesAndGradientsMatchTorch113) {
  for (const ProductsTorchRow& r : products_torch_rows()) {
    SCOPED_TRACE(r.name);
    std::vector<Tensor> in;
    for (const ProductsTorchArray& a : r.inputs)
      in.push_back(from_array(a).set_requires_grad(true));
    const Tensor y = ops_by_name().at(r.op)(r, in);
    expect_close(y, r.out, r.tol, "output");
    y.backward(from_array(r.grad_out));
    for (size_t i = 0; i < in.size(); ++i) {
      const Tensor g = in[i].grad().defined() ? in[i].grad() : zeros_like(in[i]);
      expect_close(g, r.grads[i], r.tol, ("gradient of input " + std::to_string(i)).c_str());
    }
  }
}

// torch: beta = 0 never reads self, so its NaNs and infinities do not reach the result; in every
// path (a row as the GEMM's bias, a full matrix, a batch).
TEST(ProductsTorch, BetaZeroIgnoresNaNInSelf) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  struct Row {
    const char* name;
    std::function<Tensor(const Tensor&)> op;
    Shape self;
  };
  const Tensor a2 = ones({2, 3}), b2 = ones({3, 4}), a3 = ones({2, 2, 3}), b3 = ones({2, 3, 4});
  const std::vector<Row> rows = {
      {"addmm full", [&](const Tensor& s) { return addmm(s, a2, b2, 0, 1); }, {2, 4}},
      {"addmm row", [&](const Tensor& s) { return addmm(s, a2, b2, 0, 1); }, {4}},
      {"baddbmm", [&](const Tensor& s) { return baddbmm(s, a3, b3, 0, 2); }, {2, 2, 4}},
      {"addbmm", [&](const Tensor& s) { return addbmm(s, a3, b3, 0, 1); }, {2, 4}},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    for (double v : r.op(full(r.self, nan)).to_vector<double>()) EXPECT_FALSE(std::isnan(v));
  }
}

// torch (and BLAS): alpha = 0 never reads the product, so inf and NaN factors do not reach addmm's
// or addbmm's result: beta * self (zeros for beta = 0). torch's baddbmm does compute it.
TEST(ProductsTorch, AlphaZeroIgnoresTheFactors) {
  const double inf = std::numeric_limits<double>::infinity();
  for (DType dt : {DType::float32, DType::float64}) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor self = from_vector<double>({1, 2, 3, 4}, {2, 2}).to(dt);
    const Tensor a = full({2, 3}, inf, {.dtype = dt}), b = ones({3, 2}, {.dtype = dt});
    EXPECT_EQ(addmm(self, a, b, 1, 0).to_vector<double>(), (std::vector<double>{1, 2, 3, 4}));
    EXPECT_EQ(addmm(self, a, b, 0.5, 0).to_vector<double>(), (std::vector<double>{0.5, 1, 1.5, 2}));
    EXPECT_EQ(addmm(self, a, b, 0, 0).to_vector<double>(), (std::vector<double>{0, 0, 0, 0}));
    EXPECT_EQ(addmm(from_vector<double>({1, 2}, {2}).to(dt), a, b, 1, 0).to_vector<double>(),
              (std::vector<double>{1, 2, 1, 2}));
    EXPECT_EQ(addbmm(self, a.unsqueeze(0), b.unsqueeze(0), 1, 0).to_vector<double>(),
              (std::vector<double>{1, 2, 3, 4}));
    for (double v :
         baddbmm(self.unsqueeze(0), a.unsqueeze(0), b.unsqueeze(0), 1, 0).to_vector<double>())
      EXPECT_TRUE(std::isnan(v));
  }
}

// diagonal is a view: a write into it lands on the base's diagonal.
TEST(ProductsTorch, DiagonalIsAView) {
  Tensor m = zeros({3, 4});
  diagonal(m, 1).fill_(5.0);
  EXPECT_EQ(m.to_vector<float>(), (std::vector<float>{0, 5, 0, 0, 0, 0, 5, 0, 0, 0, 0, 5}));
}

// Each op applies its own autocast class at its entry: under CPU autocast (bfloat16) the GEMM
// products run in bfloat16, trace and cdist in float32 (CPU's FP32 list), the CUDA-only classes
// (dot, cross, ...) leave CPU inputs as they are; einsum, a composition in torch, contracts in
// bfloat16 (the bmm it reaches is CPU-listed) and only multiplies in float32.
TEST(ProductsTorch, CpuAutocastClasses) {
  struct Row {
    const char* name;
    std::function<Tensor()> op;
    DType want;
  };
  const Tensor m = randn({3, 3}), v = randn({3});
  const Tensor bf = m.to(DType::bfloat16);
  const std::vector<Row> rows = {
      {"addmm", [&] { return addmm(m, m, m); }, DType::bfloat16},
      {"baddbmm", [&] { return baddbmm(m, m.unsqueeze(0), m.unsqueeze(0)); }, DType::bfloat16},
      {"addbmm", [&] { return addbmm(m, m.unsqueeze(0), m.unsqueeze(0)); }, DType::bfloat16},
      {"trace of bfloat16", [&] { return trace(bf); }, DType::float32},
      {"cdist of bfloat16", [&] { return cdist(bf, bf); }, DType::float32},
      {"dot (CUDA's list only)", [&] { return dot(v, v); }, DType::float32},
      {"einsum contracting",
       [&] {
         return einsum("ij,jk->ik", {m, m});
       },
       DType::bfloat16},
      {"einsum multiplying",
       [&] {
         return einsum("ij,ij->ij", {m, m});
       },
       DType::float32},
      {"diagonal", [&] { return diagonal(bf); }, DType::bfloat16},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    autocast_enter(DeviceType::cpu, true, DType::bfloat16, true);
    Tensor y;
    try {
      y = r.op();
    } catch (...) {
      autocast_exit(DeviceType::cpu);
      throw;
    }
    autocast_exit(DeviceType::cpu);
    EXPECT_EQ(y.dtype(), r.want);
  }
}

// Errors name the op, the shapes or dtypes involved and what was expected.
// einsum contracts pairs with bmm, which has no bool product: two bool operands are refused in
// einsum's name and the caller's shapes, not bmm's (1, 2, 3) and (1, 3, 2).
TEST(ProductsTorch, EinsumRefusesBoolPairsInItsOwnName) {
  const Tensor a = zeros({2, 3}, {.dtype = DType::bool_});
  const Tensor b = zeros({3, 2}, {.dtype = DType::bool_});
  const std::string supported =
      "; supported: float64, float32, bfloat16, float16 and the integer types";
  const std::vector<std::pair<std::function<void()>, std::string>> cases = {
      {[&] {
         einsum("ij,jk->ik", {a, b});
       },
       "einsum(\"ij,jk->ik\"): not implemented for bool operands (shapes (2, 3) and (3, 2))" +
           supported},
      {[&] {
         einsum("ij,jk,kl->il", {a, b, a});
       },
       "einsum(\"ij,jk,kl->il\"): not implemented for bool operands (shapes (2, 3), (3, 2) and "
       "(2, 3))" +
           supported},
      {[&] {
         einsum("i,j->ij", {a.select(1, 0), b.select(1, 0)});
       },
       "einsum(\"i,j->ij\"): not implemented for bool operands (shapes (2,) and (3,))"},
  };
  for (const auto& [call, message] : cases) {
    SCOPED_TRACE(message);
    EXPECT_CONTAINS(thrown<DTypeError>(call), message);
  }
  // One bool operand has no product to take, and operands summed to int64 first multiply as
  // int64, as torch's.
  EXPECT_EQ(einsum("ii->i", {zeros({2, 2}, {.dtype = DType::bool_})}).dtype(), DType::bool_);
  EXPECT_EQ(einsum("ij,kl->", {a, b}).dtype(), DType::int64);
}

TEST(ProductsTorch, ErrorsNameTheProblem) {
  struct Row {
    std::string what;
    std::function<void()> call;
    std::vector<std::string> message;
  };
  const Tensor m = zeros({2, 3}), v3 = zeros({3});
  const std::vector<Row> rows = {
      {"addmm inner sizes",
       [&] {
         addmm(zeros({2, 2}), m, m);
       },
       {"addmm", "(2, 3)", "cannot be multiplied"}},
      {"addmm self shape",
       [&] {
         addmm(zeros({3, 3}), m, zeros({3, 2}));
       },
       {"addmm", "self (3, 3)", "does not broadcast", "(2, 2)"}},
      {"addmm dtypes",
       [&] {
         addmm(zeros({2, 2}), m, zeros({3, 2}, {.dtype = DType::float64}));
       },
       {"addmm", "float32", "float64"}},
      {"baddbmm rank",
       [&] {
         baddbmm(zeros({2, 2}), m, m);
       },
       {"baddbmm", "batch1 to be 3-D", "(2, 3)"}},
      {"dot sizes", [&] { dot(v3, zeros({4})); }, {"dot", "(3,)", "(4,)"}},
      {"dot rank", [&] { dot(m, v3); }, {"dot", "1-D"}},
      {"einsum operands",
       [&] { einsum("ij,jk->ik", {m}); },
       {"einsum(\"ij,jk->ik\")", "2 operand term(s)", "1 operand(s)"}},
      {"einsum subscript",
       [&] { einsum("i1->i", {m}); },
       {"einsum(\"i1->i\")", "invalid subscript '1'"}},
      {"einsum rank",
       [&] { einsum("ijk->i", {m}); },
       {"einsum(\"ijk->i\")", "operand 0 has shape (2, 3)", "3 subscript(s)"}},
      {"einsum output subscript",
       [&] { einsum("ij->k", {m}); },
       {"einsum(\"ij->k\")", "output subscript k", "does not appear"}},
      {"einsum repeated output",
       [&] { einsum("ij->ii", {m}); },
       {"einsum(\"ij->ii\")", "appears more than once"}},
      {"einsum diagonal sizes",
       [&] { einsum("ii->i", {m}); },
       {"einsum(\"ii->i\")", "subscript i is repeated", "2 != 3"}},
      {"einsum sizes",
       [&] {
         einsum("ij,jk->ik", {m, m});
       },
       {"einsum(\"ij,jk->ik\")", "size 2 for subscript j", "3"}},
      {"tensordot sizes",
       [&] { tensordot(m, m, 1); },
       {"tensordot", "contracted dimensions need to match", "size 3", "size 2"}},
      {"tensordot dims",
       [&] { tensordot(m, v3, 2); },
       {"tensordot", "dims must be in", "= [0, 1], got 2"}},
      {"diagonal dims", [&] { diagonal(m, 0, 1, -1); }, {"diagonal", "dim1 and dim2 must differ"}},
      {"diagonal rank", [&] { diagonal(v3); }, {"diagonal", "at least 2 dims", "(3,)"}},
      {"diag rank",
       [&] {
         diag(zeros({2, 2, 2}));
       },
       {"diag", "1-D or 2-D", "(2, 2, 2)"}},
      {"trace rank", [&] { trace(v3); }, {"trace", "2-D", "(3,)"}},
      {"cdist p", [&] { cdist(m, m, -1); }, {"cdist", "non-negative p", "-1"}},
      {"cdist features",
       [&] {
         cdist(m, zeros({2, 4}));
       },
       {"cdist", "same number of features"}},
      {"cdist rank", [&] { cdist(v3, m); }, {"cdist", "at least 2-D"}},
      {"cdist dtype",
       [&] {
         cdist(zeros({2, 3}, {.dtype = DType::int64}), m);
       },
       {"cdist", "floating", "int64"}},
      {"cross length",
       [&] {
         cross(m, zeros({2, 3}), 0);
       },
       {"cross", "must have length 3"}},
      {"cross ranks", [&] { cross(m, v3); }, {"cross", "same number of dimensions"}},
      {"cross bool",
       [&] {
         cross(zeros({2, 3}, {.dtype = DType::bool_}), zeros({2, 3}, {.dtype = DType::bool_}));
       },
       {"cross: not implemented for bool"}},
      {"bilinear in1",
       [&] {
         bilinear(zeros({2, 4}), zeros({2, 3}), zeros({5, 3, 3}));
       },
       {"bilinear", "in1_features 3"}},
      {"bilinear batch",
       [&] {
         bilinear(zeros({2, 3}), zeros({4, 3}), zeros({5, 3, 3}));
       },
       {"bilinear", "batch dimensions do not match"}},
      {"addcdiv integers",
       [&] {
         const Tensor i = zeros({3}, {.dtype = DType::int64});
         addcdiv(v3, i, i);
       },
       {"addcdiv", "integer division", "int64"}},
      {"diag past int64",
       [&] { diag(v3, std::numeric_limits<int64_t>::max()); },
       {"diag: a vector of 3 elements at offset 9223372036854775807", "does not fit int64"}},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.what);
    std::string msg;
    try {
      r.call();
      ADD_FAILURE() << "no exception thrown";
    } catch (const Error& e) {
      msg = e.what();
    }
    for (const std::string& part : r.message) EXPECT_CONTAINS(msg, part);
  }
}

// torch's CPU cross fuses the first product of each component, fma(a_i, b_j, -(a_j * b_i)), in
// float32 and float64; rounding both products differs from it in the last bit (1 element of
// the float32 rows here, 3 of the float64 ones).
//   torch.manual_seed(5)
//   for dt in (torch.float32, torch.float64):
//     a, b = torch.randn(4, 3, dtype=dt), torch.randn(4, 3, dtype=dt)
//     torch.linalg.cross(a, b)
TEST(ProductsTorch, CrossBitsMatchTorchsFusedProduct) {
  struct Case {
    DType dt;
    std::vector<double> a, b, want;
  };
  const Case cases[] = {
      {DType::float32,
       {-0x1.f276a8p-2, -0x1.35281ap-1, -0x1.1dbecap-1, 0x1.55c5bep-1, -0x1.944e5ep-3,
        0x1.f15a42p+0, -0x1.66d5f2p+0, -0x1.866de4p-1, 0x1.432e68p-1, -0x1.cc5b72p-1,
        -0x1.1d971ap-1, 0x1.61a5e4p-1},
       {0x1.c7985ep-3, -0x1.551b7ap-1, 0x1.5e896cp-1, 0x1.25e38ap-1, -0x1.2a6f9ap-1, 0x1.892fa2p-1,
        0x1.d3b3fcp-5, -0x1.307adap+0, -0x1.21bbaap-1, -0x1.aa5198p-1, 0x1.cd8aaep-1,
        0x1.b14c34p-3},
       {-0x1.92084cp-1, 0x1.ac45b6p-3, 0x1.d5a358p-2, 0x1.f62cf2p-1, 0x1.348048p-1, -0x1.1a63eap-2,
        0x1.2ea92ap+0, -0x1.83ab0cp-1, 0x1.b5ef76p+0, -0x1.7b37dap-1, -0x1.8a22d8p-2,
        -0x1.4664a2p+0}},
      {DType::float64,
       {0x1.caad9924b7ba7p-2, -0x1.37b7b87d8d293p-1, 0x1.e95ca04ba9183p-3, 0x1.e12a6ef2db2fdp-2,
        -0x1.f439a949efbc2p+0, -0x1.1e124339d0526p-1, 0x1.b7d2fe81d073ep-2, -0x1.21d524036f7cdp+1,
        -0x1.9d1b6ac1b718bp-3, 0x1.11558864544ffp+0, 0x1.4c6c393bbffd3p-2, -0x1.17fb0b82b4284p-4},
       {-0x1.fdeb0797ad977p-1, 0x1.2801951fee2a5p+0, -0x1.98c28c2b091dcp-2, 0x1.37210ecffc74ap+0,
        -0x1.9f8213972a62ap-1, -0x1.c50ab27e4b0ddp-1, -0x1.ca52f989b2f2cp-8, -0x1.c51b97092df16p+0,
        -0x1.2b781aa6c7a98p+0, -0x1.097d94e186168p-2, 0x1.13ad880bafed6p-2, 0x1.56dddbe63ae30p-4},
       {-0x1.1071b7551a7cbp-5, -0x1.e4ba64f8e140cp-5, -0x1.6a2ba71998fb6p-4, 0x1.468b3a425fa09p+0,
        -0x1.0d98286a27f30p-2, 0x1.fe539c41ea219p+0, 0x1.25590a8cec456p+1, 0x1.01f9ca360eaa8p-1,
        -0x1.8d577699c3143p-1, 0x1.755c911e8d71fp-5, -0x1.257e180217952p-4, 0x1.7c87efed6ae71p-2}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(dtype_name(c.dt));
    const Tensor a = from_vector(c.a, {4, 3}, {.dtype = c.dt});
    const Tensor b = from_vector(c.b, {4, 3}, {.dtype = c.dt});
    const std::vector<double> got = cross(a, b).to_vector<double>();
    ASSERT_EQ(got.size(), c.want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], c.want[i]) << "element " << i;
    // Along dim 0 (the components strided), the same values transposed.
    const std::vector<double> got_t = cross(a.t(), b.t(), 0).t().contiguous().to_vector<double>();
    for (size_t i = 0; i < got_t.size(); ++i) EXPECT_EQ(got_t[i], c.want[i]) << "element " << i;
  }
}

}  // namespace
}  // namespace fabric
