// torch 1.13's float32 / bfloat16 tan, asin, acos, atan, log2, log10, sinh and cosh compute with
// SLEEF (Sleef_<op>f8_u10, AVX2): fabric's transcriptions (vec_sleef_log2.h, vec_sleef_trig.h,
// vec_sleef_hyp.h) must give torch's bits, through the ops. The vml ops (tan ... log10) map every
// element, tail and strided ones included, through the vector function; sinh / cosh take SLEEF for
// whole blocks of 16 floats / 32 bfloat16 of a contiguous row and libm for the rest and for
// strided rows. (The transcriptions were also checked against Debian's libsleef lane by lane on all
// 2^32 inputs; nothing here needs libsleef.)
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/fnv1a.h"

namespace fabric::cpu {
namespace {

using testing::fnv1a;
using testing::kFnv1aStart;

// torch 1.13, one thread (torch.set_num_threads(1)):
//   bits = torch.arange(0, 0x7f800000, 32771, dtype=torch.int64).to(torch.int32)
//   x = torch.cat([bits.view(torch.float32), -bits.view(torch.float32)])[:130000]
std::vector<float> probe_values() {
  std::vector<float> v;
  for (uint32_t b = 0; b < 0x7f800000u; b += 32771) v.push_back(std::bit_cast<float>(b));
  const size_t n = v.size();
  for (size_t i = 0; i < n && v.size() < 130000; ++i) v.push_back(-v[i]);
  return v;
}

struct Expected {
  const char* op;
  std::function<Tensor(const Tensor&)> fn;
  // FNV-1a of the bytes of: op(x), op(x[::3]), op(x.to(bf16)) with NaN written 0x7FC0 (torch's
  // vectorised cast writes 0xFFFF, fabric's 0x7FC0), op(z[:n]) for n = 1..40 chained, the same for
  // z.to(bf16), op(specials)
  uint64_t full, strided, bf16, tails, tails_bf16, specials;
};

// torch 1.13:
//   def canon(o): v = o.view(torch.int16).clone(); v[torch.isnan(o)] = 0x7FC0; return v
//   z = x[(torch.arange(40) * 7919) % 130000]
//   h = FNV-1a start; for n in range(1, 41): h = fnv(f(z[:n]), h)  (bf16: canon(f(zb[:n])))
//   specials = [0, -0, inf, -inf, nan, 1, -1, 0.5, -0.5, 1e-45, -1e-45, 1.17549435e-38, 124.99999,
//               125, -125, 1e10, 89, 89.5, -89.5, 88.7, 3.4e38]
const std::vector<Expected>& expected() {
  static const std::vector<Expected> e = {
      {"log2", [](const Tensor& t) { return log2(t); }, 0x142123f4d5feaba1ull,
       0x48d336d4b39973feull, 0xfd106e28474beb59ull, 0x8428e86b32e0c256ull, 0x86c84a403fb5fc19ull,
       0x86380b1d928145f1ull},
      {"log10", [](const Tensor& t) { return log10(t); }, 0xc9b9d66f78ff5eb7ull,
       0x8cc5f7420cf7a378ull, 0x67dacb8b45dee316ull, 0x7b55e3787d59a4a2ull, 0x914e27ba40fd89bcull,
       0x171afd30eaa74a4eull},
      {"atan", [](const Tensor& t) { return atan(t); }, 0xb4857e27bf6edae9ull,
       0xd5f003436707320full, 0x96c8a15b64f7b8f5ull, 0x4dbcf17d28d8ec58ull, 0x6a068ce3d7b4beccull,
       0xff8c510eda369ec9ull},
      {"asin", [](const Tensor& t) { return asin(t); }, 0xc5278413acab3a71ull,
       0xdb0dff4ae97c8064ull, 0x0d34c99dd011e021ull, 0xf0eba04ec7bb0c49ull, 0xaa13457f88f8bdd9ull,
       0x2c78dd6fc0171cf5ull},
      {"acos", [](const Tensor& t) { return acos(t); }, 0xd190b75103f16425ull,
       0x9a2bc3b3deb2cb50ull, 0x7ff21a410546f449ull, 0x0bcae1a41c74562dull, 0x3b4da3628c8e88cdull,
       0xd374c3ac91473cd5ull},
      {"tan", [](const Tensor& t) { return tan(t); }, 0x3944b18560c08e7aull, 0x8bb17ba8ab8ebbf8ull,
       0x3d6683ca0ee4c9b5ull, 0xab9caa4080057676ull, 0x193d899e4ecd36f1ull, 0x017c40862ddd70d3ull},
      {"sinh", [](const Tensor& t) { return sinh(t); }, 0xe17239f75188ec39ull,
       0xf650c390abbbb3b7ull, 0x8aa9d259540e9d25ull, 0xdb9bddd4546733daull, 0x26c7b094d75fd0a9ull,
       0xc2285d3127141081ull},
      {"cosh", [](const Tensor& t) { return cosh(t); }, 0xc4fc3f97cc04a29dull,
       0x58c269839accc0fdull, 0x985cfb64335306bdull, 0x35f8df2345f2c669ull, 0x3ecb2227db694ab5ull,
       0x2c58b171128e3f00ull},
  };
  return e;
}

// bfloat16 results' bytes, NaN written 0x7FC0 whatever fabric's store wrote (it writes 0x7FC0).
Tensor canon_bf16(const Tensor& t) {
  const Tensor c = t.contiguous();
  const auto* p = static_cast<const uint16_t*>(c.data_ptr());
  std::vector<uint16_t> v(p, p + c.numel());
  for (uint16_t& b : v)
    if ((b & 0x7F80) == 0x7F80 && (b & 0x007F) != 0) b = 0x7FC0;
  Tensor out = empty({c.numel()}, TensorOptions{DType::bfloat16});
  std::copy(v.begin(), v.end(), static_cast<uint16_t*>(out.data_ptr()));
  return out;
}

class VecSleefMath : public ::testing::TestWithParam<size_t> {};

TEST_P(VecSleefMath, GivesTorchsBits) {
  const Expected& e = expected()[GetParam()];
  SCOPED_TRACE(e.op);
  const std::vector<float> values = probe_values();
  const auto n = static_cast<int64_t>(values.size());
  const Tensor x = from_vector<float>(values, {n});
  ASSERT_EQ(x.numel(), 130000);
  EXPECT_EQ(fnv1a(e.fn(x)), e.full);
  EXPECT_EQ(fnv1a(e.fn(x.slice(0, 0, n, 3))), e.strided);
  EXPECT_EQ(fnv1a(canon_bf16(e.fn(x.to(DType::bfloat16)))), e.bf16);

  std::vector<float> zv;
  for (int64_t i = 0; i < 40; ++i) zv.push_back(values[static_cast<size_t>((i * 7919) % 130000)]);
  const Tensor z = from_vector<float>(zv, {40}), zb = z.to(DType::bfloat16);
  uint64_t h = kFnv1aStart, hb = kFnv1aStart;
  for (int64_t k = 1; k <= 40; ++k) {
    // fresh contiguous copies: each length is its own tensor, as z[:n] is torch's
    h = fnv1a(e.fn(z.narrow(0, 0, k).contiguous()), h);
    hb = fnv1a(canon_bf16(e.fn(zb.narrow(0, 0, k).contiguous())), hb);
  }
  EXPECT_EQ(h, e.tails);
  EXPECT_EQ(hb, e.tails_bf16);

  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> sp = {
      0.0f,    -0.0f,           inf,        -inf,   std::numeric_limits<float>::quiet_NaN(),
      1.0f,    -1.0f,           0.5f,       -0.5f,  1e-45f,
      -1e-45f, 1.17549435e-38f, 124.99999f, 125.0f, -125.0f,
      1e10f,   89.0f,           89.5f,      -89.5f, 88.7f,
      3.4e38f};
  EXPECT_EQ(fnv1a(e.fn(from_vector<float>(sp, {static_cast<int64_t>(sp.size())}))), e.specials);
}

INSTANTIATE_TEST_SUITE_P(Ops, VecSleefMath, ::testing::Range<size_t>(0, 8),
                         [](const ::testing::TestParamInfo<size_t>& i) {
                           return std::string(expected()[i.param].op);
                         });

// A broadcast input (stride 0) into a contiguous output: torch's cpu_kernel_vec still runs whole
// 16-element blocks through SLEEF and the rest through libm.
//   x = torch.tensor([1078323132], dtype=torch.int32).view(torch.float32)  # 3.0922689
//   torch.sinh(x.expand(40)).view(torch.int32): 0x412fda51 for [0, 32), 0x412fda52 for [32, 40)
TEST(VecSleefMathSinh, BroadcastInputTakesSleefForWholeBlocks) {
  const Tensor x = from_vector<float>({std::bit_cast<float>(1078323132u)}, {1}).expand({40});
  const Tensor y = sinh(x).contiguous();
  const auto* p = static_cast<const uint32_t*>(y.data_ptr());
  for (int i = 0; i < 40; ++i) EXPECT_EQ(p[i], i < 32 ? 0x412fda51u : 0x412fda52u) << i;
}

}  // namespace
}  // namespace fabric::cpu
