// The elementwise loops' 16-byte pieces (kernels/cuda/loop_pieces.h) checked without a device:
// whole grids of launch_pieces are replayed on the host, thread by thread, with the functions the
// kernel runs. Every element must get the plain loop's value from exactly one call and nothing
// past the end may change, for every length around the piece size and for grids smaller and
// larger than the loop; fits_pieces must take only 1-D, contiguous, aligned loops of one dtype.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/cuda/loop_pieces.h"
#include "tensor/float_formats.h"

namespace fabric {
namespace {

using cuda::PieceArgs;

template <typename T>
T read(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
template <typename T>
void write(char* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}

// out = a * 3 + b, b read from operand 2 or (two operands loaded) held; counts its calls.
template <typename T>
struct MulAdd {
  float held = 0.0f;
  int64_t* calls = nullptr;
  void operator()(char* (&p)[3]) const {
    const float a = static_cast<float>(read<T>(p[1]));
    const float b = p[2] != nullptr ? static_cast<float>(read<T>(p[2])) : held;
    write<T>(p[0], T(a * 3.0f + b));
    ++*calls;
  }
};

// out = -a.
template <typename T>
struct Negate {
  int64_t* calls = nullptr;
  void operator()(char* (&p)[2]) const {
    write<T>(p[0], T(-static_cast<float>(read<T>(p[1]))));
    ++*calls;
  }
};

struct alignas(16) Bytes16 {
  unsigned char b[16];
};

// n elements of T at a 16-byte aligned address, then guard elements.
template <typename T>
class Buffer {
 public:
  static constexpr int64_t kGuard = 24;
  Buffer(int64_t n, float first) : raw_(static_cast<size_t>(((n + kGuard) * sz + 15) / 16)) {
    for (int64_t i = 0; i < n + kGuard; ++i) set(i, T(first + 0.25f * static_cast<float>(i % 97)));
  }
  char* data() { return reinterpret_cast<char*>(raw_.data()); }
  T get(int64_t i) { return read<T>(data() + i * sz); }
  void set(int64_t i, T v) { write<T>(data() + i * sz, v); }

 private:
  static constexpr int64_t sz = static_cast<int64_t>(sizeof(T));
  std::vector<Bytes16> raw_;
};

template <typename T>
bool same_bits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

const std::vector<int64_t> kLengths = {0,  1,  2,  3,  4,   5,   7,    8,    9,   15,
                                       16, 17, 31, 33, 100, 257, 1000, 4099, 8192};
const std::vector<int64_t> kGridThreads = {1, 5, 256, 2048};

template <typename T>
void check_binary(const std::string& type) {
  for (const int64_t n : kLengths) {
    for (const int64_t threads : kGridThreads) {
      for (const bool held : {false, true}) {
        const std::string what = type + " n " + std::to_string(n) + " threads " +
                                 std::to_string(threads) + (held ? " b held" : "");
        Buffer<T> out(n, -1000.0f), a(n, 1.0f), b(n, -7.5f);
        int64_t calls = 0;
        const MulAdd<T> f{held ? 2.5f : 0.0f, &calls};
        PieceArgs<3> args{{out.data(), a.data(), held ? nullptr : b.data()}};
        for (int64_t t = 0; t < threads; ++t) {
          if (held) {
            cuda::run_piece_thread<T, 3, 2>(args, n, t, threads, f);
          } else {
            cuda::run_piece_thread<T, 3, 3>(args, n, t, threads, f);
          }
        }
        EXPECT_EQ(calls, n) << what;
        Buffer<T> untouched(n, -1000.0f);
        for (int64_t i = 0; i < n + Buffer<T>::kGuard; ++i) {
          const float bv = held ? 2.5f : static_cast<float>(b.get(i));
          const T want = i < n ? T(static_cast<float>(a.get(i)) * 3.0f + bv) : untouched.get(i);
          ASSERT_TRUE(same_bits(out.get(i), want)) << what << " element " << i;
        }
      }
    }
  }
}

TEST(CudaLoopPieces, BinaryGridsWriteEachElementOnceWithThePlainValue) {
  check_binary<float>("float");
  check_binary<BFloat16>("bfloat16");
  check_binary<Half>("float16");
  check_binary<double>("float64");
}

TEST(CudaLoopPieces, UnaryGridsInPlaceToo) {
  for (const int64_t n : kLengths) {
    for (const int64_t threads : kGridThreads) {
      const std::string what = "n " + std::to_string(n) + " threads " + std::to_string(threads);
      Buffer<BFloat16> x(n, 3.0f), before(n, 3.0f);
      int64_t calls = 0;
      const Negate<BFloat16> f{&calls};
      PieceArgs<2> args{{x.data(), x.data()}};  // in place: output and input alias
      for (int64_t t = 0; t < threads; ++t) {
        cuda::run_piece_thread<BFloat16, 2, 2>(args, n, t, threads, f);
      }
      EXPECT_EQ(calls, n) << what;
      for (int64_t i = 0; i < n + Buffer<BFloat16>::kGuard; ++i) {
        const BFloat16 want = i < n ? BFloat16(-static_cast<float>(before.get(i))) : before.get(i);
        ASSERT_TRUE(same_bits(x.get(i), want)) << what << " element " << i;
      }
    }
  }
}

StridedLoop flat_loop(int operands, int64_t n, DType dt, char* data) {
  StridedLoop loop;
  loop.ndim = 1;
  loop.sizes[0] = n;
  loop.num_operands = operands;
  for (int k = 0; k < operands; ++k) {
    loop.ops[k].data = data + 64 * k;
    loop.ops[k].dtype = dt;
    loop.ops[k].strides[0] = itemsize(dt);
  }
  return loop;
}

TEST(CudaLoopPieces, OnlyContiguousAlignedLoopsOfOneDTypeFit) {
  const char* wide = std::getenv("FABRIC_CUDA_WIDE");
  if (wide != nullptr && std::string(wide) == "0") GTEST_SKIP() << "FABRIC_CUDA_WIDE=0";
  std::vector<Bytes16> raw(64);
  char* data = reinterpret_cast<char*>(raw.data());
  for (DType dt : {DType::float32, DType::bfloat16, DType::float16, DType::float64}) {
    const std::string what = std::string(dtype_name(dt));
    EXPECT_TRUE(cuda::fits_pieces(flat_loop(3, 100, dt, data), dt)) << what;
    EXPECT_TRUE(cuda::fits_pieces(flat_loop(2, 3, dt, data), dt))
        << what << " shorter than a piece";
    StridedLoop l = flat_loop(3, 100, dt, data);
    l.ops[2].data += itemsize(dt);
    EXPECT_FALSE(cuda::fits_pieces(l, dt)) << what << " misaligned input";
    l = flat_loop(3, 100, dt, data);
    l.ops[0].data += itemsize(dt);
    EXPECT_FALSE(cuda::fits_pieces(l, dt)) << what << " misaligned output";
    l = flat_loop(3, 100, dt, data);
    l.ops[2].strides[0] = 0;
    EXPECT_FALSE(cuda::fits_pieces(l, dt)) << what << " broadcast input";
    l = flat_loop(3, 100, dt, data);
    l.ops[1].strides[0] = 2 * itemsize(dt);
    EXPECT_FALSE(cuda::fits_pieces(l, dt)) << what << " strided input";
    l = flat_loop(3, 100, dt, data);
    l.ops[1].dtype = dt == DType::float32 ? DType::bfloat16 : DType::float32;
    EXPECT_FALSE(cuda::fits_pieces(l, dt)) << what << " mixed dtypes";
    l = flat_loop(3, 100, dt, data);
    l.ndim = 2;
    l.sizes = {10, 10};
    EXPECT_FALSE(cuda::fits_pieces(l, dt)) << what << " two dims";
  }
}

// out (float32) = a * 3 + b with a of TA and b of TB, widened as loaded: a mixed residual add.
template <typename TA, typename TB>
struct MixedMulAdd {
  int64_t* calls = nullptr;
  void operator()(char* (&p)[3]) const {
    write<float>(p[0],
                 static_cast<float>(read<TA>(p[1])) * 3.0f + static_cast<float>(read<TB>(p[2])));
    ++*calls;
  }
};

// Mixed pieces (a float32 output, float32 and bf16/f16 inputs, 4 elements a thread): every
// element once, with the plain loop's value, nothing past the end, in place over the float32
// input too.
template <typename TA, typename TB>
void check_mixed(const std::string& type) {
  for (const int64_t n : kLengths) {
    for (const int64_t threads : kGridThreads) {
      for (const bool in_place : {false, true}) {
        const std::string what = type + " n " + std::to_string(n) + " threads " +
                                 std::to_string(threads) + (in_place ? " in place" : "");
        Buffer<float> out(n, -1000.0f), untouched(n, -1000.0f);
        Buffer<TA> a(n, 1.0f);
        Buffer<TB> b(n, -7.5f);
        char* a_data = a.data();
        if constexpr (std::is_same_v<TA, float>) {
          if (in_place) a_data = out.data();
        } else if (in_place) {
          continue;  // only a float32 input can be the output
        }
        std::vector<float> a_before;
        for (int64_t i = 0; i < n; ++i)
          a_before.push_back(static_cast<float>(read<TA>(a_data + i * sizeof(TA))));
        int64_t calls = 0;
        const MixedMulAdd<TA, TB> f{&calls};
        PieceArgs<3> args{{out.data(), a_data, b.data()}};
        for (int64_t t = 0; t < threads; ++t)
          cuda::run_mixed_piece_thread<float, TA, TB>(args, n, t, threads, f);
        EXPECT_EQ(calls, n) << what;
        for (int64_t i = 0; i < n + Buffer<float>::kGuard; ++i) {
          const float want =
              i < n ? a_before[i] * 3.0f + static_cast<float>(b.get(i)) : untouched.get(i);
          ASSERT_TRUE(same_bits(out.get(i), want)) << what << " element " << i;
        }
      }
    }
  }
}

TEST(CudaLoopPieces, MixedGridsWriteEachElementOnceWithThePlainValue) {
  check_mixed<float, BFloat16>("float32 + bfloat16");
  check_mixed<Half, float>("float16 + float32");
  check_mixed<float, Half>("float32 + float16");
}

TEST(CudaLoopPieces, MixedLoopsFitWhenEachOperandIsAlignedToItsPiece) {
  const char* wide = std::getenv("FABRIC_CUDA_WIDE");
  if (wide != nullptr && std::string(wide) == "0") GTEST_SKIP() << "FABRIC_CUDA_WIDE=0";
  std::vector<Bytes16> raw(64);
  char* data = reinterpret_cast<char*>(raw.data());
  StridedLoop l = flat_loop(3, 100, DType::float32, data);
  l.ops[2].dtype = DType::bfloat16;
  l.ops[2].strides[0] = 2;
  EXPECT_TRUE(cuda::fits_mixed_pieces(l));
  StridedLoop m = l;
  m.ops[2].data += 8;  // a bf16 piece of 4 takes 8 bytes
  EXPECT_TRUE(cuda::fits_mixed_pieces(m));
  m.ops[2].data += 2;
  EXPECT_FALSE(cuda::fits_mixed_pieces(m)) << "a bf16 input off its 8 bytes";
  m = l;
  m.ops[1].data += 8;
  EXPECT_FALSE(cuda::fits_mixed_pieces(m)) << "a float32 input off its 16 bytes";
  m = l;
  m.ops[2].strides[0] = 0;
  EXPECT_FALSE(cuda::fits_mixed_pieces(m)) << "a broadcast input";
  m = l;
  m.ops[2].dtype = DType::float64;
  m.ops[2].strides[0] = 8;
  EXPECT_FALSE(cuda::fits_mixed_pieces(m)) << "float64 is not of the family";
  m = l;
  m.num_operands = 2;
  EXPECT_FALSE(cuda::fits_mixed_pieces(m)) << "a unary loop";
}

}  // namespace
}  // namespace fabric
