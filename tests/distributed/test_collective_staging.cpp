// The staging of collectives (collective_staging.h) on the Gloo group, two ranks as threads: a
// contiguous CPU tensor goes to the group as it is (no copy: Gloo's callers pay nothing); a
// strided view goes through a contiguous stand-in and every result element comes back to its own
// index of the caller's view, the memory around the view untouched. Every collective, every
// layout, three dtypes (bool through max, as the groups take it). The copy to another device is
// the same code with a GPU: tests/cuda/test_cuda_collectives.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "distributed/collective_staging.h"
#include "distributed/gloo_process_group.h"
#include "distributed/self_process_group.h"
#include "distributed/store.h"
#include "tensor/factory.h"
#include "tests/common/expect_error.h"

namespace fabric::distributed {
namespace {

using namespace std::chrono_literals;

constexpr int kRanks = 2;

// Runs body(rank, group) on kRanks threads, each with its own Gloo group over one HashStore; a
// rank's exception becomes a test failure naming the rank.
void run_ranks(const std::function<void(int, ProcessGroup&)>& body) {
  auto store = std::make_shared<HashStore>();
  std::vector<std::string> errors(kRanks);
  std::vector<std::thread> threads;
  for (int r = 0; r < kRanks; ++r) {
    threads.emplace_back([&, r] {
      try {
        auto pg = make_gloo_process_group(store, r, kRanks, {.timeout = 10s});
        body(r, *pg);
      } catch (const std::exception& e) {
        errors[size_t(r)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < kRanks; ++r) EXPECT_EQ(errors[size_t(r)], "") << "rank " << r;
}

// A view and the storage it lies in, every element of which starts as kOutside.
struct Placed {
  Tensor view;
  Tensor base;  // the whole storage, 1-D
};
constexpr double kOutside = -7;

// n elements of kOutside as `dt` holds it (bool: true).
Tensor outside_filled(int64_t n, DType dt) {
  return full({n}, kOutside, {.dtype = DType::float64}).to(dt);
}

Shape row_major_strides(const Shape& s, int64_t step) {
  Shape strides(s.size());
  int64_t st = step;
  for (size_t d = s.size(); d-- > 0;) {
    strides[d] = st;
    st *= s[d];
  }
  return strides;
}

// How a tensor lies in memory.
struct Layout {
  const char* name;
  bool contiguous;
  std::function<Placed(const Shape&, DType)> place;
};

const std::vector<Layout> kLayouts = {
    {"contiguous", true,
     [](const Shape& s, DType dt) {
       Tensor base = outside_filled(numel_of(s), dt);
       return Placed{base.view(s), base};
     }},
    // The same elements, the first dim fastest: a copy-back in memory order would transpose them.
    {"column-major", false,
     [](const Shape& s, DType dt) {
       Tensor base = outside_filled(numel_of(s), dt);
       Shape strides(s.size());
       int64_t st = 1;
       for (size_t d = 0; d < s.size(); ++d) strides[d] = st, st *= s[d];
       return Placed{Tensor::from_storage(base.storage(), dt, s, strides, 0), base};
     }},
    // Every other element from the second: gaps a copy-back must not write, and an offset.
    {"every other element", false,
     [](const Shape& s, DType dt) {
       Tensor base = outside_filled(2 * numel_of(s) + 1, dt);
       return Placed{Tensor::from_storage(base.storage(), dt, s, row_major_strides(s, 2), 1), base};
     }},
};

const std::vector<DType> kDTypes = {DType::float32, DType::int64, DType::bool_};

// Rank r's n values (small integers; 0/1 for bool).
std::vector<double> values(int r, int64_t n, DType dt) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double x = double((i * 7 + r * 5) % 23) - 11.0;
    v[size_t(i)] = dt == DType::bool_ ? double(x > 0) : x;
  }
  return v;
}

// A `layout` tensor of `shape` holding v in logical order.
Placed place(const Layout& layout, const Shape& shape, DType dt, const std::vector<double>& v) {
  Placed p = layout.place(shape, dt);
  EXPECT_EQ(p.view.is_contiguous(), layout.contiguous) << layout.name;
  if (!v.empty()) p.view.copy_(from_vector<double>(v, shape).to(dt));
  return p;
}

// The base's elements outside the view must still be kOutside (as the dtype holds it).
void expect_outside_untouched(const Placed& p, const std::string& what) {
  std::vector<bool> covered(size_t(p.base.numel()), false);
  const Shape& s = p.view.sizes();
  std::vector<int64_t> idx(s.size(), 0);
  for (int64_t k = 0; k < p.view.numel(); ++k) {
    int64_t off = p.view.storage_offset();
    for (size_t d = 0; d < s.size(); ++d) off += idx[d] * p.view.strides()[d];
    covered[size_t(off)] = true;
    for (size_t d = s.size(); d-- > 0;) {
      if (++idx[d] < s[d]) break;
      idx[d] = 0;
    }
  }
  const double marker = outside_filled(1, p.base.dtype()).to_vector<double>()[0];
  const std::vector<double> all = p.base.to_vector<double>();
  for (size_t i = 0; i < all.size(); ++i)
    if (!covered[i]) EXPECT_EQ(all[i], marker) << what << ": storage element " << i;
}

struct Case {
  const char* name;
  // Runs the staged collective on rank r's tensors in `layout` and checks the caller's tensors.
  std::function<void(int r, ProcessGroup& pg, const Layout& layout, DType dt)> run;
};

const Shape kShape = {4, 6};
const int64_t kNumel = 24;

const std::vector<Case> kCases = {
    {"all_reduce",
     [](int r, ProcessGroup& pg, const Layout& layout, DType dt) {
       const ReduceOp op = dt == DType::bool_ ? ReduceOp::max : ReduceOp::sum;
       Placed t = place(layout, kShape, dt, values(r, kNumel, dt));
       staged_all_reduce(pg, t.view, op);
       std::vector<double> want = values(0, kNumel, dt);
       for (int q = 1; q < kRanks; ++q) {
         const std::vector<double> v = values(q, kNumel, dt);
         for (size_t i = 0; i < want.size(); ++i)
           want[i] = op == ReduceOp::max ? std::max(want[i], v[i]) : want[i] + v[i];
       }
       EXPECT_EQ(t.view.to_vector<double>(), want);
       expect_outside_untouched(t, "all_reduce");
     }},
    {"broadcast from rank 1",
     [](int r, ProcessGroup& pg, const Layout& layout, DType dt) {
       Placed t = place(layout, kShape, dt, values(r, kNumel, dt));
       staged_broadcast(pg, t.view, 1);
       EXPECT_EQ(t.view.to_vector<double>(), values(1, kNumel, dt));
       expect_outside_untouched(t, "broadcast");
     }},
    {"all_gather",
     [](int r, ProcessGroup& pg, const Layout& layout, DType dt) {
       Placed in = place(layout, kShape, dt, values(r, kNumel, dt));
       Placed out = place(layout, {kRanks, 4, 6}, dt, {});
       staged_all_gather(pg, out.view, in.view);
       std::vector<double> want;
       for (int q = 0; q < kRanks; ++q) {
         const std::vector<double> v = values(q, kNumel, dt);
         want.insert(want.end(), v.begin(), v.end());
       }
       EXPECT_EQ(out.view.to_vector<double>(), want);
       EXPECT_EQ(in.view.to_vector<double>(), values(r, kNumel, dt)) << "the input must stay";
       expect_outside_untouched(out, "all_gather output");
     }},
    {"all_gather_v",
     [](int r, ProcessGroup& pg, const Layout& layout, DType dt) {
       // Rank q sends 2 + 2q rows of 6.
       std::vector<int64_t> counts;
       int64_t rows = 0;
       for (int q = 0; q < kRanks; ++q) counts.push_back((2 + 2 * q) * 6), rows += 2 + 2 * q;
       Placed in = place(layout, {2 + 2 * r, 6}, dt, values(r, counts[size_t(r)], dt));
       Placed out = place(layout, {rows, 6}, dt, {});
       staged_all_gather_v(pg, out.view, in.view, counts);
       std::vector<double> want;
       for (int q = 0; q < kRanks; ++q) {
         const std::vector<double> v = values(q, counts[size_t(q)], dt);
         want.insert(want.end(), v.begin(), v.end());
       }
       EXPECT_EQ(out.view.to_vector<double>(), want);
       expect_outside_untouched(out, "all_gather_v output");
     }},
};

TEST(CollectiveStaging, EveryCollectiveEveryLayoutLandsInTheCallersTensor) {
  run_ranks([](int r, ProcessGroup& pg) {
    for (const Case& c : kCases)
      for (const Layout& layout : kLayouts)
        for (DType dt : kDTypes) {
          SCOPED_TRACE(std::string(c.name) + ", " + layout.name + ", " +
                       std::string(dtype_name(dt)) + ", rank " + std::to_string(r));
          c.run(r, pg, layout, dt);
        }
  });
}

// What the group takes as it is goes as it is: the same tensor, the same memory.
TEST(CollectiveStaging, TensorsTheGroupTakesAreNotCopied) {
  run_ranks([](int r, ProcessGroup& pg) {
    ASSERT_TRUE(pg.device() == Device::cpu());
    for (const Layout& layout : kLayouts) {
      SCOPED_TRACE(std::string(layout.name) + ", rank " + std::to_string(r));
      const Placed t = place(layout, kShape, DType::float32, values(r, kNumel, DType::float32));
      const Tensor staged = on_group_device(pg, t.view);
      EXPECT_EQ(takes_as_is(pg, t.view), layout.contiguous);
      EXPECT_EQ(staged.is_same(t.view), layout.contiguous);
      EXPECT_EQ(staged.data_ptr() == t.view.data_ptr(), layout.contiguous);
      EXPECT_TRUE(staged.is_contiguous());
      EXPECT_EQ(staged.device(), Device::cpu());
      EXPECT_EQ(staged.to_vector<double>(), t.view.to_vector<double>());
    }
  });
}

// The single-process group has no device of its own: any device is taken, contiguity still counts.
TEST(CollectiveStaging, SingleProcessGroupTakesEveryDevice) {
  SelfProcessGroup pg;
  EXPECT_FALSE(pg.device().has_value());
  for (const Layout& layout : kLayouts) {
    SCOPED_TRACE(layout.name);
    Placed t = place(layout, kShape, DType::int64, values(0, kNumel, DType::int64));
    EXPECT_EQ(takes_as_is(pg, t.view), layout.contiguous);
    staged_broadcast(pg, t.view, 0);
    EXPECT_EQ(t.view.to_vector<double>(), values(0, kNumel, DType::int64));
  }
}

// The group's contract and errors are unchanged: an undefined tensor reaches it and is named there.
TEST(CollectiveStaging, TheGroupsOwnErrorsComeThrough) {
  SelfProcessGroup self;
  Tensor undefined;
  EXPECT_TRUE(takes_as_is(self, undefined));
  EXPECT_CONTAINS(thrown<ValueError>([&] { staged_broadcast(self, undefined, 1); }),
                  "root must be 0");
  run_ranks([](int, ProcessGroup& pg) {
    Tensor none;
    EXPECT_CONTAINS(thrown<ValueError>([&] { staged_all_reduce(pg, none); }), "undefined");
    Tensor flags = zeros({3, 2}, {.dtype = DType::bool_}).t();
    EXPECT_CONTAINS(thrown<DTypeError>([&] { staged_all_reduce(pg, flags, ReduceOp::sum); }),
                    "cannot reduce a bool tensor");
  });
}

}  // namespace
}  // namespace fabric::distributed
