// The shared-memory all_reduce under the Gloo group, driven directly: rendezvous (on one host every
// rank maps the segment, one rank opting out turns it off for all, nothing is left in /dev/shm),
// chunking and per-rank shares (sizes around the chunk and below the rank count), rank-order
// reduction, and failing fast instead of hanging (timeout naming the rank, on every rank that
// waited for it, a peer's abort, calls that differ, a peer that announced another collective). The
// group-level tests (every dtype and op, killed peer process, skipped collective) are in
// test_gloo_process_group.cpp.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "distributed/gloo_call_check.h"
#include "distributed/gloo_reduce.h"
#include "distributed/shm_all_reduce.h"
#include "distributed/store.h"
#include "tensor/float_formats.h"
#include "tests/common/expect_error.h"

namespace fabric::distributed::gloo_detail {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

std::set<std::string> segments_in_dev_shm() {
  std::set<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/dev/shm", ec))
    if (e.path().filename().string().rfind("fabric-gloo-", 0) == 0) out.insert(e.path().string());
  return out;
}

// Connects `size` ranks (threads over one HashStore) and runs body(rank, segment-or-null).
void with_ranks(int size, const std::function<bool(int)>& enabled,
                const std::function<void(int, ShmAllReduce*)>& body) {
  HashStore store;
  std::vector<std::string> errors(static_cast<size_t>(size));
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r)
    threads.emplace_back([&, r] {
      try {
        auto shm = ShmAllReduce::connect(store, r, size, enabled(r));
        body(r, shm.get());
      } catch (const std::exception& e) {
        errors[size_t(r)] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < size; ++r) EXPECT_EQ(errors[size_t(r)], "") << "rank " << r;
}

const auto kAll = [](int) { return true; };

TEST(ShmAllReduce, ConnectsOnOneHostAndLeavesNothingInDevShm) {
  const auto before = segments_in_dev_shm();
  with_ranks(3, kAll, [](int, ShmAllReduce* shm) { EXPECT_NE(shm, nullptr); });
  EXPECT_EQ(segments_in_dev_shm(), before);
}

TEST(ShmAllReduce, OneRankOptingOutTurnsItOffForAll) {
  with_ranks(3, [](int r) { return r != 1; },
             [](int r, ShmAllReduce* shm) { EXPECT_EQ(shm, nullptr) << "rank " << r; });
  with_ranks(1, kAll, [](int, ShmAllReduce* shm) { EXPECT_EQ(shm, nullptr); });  // nothing to share
}

// Sizes around the 4 MiB chunk (1M floats) and below the rank count (empty shares), exact sums.
TEST(ShmAllReduce, ChunksAndSharesCoverEveryElement) {
  const int size = 3;
  const std::vector<size_t> sizes = {1, 2, 3, 1000, (size_t{1} << 20) - 1, size_t{1} << 20,
                                     (size_t{5} << 19) + 7};
  with_ranks(size, kAll, [&](int r, ShmAllReduce* shm) {
    ASSERT_NE(shm, nullptr);
    const ReduceFn sum = reduce_function(DType::float32, ReduceOp::sum, "test");
    for (size_t n : sizes) {
      std::vector<float> x(n);
      for (size_t i = 0; i < n; ++i) x[i] = float(i % 1009) + float(r) * 4096.f;
      shm->run(x.data(), {Shape{int64_t(n)}, DType::float32, ReduceOp::sum}, sum, Clock::now() + 20s);
      size_t bad = 0;
      for (size_t i = 0; i < n; ++i) bad += x[i] != 3.f * float(i % 1009) + 3.f * 4096.f;
      EXPECT_EQ(bad, 0u) << "n = " << n << ", rank " << r;
    }
  });
}

// Rounding of the reduced float formats happens per pairwise step in rank order, the same bits on
// every rank: ((1 + 2^-8) + 2^-8) in bfloat16 is 1 (each step rounds back), not 1 + 2^-7.
TEST(ShmAllReduce, ReducesInRankOrderWithTheSameBitsEverywhere) {
  std::vector<float> got(3);
  with_ranks(3, kAll, [&](int r, ShmAllReduce* shm) {
    ASSERT_NE(shm, nullptr);
    std::vector<BFloat16> x(5, BFloat16(r == 0 ? 1.f : 0x1p-8f));
    shm->run(x.data(), {Shape{5}, DType::bfloat16, ReduceOp::sum},
             reduce_function(DType::bfloat16, ReduceOp::sum, "test"), Clock::now() + 20s);
    for (const BFloat16& v : x) EXPECT_EQ(float(v), float(x[0]));
    got[size_t(r)] = float(x[0]);
  });
  EXPECT_EQ(got, std::vector<float>(3, 1.f));
}

TEST(ShmAllReduce, TimeoutNamesTheRankThatNeverCame) {
  with_ranks(2, kAll, [](int r, ShmAllReduce* shm) {
    ASSERT_NE(shm, nullptr);
    if (r == 1) return;  // skips the collective
    std::vector<float> x(10, 1.f);
    const auto t0 = Clock::now();
    const std::string msg = thrown<TimeoutError>([&] {
      shm->run(x.data(), {Shape{10}, DType::float32, ReduceOp::sum},
               reduce_function(DType::float32, ReduceOp::sum, "test"), t0 + 300ms);
    });
    EXPECT_GE(Clock::now() - t0, 300ms);
    EXPECT_LT(Clock::now() - t0, 3s);
    EXPECT_CONTAINS(msg, "rank 1");
    EXPECT_CONTAINS(msg, "timed out");
  });
}

// Ranks 0 and 1 wait for rank 2, which never comes. Rank 0's deadline passes first; rank 1, whose
// deadline is far off, must learn from the segment that this was a timeout waiting for rank 2 and
// say so (not "a peer's group broke"). Rank 2, arriving after both gave up, is told who left.
TEST(ShmAllReduce, EveryRankWaitingForAMissingRankTimesOutNamingIt) {
  std::atomic<int> failed{0};
  with_ranks(3, kAll, [&](int r, ShmAllReduce* shm) {
    ASSERT_NE(shm, nullptr);
    std::vector<float> x(10, 1.f);
    const ReduceFn sum = reduce_function(DType::float32, ReduceOp::sum, "test");
    const auto t0 = Clock::now();
    if (r == 2) {
      while (failed.load() < 2 && Clock::now() - t0 < 10s) std::this_thread::sleep_for(1ms);
      const std::string msg = thrown<DistributedError>(
          [&] { shm->run(x.data(), {Shape{10}, DType::float32, ReduceOp::sum}, sum, Clock::now() + 20s); });
      EXPECT_CONTAINS(msg, "rank 0 timed out waiting for this rank (rank 2)");
      return;
    }
    const std::string msg = thrown<TimeoutError>(
        [&] { shm->run(x.data(), {Shape{10}, DType::float32, ReduceOp::sum}, sum, t0 + (r == 0 ? 200ms : 20s)); });
    ++failed;
    EXPECT_LT(Clock::now() - t0, 5s) << "rank " << r;  // rank 1 did not sit out its own 20 s
    EXPECT_CONTAINS(msg, "timed out waiting for rank 2");
    if (r == 1) EXPECT_CONTAINS(msg, "rank 0 reached its timeout waiting for it first");
  });
}

// Ranks that pass different element counts, dtypes or ops all fail, naming rank 0's call and the
// first rank that differs, instead of reducing each other's bytes (4 floats were summed with the
// first 4 of 8; float32 bytes with float64 ones; a rank with an empty tensor left at once while
// the others waited for their timeout); nothing is written into their tensors, and the segment is
// broken afterwards, so a next call fails at once rather than waiting for its timeout.
TEST(ShmAllReduce, RanksThatDisagreeOnTheCallAllFail) {
  struct Case {
    std::function<ShmAllReduceCall(int)> call;
    std::vector<std::string> expected;
    bool shape, dtype;  // the error's type (else ValueError)
  };
  static const Shape s4{4}, s8{2, 4}, s1{1}, s0{0};
  const std::vector<Case> cases = {
      {[](int r) { return ShmAllReduceCall{r == 2 ? s8 : s4, DType::float32, ReduceOp::sum}; },
       {"rank 0 passes shape (4,) (4 elements) but rank 2 passes shape (2, 4) (8 elements)"}, true, false},
      {[](int r) { return ShmAllReduceCall{s4, r == 2 ? DType::float64 : DType::float32, ReduceOp::sum}; },
       {"rank 0 passes float32 (shape (4,)) but rank 2 passes float64 (shape (4,))", "same dtype"}, false, true},
      {[](int r) { return ShmAllReduceCall{r == 1 ? s1 : s4, DType::float32, ReduceOp::sum}; },
       {"rank 0 passes shape (4,) (4 elements) but rank 1 passes shape (1,) (1 element)"}, true, false},
      {[](int r) { return ShmAllReduceCall{s4, DType::float32, r == 1 ? ReduceOp::max : ReduceOp::sum}; },
       {"rank 0 reduces with sum but rank 1 with max"}, false, false},
      {[](int r) { return ShmAllReduceCall{r == 1 ? s0 : s4, DType::float32, ReduceOp::sum}; },
       {"rank 0 passes shape (4,) (4 elements) but rank 1 passes shape (0,) (0 elements)"}, true, false},
  };
  for (const Case& c : cases) {
    with_ranks(3, kAll, [&](int r, ShmAllReduce* shm) {
      ASSERT_NE(shm, nullptr);
      const ShmAllReduceCall call = c.call(r);
      std::vector<double> x(8, double(r + 1));  // room for the largest call of any dtype
      const ReduceFn fn = reduce_function(call.dtype, call.op, "test");
      const auto t0 = Clock::now();
      auto run = [&] { shm->run(x.data(), call, fn, t0 + 20s); };
      const std::string msg = c.shape   ? thrown<ShapeError>(run)
                              : c.dtype ? thrown<DTypeError>(run)
                                        : thrown<ValueError>(run);
      for (const auto& e : c.expected) EXPECT_CONTAINS(msg, e) << "rank " << r;
      EXPECT_EQ(x, std::vector<double>(8, double(r + 1))) << "rank " << r;
      EXPECT_CONTAINS(thrown<DistributedError>(run), "broke");
      EXPECT_LT(Clock::now() - t0, 5s) << "rank " << r;
    });
  }
}

// Rank 2 issues a barrier (over TCP, announced here) where ranks 0 and 1 call all_reduce: they
// fail at once, naming it, instead of waiting for rank 2 until their timeout.
TEST(ShmAllReduce, APeerThatAnnouncedAnotherCollectiveFailsTheRanksInRunAtOnce) {
  with_ranks(3, kAll, [](int r, ShmAllReduce* shm) {
    ASSERT_NE(shm, nullptr);
    if (r == 2) {
      shm->announce(make_call_record(Collective::barrier, Tensor()));
      return;
    }
    std::vector<float> x(10, 1.f);
    const auto t0 = Clock::now();
    auto run = [&] {
      shm->run(x.data(), {Shape{10}, DType::float32, ReduceOp::sum},
               reduce_function(DType::float32, ReduceOp::sum, "test"), t0 + 20s);
    };
    EXPECT_CONTAINS(thrown<ShmOtherCollective>(run), "rank 2 issues barrier");
    EXPECT_LT(Clock::now() - t0, 5s) << "rank " << r;
    EXPECT_EQ(x, std::vector<float>(10, 1.f));
    EXPECT_CONTAINS(thrown<DistributedError>(run), "broke");
  });
}

TEST(ShmAllReduce, APeersAbortFailsAWaitingRankAtOnce) {
  with_ranks(2, kAll, [](int r, ShmAllReduce* shm) {
    ASSERT_NE(shm, nullptr);
    if (r == 1) {
      std::this_thread::sleep_for(100ms);
      shm->abort();  // what a rank whose group broke does
      return;
    }
    std::vector<float> x(10, 1.f);
    const auto t0 = Clock::now();
    const std::string msg = thrown<DistributedError>([&] {
      shm->run(x.data(), {Shape{10}, DType::float32, ReduceOp::sum},
               reduce_function(DType::float32, ReduceOp::sum, "test"), t0 + 30s);
    });
    EXPECT_LT(Clock::now() - t0, 3s);
    EXPECT_CONTAINS(msg, "broke");
  });
}

}  // namespace
}  // namespace fabric::distributed::gloo_detail
