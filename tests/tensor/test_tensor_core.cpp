// The Tensor handle: factories, views sharing storage, geometry errors, copies and the caching
// allocator.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include "tensor/allocator.h"
#include "tensor/factory.h"
#include "tensor/tensor.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

template <typename T>
std::vector<T> vals(const Tensor& t) { return t.to_vector<T>(); }

TEST(TensorCore, FactoriesFillAndShape) {
  Tensor z = zeros({2, 3});
  EXPECT_EQ(z.dtype(), DType::float32);
  EXPECT_EQ(z.sizes(), (Shape{2, 3}));
  EXPECT_EQ(z.strides(), (Strides{3, 1}));
  EXPECT_TRUE(z.is_contiguous());
  for (float v : vals<float>(z)) EXPECT_EQ(v, 0.f);
  Tensor f = full({4}, 2.5, {.dtype = DType::bfloat16});
  for (double v : vals<double>(f)) EXPECT_EQ(v, 2.5);
  // torch.full without a dtype infers it from the fill value.
  EXPECT_EQ(full({2}, 3).dtype(), DType::int64);
  EXPECT_EQ(full({2}, true).dtype(), DType::bool_);
  EXPECT_EQ(full({2}, 0.5).dtype(), DType::float32);
  EXPECT_EQ(full({2}, 3, {.dtype = DType::float64}).dtype(), DType::float64);
  Tensor s = scalar_tensor(7, {.dtype = DType::int64});
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.item<int64_t>(), 7);
  EXPECT_THROW(empty({2, -1}), ShapeError);
}

TEST(TensorCore, EyeMatchesTorch) {
  // torch.eye(2, 3, dtype=torch.bool), torch.eye(3, 2, dtype=torch.int64), torch.eye(2):
  //   [[True, False, False], [False, True, False]], [[1, 0], [0, 1], [0, 0]], float32 [[1, 0], [0,
  //   1]]
  const Tensor b = eye(2, 3, {.dtype = DType::bool_});
  EXPECT_EQ(b.sizes(), (Shape{2, 3}));
  EXPECT_EQ(vals<bool>(b), (std::vector<bool>{true, false, false, false, true, false}));
  const Tensor i = eye(3, 2, {.dtype = DType::int64});
  EXPECT_EQ(vals<int64_t>(i), (std::vector<int64_t>{1, 0, 0, 1, 0, 0}));
  const Tensor f = eye(2);
  EXPECT_EQ(f.dtype(), DType::float32);
  EXPECT_EQ(vals<float>(f), (std::vector<float>{1, 0, 0, 1}));
  // torch.eye(0).shape, torch.eye(0, 3).shape, torch.eye(3, 0).shape: (0, 0), (0, 3), (3, 0)
  EXPECT_EQ(eye(0).sizes(), (Shape{0, 0}));
  EXPECT_EQ(eye(0, 3).sizes(), (Shape{0, 3}));
  EXPECT_EQ(eye(3, 0).sizes(), (Shape{3, 0}));
  // torch.eye(-1): "n must be greater or equal to 0, got -1"; torch.eye(2, -1): "m must be ..."
  EXPECT_CONTAINS(thrown<ValueError>([] { eye(-1); }), "n must be greater or equal to 0, got -1");
  EXPECT_CONTAINS(thrown<ValueError>([] { eye(2, -1); }),
                  "m must be greater or equal to 0, got -1");
}

TEST(TensorCore, ArangeAndLinspaceMatchTorch) {
  Tensor a = arange(5);
  EXPECT_EQ(a.dtype(), DType::int64);
  EXPECT_EQ(vals<int64_t>(a), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  Tensor b = arange(0.0, 1.0, 0.25);
  EXPECT_EQ(b.dtype(), DType::float32);
  EXPECT_EQ(vals<double>(b), (std::vector<double>{0, 0.25, 0.5, 0.75}));
  Tensor c = arange(10, 0, -3);
  EXPECT_EQ(vals<int64_t>(c), (std::vector<int64_t>{10, 7, 4, 1}));
  EXPECT_THROW(arange(0, 5, 0), ValueError);
  Tensor l = linspace(0, 1, 5, {.dtype = DType::float64});
  EXPECT_EQ(vals<double>(l), (std::vector<double>{0, 0.25, 0.5, 0.75, 1.0}));
  // One step is the start, as torch.linspace(2, 7, 1) == [2.]; none is empty.
  EXPECT_EQ(vals<double>(linspace(2, 7, 1, {.dtype = DType::float64})), (std::vector<double>{2.0}));
  EXPECT_EQ(vals<int64_t>(linspace(-3, 10, 1, {.dtype = DType::int64})), (std::vector<int64_t>{-3}));
  EXPECT_EQ(linspace(2, 7, 0).numel(), 0);
}

// For an integer dtype torch first truncates start, end and step to integers (its int64
// accumulate type): int64 counts from the truncated bounds, the narrower dtypes from the bounds as
// given, values are start + i * step wrapped into the dtype. Expected values from torch 1.13.
TEST(TensorCore, ArangeIntegerDtypeTruncatesBoundsAsTorch) {
  struct Row {
    double start, end, step;
    DType dt;
    std::vector<int64_t> want;
  };
  const Row rows[] = {
      {0, 2.5, 1, DType::int64, {0, 1}},
      {0, 2.5, 1, DType::int32, {0, 1, 2}},
      {-0.5, 2, 1, DType::int64, {0, 1}},
      {-0.5, 2, 1, DType::uint8, {0, 1, 2}},
      {0, 5, 1.5, DType::int64, {0, 1, 2, 3, 4}},
      {0, 5, 1.5, DType::int32, {0, 1, 2, 3}},
      {2.9, -3.5, -1.5, DType::int64, {2, 1, 0, -1, -2}},
      {2.9, -3.5, -1.5, DType::int8, {2, 1, 0, -1, -2}},
      {0, 3, 1, DType::int64, {0, 1, 2}},
  };
  for (const Row& r : rows)
    EXPECT_EQ(vals<int64_t>(arange(r.start, r.end, r.step, r.dt)), r.want)
        << "arange(" << r.start << ", " << r.end << ", " << r.step << ", " << r.dt << ")";
  // 43 values 0, 7, ..., 294 for int64 (end and step truncated first); 39 for int8, wrapping.
  EXPECT_EQ(arange(0.0, 300.0, 7.7, DType::int64).numel(), 43);
  EXPECT_EQ(vals<int64_t>(arange(0.0, 300.0, 7.7, DType::int64))[42], 294);
  const std::vector<int64_t> i8 = vals<int64_t>(arange(0.0, 300.0, 7.7, DType::int8));
  EXPECT_EQ(std::vector<int64_t>(i8.end() - 3, i8.end()), (std::vector<int64_t>{-4, 3, 10}));
  // A step that truncates to 0 is a zero step; a float dtype keeps the fractions.
  EXPECT_CONTAINS(thrown<ValueError>([] { arange(0.0, 2.5, 0.5, DType::int64); }),
                  "step 0.5 truncates to 0");
  EXPECT_THROW(arange(0.0, 1.0, 0.1, DType::int32), ValueError);
  EXPECT_THROW(arange(0.9, -0.9, 1.0, DType::int32), ValueError);  // ceil(-1.8) elements
  EXPECT_THROW(arange(0.0, std::nan(""), 1.0, DType::int64), ValueError);
  EXPECT_EQ(vals<double>(arange(0.0, 2.5, 0.5, DType::float32)),
            (std::vector<double>{0, 0.5, 1, 1.5, 2}));
}

TEST(TensorCore, ViewsShareStorage) {
  Tensor a = arange(0, 24, 1, DType::float32).view({2, 3, 4});
  Tensor t = a.transpose(0, 2);  // (4, 3, 2)
  EXPECT_EQ(t.sizes(), (Shape{4, 3, 2}));
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_EQ(t.storage(), a.storage());
  Tensor c = t.contiguous();
  EXPECT_NE(c.storage(), a.storage());
  // c[i][j][k] == a[k][j][i]
  auto cv = vals<float>(c);
  EXPECT_EQ(cv[(3 * 3 + 2) * 2 + 1], 1 * 12 + 2 * 4 + 3);
  Tensor s = a.select(1, 2);  // (2, 4)
  EXPECT_EQ(vals<float>(s), (std::vector<float>{8, 9, 10, 11, 20, 21, 22, 23}));
  Tensor n = a.narrow(2, 1, 2);  // (2, 3, 2)
  EXPECT_EQ(n.sizes(), (Shape{2, 3, 2}));
  EXPECT_EQ(vals<float>(n)[0], 1);
  Tensor st = a.slice(2, 0, 4, 2);
  EXPECT_EQ(vals<float>(st)[1], 2);
  Tensor p = a.permute({2, 0, 1});
  EXPECT_EQ(p.sizes(), (Shape{4, 2, 3}));
  EXPECT_EQ(vals<float>(p.contiguous())[1], 4);
  // Writing through a view is seen by the base.
  Tensor row = a.select(0, 1).select(0, 0);
  row.fill_(-1);
  EXPECT_EQ(vals<float>(a)[12], -1);
  EXPECT_EQ(vals<float>(a)[11], 11);
}

TEST(TensorCore, ExpandSqueezeUnsqueezeFlatten) {
  Tensor a = arange(0, 3, 1, DType::float32).view({3, 1});
  Tensor e = a.expand({2, 3, 4});
  EXPECT_EQ(e.strides(), (Strides{0, 1, 0}));
  EXPECT_EQ(vals<float>(e.contiguous())[5], 1);
  EXPECT_THROW(a.expand({2, 4}), ShapeError);
  EXPECT_EQ(a.squeeze().sizes(), (Shape{3}));
  EXPECT_EQ(a.unsqueeze(0).sizes(), (Shape{1, 3, 1}));
  EXPECT_EQ(a.unsqueeze(-1).sizes(), (Shape{3, 1, 1}));
  Tensor b = zeros({2, 3, 4});
  EXPECT_EQ(b.flatten(1).sizes(), (Shape{2, 12}));
  EXPECT_EQ(b.flatten().sizes(), (Shape{24}));
}

// A 0-dim tensor takes dims -1 and 0 in squeeze and flatten (as one dim of size 1), and any
// other dim is an IndexError, as torch's "Dimension out of range (expected to be in range of
// [-1, 0], but got 1)".
TEST(TensorCore, ZeroDimTensorsWrapDimsAsOneDim) {
  const Tensor z = scalar_tensor(3.0);
  EXPECT_EQ(z.squeeze(0).dim(), 0);
  EXPECT_EQ(z.squeeze(-1).dim(), 0);
  EXPECT_EQ(z.flatten().sizes(), (Shape{1}));
  EXPECT_EQ(z.flatten(-1, 0).sizes(), (Shape{1}));
  EXPECT_CONTAINS(thrown<IndexError>([&] { z.squeeze(1); }), "squeeze: dim 1 out of range");
  EXPECT_THROW(z.squeeze(-2), IndexError);
  EXPECT_CONTAINS(thrown<IndexError>([&] { z.flatten(0, 1); }), "flatten: dim 1 out of range");
  EXPECT_THROW(z.flatten(-2), IndexError);
}

TEST(TensorCore, ViewNeedsCompatibleStridesReshapeCopies) {
  Tensor a = zeros({4, 6});
  Tensor t = a.t();
  EXPECT_THROW(t.view({24}), ShapeError);
  Tensor r = t.reshape({24});
  EXPECT_NE(r.storage(), a.storage());
  EXPECT_EQ(a.view({2, -1, 3}).sizes(), (Shape{2, 4, 3}));
  EXPECT_THROW(a.view({5, -1}), ShapeError);
  EXPECT_THROW(a.view({-1, -1}), ShapeError);
  // A transposed tensor can still split a dim or add unit dims without a copy.
  Tensor b = zeros({3, 4}).t();  // (4, 3), strides (1, 4)
  EXPECT_EQ(b.view({2, 2, 3}).strides(), (Strides{2, 1, 4}));
  EXPECT_EQ(b.view({4, 1, 3}).sizes(), (Shape{4, 1, 3}));
  EXPECT_THROW(b.view({12}), ShapeError);
}

TEST(TensorCore, IndexErrorsNameTheOp) {
  Tensor a = zeros({2, 3});
  try {
    a.select(1, 5);
    FAIL() << "expected IndexError";
  } catch (const IndexError& e) {
    EXPECT_NE(std::string(e.what()).find("select"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("(2, 3)"), std::string::npos);
  }
  EXPECT_THROW(a.transpose(0, 2), IndexError);
  EXPECT_THROW(a.narrow(0, 1, 2), IndexError);
  EXPECT_THROW(a.permute({0, 0}), ShapeError);
  EXPECT_THROW(a.data<double>(), DTypeError);
  EXPECT_THROW(Tensor().dim(), ValueError);
  EXPECT_THROW(a.item<float>(), ValueError);
}

TEST(TensorCore, CopyConvertsAndBroadcasts) {
  Tensor a = zeros({2, 3}, {.dtype = DType::float64});
  a.copy_(arange(0, 3, 1, DType::int32));
  EXPECT_EQ(vals<double>(a), (std::vector<double>{0, 1, 2, 0, 1, 2}));
  Tensor h = a.to(DType::float16);
  EXPECT_EQ(h.dtype(), DType::float16);
  EXPECT_EQ(vals<double>(h), vals<double>(a));
  Tensor bits = a.to(DType::bool_);
  EXPECT_EQ(vals<bool>(bits), (std::vector<bool>{false, true, true, false, true, true}));
  EXPECT_THROW(a.copy_(zeros({4})), ShapeError);
  // Strided source and destination with different dtypes.
  Tensor src = arange(0, 12, 1, DType::float32).view({3, 4}).t();  // (4, 3)
  Tensor dst = zeros({3, 4}, {.dtype = DType::bfloat16}).t();
  dst.copy_(src);
  EXPECT_EQ(vals<float>(dst), vals<float>(src));
  // fp8 casts via the tensor API use PyTorch's non-saturating semantics.
  Tensor big = full({1}, 500.0).to(DType::float8_e4m3fn);
  EXPECT_TRUE(std::isnan(big.item<float>()));
}

// torch 1.13: copy_ into an expanded view (several elements at one address) raises "unsupported
// operation: more than one element of the written-to tensor refers to a single memory location";
// fill_ and zero_ write one value everywhere and are allowed; an empty or size-1 expand is fine.
TEST(TensorCore, CopyIntoAnExpandedViewIsRefused) {
  Tensor base = zeros({1, 3});
  Tensor expanded = base.expand({4, 3});
  for (const Tensor& src : {ones({4, 3}), ones({1, 3}), full({}, 2.0)}) {
    try {
      expanded.copy_(src);
      ADD_FAILURE() << "copy_ from " << shape_str(src.sizes())
                    << " into an expanded view was accepted";
    } catch (const ValueError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("copy_"), std::string::npos) << msg;
      EXPECT_NE(msg.find("more than one element of the written-to tensor"), std::string::npos)
          << msg;
      EXPECT_NE(msg.find("(4, 3)"), std::string::npos) << msg;
    }
  }
  EXPECT_EQ(vals<double>(base), (std::vector<double>{0, 0, 0})) << "a refused copy writes nothing";
  expanded.fill_(2.0);
  EXPECT_EQ(vals<double>(base), (std::vector<double>{2, 2, 2}));
  EXPECT_NO_THROW(base.expand({1, 3}).copy_(ones({1, 3})));
  EXPECT_NO_THROW(zeros({0, 1}).expand({0, 4}).copy_(ones({0, 4})));
}

// torch 1.13 fills through c10's checked conversion: full((2,), 1000, dtype=uint8) and
// fill_(1e39) on float32 raise "value cannot be converted to type ... without overflow"; -1 into
// uint8 wraps to 255, 1.5 truncates to 1, infinities and NaN fill float dtypes, NaN or -1.0 into
// uint8 raise, and any value fills bool. The fp8 dtypes are checked the same way against their
// finite range (e4m3fn holds no infinity).
TEST(TensorCore, FillRefusesValuesTheDtypeCannotHold) {
  const struct {
    Scalar value;
    DType dtype;
  } refused[] = {
      {1000, DType::uint8},         {-256, DType::uint8},          {-1.0, DType::uint8},
      {std::nan(""), DType::uint8}, {-129, DType::int8},           {int64_t{1} << 40, DType::int32},
      {HUGE_VAL, DType::int64},     {1e39, DType::float32},        {70000, DType::float16},
      {1e39, DType::bfloat16},      {500.0, DType::float8_e4m3fn}, {HUGE_VAL, DType::float8_e4m3fn},
  };
  for (const auto& c : refused) {
    EXPECT_THROW(full({2}, c.value, {.dtype = c.dtype}), ValueError) << dtype_name(c.dtype);
    Tensor t = zeros({2}, {.dtype = c.dtype});
    try {
      t.fill_(c.value);
      ADD_FAILURE() << "fill_ into " << dtype_name(c.dtype) << " accepted";
    } catch (const ValueError& e) {
      EXPECT_NE(std::string(e.what()).find("without overflow"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(vals<int64_t>(full({2}, -1, {.dtype = DType::uint8})),
            (std::vector<int64_t>{255, 255}));
  EXPECT_EQ(vals<int64_t>(full({2}, 1.5, {.dtype = DType::uint8})), (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(vals<int64_t>(full({1}, -2147483648LL, {.dtype = DType::int32})),
            (std::vector<int64_t>{-2147483648LL}));
  EXPECT_TRUE(std::isinf(full({1}, -HUGE_VAL, {.dtype = DType::float16}).item<float>()));
  EXPECT_TRUE(std::isnan(full({1}, std::nan(""), {.dtype = DType::bfloat16}).item<float>()));
  EXPECT_EQ(vals<bool>(full({1}, 5, {.dtype = DType::bool_})), (std::vector<bool>{true}));
  EXPECT_EQ(vals<double>(full({1}, 65504.0, {.dtype = DType::float16})),
            (std::vector<double>{65504}));
}

TEST(TensorCore, CudaTensorsFailClearlyWithoutBackend) {
#ifndef FABRIC_WITH_CUDA
  EXPECT_THROW(zeros({2}, {.device = Device::cuda(0)}), DeviceError);
#endif
  EXPECT_EQ(Device("cuda:3").index, 3);
  EXPECT_THROW(Device("tpu"), DeviceError);
  EXPECT_EQ(Device("cpu").str(), "cpu");
}

TEST(TensorCore, CachingAllocatorReusesBlocks) {
  Allocator& alloc = cpu_allocator();
  { Tensor warm = empty({1000, 1000}); }
  AllocatorStats before = alloc.stats();
  for (int i = 0; i < 10; ++i) Tensor t = empty({1000, 1000});
  AllocatorStats after = alloc.stats();
  EXPECT_EQ(after.num_system_allocs, before.num_system_allocs);
  EXPECT_GE(after.num_cache_hits, before.num_cache_hits + 10);
  EXPECT_EQ(after.allocated_bytes, before.allocated_bytes);
}

// The VmFlags line of the /proc/self/smaps mapping that holds `addr` ("" when not found).
std::string vm_flags_of(const void* addr) {
  std::ifstream smaps("/proc/self/smaps");
  const auto a = reinterpret_cast<uintptr_t>(addr);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-' && line.find(':') > line.find(' ')) {
      inside = lo <= a && a < hi;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      return line;
    }
  }
  return "";
}

TEST(TensorCore, LargeBlocksStartOnAHugePageAndAskForHugePages) {
  if (!std::ifstream("/sys/kernel/mm/transparent_hugepage/enabled") ||
      !std::ifstream("/proc/self/smaps"))
    GTEST_SKIP() << "no transparent huge pages or no /proc/self/smaps here";
  Tensor big = empty({1024, 1024});  // float32: 4 MiB
  const auto addr = reinterpret_cast<uintptr_t>(big.data_ptr());
  EXPECT_EQ(addr % (uintptr_t{2} << 20), 0u);
  // "hg": the mapping was madvise(MADV_HUGEPAGE)d, which Debian's THP default ("madvise") needs.
  const std::string flags = vm_flags_of(big.data_ptr());
  ASSERT_FALSE(flags.empty());
  EXPECT_NE(flags.find(" hg"), std::string::npos) << flags;
  // Small blocks keep the 64-byte alignment and are left alone.
  Tensor small = empty({256});
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small.data_ptr()) % 64, 0u);
}

TEST(TensorCore, FromStorageChecksBounds) {
  auto storage = std::make_shared<StorageImpl>(16, Device::cpu());
  EXPECT_NO_THROW(Tensor::from_storage(storage, DType::float32, {2, 2}, {2, 1}, 0));
  EXPECT_THROW(Tensor::from_storage(storage, DType::float32, {2, 2}, {2, 1}, 1), ShapeError);
  EXPECT_THROW(Tensor::from_storage(storage, DType::float64, {3}, {1}, 0), ShapeError);
}

}  // namespace
}  // namespace fabric
