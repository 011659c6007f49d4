// parameters_to_vector / vector_to_parameters as torch.nn.utils defines them: order, gradient flow,
// the parameters becoming views of the vector, and the errors.
#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "optim/parameter_vector.h"
#include "optim_test_util.h"
#include "tensor/ops.h"

namespace fabric::optim {
namespace {
using namespace testing;

TEST(ParameterVector, FlattensInOrderAndBackpropagates) {
  Tensor a = param({1, 2, 3, 4}), b = param({5, 6});
  a = a.reshape({2, 2}).detach();
  a.set_requires_grad(true);
  const Tensor v = parameters_to_vector({a, b});
  EXPECT_EQ(values(v), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  sum(mul(v, from_vector<double>({1, 2, 3, 4, 5, 6}))).backward();
  EXPECT_EQ(values(a.grad()), (std::vector<double>{1, 2, 3, 4}));
  EXPECT_EQ(values(b.grad()), (std::vector<double>{5, 6}));
}

TEST(ParameterVector, VectorToParametersMakesViewsOfTheVector) {
  Tensor a = param({0, 0, 0, 0}).reshape({2, 2}).detach(), b = param({0, 0});
  a.set_requires_grad(true);
  const Tensor handle = a;  // another handle to the same parameter
  const Tensor vec = from_vector<double>({1, 2, 3, 4, 5, 6, 7});  // the extra value is ignored
  vector_to_parameters(vec, {a, b});
  EXPECT_EQ(handle.sizes(), (Shape{2, 2}));
  EXPECT_EQ(values(handle), (std::vector<double>{1, 2, 3, 4}));
  EXPECT_EQ(values(b), (std::vector<double>{5, 6}));
  EXPECT_TRUE(a.requires_grad());
  EXPECT_EQ(values(parameters_to_vector({a, b})), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  // torch's param.data = vec[...]: the parameters share the vector's storage.
  Tensor(vec).fill_(9);
  EXPECT_EQ(values(b), (std::vector<double>{9, 9}));
}

TEST(ParameterVector, BadArgumentsRaise) {
  struct Case {
    const char* name;
    std::function<void()> call;
    const char* message;
  };
  const Tensor p = param({1, 2, 3});
  const std::vector<Case> cases = {
      {"empty list", [] { parameters_to_vector({}); }, "at least one parameter"},
      {"undefined parameter",
       [&] {
         parameters_to_vector({p, Tensor()});
       },
       "parameter 1 is undefined"},
      {"short vector",
       [&] {
         vector_to_parameters(from_vector<double>({1, 2}), {p});
       },
       "vec has 2 elements but the parameters hold 3"},
      {"2-D vector",
       [&] {
         vector_to_parameters(from_vector<double>({1, 2, 3, 4}, {2, 2}), {p});
       },
       "must be 1-D"},
      {"undefined vector", [&] { vector_to_parameters(Tensor(), {p}); }, "vec is undefined"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_CONTAINS(thrown<ValueError>(c.call), c.message);
  }
}

}  // namespace
}  // namespace fabric::optim
