// linspace against torch 1.13's CPU values (tests/tensor/linspace_torch_rows.h, from
// tools/fixtures/make_linspace_rows.py): every dtype computes in its own arithmetic from start and
// end converted to the dtype (integers truncated, float16/bfloat16 rounded at every operation), so
// float32 linspace(-3.3, 7.7, 100) is not float64's rounded and int64's starts at -3, not -3.3; a
// start or end the dtype cannot hold is refused as torch refuses it.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>

#include "tensor/factory.h"
#include "tests/tensor/linspace_torch_rows.h"

namespace fabric {
namespace {

std::string describe(const LinspaceTorchRow& r) {
  std::ostringstream os;
  os << "linspace(" << r.start << ", " << r.end << ", " << r.steps << ", " << r.dtype << ")";
  return os.str();
}

TEST(LinspaceTorch, ValuesBitForBit) {
  int checked = 0;
  for (const LinspaceTorchRow& r : linspace_torch_rows()) {
    if (r.refused) continue;
    const DType dt = dtype_from_name(r.dtype);
    const Tensor t = linspace(r.start, r.end, r.steps, {.dtype = dt});
    ASSERT_EQ(t.dtype(), dt) << describe(r);
    ASSERT_EQ(t.numel(), static_cast<int64_t>(r.values.size())) << describe(r);
    const std::vector<double> got = t.to_vector<double>();
    for (size_t i = 0; i < got.size(); ++i) {
      const bool same =
          (std::isnan(got[i]) && std::isnan(r.values[i])) ||
          (got[i] == r.values[i] && std::signbit(got[i]) == std::signbit(r.values[i]));
      ASSERT_TRUE(same) << describe(r) << "[" << i << "] = " << got[i] << ", torch " << r.values[i];
    }
    ++checked;
  }
  EXPECT_GT(checked, 100);
}

TEST(LinspaceTorch, RefusesABoundTheDtypeCannotHold) {
  int checked = 0;
  for (const LinspaceTorchRow& r : linspace_torch_rows()) {
    if (!r.refused) continue;
    const DType dt = dtype_from_name(r.dtype);
    try {
      linspace(r.start, r.end, r.steps, {.dtype = dt});
      ADD_FAILURE() << describe(r) << " did not raise (torch does)";
    } catch (const ValueError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("without overflow"), std::string::npos) << msg;
      EXPECT_NE(msg.find(r.dtype), std::string::npos) << msg;
    }
    ++checked;
  }
  EXPECT_GE(checked, 9);
}

}  // namespace
}  // namespace fabric
