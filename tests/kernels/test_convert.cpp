// Tests of the bulk dtype conversion: every (source, destination) pair of the 11 dtypes against an
// independent per-element reference, on random data with specials, odd lengths and both fp8 modes.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <vector>

#include "kernels/cpu/convert.h"
#include "tensor/dtype.h"
#include "tensor/error.h"

namespace fabric::cpu {
namespace {

constexpr DType kAll[] = {DType::float64,       DType::float32,     DType::float16, DType::bfloat16,
                          DType::float8_e4m3fn, DType::float8_e5m2, DType::int64,   DType::int32,
                          DType::int8,          DType::uint8,       DType::bool_};

// ---- the reference: written from the documented rules, not from scalar_cast ----------------

// Float -> integer: truncate; NaN and out-of-range follow x86 (INT_MIN "indefinite" for int64 and
// int32; int8 wraps the int32 result, uint8 wraps the int64 result).
template <typename D>
D ref_float_to_int(double v) {
  const double t = std::trunc(v);
  const bool nan = std::isnan(v);
  const int64_t i64 = (nan || t < -0x1p63 || t >= 0x1p63) ? INT64_MIN : static_cast<int64_t>(t);
  const int32_t i32 = (nan || t < -0x1p31 || t >= 0x1p31) ? INT32_MIN : static_cast<int32_t>(t);
  if constexpr (std::is_same_v<D, int64_t>) return i64;
  if constexpr (std::is_same_v<D, int32_t>) return i32;
  if constexpr (std::is_same_v<D, int8_t>)
    return static_cast<int8_t>(static_cast<uint32_t>(i32) & 0xFF);
  if constexpr (std::is_same_v<D, uint8_t>)
    return static_cast<uint8_t>(static_cast<uint64_t>(i64) & 0xFF);
}

template <typename T>
constexpr bool is_low = std::is_same_v<T, Half> || std::is_same_v<T, BFloat16> ||
                        std::is_same_v<T, Float8E4M3> || std::is_same_v<T, Float8E5M2>;

// One element: the source value read as T (bool storage read as a byte), cast to D.
template <typename S, typename D>
D ref_cast(const uint8_t* raw, bool sat) {
  if constexpr (std::is_same_v<S, D>) {
    D same;  // `.to(own dtype)` leaves the bits alone (NaN payloads, non-canonical bools)
    std::memcpy(&same, raw, sizeof(D));
    return same;
  }
  S s;
  if constexpr (std::is_same_v<S, bool>) {
    s = raw[0] != 0;
  } else {
    std::memcpy(&s, raw, sizeof(S));
  }
  // Widen the source to a "value": double for floats (exact), int64 for integers and bool.
  constexpr bool src_float = std::is_floating_point_v<S> || is_low<S>;
  double fv = 0;
  int64_t iv = 0;
  if constexpr (is_low<S>)
    fv = static_cast<float>(s);
  else if constexpr (std::is_floating_point_v<S>)
    fv = s;
  else if constexpr (std::is_same_v<S, bool>)
    iv = s ? 1 : 0;
  else
    iv = s;

  if constexpr (std::is_same_v<D, bool>) {
    return src_float ? (fv != 0 || std::isnan(fv)) : iv != 0;
  } else if constexpr (is_low<D>) {
    // double and integers reach the narrow formats through float (PyTorch's rule).
    const float f = src_float ? static_cast<float>(fv) : static_cast<float>(iv);
    if constexpr (std::is_same_v<D, Float8E4M3>) return sat ? D::saturating(f) : D(f);
    if constexpr (std::is_same_v<D, Float8E5M2>) return sat ? D::saturating(f) : D(f);
    if constexpr (!std::is_same_v<D, Float8E4M3> && !std::is_same_v<D, Float8E5M2>) return D(f);
  } else if constexpr (std::is_same_v<D, double>) {
    return src_float ? fv : static_cast<double>(iv);
  } else if constexpr (std::is_same_v<D, float>) {
    return src_float ? static_cast<float>(fv) : static_cast<float>(iv);
  } else {
    if (src_float) return ref_float_to_int<D>(fv);
    return static_cast<D>(static_cast<uint64_t>(iv) &
                          (sizeof(D) == 8 ? ~uint64_t{0} : ((uint64_t{1} << (8 * sizeof(D))) - 1)));
  }
}

// ---- data -----------------------------------------------------------------------------------

// Random source bytes for a dtype, laced with the values that break conversions: zeros of both
// signs, inf, NaN, ties, range edges of every integer type, subnormals.
std::vector<uint8_t> make_source(DType t, int64_t n, std::mt19937_64& rng) {
  std::vector<uint8_t> buf(static_cast<size_t>(n * itemsize(t)));
  std::uniform_int_distribution<uint64_t> any;
  const double specials[] = {0.0,
                             -0.0,
                             1.0,
                             -1.0,
                             0.5,
                             -0.5,
                             1.5,
                             -2.5,
                             300.7,
                             -300.7,
                             255.9,
                             256.0,
                             -129.0,
                             127.99,
                             2049.0,
                             65519.0,
                             65520.0,
                             464.0,
                             465.0,
                             61440.0,
                             57344.0,
                             1e-5,
                             -3e-8,
                             0x1p-133,
                             0x1p-149,
                             2147483647.0,
                             2147483648.0,
                             -2147483648.0,
                             -2147483649.0,
                             9.3e18,
                             -9.3e18,
                             0x1p63,
                             -0x1p63,
                             1e30,
                             -1e300,
                             3.4028234663852886e38,
                             std::numeric_limits<double>::infinity(),
                             -std::numeric_limits<double>::infinity(),
                             std::numeric_limits<double>::quiet_NaN(),
                             -std::numeric_limits<double>::quiet_NaN()};
  const int64_t int_specials[] = {0,         1,         -1,
                                  127,       128,       -128,
                                  -129,      255,       256,
                                  INT32_MAX, INT32_MIN, (int64_t{1} << 24) + 1,
                                  INT64_MAX, INT64_MIN, (int64_t{1} << 53) + 1};
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_int_distribution<int> scale(-30, 40);
  for (int64_t i = 0; i < n; ++i) {
    uint8_t* p = buf.data() + i * itemsize(t);
    const uint64_t r = any(rng);
    const int kind = static_cast<int>(r % 8);
    double v =
        kind == 0 ? specials[(r >> 8) % std::size(specials)] : std::ldexp(normal(rng), scale(rng));
    const int64_t iv = kind == 0  ? int_specials[(r >> 8) % std::size(int_specials)]
                       : kind < 4 ? static_cast<int64_t>(any(rng))
                                  : static_cast<int64_t>(r >> 40) - (1 << 23);
    auto put = [&](auto x) { std::memcpy(p, &x, sizeof(x)); };
    switch (t) {
      case DType::float64:
        kind == 7 ? put(any(rng)) : put(v);
        break;
      case DType::float32:
        kind == 7 ? put(static_cast<uint32_t>(any(rng))) : put(static_cast<float>(v));
        break;
      // Narrow floats: every bit pattern is a legitimate input (NaNs included).
      case DType::float16:
      case DType::bfloat16:
        put(static_cast<uint16_t>(any(rng)));
        break;
      case DType::float8_e4m3fn:
      case DType::float8_e5m2:
        put(static_cast<uint8_t>(any(rng)));
        break;
      case DType::int64:
        put(iv);
        break;
      case DType::int32:
        put(static_cast<int32_t>(iv));
        break;
      case DType::int8:
        put(static_cast<int8_t>(iv));
        break;
      case DType::uint8:
        put(static_cast<uint8_t>(iv));
        break;
      // Mostly 0/1; a few non-canonical bytes, which read as true.
      case DType::bool_:
        put(static_cast<uint8_t>(kind == 7 ? (r >> 8) & 0xFF : (r >> 8) & 1));
        break;
    }
  }
  return buf;
}

std::vector<uint8_t> reference(DType s, const std::vector<uint8_t>& src, size_t src_off, DType d,
                               int64_t n, bool sat) {
  std::vector<uint8_t> out(static_cast<size_t>(n * itemsize(d)));
  visit_dtype(s, [&](auto stag) {
    visit_dtype(d, [&](auto dtag) {
      using S = decltype(stag);
      using D = decltype(dtag);
      for (int64_t i = 0; i < n; ++i) {
        const D v = ref_cast<S, D>(src.data() + src_off + i * itemsize(s), sat);
        std::memcpy(out.data() + i * itemsize(d), &v, sizeof(D));
      }
    });
  });
  return out;
}

std::string describe_element(DType t, const uint8_t* p) {
  uint64_t u = 0;
  std::memcpy(&u, p, static_cast<size_t>(itemsize(t)));
  std::ostringstream os;
  os << "0x" << std::hex << u;
  return os.str();
}

// Converts and compares bit for bit (NaN payloads included: every path is specified to the bit).
void check_pair(DType s, DType d, int64_t n, bool sat, std::mt19937_64& rng, size_t misalign) {
  const auto src_full = make_source(s, n + static_cast<int64_t>(misalign), rng);
  const size_t src_off = misalign * static_cast<size_t>(itemsize(s));
  const auto want = reference(s, src_full, src_off, d, n, sat);
  // A guard element on each side catches writes outside [0, n).
  const size_t ds = static_cast<size_t>(itemsize(d));
  std::vector<uint8_t> got(want.size() + 2 * ds + misalign * ds, 0xA5);
  uint8_t* dst = got.data() + ds + misalign * ds;
  convert(s, src_full.data() + src_off, d, dst, n, sat);
  for (size_t g = 0; g < ds + misalign * ds; ++g) ASSERT_EQ(got[g], 0xA5) << "wrote before dst";
  for (size_t g = 0; g < ds; ++g) ASSERT_EQ(dst[want.size() + g], 0xA5) << "wrote past dst + n";
  int reported = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (std::memcmp(dst + i * ds, want.data() + i * ds, ds) != 0 && reported++ < 5) {
      ADD_FAILURE() << s << " -> " << d << " n=" << n << " sat=" << sat << " i=" << i << ": src "
                    << describe_element(s, src_full.data() + src_off + i * itemsize(s)) << " got "
                    << describe_element(d, dst + i * ds) << " want "
                    << describe_element(d, want.data() + i * ds);
    }
  }
}

TEST(Convert, EveryPairSmallAndOddLengths) {
  std::mt19937_64 rng(7);
  for (DType s : kAll) {
    for (DType d : kAll) {
      for (int64_t n : {0, 1, 2, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 1000, 4099}) {
        for (bool sat : {false, true}) {
          if (sat && !is_fp8(d)) continue;
          check_pair(s, d, n, sat, rng, static_cast<size_t>(n % 3));
        }
      }
    }
  }
}

// Long enough to be split across threads (blocks of >= 64K elements) and to cross the staging
// buffer's boundaries.
TEST(Convert, EveryPairLarge) {
  std::mt19937_64 rng(11);
  for (DType s : kAll) {
    for (DType d : kAll) {
      for (bool sat : {false, true}) {
        if (sat && !is_fp8(d)) continue;
        check_pair(s, d, 3 * 65536 + 45, sat, rng, 1);
      }
    }
  }
}

// Every fp32 bit pattern of a sweep through the exponent range, through the vector kernels.
TEST(Convert, Fp32SweepToNarrowFormats) {
  std::vector<float> src;
  for (uint64_t u = 0; u < (uint64_t{1} << 32); u += 4093)
    src.push_back(std::bit_cast<float>(static_cast<uint32_t>(u)));
  const auto n = static_cast<int64_t>(src.size());
  std::vector<uint16_t> h(src.size()), b(src.size());
  std::vector<uint8_t> e4(src.size()), e4s(src.size()), e5(src.size()), e5s(src.size());
  convert(DType::float32, src.data(), DType::float16, h.data(), n);
  convert(DType::float32, src.data(), DType::bfloat16, b.data(), n);
  convert(DType::float32, src.data(), DType::float8_e4m3fn, e4.data(), n, false);
  convert(DType::float32, src.data(), DType::float8_e4m3fn, e4s.data(), n, true);
  convert(DType::float32, src.data(), DType::float8_e5m2, e5.data(), n, false);
  convert(DType::float32, src.data(), DType::float8_e5m2, e5s.data(), n, true);
  int bad = 0;
  for (size_t i = 0; i < src.size(); ++i) {
    const float x = src[i];
    const bool ok =
        h[i] == float_to_half_bits_portable(x) && b[i] == float_to_bf16_bits(x) &&
        e4[i] == float_to_fp8_e4m3_bits(x, false) && e4s[i] == float_to_fp8_e4m3_bits(x, true) &&
        e5[i] == float_to_fp8_e5m2_bits(x, false) && e5s[i] == float_to_fp8_e5m2_bits(x, true);
    if (!ok && ++bad <= 10) ADD_FAILURE() << "x bits 0x" << std::hex << std::bit_cast<uint32_t>(x);
  }
  EXPECT_EQ(bad, 0);
}

TEST(Convert, ScalarCastRules) {
  EXPECT_EQ(scalar_cast<int8_t>(300.0f), 44);   // int32 300, wrapped
  EXPECT_EQ(scalar_cast<uint8_t>(-1.0f), 255);  // through int64
  EXPECT_EQ(scalar_cast<uint8_t>(-1.9), 255);
  EXPECT_EQ(scalar_cast<int32_t>(-3.9f), -3);
  EXPECT_EQ(scalar_cast<int64_t>(3.9), 3);
  EXPECT_EQ(scalar_cast<int64_t>(std::nanf("")), INT64_MIN);
  EXPECT_EQ(scalar_cast<int32_t>(3e9), INT32_MIN);
  EXPECT_EQ(scalar_cast<int32_t>(-2147483647.9), -2147483647);  // truncates into range
  EXPECT_EQ(scalar_cast<int32_t>(2147483647.9), 2147483647);
  EXPECT_EQ(scalar_cast<int64_t>(1e19f), INT64_MIN);
  EXPECT_TRUE(scalar_cast<bool>(std::nanf("")));
  EXPECT_FALSE(scalar_cast<bool>(-0.0));
  EXPECT_FALSE(scalar_cast<bool>(Half::from_bits(0x8000)));
  EXPECT_TRUE(scalar_cast<bool>(Float8E4M3::from_bits(0x01)));
  EXPECT_EQ(scalar_cast<float>(true), 1.0f);
  EXPECT_EQ(scalar_cast<Half>(true).x, 0x3C00);
  EXPECT_EQ(scalar_cast<int8_t>(int64_t{0x1FF}), -1);
  // int64 -> bf16 goes through float: 2^24 + 2^16 + 1 is a float tie that lands on 2^24 + 2^16, a
  // bf16 tie that lands on 2^24; rounding once would give 2^24 + 2^17.
  EXPECT_EQ(scalar_cast<BFloat16>(int64_t{(1 << 24) + (1 << 16) + 1}).x, 0x4B80);
  EXPECT_EQ(scalar_cast<double>(int64_t{(int64_t{1} << 53) + 1}), 9007199254740992.0);
  EXPECT_EQ(scalar_cast<Float8E4M3>(1000.0).x, 0x7F);  // non-saturating by default
}

TEST(Convert, BadArguments) {
  float f[4] = {1, 2, 3, 4};
  uint16_t h[4];
  EXPECT_THROW(convert(DType::float32, f, DType::float16, h, -1), ValueError);
  EXPECT_THROW(convert(DType::float32, nullptr, DType::float16, h, 4), ValueError);
  EXPECT_THROW(convert(DType::float32, f, DType::float16, nullptr, 4), ValueError);
  EXPECT_NO_THROW(convert(DType::float32, nullptr, DType::float16, nullptr, 0));
  // In place with the same dtype is allowed (a no-op).
  EXPECT_NO_THROW(convert(DType::float32, f, DType::float32, f, 4));
  EXPECT_EQ(f[3], 4.0f);
}

}  // namespace
}  // namespace fabric::cpu
