// The CUDA quantizer kernels against the CPU through precision/: NF4/FP4 blockwise quantize and
// dequantize (float32/float16/bfloat16, every blocksize, odd lengths, NaN/inf/all-zero blocks,
// midpoint ties, double quantization, the spec's worked example) and the LLM.int8 int8 GEMM
// (aligned and unaligned K, extreme values). All bit-exact: the codes, absmax and products are
// the same fp32 operations on both devices, and the int8 GEMM is exact int32 arithmetic.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "precision/quant_4bit.h"
#include "precision/quant_int8.h"
#include "tensor/factory.h"
#include "tests/cuda/cuda_test_util.h"

namespace fabric {
namespace {

using precision::dequantize_4bit;
using precision::int8_matmul;
using precision::quantize_4bit;
using test::kGpu;

std::string name_of(const std::string& what, DType t, const std::string& type, int64_t bs,
                    int64_t n) {
  return what + " " + std::string(dtype_name(t)) + " " + type + " bs=" + std::to_string(bs) +
         " n=" + std::to_string(n);
}

// Quantizes x on both devices; packed codes, absmax and the dequantized values agree exactly.
void check_4bit(const std::string& what, const Tensor& x, int64_t bs, const std::string& type,
                bool nested = false) {
  const auto [pc, sc] = quantize_4bit(x, bs, type, nested);
  const auto [pg, sg] = quantize_4bit(x.to(kGpu), bs, type, nested);
  EXPECT_EQ(pg.device(), kGpu) << what;
  test::expect_matches(pc, pg, {}, what + " packed");
  test::expect_matches(sc.absmax, sg.absmax, {}, what + " absmax");
  if (nested) test::expect_matches(sc.nested_absmax, sg.nested_absmax, {}, what + " nested absmax");
  EXPECT_EQ(sc.nested_offset, sg.nested_offset) << what;
  test::expect_matches(dequantize_4bit(pc, sc), dequantize_4bit(pg, sg), {}, what + " dequantized");
}

TEST(CudaQuant4bit, MatchesTheCpuForEveryBlocksizeAndLength) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : {DType::float32, DType::float16, DType::bfloat16}) {
    for (const char* type : {"nf4", "fp4"}) {
      for (int64_t bs : {32, 64, 128, 256, 1024, 4096}) {
        for (int64_t n : {int64_t{1}, int64_t{5}, bs - 1, bs, 7 * bs + 5, int64_t{100001}}) {
          const Tensor x = test::uniform_tensor({n}, dt, -3, 3, static_cast<uint64_t>(n + bs));
          check_4bit(name_of("quantize_4bit", dt, type, bs, n), x, bs, type);
        }
      }
    }
  }
}

TEST(CudaQuant4bit, SpecialValuesAndEdgeBlocks) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : {DType::float32, DType::float16, DType::bfloat16}) {
    for (const char* type : {"nf4", "fp4"}) {
      // NaN, inf, signed zeros, subnormals scattered over many blocks.
      check_4bit(name_of("awkward", dt, type, 64, 5000), test::awkward_tensor({5000}, dt, 4), 64,
                 type);
      // All-zero blocks, including a trailing partial one (absmax 1e-38).
      Tensor z = test::uniform_tensor({64 * 3 + 10}, DType::float32, -1, 1, 5);
      float* p = z.data<float>();
      for (int i = 64; i < 128; ++i) p[i] = 0.0f;
      for (int i = 192; i < 202; ++i) p[i] = i % 2 ? 0.0f : -0.0f;
      check_4bit(name_of("zero blocks", dt, type, 64, z.numel()), z.to(dt), 64, type);
    }
  }
  // Exact midpoints and thresholds (absmax 1): ties go to the lower index on both devices.
  std::vector<float> ties = {1.0f};
  for (float m : kNF4Midpoints) {
    ties.push_back(m);
    ties.push_back(std::nextafter(m, 2.0f));
    ties.push_back(std::nextafter(m, -2.0f));
  }
  for (float t : kFP4Thresholds) {
    for (float s : {t, -t, std::nextafter(t, 2.0f), -std::nextafter(t, 2.0f)}) ties.push_back(s);
  }
  ties.push_back(-1e-4f);  // FP4's -0 code
  const Tensor tt = from_vector<float>(ties, {static_cast<int64_t>(ties.size())});
  check_4bit("ties nf4", tt, 128, "nf4");
  check_4bit("ties fp4", tt, 128, "fp4");
  // The spec's first worked example: the GPU gives the spec's codes.
  const auto [packed, st] = quantize_4bit(
      from_vector<float>({0.5f, -1.0f, 0.25f, 2.0f, -0.1f, 0.0f, 1.5f, -2.0f}, {8}).to(kGpu), 64,
      "nf4");
  EXPECT_EQ(packed.to(Device::cpu()).to_vector<int64_t>(),
            (std::vector<int64_t>{0xA2, 0x9F, 0x67, 0xE0}));
}

TEST(CudaQuant4bit, DoubleQuantizationAndShapes) {
  FABRIC_REQUIRE_CUDA();
  for (const char* type : {"nf4", "fp4"}) {
    const Tensor x = test::uniform_tensor({300, 129}, DType::bfloat16, -2, 2, 6);
    check_4bit(std::string("nested ") + type, x, 64, type, true);
    // A non-contiguous input is quantized in row-major order.
    const auto [pc, sc] = quantize_4bit(x.t(), 64, type);
    const auto [pg, sg] = quantize_4bit(x.to(kGpu).t(), 64, type);
    test::expect_matches(pc, pg, {}, std::string("transposed ") + type);
    const Tensor back = dequantize_4bit(pg, sg);
    EXPECT_EQ(back.sizes(), (Shape{129, 300}));
    EXPECT_EQ(back.dtype(), DType::bfloat16);
  }
}

Tensor int8_values(const Shape& shape, uint64_t seed) {
  return test::random_ints(shape, DType::int64, -128, 127, seed).to(DType::int8);
}

TEST(CudaInt8Gemm, MatchesTheCpuExactly) {
  FABRIC_REQUIRE_CUDA();
  struct Case {
    int64_t M, N, K;
  };
  for (const Case& c : {Case{1, 1, 1}, Case{7, 13, 5}, Case{64, 64, 64}, Case{65, 63, 31},
                        Case{130, 257, 1027}, Case{33, 17, 4096}, Case{3, 200, 2}}) {
    const Tensor A = int8_values({c.M, c.K}, static_cast<uint64_t>(c.M * 7 + c.K));
    const Tensor B = int8_values({c.N, c.K}, static_cast<uint64_t>(c.N * 11 + c.K));
    const std::string what = "int8_matmul M=" + std::to_string(c.M) + " N=" + std::to_string(c.N) +
                             " K=" + std::to_string(c.K);
    const Tensor want = int8_matmul(A, B);
    const Tensor got = int8_matmul(A.to(kGpu), B.to(kGpu));
    EXPECT_EQ(got.device(), kGpu) << what;
    test::expect_matches(want, got, {}, what);
  }
  // Extremes: every product -128 * -128, summed over K = 4096 (2^26, no overflow).
  const Tensor A = full({5, 4096}, -128, {.dtype = DType::int8});
  const Tensor got = int8_matmul(A.to(kGpu), A.to(kGpu)).to(Device::cpu());
  for (int64_t v : got.to_vector<int64_t>()) EXPECT_EQ(v, int64_t{128 * 128 * 4096});
  // Unaligned operands: a row slice starting one byte in (the op copies non-contiguous inputs;
  // a contiguous offset view keeps its odd address).
  const Tensor big = int8_values({9, 41}, 3);
  const Tensor a_off = big.to(kGpu).reshape({-1}).slice(0, 1, 1 + 8 * 40).reshape({8, 40});
  test::expect_matches(int8_matmul(big.reshape({-1}).slice(0, 1, 321).reshape({8, 40}),
                                   big.slice(0, 0, 3).slice(1, 0, 40)),
                       int8_matmul(a_off, big.to(kGpu).slice(0, 0, 3).slice(1, 0, 40)), {},
                       "int8_matmul unaligned");
}

}  // namespace
}  // namespace fabric
