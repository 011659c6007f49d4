// The shared-memory collectives under the Gloo group, driven directly (all_reduce; reduce_scatter
// and all_gather at the end): rendezvous (on one host every
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
#include "distributed/shm_collectives.h"
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
                const std::function<void(int, ShmCollectives*)>& body) {
  HashStore store;
  std::vector<std::string> errors(static_cast<size_t>(size));
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r)
    threads.emplace_back([&, r] {
      try {
        auto shm = ShmCollectives::connect(store, r, size, enabled(r));
        body(r, shm.get());
      } catch (const std::exception& e) {
        errors[size_t(r)] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < size; ++r) EXPECT_EQ(errors[size_t(r)], "") << "rank " << r;
}

const auto kAll = [](int) { return true; };

TEST(ShmCollectives, ConnectsOnOneHostAndLeavesNothingInDevShm) {
  const auto before = segments_in_dev_shm();
  with_ranks(3, kAll, [](int, ShmCollectives* shm) { EXPECT_NE(shm, nullptr); });
  EXPECT_EQ(segments_in_dev_shm(), before);
}

TEST(ShmCollectives, OneRankOptingOutTurnsItOffForAll) {
  with_ranks(3, [](int r) { return r != 1; },
             [](int r, ShmCollectives* shm) { EXPECT_EQ(shm, nullptr) << "rank " << r; });
  with_ranks(1, kAll, [](int, ShmCollectives* shm) { EXPECT_EQ(shm, nullptr); });  // nothing to share
}

// Sizes around the 4 MiB chunk (1M floats) and below the rank count (empty shares), exact sums.
TEST(ShmCollectives, ChunksAndSharesCoverEveryElement) {
  const int size = 3;
  const std::vector<size_t> sizes = {1, 2, 3, 1000, (size_t{1} << 20) - 1, size_t{1} << 20,
                                     (size_t{5} << 19) + 7};
  with_ranks(size, kAll, [&](int r, ShmCollectives* shm) {
    ASSERT_NE(shm, nullptr);
    const ReduceFn sum = reduce_function(DType::float32, ReduceOp::sum, "test");
    for (size_t n : sizes) {
      std::vector<float> x(n);
      for (size_t i = 0; i < n; ++i) x[i] = float(i % 1009) + float(r) * 4096.f;
      shm->all_reduce(x.data(), {Shape{int64_t(n)}, DType::float32, ReduceOp::sum}, sum, Clock::now() + 20s);
      size_t bad = 0;
      for (size_t i = 0; i < n; ++i) bad += x[i] != 3.f * float(i % 1009) + 3.f * 4096.f;
      EXPECT_EQ(bad, 0u) << "n = " << n << ", rank " << r;
    }
  });
}

// Rounding of the reduced float formats happens per pairwise step in rank order, the same bits on
// every rank: ((1 + 2^-8) + 2^-8) in bfloat16 is 1 (each step rounds back), not 1 + 2^-7.
TEST(ShmCollectives, ReducesInRankOrderWithTheSameBitsEverywhere) {
  std::vector<float> got(3);
  with_ranks(3, kAll, [&](int r, ShmCollectives* shm) {
    ASSERT_NE(shm, nullptr);
    std::vector<BFloat16> x(5, BFloat16(r == 0 ? 1.f : 0x1p-8f));
    shm->all_reduce(x.data(), {Shape{5}, DType::bfloat16, ReduceOp::sum},
             reduce_function(DType::bfloat16, ReduceOp::sum, "test"), Clock::now() + 20s);
    for (const BFloat16& v : x) EXPECT_EQ(float(v), float(x[0]));
    got[size_t(r)] = float(x[0]);
  });
  EXPECT_EQ(got, std::vector<float>(3, 1.f));
}

TEST(ShmCollectives, TimeoutNamesTheRankThatNeverCame) {
  with_ranks(2, kAll, [](int r, ShmCollectives* shm) {
    ASSERT_NE(shm, nullptr);
    if (r == 1) return;  // skips the collective
    std::vector<float> x(10, 1.f);
    const auto t0 = Clock::now();
    const std::string msg = thrown<TimeoutError>([&] {
      shm->all_reduce(x.data(), {Shape{10}, DType::float32, ReduceOp::sum},
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
TEST(ShmCollectives, EveryRankWaitingForAMissingRankTimesOutNamingIt) {
  std::atomic<int> failed{0};
  with_ranks(3, kAll, [&](int r, ShmCollectives* shm) {
    ASSERT_NE(shm, nullptr);
    std::vector<float> x(10, 1.f);
    const ReduceFn sum = reduce_function(DType::float32, ReduceOp::sum, "test");
    const auto t0 = Clock::now();
    if (r == 2) {
      while (failed.load() < 2 && Clock::now() - t0 < 10s) std::this_thread::sleep_for(1ms);
      const std::string msg = thrown<DistributedError>(
          [&] { shm->all_reduce(x.data(), {Shape{10}, DType::float32, ReduceOp::sum}, sum, Clock::now() + 20s); });
      EXPECT_CONTAINS(msg, "rank 0 timed out waiting for this rank (rank 2)");
      return;
    }
    const std::string msg = thrown<TimeoutError>(
        [&] { shm->all_reduce(x.data(), {Shape{10}, DType::float32, ReduceOp::sum}, sum, t0 + (r == 0 ? 200ms : 20s)); });
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
TEST(ShmCollectives, RanksThatDisagreeOnTheCallAllFail) {
  struct Case {
    std::function<ShmCall(int)> call;
    std::vector<std::string> expected;
    bool shape, dtype;  // the error's type (else ValueError)
  };
  static const Shape s4{4}, s8{2, 4}, s1{1}, s0{0};
  const std::vector<Case> cases = {
      {[](int r) { return ShmCall{r == 2 ? s8 : s4, DType::float32, ReduceOp::sum}; },
       {"rank 0 passes shape (4,) (4 elements) but rank 2 passes shape (2, 4) (8 elements)"}, true, false},
      {[](int r) { return ShmCall{s4, r == 2 ? DType::float64 : DType::float32, ReduceOp::sum}; },
       {"rank 0 passes float32 (shape (4,)) but rank 2 passes float64 (shape (4,))", "same dtype"}, false, true},
      {[](int r) { return ShmCall{r == 1 ? s1 : s4, DType::float32, ReduceOp::sum}; },
       {"rank 0 passes shape (4,) (4 elements) but rank 1 passes shape (1,) (1 element)"}, true, false},
      {[](int r) { return ShmCall{s4, DType::float32, r == 1 ? ReduceOp::max : ReduceOp::sum}; },
       {"rank 0 reduces with sum but rank 1 with max"}, false, false},
      {[](int r) { return ShmCall{r == 1 ? s0 : s4, DType::float32, ReduceOp::sum}; },
       {"rank 0 passes shape (4,) (4 elements) but rank 1 passes shape (0,) (0 elements)"}, true, false},
  };
  for (const Case& c : cases) {
    with_ranks(3, kAll, [&](int r, ShmCollectives* shm) {
      ASSERT_NE(shm, nullptr);
      const ShmCall call = c.call(r);
      std::vector<double> x(8, double(r + 1));  // room for the largest call of any dtype
      const ReduceFn fn = reduce_function(call.dtype, call.op, "test");
      const auto t0 = Clock::now();
      auto run = [&] { shm->all_reduce(x.data(), call, fn, t0 + 20s); };
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
TEST(ShmCollectives, APeerThatAnnouncedAnotherCollectiveFailsTheRanksInRunAtOnce) {
  with_ranks(3, kAll, [](int r, ShmCollectives* shm) {
    ASSERT_NE(shm, nullptr);
    if (r == 2) {
      shm->announce(make_call_record(Collective::barrier, Tensor()));
      return;
    }
    std::vector<float> x(10, 1.f);
    const auto t0 = Clock::now();
    auto run = [&] {
      shm->all_reduce(x.data(), {Shape{10}, DType::float32, ReduceOp::sum},
               reduce_function(DType::float32, ReduceOp::sum, "test"), t0 + 20s);
    };
    EXPECT_CONTAINS(thrown<ShmOtherCollective>(run), "rank 2 issues barrier");
    EXPECT_LT(Clock::now() - t0, 5s) << "rank " << r;
    EXPECT_EQ(x, std::vector<float>(10, 1.f));
    EXPECT_CONTAINS(thrown<DistributedError>(run), "broke");
  });
}

TEST(ShmCollectives, APeersAbortFailsAWaitingRankAtOnce) {
  with_ranks(2, kAll, [](int r, ShmCollectives* shm) {
    ASSERT_NE(shm, nullptr);
    if (r == 1) {
      std::this_thread::sleep_for(100ms);
      shm->abort();  // what a rank whose group broke does
      return;
    }
    std::vector<float> x(10, 1.f);
    const auto t0 = Clock::now();
    const std::string msg = thrown<DistributedError>([&] {
      shm->all_reduce(x.data(), {Shape{10}, DType::float32, ReduceOp::sum},
               reduce_function(DType::float32, ReduceOp::sum, "test"), t0 + 30s);
    });
    EXPECT_LT(Clock::now() - t0, 3s);
    EXPECT_CONTAINS(msg, "broke");
  });
}

// reduce_scatter: round boundaries (a round carries 4 MiB / (3 ranks x 4 bytes) = 349,525 columns
// of every chunk here), a chunk of one element and an empty one, and the output being this rank's
// chunk of the input; exact integer-valued sums.
TEST(ShmCollectives, ReduceScatterCoversEveryChunkAcrossRounds) {
  const int size = 3;
  const std::vector<size_t> chunks = {0, 1, 2, 1000, 349525, 349526, 2 * 349525 + 7};
  with_ranks(size, kAll, [&](int r, ShmCollectives* shm) {
    ASSERT_NE(shm, nullptr);
    const ReduceFn sum = reduce_function(DType::float32, ReduceOp::sum, "test");
    auto value = [](int rank, size_t i) { return float(i % 1013) + float(rank) * 2048.f; };
    for (size_t n : chunks) {
      for (bool in_place : {false, true}) {
        std::vector<float> in(n * size), out(n, -1.f);
        for (size_t i = 0; i < in.size(); ++i) in[i] = value(r, i);
        const std::vector<float> before = in;
        float* o = in_place ? in.data() + n * size_t(r) : out.data();
        shm->reduce_scatter(o, in.data(), {Shape{int64_t(n * size)}, DType::float32}, sum,
                            Clock::now() + 20s);
        size_t bad = 0;
        for (size_t i = 0; i < n; ++i)
          bad += o[i] != 3.f * float((n * size_t(r) + i) % 1013) + 3.f * 2048.f;
        EXPECT_EQ(bad, 0u) << "chunk " << n << ", rank " << r << (in_place ? ", in place" : "");
        if (!in_place) EXPECT_TRUE(in == before) << "the input must stay as it was";
      }
    }
  });
}

// The order of the TCP ring (ring_reduce_scatter), not rank order: rank r's chunk is
// ((x[r+1] + x[r+2]) + ...) + x[r]. In bfloat16 each step rounds: with 1 on rank 1 and 2^-8 on
// the others, rank 0's chunk is (1 + 2^-8) + 2^-8 = 1 (rank 1 first), rank 1's
// (2^-8 + 2^-8) + 1 = 1 + 2^-7, rank 2's (2^-8 + 1) + 2^-8 = 1. Rank order would give 1 on every
// rank.
TEST(ShmCollectives, ReduceScatterAddsInTheRingsOrder) {
  std::vector<float> got(3);
  with_ranks(3, kAll, [&](int r, ShmCollectives* shm) {
    ASSERT_NE(shm, nullptr);
    std::vector<BFloat16> in(3 * 4, BFloat16(r == 1 ? 1.f : 0x1p-8f)), out(4);
    shm->reduce_scatter(out.data(), in.data(), {Shape{12}, DType::bfloat16},
                        reduce_function(DType::bfloat16, ReduceOp::sum, "test"),
                        Clock::now() + 20s);
    for (const BFloat16& v : out) EXPECT_EQ(float(v), float(out[0]));
    got[size_t(r)] = float(out[0]);
  });
  EXPECT_EQ(got, (std::vector<float>{1.f, 1.f + 0x1p-7f, 1.f}));
}

// all_gather: round boundaries (4 MiB of the input per round), one element, empty, and in place
// (the input is this rank's block of the output).
TEST(ShmCollectives, AllGatherCopiesEveryBlockAcrossRounds) {
  const int size = 3;
  const std::vector<size_t> sizes = {0, 1, 3, 1000, size_t{1} << 20, (size_t{1} << 20) + 1,
                                     (size_t{5} << 19) + 7};
  with_ranks(size, kAll, [&](int r, ShmCollectives* shm) {
    ASSERT_NE(shm, nullptr);
    auto value = [](int rank, size_t i) { return int32_t(i * 7 + size_t(rank) * 1000003); };
    for (size_t n : sizes) {
      for (bool in_place : {false, true}) {
        std::vector<int32_t> in(n), out(n * size, -1);
        for (size_t i = 0; i < n; ++i) in[i] = value(r, i);
        if (in_place) std::copy(in.begin(), in.end(), out.begin() + std::ptrdiff_t(n * size_t(r)));
        const int32_t* src = in_place ? out.data() + n * size_t(r) : in.data();
        shm->all_gather(out.data(), src, {Shape{int64_t(n)}, DType::int32}, Clock::now() + 20s);
        size_t bad = 0;
        for (int q = 0; q < size; ++q)
          for (size_t i = 0; i < n; ++i) bad += out[size_t(q) * n + i] != value(q, i);
        EXPECT_EQ(bad, 0u) << "n = " << n << ", rank " << r << (in_place ? ", in place" : "");
      }
    }
  });
}

// Different collectives of the segment on different ranks: every rank fails with what the TCP
// check says, at once, with nothing written, and the segment is broken afterwards.
TEST(ShmCollectives, RanksInDifferentCollectivesOfTheSegmentAllFail) {
  with_ranks(3, kAll, [](int r, ShmCollectives* shm) {
    ASSERT_NE(shm, nullptr);
    std::vector<float> in(6, float(r + 1)), out(6, -1.f);
    const ReduceFn sum = reduce_function(DType::float32, ReduceOp::sum, "test");
    const auto t0 = Clock::now();
    auto run = [&] {
      if (r == 1)
        shm->all_gather(out.data(), in.data(), {Shape{2}, DType::float32}, t0 + 20s);
      else
        shm->reduce_scatter(out.data(), in.data(), {Shape{6}, DType::float32}, sum, t0 + 20s);
    };
    const std::string msg = thrown<DistributedError>(run);
    EXPECT_CONTAINS(msg, "rank 0 issues reduce_scatter but rank 1 issues all_gather");
    EXPECT_LT(Clock::now() - t0, 5s) << "rank " << r;
    EXPECT_EQ(out, std::vector<float>(6, -1.f)) << "rank " << r;
    EXPECT_CONTAINS(thrown<DistributedError>(run), "broke");
  });
}

}  // namespace
}  // namespace fabric::distributed::gloo_detail
