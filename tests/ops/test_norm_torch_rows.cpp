// norm() on the CPU gives torch 1.13's bits (one thread; kernels/cpu/reduce_norm_torch.h): rows of
// every length class of torch's p = 2 last-dim kernel, other p (its sequential fold, float16 and
// bfloat16 accumulating in their own dtype), 2-D/3-D shapes over the last dim, leading dims, two
// dims, everything and a transposed view (tests/ops/norm_torch_rows.h, from
// tools/fixtures/make_norm_rows.py); pairwise_distance and clip_grad_norm_ on top of it; the
// last-dim kernel against its scalar transcription (tests/common/torch_norm_order.h) for many
// rows at once; and the same bits at 1 and 2 threads, rows longer than the exact limit included.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "optim/clip_grad.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/omp_threads.h"
#include "tests/common/order_sensitive.h"
#include "tests/common/torch_norm_order.h"
#include "tests/ops/norm_torch_rows.h"

namespace fabric {
namespace {

// The fixture's values(numel, seed, scale_log2, zero_every) as float32.
std::vector<float> fixture_values(int64_t numel, uint32_t seed, int scale_log2, int zero_every) {
  std::vector<float> v = order_sensitive(static_cast<size_t>(numel), seed);
  for (size_t i = 0; i < v.size(); ++i) {
    v[i] *= std::ldexp(1.0f, scale_log2);
    if (zero_every > 0 && i % static_cast<size_t>(zero_every) == 0) v[i] = 0;
  }
  return v;
}

Tensor fixture_tensor(const std::vector<float>& v, const Shape& shape, DType dt) {
  return from_vector(v, shape, {.dtype = DType::float32}).to(dt);
}

std::vector<uint64_t> bits_of(const Tensor& t) {
  const Tensor c = t.contiguous();
  const auto* p = static_cast<const unsigned char*>(c.data_ptr());
  const int64_t es = c.element_size();
  std::vector<uint64_t> out(static_cast<size_t>(c.numel()));
  for (int64_t i = 0; i < c.numel(); ++i) {
    uint64_t b = 0;
    std::memcpy(&b, p + i * es, static_cast<size_t>(es));
    out[static_cast<size_t>(i)] = b;
  }
  return out;
}

void expect_bits(const std::vector<uint64_t>& got, int64_t first, int64_t count,
                 const std::string& what) {
  ASSERT_EQ(static_cast<int64_t>(got.size()), count) << what;
  for (int64_t i = 0; i < count; ++i)
    if (got[static_cast<size_t>(i)] != norm_torch::kBits[first + i]) {
      ADD_FAILURE() << what << ": element " << i << " has bits 0x" << std::hex
                    << got[static_cast<size_t>(i)] << ", torch 0x" << norm_torch::kBits[first + i];
      return;
    }
}

std::string describe(const norm_torch::NormCase& c) {
  std::string s = std::string(c.dtype) + " shape (";
  for (int d = 0; d < c.nd; ++d) s += (d ? ", " : "") + std::to_string(c.shape[d]);
  s += ") dims [";
  for (int d = 0; d < c.ndims; ++d) s += (d ? ", " : "") + std::to_string(c.dims[d]);
  s += "] p=" + std::to_string(c.p) + (c.keepdim ? " keepdim" : "") +
       (c.transpose ? " transposed" : "");
  return s;
}

TEST(NormTorchRows, NormMatchesTorchBitForBit) {
  for (int threads : {1, 2}) {
    OmpThreads scope(threads);
    for (const norm_torch::NormCase& c : norm_torch::kCases) {
      Shape shape(c.shape, c.shape + c.nd);
      int64_t numel = 1;
      for (int64_t s : shape) numel *= s;
      Tensor x = fixture_tensor(fixture_values(numel, c.seed, c.scale_log2, c.zero_every), shape,
                                dtype_from_name(c.dtype));
      if (c.transpose) x = x.transpose(-1, -2);
      const std::vector<int64_t> dims(c.dims, c.dims + c.ndims);
      expect_bits(bits_of(norm(x, c.p, dims, c.keepdim)), c.first, c.count,
                  describe(c) + " threads=" + std::to_string(threads));
    }
  }
}

TEST(NormTorchRows, PairwiseDistanceMatchesTorchBitForBit) {
  for (const norm_torch::PairCase& c : norm_torch::kPairs) {
    const DType dt = dtype_from_name(c.dtype);
    const int64_t n = c.rows * c.d;
    const auto d = static_cast<uint32_t>(c.d);
    const Tensor x1 = fixture_tensor(fixture_values(n, 21 + d, -10, 0), {c.rows, c.d}, dt);
    const Tensor x2 = fixture_tensor(fixture_values(n, 22 + d, -10, 0), {c.rows, c.d}, dt);
    expect_bits(bits_of(pairwise_distance(x1, x2, c.p)), c.first, c.count,
                std::string(c.dtype) + " pairwise_distance (" + std::to_string(c.rows) + ", " +
                    std::to_string(c.d) + ") p=" + std::to_string(c.p));
  }
}

TEST(NormTorchRows, ClipGradNormMatchesTorchBitForBit) {
  for (const norm_torch::ClipCase& c : norm_torch::kClips) {
    const DType dt = dtype_from_name(c.dtype);
    std::vector<Tensor> params;
    for (uint32_t i = 0; i < 4; ++i) {
      Shape shape{norm_torch::kClipGrads[i][0]};
      if (norm_torch::kClipGrads[i][1] != 0) shape.push_back(norm_torch::kClipGrads[i][1]);
      int64_t numel = 1;
      for (int64_t s : shape) numel *= s;
      Tensor w = zeros(shape, {.dtype = dt});
      w.set_requires_grad(true);
      set_grad(w, fixture_tensor(fixture_values(numel, 31 + i, -14, 0), shape, dt));
      params.push_back(w);
    }
    std::vector<uint64_t> got = bits_of(optim::clip_grad_norm_(params, 1.0, c.p));
    for (const Tensor& w : params) {
      const std::vector<uint64_t> g = bits_of(w.grad().reshape({-1}).narrow(0, 0, 8));
      got.insert(got.end(), g.begin(), g.end());
    }
    expect_bits(got, c.first, c.count,
                std::string(c.dtype) + " clip_grad_norm_ p=" + std::to_string(c.p));
  }
}

// Many rows at once (16 interleaved, then 4, then one by one) and a column window (unaligned
// starts), every row length up to 200, against the transcription of torch's order.
TEST(NormTorchRows, LastDimKernelFollowsTorchsOrder) {
  for (int threads : {1, 2}) {
    OmpThreads scope(threads);
    for (int64_t n = 1; n <= 200; ++n) {
      const int64_t rows = 37;  // 16 + 16 interleaved, then 4, then 1
      const std::vector<float> v = order_sensitive(static_cast<size_t>(rows * n), 5);
      const Tensor x = from_vector(v, {rows, n}, {.dtype = DType::float32});
      const std::vector<float> got = norm(x, 2, {1}).to_vector<float>();
      std::vector<float> cut(v.size());
      for (size_t i = 0; i < v.size(); ++i)
        cut[i] = std::bit_cast<float>(std::bit_cast<uint32_t>(v[i]) & 0xFFFF0000u);
      const std::vector<float> got_bf16 =
          norm(from_vector(cut, {rows, n}, {.dtype = DType::float32}).to(DType::bfloat16), 2, {1})
              .to(DType::float32)
              .to_vector<float>();
      for (int64_t r = 0; r < rows; ++r) {
        const float want = std::sqrt(torch_norm2_sumsq_reference(v.data() + r * n, n));
        ASSERT_EQ(std::bit_cast<uint32_t>(got[r]), std::bit_cast<uint32_t>(want))
            << "float32 row " << r << " of length " << n << " threads=" << threads;
        const float want_bf16 = static_cast<float>(
            BFloat16(std::sqrt(torch_norm2_bf16_sumsq_reference(cut.data() + r * n, n))));
        ASSERT_EQ(std::bit_cast<uint32_t>(got_bf16[r]), std::bit_cast<uint32_t>(want_bf16))
            << "bfloat16 row " << r << " of length " << n << " threads=" << threads;
      }
      if (n > 5) {
        const std::vector<float> window = norm(x.narrow(1, 3, n - 5), 2, {1}).to_vector<float>();
        for (int64_t r = 0; r < rows; ++r) {
          const float want = std::sqrt(torch_norm2_sumsq_reference(v.data() + r * n + 3, n - 5));
          ASSERT_EQ(std::bit_cast<uint32_t>(window[r]), std::bit_cast<uint32_t>(want))
              << "window row " << r << " of length " << n - 5;
        }
      }
    }
  }
}

// Rows longer than the exact limit (4Mi) are split into fixed chunks: the same bits on any
// number of threads, for the vectorised p = 2 path and the sequential ones.
TEST(NormTorchRows, SplitRowsGiveTheSameBitsOnAnyThreadCount) {
  const int64_t n = (int64_t{1} << 23) + 4099;
  const Tensor x =
      from_vector(order_sensitive(static_cast<size_t>(n), 3), {n}, {.dtype = DType::float32});
  for (double p : {2.0, 1.0, 3.0, std::numeric_limits<double>::infinity()}) {
    std::vector<uint64_t> one, two;
    {
      OmpThreads scope(1);
      one = bits_of(norm(x, p));
    }
    {
      OmpThreads scope(2);
      two = bits_of(norm(x, p));
    }
    EXPECT_EQ(one, two) << "p=" << p;
  }
}

}  // namespace
}  // namespace fabric
