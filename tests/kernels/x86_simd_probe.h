// The AVX-512 intrinsics of the CPU kernels as functions on plain memory ("probes"), compiled
// twice from x86_simd_probe_ops.inc: for AVX-512 (x86_simd_probe_hardware.cpp, the instructions)
// and for x86-64-v3 (x86_simd_probe_emulated.cpp, kernels/cpu/avx512_emulation.h), so that
// test_x86_simd_emulation.cpp can run both on the same inputs. Only the plain types below cross
// between those files: a vector type's layout and calling convention differ between the two.
#pragma once

#include <cstdint>

namespace fabric::x86_simd_probe {

// How the harness fills an operand, lane by lane (the lane width is the fill's).
enum class Fill : uint8_t { none, f32, f64, i8, i16, i32, i64, gather_index };
// What a probe does with Args::memory: reads it (a load: its lanes are operand a's), writes it
// (a store of operand a), or gathers floats from it (the indices are operand b's).
enum class Memory : uint8_t { none, load, store, gather };
// How the two results must agree: bit for bit; (vrcp14ps) within the instruction's 2^-14
// relative bound of each other; or (a sum of operand a's float lanes) bit for bit but for the
// NaN a sum of several NaN lanes carries, which depends on the order the compiler gave each add's
// operands (see Shape::commutative): any of those NaNs, quietened.
enum class Agree : uint8_t { bits, rcp14, sum_of_lanes };

// Gather indices are in [-kGatherReach, kGatherReach) around the middle of Args::memory's
// kMemoryBytes; with scale 8 that reaches its two ends.
inline constexpr int kGatherReach = 16;
inline constexpr int kMemoryBytes = 256;

struct Args {
  alignas(64) unsigned char a[64], b[64], c[64];
  uint64_t k;    // a mask, truncated to the intrinsic's mask width
  void* memory;  // kMemoryBytes, 64-byte aligned (or, for the page-edge checks, anywhere)
};

struct Result {
  alignas(64) unsigned char v[64];  // the vector (or scalar) result's bytes
  int bytes;                        // how many of v the intrinsic defines
  bool has_mask;
  uint64_t mask;
};

// What a probe takes and how its results are compared.
struct Shape {
  Fill a = Fill::none, b = Fill::none, c = Fill::none;
  bool masked = false;  // takes Args::k
  Memory memory = Memory::none;
  int memory_bytes = 0;  // the bytes a load or store spans
  Agree agree = Agree::bits;
  // The operands (bit 0: a, 1: b, 2: c) of an instruction the compiler may give in either
  // order, as GCC does with vaddps, vmulps and the vfmadd forms to fold a load or spare a copy.
  // With two of them NaN, the result is the first source's (quietened), so which NaN a lane
  // gets depends on register allocation in the AVX-512 build as much as in the emulation: there,
  // either NaN is accepted.
  uint8_t commutative = 0;
};

struct Op {
  const char* name;  // the intrinsic, and its immediate where it takes one
  Shape shape;
  void (*run)(const Args&, Result&);
};

struct OpTable {
  const Op* ops;
  int count;
};

// The same table, in the same order, run by the instructions and by the emulation.
OpTable hardware_ops();
OpTable emulated_ops();

}  // namespace fabric::x86_simd_probe
