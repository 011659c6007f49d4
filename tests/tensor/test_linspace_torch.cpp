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

// torch.logspace: its exponents from the two-sided formula in double (the difference end - start
// taken in the dtype first: float32's rounds), no fma, then glibc's pow rounded once into the
// dtype. The float64 rows tell a fused exponent apart, the first float32 row a difference taken
// in double; int64 truncates the bounds (0.7 -> 0); one step is base ** start, start unconverted.
//   torch.set_num_threads(1)
//   torch.logspace(start, end, steps, base, dtype=dtype).double()  (values as float.hex)
TEST(LinspaceTorch, LogspaceValuesBitForBit) {
  struct Row {
    const char* dtype;
    double start, end;
    int64_t steps;
    double base;
    std::vector<double> values;
  };
  const Row rows[] = {
      {"float64",
       1.3,
       -2.7,
       7,
       10.0,
       {0x1.3f3df1c59536ep+4, 0x1.131d48ad50f58p+2, 0x1.da2c3be30d752p-1, 0x1.98a13577c93bdp-3,
        0x1.60257bbf1ff24p-5, 0x1.2f78783f64c58p-7, 0x1.0585e4c78b079p-9}},
      {"float64",
       -4.9,
       6.15,
       41,
       2.718281828459045,
       {0x1.e804eec1ae64dp-8, 0x1.41a5e1d2213a4p-7, 0x1.a7fd34933e5eap-7, 0x1.177247b8cf323p-6,
        0x1.705c244cec604p-6, 0x1.e59050093c8c2p-6, 0x1.400790d72855ap-5, 0x1.a5db101e5d2b3p-5,
        0x1.160a52e9f9bffp-4, 0x1.6e81a7d3d2e7bp-4, 0x1.e31edb0b49407p-4, 0x1.3e6b558b011d7p-3,
        0x1.a3bbab269796cp-3, 0x1.14a42dc478a1bp-2, 0x1.6ca98e8adb860p-2, 0x1.e0b08bb4d09bap-2,
        0x1.3cd12d3e3b0c5p-1, 0x1.a19f0221c2d16p-1, 0x1.133fd5f30d3b3p+0, 0x1.6ad3d55ec0051p+0,
        0x1.de455df80e3c0p+0, 0x1.3b391544db1bcp+1, 0x1.9f85118a43488p+1, 0x1.11dd49237a40ep+2,
        0x1.6900794030453p+2, 0x1.dbdd4dcc767f4p+2, 0x1.39a30af6574eep+3, 0x1.9d6dd5df06c69p+3,
        0x1.107c85067fd80p+4, 0x1.672f7723cd246p+4, 0x1.d978572eafca1p+4, 0x1.380f0bad9243ap+5,
        0x1.9b594ba37e9c2p+5, 0x1.0f1d874fd7bdcp+6, 0x1.6560cc02236a3p+6, 0x1.d71676208bd80p+6,
        0x1.367d14c8d6ca8p+7, 0x1.99476f5f99ce6p+7, 0x1.0dc04db631715p+8, 0x1.639474d7a6babp+8,
        0x1.d4b7a6a901102p+8}},
      {"float32",
       -3.3,
       7.7,
       50,
       10.0,
       {0x1.06c4380000000p-11, 0x1.b89d900000000p-11, 0x1.716b560000000p-10, 0x1.35ba2a0000000p-9,
        0x1.03ae2e0000000p-8,  0x1.b370ce0000000p-8,  0x1.6d14a20000000p-7,  0x1.3216f00000000p-6,
        0x1.00a16c0000000p-5,  0x1.ae539a0000000p-5,  0x1.68cafa0000000p-4,  0x1.2e7ea40000000p-3,
        0x1.fb3baa0000000p-3,  0x1.a945c60000000p-2,  0x1.648e360000000p-1,  0x1.2af1280000000p+0,
        0x1.f5469c0000000p+0,  0x1.a447240000000p+1,  0x1.605e300000000p+2,  0x1.276e5a0000000p+3,
        0x1.ef63760000000p+3,  0x1.9f57860000000p+4,  0x1.5c3ac00000000p+5,  0x1.23f61a0000000p+6,
        0x1.e992040000000p+6,  0x1.9a76b20000000p+7,  0x1.5823b60000000p+8,  0x1.20883e0000000p+9,
        0x1.e3d2000000000p+9,  0x1.95a4960000000p+10, 0x1.5419040000000p+11, 0x1.1d24be0000000p+12,
        0x1.de23560000000p+12, 0x1.90e0fa0000000p+13, 0x1.501a780000000p+14, 0x1.19cb6c0000000p+15,
        0x1.d885c20000000p+15, 0x1.8c2bb00000000p+16, 0x1.4c27f00000000p+17, 0x1.167c2c0000000p+18,
        0x1.d2f9100000000p+18, 0x1.87848e0000000p+19, 0x1.4841440000000p+20, 0x1.1336e00000000p+21,
        0x1.cd7d0e0000000p+21, 0x1.82eb680000000p+22, 0x1.4466540000000p+23, 0x1.0ffb6a0000000p+24,
        0x1.c8118a0000000p+24, 0x1.7e60160000000p+25}},
      {"float32",
       -8.53,
       2.29,
       36,
       3.7,
       {0x1.dd847e0000000p-17, 0x1.65c76c0000000p-16, 0x1.0c10ae0000000p-15, 0x1.91b1c80000000p-15,
        0x1.2cf7fe0000000p-14, 0x1.c300140000000p-14, 0x1.51e9380000000p-13, 0x1.fa5bb40000000p-13,
        0x1.7b63460000000p-12, 0x1.1c41680000000p-11, 0x1.a9f4a40000000p-11, 0x1.3f25760000000p-10,
        0x1.de3d4a0000000p-10, 0x1.6651e20000000p-9,  0x1.0c786a0000000p-8,  0x1.924d3c0000000p-8,
        0x1.2d6c760000000p-7,  0x1.c3ae9e0000000p-7,  0x1.526bfe0000000p-6,  0x1.fb1fa80000000p-6,
        0x1.7bf6180000000p-5,  0x1.1caf680000000p-4,  0x1.aa997c0000000p-4,  0x1.3fa0f80000000p-3,
        0x1.def65e0000000p-3,  0x1.66dc8c0000000p-2,  0x1.0ce0500000000p-1,  0x1.92e8ec0000000p-1,
        0x1.2de11c0000000p+0,  0x1.c45d6a0000000p+0,  0x1.52eef40000000p+1,  0x1.fbe3ea0000000p+1,
        0x1.7c89240000000p+2,  0x1.1d1d940000000p+3,  0x1.ab3e920000000p+3,  0x1.401caa0000000p+4}},
      {"bfloat16",
       0.5,
       4.2,
       17,
       3.0,
       {0x1.bc00000000000p+0, 0x1.1e00000000000p+1, 0x1.7000000000000p+1, 0x1.da00000000000p+1,
        0x1.3200000000000p+2, 0x1.8a00000000000p+2, 0x1.fa00000000000p+2, 0x1.4600000000000p+3,
        0x1.a400000000000p+3, 0x1.0e00000000000p+4, 0x1.5c00000000000p+4, 0x1.c200000000000p+4,
        0x1.2200000000000p+5, 0x1.7400000000000p+5, 0x1.e000000000000p+5, 0x1.3600000000000p+6,
        0x1.8e00000000000p+6}},
      {"int64",
       0.7,
       9.9,
       10,
       2.0,
       {0x1.0000000000000p+0, 0x1.0000000000000p+1, 0x1.0000000000000p+2, 0x1.0000000000000p+3,
        0x1.0000000000000p+4, 0x1.0000000000000p+5, 0x1.0000000000000p+6, 0x1.0000000000000p+7,
        0x1.0000000000000p+8, 0x1.0000000000000p+9}},
      {"uint8",
       0.0,
       7.5,
       8,
       2.0,
       {0x1.0000000000000p+0, 0x1.0000000000000p+1, 0x1.0000000000000p+2, 0x1.0000000000000p+3,
        0x1.0000000000000p+4, 0x1.0000000000000p+5, 0x1.0000000000000p+6, 0x1.0000000000000p+7}},
      {"int32",
       -1.0,
       12.0,
       27,
       3.0,
       {0x0.0p+0,
        0x0.0p+0,
        0x1.0000000000000p+0,
        0x1.0000000000000p+0,
        0x1.8000000000000p+1,
        0x1.4000000000000p+2,
        0x1.2000000000000p+3,
        0x1.e000000000000p+3,
        0x1.b000000000000p+4,
        0x1.7000000000000p+5,
        0x1.4400000000000p+6,
        0x1.1800000000000p+7,
        0x1.e600000000000p+7,
        0x1.a400000000000p+8,
        0x1.6c80000000000p+9,
        0x1.3b80000000000p+10,
        0x1.1160000000000p+11,
        0x1.d960000000000p+11,
        0x1.9a10000000000p+12,
        0x1.6318000000000p+13,
        0x1.338c000000000p+14,
        0x1.0a56000000000p+15,
        0x1.cd52000000000p+15,
        0x1.8f83000000000p+16,
        0x1.59fd800000000p+17,
        0x1.2ba2c00000000p+18,
        0x1.037e200000000p+19}},
      {"int64", 2.5, 9.0, 1, 10.0, {0x1.3c00000000000p+8}},
      {"float32", 2.5, 9.0, 0, 10.0, {}},

  };
  for (const Row& r : rows) {
    std::ostringstream what;
    what << "logspace(" << r.start << ", " << r.end << ", " << r.steps << ", " << r.base << ", "
         << r.dtype << ")";
    SCOPED_TRACE(what.str());
    const DType dt = dtype_from_name(r.dtype);
    const Tensor t = logspace(r.start, r.end, r.steps, r.base, {.dtype = dt});
    ASSERT_EQ(t.dtype(), dt);
    ASSERT_EQ(t.sizes(), (Shape{r.steps}));
    const std::vector<double> got = t.to_vector<double>();
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], r.values[i]) << "element " << i;
  }
  // torch.logspace(0, 1, -1): "number of steps must be non-negative"; dtype=torch.bool and
  // torch.float16: "logspace_cpu" not implemented for 'Bool' / 'Half'.
  EXPECT_THROW(logspace(0, 1, -1), ValueError);
  EXPECT_THROW(logspace(0, 1, 3, 10.0, {.dtype = DType::bool_}), DTypeError);
  EXPECT_THROW(logspace(0, 1, 3, 10.0, {.dtype = DType::float16}), DTypeError);
}

}  // namespace
}  // namespace fabric
