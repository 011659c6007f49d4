// Element, byte and index arithmetic that would overflow int64 (or size_t): each must raise a
// fabric::Error naming the op, never wrap into a small or negative size that "works" or crashes.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "tensor/allocator.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/tensor.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t k40 = int64_t{1} << 40;

TEST(SizeOverflow, NumelOverflowIsAShapeError) {
  // 2^80 elements wrapped to 0 and the tensor "worked".
  EXPECT_CONTAINS(thrown<ShapeError>([] { empty({k40, k40}); }), "(1099511627776, 1099511627776)");
  EXPECT_THROW(numel_of({k40, k40}), ShapeError);
  EXPECT_THROW(zeros({int64_t{1} << 62, 4}), ShapeError);  // wraps to exactly 0
  // A 0 anywhere makes the count 0, however large the other dims.
  EXPECT_EQ(numel_of({k40, k40, 0}), 0);
  EXPECT_EQ(numel_of({0, k40, k40}), 0);
  Tensor e = empty({k40, k40, 0});
  EXPECT_EQ(e.numel(), 0);
  EXPECT_EQ(e.sizes(), (Shape{k40, k40, 0}));
  // ...but the contiguous strides of (0, 2^40, 2^40) do not fit (PyTorch refuses it as well).
  EXPECT_CONTAINS(thrown<ShapeError>([] { empty({0, k40, k40}); }), "stride");
}

TEST(SizeOverflow, ByteCountOverflowIsAShapeError) {
  // numel fits int64, numel * itemsize does not (2^64 and 2^65 bytes wrapped to 0).
  EXPECT_CONTAINS(thrown<ShapeError>([] { zeros({int64_t{1} << 61}, {.dtype = DType::float64}); }),
                  "float64");
  EXPECT_THROW(zeros({int64_t{1} << 60}, {.dtype = DType::float64}), ShapeError);  // 2^63 bytes
  EXPECT_THROW(linspace(0, 1, int64_t{1} << 62), ShapeError);
  EXPECT_THROW(ones({int64_t{1} << 62}, {.dtype = DType::float32}), ShapeError);
}

TEST(SizeOverflow, AllocatorRefusesImpossibleRequests) {
  // Near 2^64 the size-class rounding wrapped and handed out a tiny block.
  const size_t huge = std::numeric_limits<size_t>::max() - 10;
  EXPECT_CONTAINS(thrown<Error>([&] { cpu_allocator().allocate(huge); }), "out of CPU memory");
  EXPECT_THROW(cpu_allocator().allocate(size_t{1} << 63), Error);
  // A byte count that fits int64 but no machine holds reaches the allocator and is refused there.
  EXPECT_CONTAINS(thrown<Error>([] { empty({(int64_t{1} << 59) + 1}, {.dtype = DType::float64}); }),
                  "out of CPU memory");
}

TEST(SizeOverflow, ArangeCountsInWideArithmetic) {
  // INT64_MAX elements: the f64 staging buffer's byte count wrapped and the fill ran off its end.
  EXPECT_THROW(arange(Scalar(int64_t{0}), Scalar(kMax), Scalar(int64_t{1})), ShapeError);
  // end - start overflows int64; the count (2^63 + 1) does not fit either.
  EXPECT_CONTAINS(
      thrown<ShapeError>([] { arange(Scalar(int64_t{-2}), Scalar(kMax), Scalar(int64_t{1})); }),
      "arange");
  EXPECT_CONTAINS(thrown<ShapeError>([] { arange(Scalar(0.0), Scalar(1e30), Scalar(1.0)); }),
                  "arange");
  EXPECT_THROW(arange(Scalar(0.0), Scalar(std::numeric_limits<double>::infinity()), Scalar(1.0)),
               ValueError);
  // A short range whose span exceeds int64 is exact.
  Tensor r = arange(Scalar(kMin), Scalar(kMax), Scalar(kMax));
  EXPECT_EQ(r.to_vector<int64_t>(), (std::vector<int64_t>{kMin, -1, kMax - 1}));
}

TEST(SizeOverflow, NarrowBoundsCheckDoesNotWrap) {
  Tensor t = zeros({2, 5});
  // start + length wrapped to a negative number and passed `<= size`.
  EXPECT_CONTAINS(thrown<IndexError>([&] { t.narrow(1, kMax, 1); }), "start out of range");
  EXPECT_CONTAINS(thrown<IndexError>([&] { t.narrow(1, 1, kMax); }),
                  "start (1) + length (9223372036854775807) exceeds dimension size (5)");
  EXPECT_CONTAINS(thrown<IndexError>([&] { t.narrow(1, -2, kMax); }), "exceeds dimension size (5)");
  EXPECT_THROW(t.narrow(1, kMin, 1), IndexError);
  EXPECT_THROW(t.narrow(1, 0, -1), IndexError);
  EXPECT_EQ(t.narrow(1, 5, 0).sizes(), (Shape{2, 0}));
  EXPECT_EQ(t.narrow(1, -5, 5).sizes(), (Shape{2, 5}));
}

TEST(SizeOverflow, SliceWithAHugeStep) {
  Tensor t = arange(10);
  // (end - start + step - 1) / step wrapped negative.
  Tensor a = t.slice(0, 0, 10, kMax);
  EXPECT_EQ(a.sizes(), (Shape{1}));
  EXPECT_EQ(a.to_vector<int64_t>(), (std::vector<int64_t>{0}));
  Tensor b = t.slice(0, 3, kMax, kMax - 1);
  EXPECT_EQ(b.to_vector<int64_t>(), (std::vector<int64_t>{3}));
  EXPECT_EQ(t.slice(0, 4, 4, kMax).numel(), 0);
  // stride * step overflows; the one element kept is never stepped over.
  Tensor m = arange(20).view({10, 2}).slice(0, 1, 10, kMax);
  EXPECT_EQ(m.sizes(), (Shape{1, 2}));
  EXPECT_EQ(m.to_vector<int64_t>(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t.slice(0, 1, 10, 4).to_vector<int64_t>(), (std::vector<int64_t>{1, 5, 9}));
}

TEST(SizeOverflow, ViewAndReshapeProductsDoNotWrap) {
  Tensor t = zeros({4});
  // (2^62 + 1) * 4 wraps to exactly 4 and matched numel.
  const int64_t w = (int64_t{1} << 62) + 1;
  EXPECT_CONTAINS(thrown<ShapeError>([&] { t.view({w, 4}); }), "overflows");
  EXPECT_THROW(t.reshape({w, 4}), ShapeError);
  // 2 * (2^62 + 1) * 2 wraps to 4 on the way through the stride computation too: this was a view
  // of 2^64 + 4 elements over 4 floats.
  EXPECT_THROW(t.view({2, w, 2}), ShapeError);
  EXPECT_THROW(t.reshape({2, w, 2}), ShapeError);
  EXPECT_THROW(t.reshape({-1, w, 4}), ShapeError);  // the -1 was inferred as 1
  // Zero-element tensors take any shape holding a 0.
  Tensor z = zeros({0});
  EXPECT_EQ(z.reshape({k40, k40, 0}).sizes(), (Shape{k40, k40, 0}));
  EXPECT_THROW(z.reshape({k40, k40, -1}), ShapeError);
}

TEST(SizeOverflow, ExpandRefusesAnOverflowingElementCount) {
  Tensor one = ones({1});
  EXPECT_CONTAINS(thrown<ShapeError>([&] { one.expand({k40, k40}); }), "expand");
  EXPECT_THROW(ones({1, 1}).expand({-1, k40}).expand({k40, k40, k40}), ShapeError);
  EXPECT_EQ(one.expand({k40, 0}).numel(), 0);
  EXPECT_EQ(one.expand({int64_t{1} << 62}).numel(), int64_t{1} << 62);  // a stride-0 view is fine
}

TEST(SizeOverflow, FromStorageExtentDoesNotWrap) {
  Tensor base = zeros({2});
  // (3 - 1) * 2^62 wrapped to INT64_MIN and the view passed the storage-size check.
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    Tensor::from_storage(base.storage(), DType::float32, {3}, {int64_t{1} << 62},
                                         0);
                  }),
                  "overflows");
  EXPECT_THROW(Tensor::from_storage(base.storage(), DType::float32, {2}, {1}, kMax), ShapeError);
}

TEST(SizeOverflow, CatSplitChunkOneHot) {
  Tensor big = ones({1}).expand({int64_t{1} << 62});
  // Four 2^62 sizes summed to 0.
  EXPECT_CONTAINS(thrown<ShapeError>([&] { cat({big, big, big, big}); }), "cat");
  Tensor t = arange(5);
  EXPECT_EQ(split(t, kMax).size(), 1u);
  // ceil(5 / INT64_MAX) wrapped to a negative split size.
  auto c = chunk(t, kMax);
  ASSERT_EQ(c.size(), 5u);
  EXPECT_EQ(c[4].to_vector<int64_t>(), (std::vector<int64_t>{4}));
  // Split sizes summing past int64 (to 0 when wrapped).
  EXPECT_CONTAINS(thrown<ShapeError>([] {
                    split(zeros({0}), std::vector<int64_t>{kMax, kMax, 2});
                  }),
                  "split");
  EXPECT_CONTAINS(thrown<ShapeError>([] { one_hot(from_vector<int64_t>({kMax})); }), "one_hot");
}

TEST(SizeOverflow, ConvAndPoolGeometryDoesNotWrap) {
  Tensor x = zeros({1, 1, 4, 4}), w = zeros({1, 1, 3, 3});
  const int64_t p62 = int64_t{1} << 62;
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    conv2d(x, w, Tensor(), {1, 1}, {p62, p62});
                  }),
                  "conv2d");
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    conv2d(x, w, Tensor(), {1, 1}, {0, 0}, {p62, p62});
                  }),
                  "overflows");
  Tensor tall = zeros({1, 1, 1, 1}).expand({1, 1, kMax - 1, 1});
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    max_pool2d(tall, {4, 1}, {1, 1}, {2, 0});
                  }),
                  "overflows");
}

}  // namespace
}  // namespace fabric
