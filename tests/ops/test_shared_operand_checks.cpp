// The operand checks that several op families share (tensor/elementwise_operands.h,
// tensor/product_operands.h): each op still refuses the same inputs with its own name in the
// same message, whichever file it lives in.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_random.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

struct Case {
  std::function<void()> call;
  std::string message;
};

const char* const kFp8 =
    " tensors are not supported (fp8 is a storage format here; cast to a wider dtype first)";

TEST(SharedOperandChecks, ProductsNameBothOperandsDtypesAndShapes) {
  const Tensor m = zeros({2, 3}), v = zeros({3});
  const Tensor m64 = zeros({3, 2}, {.dtype = DType::float64});
  const Tensor v64 = zeros({3}, {.dtype = DType::float64});
  const std::vector<Case> cases = {
      {[&] { mm(m, m64); },
       "mm: expected both operands to have the same dtype, but got float32 (2, 3) and float64 "
       "(3, 2)"},
      {[&] { dot(v, v64); },
       "dot: expected both operands to have the same dtype, but got float32 (3,) and float64 "
       "(3,)"},
      {[&] { tensordot(m, m64, 1); },
       "tensordot: expected both operands to have the same dtype, but got float32 (2, 3) and "
       "float64 (3, 2)"},
  };
  for (const Case& c : cases) {
    const std::string msg = thrown<DTypeError>(c.call);
    EXPECT_CONTAINS(msg, c.message);
  }
  EXPECT_CONTAINS(thrown<ValueError>([&] { matmul(Tensor(), m); }), "matmul: undefined operand");
  EXPECT_CONTAINS(thrown<ValueError>([&] { dot(v, Tensor()); }), "dot: undefined operand");
}

TEST(SharedOperandChecks, ElementwiseOpsRefuseFp8) {
  const Tensor f8 = zeros({2}).to(DType::float8_e4m3fn), f = zeros({2});
  const std::vector<Case> cases = {
      {[&] { add(f, f8); }, std::string("add: float8_e4m3fn") + kFp8},
      {[&] { mul(f8, 2.0); }, std::string("mul: float8_e4m3fn") + kFp8},
      {[&] { exp(f8); }, std::string("exp: float8_e4m3fn") + kFp8},
      {[&] { tan(f8); }, std::string("tan: float8_e4m3fn") + kFp8},
      {[&] { isnan(f8); }, std::string("isnan: float8_e4m3fn") + kFp8},
  };
  for (const Case& c : cases) {
    const std::string msg = thrown<DTypeError>(c.call);
    EXPECT_CONTAINS(msg, c.message);
  }
}

TEST(SharedOperandChecks, ActivationsTakeFloatingTensorsOnly) {
  const Tensor f8 = zeros({2}).to(DType::float8_e4m3fn);
  const Tensor i = zeros({2}, {.dtype = DType::int64});
  const std::string expects = ": expects a float64, float32, float16 or bfloat16 tensor, got ";
  const std::vector<Case> cases = {
      {[&] { leaky_relu(i); }, "leaky_relu" + expects + "int64 (cast with .to(float32) first)"},
      {[&] { log_sigmoid(i); }, "log_sigmoid" + expects + "int64 (cast with .to(float32) first)"},
      {[&] { elu(f8); },
       "elu" + expects +
           "float8_e4m3fn (fp8 is a storage format here; cast to a wider dtype first)"},
      {[&] { log_sigmoid(f8); },
       "log_sigmoid" + expects +
           "float8_e4m3fn (fp8 is a storage format here; cast to a wider dtype first)"},
  };
  for (const Case& c : cases) {
    const std::string msg = thrown<DTypeError>(c.call);
    EXPECT_CONTAINS(msg, c.message);
  }
  EXPECT_CONTAINS(thrown<ValueError>([] { softplus(Tensor()); }),
                  "softplus: got an undefined tensor");
}

// The *_like factories, the in-place random fills and dropout name themselves for an undefined
// Tensor() (dropout whether or not it trains: it returned an undefined tensor in eval).
TEST(SharedOperandChecks, FactoriesRandomFillsAndDropoutNameAnUndefinedInput) {
  Tensor U;
  const std::vector<Case> cases = {
      {[&] { empty_like(U); }, "empty_like: got an undefined tensor"},
      {[&] { zeros_like(U); }, "zeros_like: got an undefined tensor"},
      {[&] { ones_like(U); }, "ones_like: got an undefined tensor"},
      {[&] { full_like(U, 2.0); }, "full_like: got an undefined tensor"},
      {[&] { uniform_(U); }, "uniform_: got an undefined tensor"},
      {[&] { normal_(U); }, "normal_: got an undefined tensor"},
      {[&] { dropout(U, 0.5, true); }, "dropout: got an undefined tensor"},
      {[&] { dropout(U, 0.5, false); }, "dropout: got an undefined tensor"},
      {[&] { dropout(U, 0.0, true); }, "dropout: got an undefined tensor"},
      {[&] { dropout_with_mask(U, 0.5, true); }, "dropout: got an undefined tensor"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    EXPECT_CONTAINS(thrown<ValueError>(c.call), c.message);
  }
}

}  // namespace
}  // namespace fabric
