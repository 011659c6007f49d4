// float arange against torch 1.13's CPU values (tests/tensor/arange_torch_rows.h, from
// tools/fixtures/make_arange_rows.py): torch's kernel writes the first values of a range in vectors
// (each vector's first value from start + step * i, its lanes from that rounded value) and the
// tail one by one, so arange(0, 10, 0.1)[9] is 0.90000004 in float32, not the nearer 0.89999998.
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "tensor/factory.h"
#include "tests/tensor/arange_torch_rows.h"

namespace fabric {
namespace {

TEST(ArangeTorch, FloatValuesBitForBit) {
  for (const ArangeTorchRow& r : arange_torch_rows()) {
    std::ostringstream what;
    what << "arange(" << r.start << ", " << r.end << ", " << r.step << ", " << r.dtype << ")";
    SCOPED_TRACE(what.str());
    const DType dt = dtype_from_name(r.dtype);
    const Tensor t = arange(r.start, r.end, r.step, dt);
    ASSERT_EQ(t.dtype(), dt);
    const std::vector<double> got = t.to_vector<double>();
    ASSERT_EQ(got.size(), r.values.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], r.values[i]) << "element " << i;
  }
}

}  // namespace
}  // namespace fabric
