// The AVX2 emulation of kernels/cpu/avx512_emulation.h against the AVX-512 instructions it
// stands for, in one process on an AVX-512 CPU: every intrinsic it defines (the probes of
// x86_simd_probe_ops.inc) runs both ways on the same operands, special values and random bits,
// and must give the same result bits, masks and memory. The one allowed difference is
// _mm512_rcp14_ps, emulated as the correctly rounded 1/x: it must be within the instruction's
// 2^-14 relative bound of the hardware's. On a CPU without AVX-512 F/BW/DQ/VL these report
// skipped: the instructions cannot run there.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/kernels/x86_simd_probe.h"

namespace fabric::x86_simd_probe {
namespace {

bool cpu_has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}
constexpr const char* kNoAvx512 =
    "this CPU lacks AVX-512 F/BW/DQ/VL: no instructions to compare with";

// Values where instructions differ from a naive reading: signed zeros, infinities, quiet and
// signalling NaNs of both signs with payloads, denormals, the ends of the normal range,
// rounding ties and the edges of the int32 and f16 ranges.
// clang-format off
constexpr uint32_t kF32Special[] = {
    0x00000000, 0x80000000, 0x7F800000, 0xFF800000,                          // ±0, ±inf
    0x7FC00000, 0xFFC00000, 0x7FC12345, 0xFFE00001, 0x7FFFFFFF,              // quiet NaNs
    0x7F800001, 0xFF800001, 0x7FA00000, 0xFFBFFFFF, 0x7F812345,              // signalling NaNs
    0x00000001, 0x80000001, 0x00400000, 0x807FFFFF, 0x007FFFFF, 0x00012345,  // denormals
    0x00800000, 0x80800000, 0x00800001, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F000000,  // FLT_MIN, FLT_MAX
    0x3F800000, 0xBF800000, 0x3F000000, 0xBF000000, 0x3FC00000, 0x40200000,  // 1, 0.5, 1.5, 2.5
    0xC0200000, 0x3EFFFFFF, 0x3F7FFFFF, 0x3F800001, 0x40000000, 0x40400000,  // ties' neighbours
    0x4AFFFFFF, 0x4B000000, 0x4B000001, 0x4B7FFFFF, 0x4B800000, 0xCB000001,  // 2^23, 2^24 edges
    0x4EFFFFFF, 0x4F000000, 0xCF000000, 0xCF000001, 0x4F800000,              // int32 edges
    0x477FE000, 0x477FEFFF, 0x477FF000, 0x38800000, 0x33800000, 0x33000000,  // f16 edges
    0x33C00000, 0x387FC000, 0x42FE0000, 0x43000000, 0xC2FC0000, 0xC3150000,  // 127, 128, -126, -149
    0xC3160000, 0x42FF0000, 0xC2FD0000, 0x4E6E6B28, 0xCE6E6B28, 0x3DCCCCCD,  // 127.5, -126.5, 1e9
};
constexpr uint64_t kF64Special[] = {
    0x0000000000000000, 0x8000000000000000, 0x7FF0000000000000, 0xFFF0000000000000,
    0x7FF8000000000000, 0xFFF8000000000000, 0x7FF8000000012345, 0x7FF0000000000001,
    0xFFF4000000000000, 0x0000000000000001, 0x800FFFFFFFFFFFFF, 0x0010000000000000,
    0x7FEFFFFFFFFFFFFF, 0xFFEFFFFFFFFFFFFF, 0x3FF0000000000000, 0xBFF0000000000000,
    0x3FE0000000000000, 0x3FF8000000000000, 0x47EFFFFFE0000000, 0x47EFFFFFF0000000,  // FLT_MAX, tie
    0x47F0000000000000, 0x3810000000000000, 0x380FFFFFF0000000, 0x36A0000000000000,  // FLT_MIN, ...
    0x3690000000000000, 0x3FF0000010000000, 0x3FF0000030000000, 0xC7EFFFFFF0000001,  // f32 ties
};
constexpr uint64_t kIntSpecial[] = {
    0x0, 0x1, 0x2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF,
    0x80000000, 0xFFFFFFFF, 0x100000000, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000, ~0ull,
    ~0x7Full, ~0x7FFFull, ~0x7FFFFFFFull, 0xFFFFFFFF00000000, 0x00000000FFFFFFFF, 0x7F800000,
};
// clang-format on

int lane_bytes(Fill f) {
  switch (f) {
    case Fill::i8:
      return 1;
    case Fill::i16:
      return 2;
    case Fill::f64:
    case Fill::i64:
      return 8;
    default:
      return 4;
  }
}

// The operands of one probe call: for the first rounds every pair of special values (operand a
// by operand b, lane by lane), then random lanes: special values, random bits, moderate numbers
// (an exponent near 1's), numbers on or near a rounding tie; operand b sometimes repeats a's lane
// or its negation, so that equal and opposite operands are common.
class Operands {
 public:
  explicit Operands(uint64_t seed) : rng_(seed) {}

  static int special_rounds(const Shape& s) {
    const int count = special_count(s.a), lanes = 64 / lane_bytes(s.a);
    return s.a == Fill::none ? 0 : (count * count + lanes - 1) / lanes;
  }

  void fill(const Shape& s, int round, Args& x, unsigned char* memory) {
    const Fill fills[3] = {s.a, s.b, s.c};
    unsigned char* out[3] = {x.a, x.b, x.c};
    const bool special = round < special_rounds(s);
    for (int o = 0; o < 3; ++o) {
      const int w = lane_bytes(fills[o]), lanes = 64 / w;
      for (int l = 0; l < lanes; ++l) {
        const uint64_t slot = static_cast<uint64_t>(round) * lanes + l;
        const int n = special_count(fills[o]);
        uint64_t v;
        if (special && n) {
          v = special_value(fills[o], o == 0   ? slot % n
                                      : o == 1 ? slot / n % n
                                               : (slot * 7 + 3) % n);
        } else if (o == 1 && fills[1] == fills[0] && fills[0] != Fill::gather_index &&
                   rng_() % 8 < 2) {
          std::memcpy(&v, x.a + l * w, w);
          if (rng_() % 2) v ^= uint64_t{1} << (8 * w - 1);  // the negation, for floats
        } else {
          v = random_value(fills[o]);
        }
        std::memcpy(out[o] + l * w, &v, w);
      }
    }
    const int k_kind = round < 2 ? round : static_cast<int>(rng_() % 4);
    x.k = k_kind == 0 ? 0 : k_kind == 1 ? ~0ull : k_kind == 2 ? prefix(rng_() % 65) : rng_();
    if (s.memory == Memory::gather) {
      for (int i = 0; i < kMemoryBytes; i += 4) {
        const uint32_t v = static_cast<uint32_t>(random_value(Fill::f32));
        std::memcpy(memory + i, &v, 4);
      }
    } else {
      for (int i = 0; i < kMemoryBytes; ++i) memory[i] = static_cast<unsigned char>(rng_());
      if (s.memory == Memory::load) std::memcpy(memory, x.a, s.memory_bytes);
    }
  }

  uint64_t next() { return rng_(); }

 private:
  static uint64_t prefix(uint64_t n) { return n >= 64 ? ~0ull : (uint64_t{1} << n) - 1; }

  static int special_count(Fill f) {
    switch (f) {
      case Fill::f32:
        return static_cast<int>(std::size(kF32Special));
      case Fill::f64:
        return static_cast<int>(std::size(kF64Special));
      case Fill::i8:
      case Fill::i16:
      case Fill::i32:
      case Fill::i64:
        return static_cast<int>(std::size(kIntSpecial));
      default:
        return 0;
    }
  }
  static uint64_t special_value(Fill f, uint64_t i) {
    return f == Fill::f32 ? kF32Special[i] : f == Fill::f64 ? kF64Special[i] : kIntSpecial[i];
  }

  uint64_t random_value(Fill f) {
    const uint64_t r = rng_(), kind = rng_() % 4;
    switch (f) {
      case Fill::f32: {
        if (kind == 0) return kF32Special[r % std::size(kF32Special)];
        if (kind == 1) return r & 0xFFFFFFFF;
        const uint32_t sign = static_cast<uint32_t>(r >> 63) << 31;
        if (kind == 2)
          return sign | (103 + (r >> 32) % 49) << 23 | (r & 0x7FFFFF);  // 2^-24 .. 2^24
        // n/2 and its neighbours: ties for rounding to integers, and to f16 and int32 edges.
        const float tie = static_cast<float>(static_cast<int32_t>(r >> 40) - (1 << 23)) * 0.5f;
        return (std::bit_cast<uint32_t>(tie) + static_cast<uint32_t>(r % 3) - 1) | sign;
      }
      case Fill::f64: {
        if (kind == 0) return kF64Special[r % std::size(kF64Special)];
        if (kind == 1) return r;
        // Near float's range and precision, where conversions to float round.
        const uint64_t sign = r & 0x8000000000000000ull;
        return sign | (uint64_t{870 + (r >> 40) % 310} << 52) | (r & 0xFFFFFFFFFFFFF);
      }
      case Fill::gather_index:
        return static_cast<uint32_t>(static_cast<int32_t>(r % (2 * kGatherReach)) - kGatherReach);
      default:
        if (kind == 0) return kIntSpecial[r % std::size(kIntSpecial)];
        if (kind == 1) return static_cast<uint64_t>(static_cast<int64_t>(r % 601) - 300);
        return r;
    }
  }

  std::mt19937_64 rng_;
};

// Whether two rcp14 results agree: the same bits, or both finite, of one sign, and within the
// instruction's 2^-14 relative bound of the exact reciprocal (which the emulation gives).
bool rcp14_agree(uint32_t hardware, uint32_t emulated) {
  if (hardware == emulated) return true;
  const float h = std::bit_cast<float>(hardware), e = std::bit_cast<float>(emulated);
  if (!std::isfinite(h) || !std::isfinite(e) || std::signbit(h) != std::signbit(e)) return false;
  return std::fabs(static_cast<double>(h) - e) <= 0x1p-14 * std::fabs(static_cast<double>(e));
}

std::string hex_words(const unsigned char* p, int bytes) {
  std::string s;
  char buf[12];
  for (int i = 0; i < bytes; i += 4) {
    uint32_t w = 0;
    std::memcpy(&w, p + i, std::min(4, bytes - i));
    std::snprintf(buf, sizeof buf, i ? " %08x" : "%08x", w);
    s += buf;
  }
  return s;
}

// With two or more of an instruction's commutative operands NaN in a lane, the result may carry
// any of them (quietened): which one depends on the order the compiler gave them (Shape).
bool nan_of_a_commuted_operand(const Op& op, const Args& x, int at, int w, uint64_t h, uint64_t e) {
  const uint64_t sign = uint64_t{1} << (8 * w - 1),
                 quiet = w == 4 ? 0x00400000 : 0x0008000000000000;
  const uint64_t exp = w == 4 ? 0x7F800000 : 0x7FF0000000000000;
  const unsigned char* operands[3] = {x.a, x.b, x.c};
  uint64_t nans[3];
  int n = 0;
  for (int o = 0; o < 3; ++o) {
    uint64_t v = 0;
    std::memcpy(&v, operands[o] + at, w);
    if ((op.shape.commutative >> o & 1) && (v & ~sign) > exp) nans[n++] = v | quiet;
  }
  return n >= 2 && std::find(nans, nans + n, h) != nans + n &&
         std::find(nans, nans + n, e) != nans + n;
}

// A sum of a's lanes with two or more NaNs among them may be any of those NaNs, quietened.
bool nan_of_a_summed_lane(const Args& x, uint32_t h, uint32_t e) {
  uint32_t nans[16];
  int n = 0;
  for (int l = 0; l < 16; ++l) {
    uint32_t v;
    std::memcpy(&v, x.a + 4 * l, 4);
    if ((v & 0x7FFFFFFF) > 0x7F800000) nans[n++] = v | 0x00400000;
  }
  return n >= 2 && std::find(nans, nans + n, h) != nans + n &&
         std::find(nans, nans + n, e) != nans + n;
}

// The differences of one call, empty if none: of the results, and of the memory it may have
// written (`bytes` of it; the first 64 bytes that differ are shown).
std::string compare(const Op& op, const Args& x, const Result& h, const Result& e,
                    const unsigned char* h_memory, const unsigned char* e_memory, size_t bytes) {
  std::ostringstream out;
  if (h.bytes != e.bytes || h.has_mask != e.has_mask) out << " result shapes differ;";
  const int w = op.shape.commutative ? lane_bytes(op.shape.b) : 4;
  bool same = true;
  for (int i = 0; i < h.bytes; i += w) {
    uint64_t a = 0, b = 0;
    std::memcpy(&a, h.v + i, std::min(w, h.bytes - i));
    std::memcpy(&b, e.v + i, std::min(w, h.bytes - i));
    same &= a == b ||
            (op.shape.agree == Agree::rcp14 &&
             rcp14_agree(static_cast<uint32_t>(a), static_cast<uint32_t>(b))) ||
            (op.shape.commutative && nan_of_a_commuted_operand(op, x, i, w, a, b)) ||
            (op.shape.agree == Agree::sum_of_lanes &&
             nan_of_a_summed_lane(x, static_cast<uint32_t>(a), static_cast<uint32_t>(b)));
  }
  if (!same)
    out << "\n  hardware  " << hex_words(h.v, h.bytes) << "\n  emulation "
        << hex_words(e.v, e.bytes);
  if (h.mask != e.mask)
    out << std::hex << "\n  mask: hardware 0x" << h.mask << ", emulation 0x" << e.mask;
  const unsigned char* hd = std::mismatch(h_memory, h_memory + bytes, e_memory).first;
  if (hd != h_memory + bytes) {
    const size_t at = std::min(static_cast<size_t>(hd - h_memory) / 64 * 64, bytes - 64);
    out << "\n  memory from byte " << at << ": hardware  " << hex_words(h_memory + at, 64)
        << "\n                       emulation " << hex_words(e_memory + at, 64);
  }
  return out.str();
}

std::string describe(const Op& op, const Args& x) {
  std::ostringstream out;
  const Fill fills[3] = {op.shape.a, op.shape.b, op.shape.c};
  const unsigned char* v[3] = {x.a, x.b, x.c};
  for (int o = 0; o < 3; ++o)
    if (fills[o] != Fill::none)
      out << "\n  "
          << "abc"[o] << "         " << hex_words(v[o], 64);
  if (op.shape.masked) out << "\n  k 0x" << std::hex << x.k;
  return out.str();
}

constexpr int kRandomRounds = 1000;

TEST(X86SimdEmulation, BothTablesHoldTheSameProbes) {
  const OpTable h = hardware_ops(), e = emulated_ops();
  ASSERT_EQ(h.count, e.count);
  for (int i = 0; i < h.count; ++i) {
    EXPECT_STREQ(h.ops[i].name, e.ops[i].name);
    EXPECT_EQ(std::memcmp(&h.ops[i].shape, &e.ops[i].shape, sizeof(Shape)), 0) << h.ops[i].name;
  }
}

// A new intrinsic in the emulation needs its probe: every `#define _mm...` of the header names one.
TEST(X86SimdEmulation, EveryEmulatedIntrinsicHasAProbe) {
  std::ifstream header(FABRIC_AVX512_EMULATION_H);
  ASSERT_TRUE(header) << FABRIC_AVX512_EMULATION_H;
  std::set<std::string> probed;
  const OpTable ops = emulated_ops();
  for (int i = 0; i < ops.count; ++i) {
    const std::string name = ops.ops[i].name;
    probed.insert(name.substr(0, name.find(' ')));
  }
  int defined = 0;
  for (std::string line; std::getline(header, line);) {
    if (line.rfind("#define _mm", 0) != 0) continue;
    const std::string name = line.substr(8, line.find_first_of(" (", 8) - 8);
    ++defined;
    EXPECT_TRUE(probed.count(name)) << name << " has no probe in x86_simd_probe_ops.inc";
  }
  EXPECT_GT(defined, 100);
}

TEST(X86SimdEmulation, EveryIntrinsicGivesTheInstructionsBits) {
  if (!cpu_has_avx512()) GTEST_SKIP() << kNoAvx512;
  const OpTable hw = hardware_ops(), emu = emulated_ops();
  ASSERT_EQ(hw.count, emu.count);
  alignas(64) unsigned char memory[kMemoryBytes], hm[kMemoryBytes], em[kMemoryBytes];
  int diverging = 0;
  for (int i = 0; i < hw.count; ++i) {
    const Op& op = hw.ops[i];
    Operands operands(0x5EED0000u + i);
    int mismatches = 0;
    const int rounds = Operands::special_rounds(op.shape) + kRandomRounds;
    for (int round = 0; round < rounds; ++round) {
      Args x{};
      operands.fill(op.shape, round, x, memory);
      std::memcpy(hm, memory, kMemoryBytes);
      std::memcpy(em, memory, kMemoryBytes);
      Result h{}, e{};
      x.memory = hm;
      op.run(x, h);
      x.memory = em;
      emu.ops[i].run(x, e);
      const std::string diff = compare(op, x, h, e, hm, em, kMemoryBytes);
      if (!diff.empty() && ++mismatches <= 3)
        ADD_FAILURE() << op.name << ", round " << round << ":" << describe(op, x) << diff;
    }
    if (mismatches) {
      ++diverging;
      ADD_FAILURE() << op.name << ": " << mismatches << " of " << rounds << " calls differ";
    }
  }
  EXPECT_EQ(diverging, 0) << "of " << hw.count << " probes";
}

// Masked loads and stores must not touch the lanes their mask leaves out: with the vector
// straddling the end (or the start) of a readable page, the selected lanes inside it, neither
// way may fault (a fault ends the test binary with SIGSEGV), and both must read and write the same
// bytes. (A store that rewrites the lanes it leaves out with their old bytes passes the test above
// and faults here.)
TEST(X86SimdEmulation, MaskedLoadsAndStoresStayInTheirLanesAtAPageEdge) {
  if (!cpu_has_avx512()) GTEST_SKIP() << kNoAvx512;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  unsigned char* map = static_cast<unsigned char*>(
      mmap(nullptr, 3 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(map, MAP_FAILED);
  unsigned char* const rw = map + page;
  ASSERT_EQ(mprotect(rw, page, PROT_READ | PROT_WRITE), 0);
  std::vector<unsigned char> before(page), after_hw(page);
  const OpTable hw = hardware_ops(), emu = emulated_ops();
  Operands operands(0xED6E);
  int probes = 0;
  for (int i = 0; i < hw.count; ++i) {
    const Op& op = hw.ops[i];
    if (!op.shape.masked || (op.shape.memory != Memory::load && op.shape.memory != Memory::store))
      continue;
    ++probes;
    const int w = lane_bytes(op.shape.a), lanes = op.shape.memory_bytes / w;
    for (int inside = 0; inside <= lanes; ++inside) {
      for (bool at_end : {true, false}) {
        // At the end: lanes [0, inside) readable; at the start: lanes [lanes - inside, lanes).
        unsigned char* p = at_end ? rw + page - inside * w : rw - (lanes - inside) * w;
        const uint64_t in_page = ((uint64_t{1} << inside) - 1)  // lanes <= 32
                                 << (at_end ? 0 : lanes - inside);
        Args x{};
        alignas(64) unsigned char unused[kMemoryBytes];
        operands.fill(op.shape, 2 + inside, x, unused);
        x.k &= in_page;
        for (size_t b = 0; b < page; ++b) rw[b] = static_cast<unsigned char>(operands.next());
        std::memcpy(before.data(), rw, page);
        Result h{}, e{};
        x.memory = p;
        op.run(x, h);
        std::memcpy(after_hw.data(), rw, page);
        std::memcpy(rw, before.data(), page);
        emu.ops[i].run(x, e);
        const std::string diff = compare(op, x, h, e, after_hw.data(), rw, page);
        EXPECT_TRUE(diff.empty()) << op.name << ", " << inside << " lanes inside the page at its "
                                  << (at_end ? "end" : "start") << describe(op, x) << diff;
      }
    }
  }
  munmap(map, 3 * page);
  EXPECT_GT(probes, 0);
}

}  // namespace
}  // namespace fabric::x86_simd_probe
