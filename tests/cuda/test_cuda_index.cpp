// The CUDA indexing kernels against the CPU through the public ops and autograd: embedding (int64
// and int32 indices, strided tables, odd row widths, a hot row) and its backward, index_select on
// every dim, gather/scatter_add and their gradients, tril/triu, one_hot and the index-range errors
// (raised at the next synchronisation: the kernels check as they run).
// Everything is bit-exact: the kernels move bytes, and the accumulating ones (index_add,
// scatter_add) add each destination's sources in index order, as the CPU does.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/ops_backward.h"
#include "tensor/ops_backward_linalg.h"
#include "tests/common/expect_error.h"
#include "tests/cuda/cuda_test_util.h"

namespace fabric {
namespace {

using test::kGpu;
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

constexpr DType kAllTypes[] = {DType::float32, DType::float16,      DType::bfloat16, DType::float64,
                               DType::int64,   DType::int32,        DType::int8,     DType::uint8,
                               DType::bool_,   DType::float8_e4m3fn};

std::string name_of(const std::string& op, DType t, const std::string& extra = "") {
  return op + " " + std::string(dtype_name(t)) + (extra.empty() ? "" : " " + extra);
}

// `fn` on CPU inputs and on the same inputs moved to the GPU: equal bit for bit.
void check_exact(const std::string& what, const std::vector<Tensor>& inputs, const Fn& fn) {
  std::vector<Tensor> gpu;
  for (const Tensor& t : inputs) gpu.push_back(t.to(kGpu));
  const Tensor want = fn(inputs), got = fn(gpu);
  EXPECT_EQ(got.device(), kGpu) << what;
  test::expect_matches(want, got, {}, what);
}

// Values of any dtype: awkward floats for floating dtypes, a spread of integers otherwise.
Tensor values(const Shape& shape, DType t, uint64_t seed) {
  if (is_floating(t)) return test::awkward_tensor(shape, t, seed);
  if (t == DType::bool_) return test::random_ints(shape, DType::int64, 0, 1, seed).to(t);
  return test::random_ints(shape, DType::int64, -100, 100, seed).to(t);
}

// Leaves on `device`, fn, then sum(out * probe).backward(): the gradients of the leaves.
std::vector<Tensor> grads_of(const std::vector<Tensor>& leaves_cpu, const std::vector<bool>& wants,
                             const Device& device, const Fn& fn, const Tensor& probe) {
  std::vector<Tensor> leaves;
  for (size_t i = 0; i < leaves_cpu.size(); ++i) {
    Tensor l = leaves_cpu[i].to(device).clone().detach();
    if (wants[i]) l.set_requires_grad(true);
    leaves.push_back(l);
  }
  Tensor out = fn(leaves);
  sum(mul(out, probe.to(device).to(out.dtype()))).backward();
  std::vector<Tensor> g;
  for (size_t i = 0; i < leaves.size(); ++i)
    if (wants[i]) g.push_back(leaves[i].grad());
  return g;
}

void check_grads_exact(const std::string& what, const std::vector<Tensor>& leaves,
                       const std::vector<bool>& wants, const Fn& fn, const Shape& out_shape) {
  const Tensor probe = test::uniform_tensor(out_shape, DType::float32, -2, 2, 99);
  const std::vector<Tensor> want = grads_of(leaves, wants, Device::cpu(), fn, probe);
  const std::vector<Tensor> got = grads_of(leaves, wants, kGpu, fn, probe);
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_TRUE(got[i].defined()) << what;
    EXPECT_EQ(got[i].device(), kGpu) << what;
    test::expect_matches(want[i], got[i], {}, what + " grad " + std::to_string(i));
  }
}

TEST(CudaIndex, EmbeddingForward) {
  FABRIC_REQUIRE_CUDA();
  const Tensor idx = test::random_ints({4, 33}, DType::int64, 0, 999, 3);
  for (DType dt : kAllTypes) {
    for (int64_t C : {768, 3, 1, 17}) {
      const Tensor w = values({1000, C}, dt, 5);
      for (DType it : {DType::int64, DType::int32}) {
        check_exact(
            name_of("embedding", dt, "C=" + std::to_string(C) + " " + std::string(dtype_name(it))),
            {w, idx.to(it)}, [](const std::vector<Tensor>& v) { return embedding(v[0], v[1]); });
      }
    }
  }
  // A table slice read in place (row stride != C), and a transposed table (made contiguous).
  const Tensor wide = values({500, 40}, DType::float32, 7);
  const Tensor i2 = test::random_ints({77}, DType::int64, 0, 499, 8);
  check_exact("embedding strided rows", {wide, i2},
              [](const std::vector<Tensor>& v) { return embedding(v[0].slice(1, 3, 27), v[1]); });
  check_exact("embedding transposed table", {wide, i2}, [](const std::vector<Tensor>& v) {
    return embedding(v[0].t().contiguous().t(), v[1]);
  });
  // 0-D index.
  check_exact("embedding 0-D index", {wide, full({}, 42, {.dtype = DType::int64})},
              [](const std::vector<Tensor>& v) { return embedding(v[0], v[1]); });
}

TEST(CudaIndex, EmbeddingBackwardThroughAutograd) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : {DType::float32, DType::float64, DType::float16, DType::bfloat16}) {
    for (DType it : {DType::int64, DType::int32}) {
      // Random rows with repeats, and a hot row taking most of the tokens.
      Tensor idx = test::random_ints({8, 129}, DType::int64, 0, 299, 21);
      int64_t* p = idx.data<int64_t>();
      for (int64_t i = 0; i < idx.numel(); i += 3) p[i] = 17;
      const Tensor w = test::uniform_tensor({300, 96}, dt, -1, 1, 22);
      check_grads_exact(name_of("embedding backward", dt, std::string(dtype_name(it))),
                        {w, idx.to(it)}, {true, false},
                        [](const std::vector<Tensor>& v) { return embedding(v[0], v[1]); },
                        {8, 129, 96});
    }
  }
  // The helper directly: a large table (vocabulary-sized), few rows touched.
  const Tensor g = test::uniform_tensor({64, 50}, DType::float32, -1, 1, 23);
  const Tensor idx = test::random_ints({64}, DType::int64, 0, 50256, 24);
  check_exact("embedding_backward 50257 rows", {g, idx},
              [](const std::vector<Tensor>& v) { return embedding_backward(v[0], v[1], 50257); });
}

TEST(CudaIndex, IndexSelectEveryDim) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : kAllTypes) {
    const Tensor a = values({5, 6, 7}, dt, 31);
    for (int64_t dim = 0; dim < 3; ++dim) {
      const Tensor idx = test::random_ints({9}, DType::int64, 0, a.size(dim) - 1, 32 + dim);
      for (DType it : {DType::int64, DType::int32}) {
        check_exact(name_of("index_select", dt, "dim " + std::to_string(dim)), {a, idx.to(it)},
                    [dim](const std::vector<Tensor>& v) { return index_select(v[0], dim, v[1]); });
      }
    }
    // Non-contiguous input, 0-D index, 0-D input.
    check_exact(
        name_of("index_select transposed", dt), {a, test::random_ints({4}, DType::int64, 0, 4, 35)},
        [](const std::vector<Tensor>& v) { return index_select(v[0].transpose(0, 2), 2, v[1]); });
    check_exact(name_of("index_select 0-D index", dt), {a, full({}, 2, {.dtype = DType::int64})},
                [](const std::vector<Tensor>& v) { return index_select(v[0], 1, v[1]); });
    check_exact(name_of("index_select 0-D input", dt),
                {values({}, dt, 36), from_vector<int64_t>({0, 0, 0}, {3})},
                [](const std::vector<Tensor>& v) { return index_select(v[0], 0, v[1]); });
  }
  // Gradient: index_add along a middle dim (outer > 1) with repeated indices.
  for (DType dt : {DType::float32, DType::float64, DType::bfloat16}) {
    const Tensor a = test::uniform_tensor({3, 40, 11}, dt, -1, 1, 37);
    const Tensor idx = test::random_ints({70}, DType::int64, 0, 39, 38);
    check_grads_exact(name_of("index_select backward", dt), {a, idx}, {true, false},
                      [](const std::vector<Tensor>& v) { return index_select(v[0], 1, v[1]); },
                      {3, 70, 11});
  }
  // index_add on integer dtypes through the helper (wrapping sums).
  for (DType dt : {DType::int64, DType::int32, DType::int8, DType::uint8}) {
    const Tensor g = values({4, 300, 3}, dt, 39);
    const Tensor idx = test::random_ints({300}, DType::int64, 0, 4, 40);
    check_exact(name_of("index_select_backward", dt), {g, idx}, [](const std::vector<Tensor>& v) {
      return index_select_backward(v[0], {4, 5, 3}, 1, v[1]);
    });
  }
}

TEST(CudaIndex, GatherAndScatterAdd) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : kAllTypes) {
    const Tensor a = values({6, 7, 8}, dt, 41);
    for (int64_t dim = 0; dim < 3; ++dim) {
      Shape is = {4, 5, 6};
      is[dim] = 11;  // longer than the input along dim: repeated rows
      const Tensor idx = test::random_ints(is, DType::int64, 0, a.size(dim) - 1, 42 + dim);
      const std::string d = "dim " + std::to_string(dim);
      check_exact(name_of("gather", dt, d), {a, idx},
                  [dim](const std::vector<Tensor>& v) { return gather(v[0], dim, v[1]); });
      if (dt == DType::float8_e4m3fn) continue;  // scatter_add rejects fp8
      const Tensor src = values(is, dt, 45 + dim);
      check_exact(
          name_of("scatter_add", dt, d), {a, idx, src},
          [dim](const std::vector<Tensor>& v) { return scatter_add(v[0], dim, v[1], v[2]); });
      check_exact(name_of("scatter_add strided src", dt, d), {a, idx, values({12, 12, 12}, dt, 48)},
                  [dim, is](const std::vector<Tensor>& v) {
                    return scatter_add(
                        v[0], dim, v[1],
                        v[2].slice(0, 0, is[0]).slice(1, 0, is[1]).slice(2, 0, is[2]));
                  });
    }
  }
  // One long line (1-D), and many lines of length 1.
  check_exact("scatter_add 1-D",
              {test::uniform_tensor({50}, DType::float32, -1, 1, 51),
               test::random_ints({5000}, DType::int64, 0, 49, 52),
               test::uniform_tensor({5000}, DType::float32, -1, 1, 53)},
              [](const std::vector<Tensor>& v) { return scatter_add(v[0], 0, v[1], v[2]); });
  // gather's gradient (scatter_add into zeros) through autograd.
  for (DType dt : {DType::float32, DType::float64, DType::float16}) {
    const Tensor a = test::uniform_tensor({9, 10}, dt, -1, 1, 54);
    const Tensor idx = test::random_ints({9, 25}, DType::int64, 0, 9, 55);
    check_grads_exact(name_of("gather backward", dt), {a, idx}, {true, false},
                      [](const std::vector<Tensor>& v) { return gather(v[0], 1, v[1]); }, {9, 25});
  }
}

TEST(CudaIndex, TrilTriu) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : {DType::float64, DType::float32, DType::bfloat16, DType::int8, DType::bool_}) {
    const Tensor a = values({2, 3, 7, 9}, dt, 61);
    for (int64_t diag : {int64_t{0}, int64_t{-2}, int64_t{3}, int64_t{20}, int64_t{-20},
                         int64_t{1} << 62, -(int64_t{1} << 62)}) {
      const std::string d = "diagonal " + std::to_string(diag);
      check_exact(name_of("tril", dt, d), {a},
                  [diag](const std::vector<Tensor>& v) { return tril(v[0], diag); });
      check_exact(name_of("triu", dt, d), {a},
                  [diag](const std::vector<Tensor>& v) { return triu(v[0], diag); });
    }
    check_exact(name_of("tril transposed", dt), {a},
                [](const std::vector<Tensor>& v) { return tril(v[0].transpose(2, 3), -1); });
  }
}

TEST(CudaIndex, OneHot) {
  FABRIC_REQUIRE_CUDA();
  const Tensor idx = test::random_ints({3, 41}, DType::int64, 0, 9, 71);
  check_exact("one_hot inferred", {idx},
              [](const std::vector<Tensor>& v) { return one_hot(v[0]); });
  check_exact("one_hot 13", {idx}, [](const std::vector<Tensor>& v) { return one_hot(v[0], 13); });
  check_exact("one_hot 0-D", {full({}, 4, {.dtype = DType::int64})},
              [](const std::vector<Tensor>& v) { return one_hot(v[0], 6); });
}

// A copy of the GPU tensor to the CPU raises the deferred range error of an earlier op; it reads as
// the CPU's error for the same inputs, then says where it came from. Returns the GPU's message.
std::string expect_deferred_cpu_error(const std::string& what, const std::string& cpu_msg,
                                      const std::function<void()>& synchronise) {
  const std::string gpu_msg = thrown<IndexError>(synchronise);
  EXPECT_NE(cpu_msg.find("out of range"), std::string::npos) << what << ": " << cpu_msg;
  EXPECT_EQ(gpu_msg.substr(0, cpu_msg.size()), cpu_msg) << what;
  EXPECT_NE(gpu_msg.find("reported at this synchronisation"), std::string::npos) << gpu_msg;
  return gpu_msg;
}

// The kernels check every index as they run (over several blocks here) instead of the op waiting
// for a range scan: the call returns, and the next synchronisation raises the CPU's error with the
// same extreme index named. The record is cleared then: the same copy again, and later valid ops,
// run normally; the bad index's element was never read (zero in a gathered output).
TEST(CudaIndex, OutOfRangeIndicesRaiseTheCpuErrorAtTheNextSynchronisation) {
  FABRIC_REQUIRE_CUDA();
  const Tensor w = test::uniform_tensor({100, 4}, DType::float32, -1, 1, 81);
  const Tensor g = test::uniform_tensor({300001, 4}, DType::float32, -1, 1, 83);
  struct Case {
    std::string what;
    Fn fn;  // on (w, indices, g)
  };
  const std::vector<Case> cases = {
      {"embedding", [](const std::vector<Tensor>& v) { return embedding(v[0], v[1]); }},
      {"index_select", [](const std::vector<Tensor>& v) { return index_select(v[0], 0, v[1]); }},
      {"embedding_backward",
       [](const std::vector<Tensor>& v) { return embedding_backward(v[2], v[1], 100); }},
      {"index_select_backward",
       [](const std::vector<Tensor>& v) {
         return index_select_backward(v[2], {100, 4}, 0, v[1]);
       }},
  };
  for (DType it : {DType::int64, DType::int32}) {
    for (int64_t bad : {int64_t{100}, int64_t{-1}, int64_t{1} << 20}) {
      Tensor idx = test::random_ints({300001}, DType::int64, 0, 99, 82);
      idx.data<int64_t>()[300000] = bad;
      idx.data<int64_t>()[7] = bad;
      const std::vector<Tensor> cpu = {w, idx.to(it), g};
      std::vector<Tensor> gpu;
      for (const Tensor& t : cpu) gpu.push_back(t.to(kGpu));
      for (const Case& c : cases) {
        const std::string what = name_of(c.what, it, "bad " + std::to_string(bad));
        const std::string cpu_msg = thrown<IndexError>([&] { c.fn(cpu); });
        Tensor out;
        EXPECT_NO_THROW(out = c.fn(gpu)) << what << ": the op must not wait for the device";
        const std::string msg =
            expect_deferred_cpu_error(what, cpu_msg, [&] { out.to(Device::cpu()); });
        EXPECT_NE(msg.find("element 7 of its indices"), std::string::npos) << msg;
        EXPECT_NO_THROW(out.to(Device::cpu())) << what << ": reported once";
        if (c.what == "embedding") {
          const Tensor rows = out.to(Device::cpu());
          EXPECT_EQ(sum(abs(rows.select(0, 7))).item<float>(), 0.0f) << what;
        }
      }
    }
  }
  // gather, scatter_add and gather's gradient; the sync points item() and synchronize.
  const Tensor bad_cols = full({100, 2}, 4, {.dtype = DType::int64});
  const Tensor src = test::uniform_tensor({100, 2}, DType::float32, -1, 1, 84);
  struct Sync {
    std::string what;
    std::function<Tensor(const Tensor&, const Tensor&)> fn;  // on (w, bad_cols) of one device
  };
  const std::vector<Sync> more = {
      {"gather", [](const Tensor& a, const Tensor& i) { return gather(a, 1, i); }},
      {"scatter_add",
       [&](const Tensor& a, const Tensor& i) { return scatter_add(a, 1, i, src.to(a.device())); }},
      {"gather_backward",
       [&](const Tensor& a, const Tensor& i) {
         return gather_backward(src.to(a.device()), {100, 4}, 1, i);
       }},
  };
  for (const Sync& c : more) {
    const std::string cpu_msg = thrown<IndexError>([&] { c.fn(w, bad_cols); });
    Tensor out;
    EXPECT_NO_THROW(out = c.fn(w.to(kGpu), bad_cols.to(kGpu))) << c.what;
    expect_deferred_cpu_error(c.what, cpu_msg, [&] { sum(out).item<float>(); });
  }
#ifdef FABRIC_WITH_CUDA
  [[maybe_unused]] const Tensor out =
      embedding(w.to(kGpu), full({3}, 100, {.dtype = DType::int64, .device = kGpu}));
  expect_deferred_cpu_error("synchronize", thrown<IndexError>([&] {
                              embedding(w, full({3}, 100, {.dtype = DType::int64}));
                            }),
                            [] { cuda::synchronize(0); });
#endif
  // Later, valid ops run as before.
  const Tensor ok = test::random_ints({4, 33}, DType::int64, 0, 99, 85);
  check_exact("embedding after the errors", {w, ok},
              [](const std::vector<Tensor>& v) { return embedding(v[0], v[1]); });
  // one_hot sizes its output by the indices, so it still checks them at the call.
  EXPECT_THROW(one_hot(full({3}, -1, {.dtype = DType::int64, .device = kGpu}), 4), IndexError);
  EXPECT_THROW(one_hot(full({3}, 4, {.dtype = DType::int64, .device = kGpu}), 4), IndexError);
}

}  // namespace
}  // namespace fabric
