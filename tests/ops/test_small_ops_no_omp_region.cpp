// Small calls of ops whose CPU kernels parallelise above a grain enter no OpenMP region at all:
// `#pragma omp parallel for if (false)` still enters a one-thread region in GCC's libgomp
// (~340 ns), which an op on a few elements paid on every call (kernels/cpu/run_tasks.h). This
// binary defines GOMP_parallel, the entry every `omp parallel` of the runtime library calls (the
// linker exports it to the library, so the library's calls land here), counts the calls and
// forwards them to libgomp's. Large calls of some of the ops must still count entries: the
// counter is seen to work.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "nn/embedding_bag.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/omp_threads.h"

namespace {
std::atomic<long> g_parallel_entries{0};
}  // namespace

extern "C" void GOMP_parallel(void (*fn)(void*), void* data, unsigned num_threads, unsigned flags) {
  using Entry = void (*)(void (*)(void*), void*, unsigned, unsigned);
  static const Entry libgomp = reinterpret_cast<Entry>(dlsym(RTLD_NEXT, "GOMP_parallel"));
  if (!libgomp) std::abort();  // no OpenMP runtime after this binary: nothing could run
  g_parallel_entries.fetch_add(1, std::memory_order_relaxed);
  libgomp(fn, data, num_threads, flags);
}

namespace fabric {
namespace {

struct OpCall {
  std::string name;
  std::function<void()> call;
};

// The ops on a few elements: (8, 8) matrices, (1, 2, 8, 8) images, 8 lookups.
std::vector<OpCall> small_calls() {
  manual_seed(0);
  const Tensor a = randn({8, 8}), b = randn({8, 8}), mask = gt(a, 0.0);
  const Tensor rows = randint(0, 8, {8, 8}), classes = randint(0, 8, {8});
  const Tensor image = randn({1, 2, 8, 8}), volume = randn({1, 1, 4, 4, 4});
  const Tensor small = randn({1, 2, 4, 4}), columns = unfold(small, {2, 2});
  const TensorOptions f64{.dtype = DType::float64};
  const Tensor x64 = randn({1, 2, 6, 6}, f64), w64 = randn({2, 2, 3, 3}, f64),
               b64 = randn({2}, f64);
  const Tensor table = randn({16, 4}), lookups = randint(0, 16, {8}),
               offsets = arange(0, 8, 2, DType::int64);
  const Tensor x1 = randn({4, 3}), x2 = randn({5, 3});
  std::vector<OpCall> calls;
  const auto add = [&](std::string name, std::function<void()> call) {
    calls.push_back({std::move(name), std::move(call)});
  };
  add("cat", [=] { cat({a, b}, 1); });
  add("tril", [=] { tril(a); });
  add("triu", [=] { triu(a, 1); });
  add("one_hot", [=] { one_hot(classes, 8); });
  add("nonzero", [=] { nonzero(mask); });
  add("masked_select", [=] { masked_select(a, mask); });
  add("rand", [=] { rand({64}); });
  add("gather", [=] { gather(a, 0, rows); });
  add("gather along the last dim", [=] { gather(a, 1, rows); });
  add("scatter_add", [=] { scatter_add(a, 0, rows, b); });
  add("sort", [=] { sort(a); });
  add("topk", [=] { topk(a, 2); });
  add("max_pool2d", [=] { max_pool2d(image, {2, 2}); });
  add("avg_pool2d", [=] { avg_pool2d(image, {2, 2}); });
  add("adaptive_avg_pool2d", [=] { adaptive_avg_pool2d(image, {3, 3}); });
  add("max_pool3d", [=] { max_pool3d(volume, {2, 2, 2}); });
  add("interpolate bilinear", [=] { interpolate(small, {8, 8}, {}, "bilinear"); });
  add("unfold", [=] { unfold(small, {2, 2}); });
  add("fold", [=] { fold(columns, {4, 4}, {2, 2}); });
  add("embedding_bag", [=] { nn::embedding_bag(table, lookups, offsets, "sum"); });
  add("cdist", [=] { cdist(x1, x2); });
  add("conv2d float64", [=] { conv2d(x64, w64, b64); });
  return calls;
}

long parallel_entries_of(const std::function<void()>& call) {
  const long before = g_parallel_entries.load();
  call();
  return g_parallel_entries.load() - before;
}

TEST(SmallOpsNoOmpRegion, SmallCallsEnterNoParallelRegion) {
  for (const int threads : {1, 2}) {
    OmpThreads scope(threads);
    for (const OpCall& op : small_calls()) {
      op.call();  // first call: one-time setup (tables, caches) may differ
      EXPECT_EQ(parallel_entries_of(op.call), 0)
          << op.name << " on a few elements entered an OpenMP region at " << threads
          << " thread(s)";
    }
  }
}

TEST(SmallOpsNoOmpRegion, LargeCallsStillGoParallel) {
  OmpThreads scope(2);
  const Tensor a = randn({512, 512}), b = randn({512, 512});
  const Tensor rows = randint(0, 512, {512, 512});
  EXPECT_GT(parallel_entries_of([&] { cat({a, b}, 1); }), 0) << "cat";
  EXPECT_GT(parallel_entries_of([&] { tril(a); }), 0) << "tril";
  EXPECT_GT(parallel_entries_of([&] { gather(a, 1, rows); }), 0) << "gather";
  EXPECT_GT(parallel_entries_of([&] { sort(a); }), 0) << "sort";
}

}  // namespace
}  // namespace fabric
