// Mismatched collectives on the Gloo group: ranks that pass different element counts, dtypes,
// ops, roots or counts, or issue different collectives, get ShapeError / DTypeError / ValueError /
// DistributedError on every rank, at once (not at the timeout), naming the operation and what the
// ranks passed, with nothing written into their tensors; the group is broken afterwards and says
// so. Over TCP, Gloo's transport used to terminate the process instead: a message larger than the
// receive posted for it fails an enforce on Gloo's event-loop thread, outside any caller's try.
// The same holds for a send and its recv that disagree (both ranks fail), and on one host, where
// all_reduce takes the shared-memory segment, for an empty tensor there or an all_reduce that
// meets another collective (both used to wait for their timeout).
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "distributed/gloo_process_group.h"
#include "distributed/store.h"
#include "tensor/factory.h"
#include "tests/common/expect_error.h"

namespace fabric::distributed {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Far beyond how long a mismatch may take to surface: failing near it would mean a timeout.
constexpr auto kGroupTimeout = 20s;
constexpr auto kPromptly = 5s;

enum class Expect { shape, dtype, value, distributed };

// What one rank does in a case: `written` is the tensor the collective would write into (checked
// unchanged afterwards), `issue` starts the collective.
struct RankCall {
  Tensor written;
  std::function<WorkPtr(ProcessGroup&)> issue;
};

struct MismatchCase {
  const char* name;
  int size;
  // Rank r's call; `odd` is true for the last rank, the one that passes something else.
  std::function<RankCall(int r, bool odd)> call;
  Expect error;
  // In every rank's message (besides "rank r of size", which every message has).
  std::vector<std::string> expected;
};

Tensor filled(int64_t n, double v, DType dtype = DType::float32) {
  return full({n}, v, {.dtype = dtype});
}

RankCall all_reduce(Tensor t, ReduceOp op = ReduceOp::sum) {
  return {t, [t, op](ProcessGroup& pg) mutable { return pg.all_reduce(t, op); }};
}
RankCall reduce_scatter(int64_t out_n, DType dtype, int size) {
  Tensor out = filled(out_n, -1, dtype), in = filled(out_n * size, 1, dtype);
  return {out, [out, in](ProcessGroup& pg) mutable { return pg.reduce_scatter(out, in); }};
}
RankCall all_gather(int64_t in_n, DType dtype, int size) {
  Tensor out = filled(in_n * size, -1, dtype), in = filled(in_n, 1, dtype);
  return {out, [out, in](ProcessGroup& pg) mutable { return pg.all_gather(out, in); }};
}
RankCall all_gather_v(int r, std::vector<int64_t> counts) {
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  Tensor out = filled(total, -1), in = filled(counts[size_t(r)], 1);
  return {out,
          [out, in, counts](ProcessGroup& pg) mutable { return pg.all_gather_v(out, in, counts); }};
}
RankCall broadcast(Tensor t, int root) {
  return {t, [t, root](ProcessGroup& pg) mutable { return pg.broadcast(t, root); }};
}
RankCall barrier() {
  return {Tensor(), [](ProcessGroup& pg) { return pg.barrier(); }};
}
RankCall send(Tensor t, int dst) {
  return {t, [t, dst](ProcessGroup& pg) { return pg.send(t, dst, 7); }};
}
RankCall recv(Tensor t, int src) {
  return {t, [t, src](ProcessGroup& pg) mutable { return pg.recv(t, src, 7); }};
}

const std::vector<MismatchCase> kCases = {
    {"all_reduce of 4 and 8 elements",
     2,
     [](int r, bool odd) { return all_reduce(filled(odd ? 8 : 4, r + 1)); },
     Expect::shape,
     {"all_reduce",
      "rank 0 passes shape (4,) (4 elements) but rank 1 passes shape (8,) (8 elements)"}},
    {"all_reduce of float32 and float64",
     2,
     [](int r, bool odd) {
       return all_reduce(filled(4, r + 1, odd ? DType::float64 : DType::float32));
     },
     Expect::dtype,
     {"all_reduce", "rank 0 passes float32 (shape (4,)) but rank 1 passes float64 (shape (4,))"}},
    {"all_reduce with sum and max",
     2,
     [](int r, bool odd) {
       return all_reduce(filled(4, r + 1), odd ? ReduceOp::max : ReduceOp::sum);
     },
     Expect::value,
     {"all_reduce", "rank 0 reduces with sum but rank 1 with max"}},
    {"all_reduce of 4 elements and an empty tensor",
     2,
     [](int r, bool odd) { return all_reduce(filled(odd ? 0 : 4, r + 1)); },
     Expect::shape,
     {"all_reduce",
      "rank 0 passes shape (4,) (4 elements) but rank 1 passes shape (0,) (0 elements)"}},
    {"all_reduce of 3 ranks, the last one with more elements",
     3,
     [](int r, bool odd) { return all_reduce(filled(odd ? 8 : 4, r + 1)); },
     Expect::shape,
     {"rank 0 passes shape (4,) (4 elements) but rank 2 passes shape (8,) (8 elements)"}},
    // Rank 1's ring peers (0 and 2) agree with it: it learns of rank 3 all the same.
    {"all_reduce of 4 ranks, the last one with fewer elements",
     4,
     [](int r, bool odd) { return all_reduce(filled(odd ? 2 : 4, r + 1)); },
     Expect::shape,
     {"rank 0 passes shape (4,) (4 elements) but rank 3 passes shape (2,) (2 elements)"}},
    {"reduce_scatter of 8 and 16 input elements",
     2,
     [](int, bool odd) { return reduce_scatter(odd ? 8 : 4, DType::float32, 2); },
     Expect::shape,
     {"reduce_scatter",
      "rank 0 passes shape (8,) (8 elements) but rank 1 passes shape (16,) (16 elements)"}},
    {"reduce_scatter of float32 and bfloat16",
     2,
     [](int, bool odd) { return reduce_scatter(4, odd ? DType::bfloat16 : DType::float32, 2); },
     Expect::dtype,
     {"reduce_scatter", "rank 0 passes float32 (shape (8,)) but rank 1 passes bfloat16"}},
    {"reduce_scatter with sum and min",
     2,
     [](int, bool odd) {
       Tensor out = filled(4, -1), in = filled(8, 1);
       const ReduceOp op = odd ? ReduceOp::min : ReduceOp::sum;
       return RankCall{
           out, [out, in, op](ProcessGroup& pg) mutable { return pg.reduce_scatter(out, in, op); }};
     },
     Expect::value,
     {"reduce_scatter", "rank 0 reduces with sum but rank 1 with min"}},
    {"all_gather of 3 and 5 elements",
     2,
     [](int, bool odd) { return all_gather(odd ? 5 : 3, DType::float32, 2); },
     Expect::shape,
     {"all_gather",
      "rank 0 passes shape (3,) (3 elements) but rank 1 passes shape (5,) (5 elements)"}},
    // The same bytes: Gloo itself would hand over int32 bits as float32 values.
    {"all_gather of float32 and int32",
     2,
     [](int, bool odd) { return all_gather(3, odd ? DType::int32 : DType::float32, 2); },
     Expect::dtype,
     {"all_gather", "rank 0 passes float32 (shape (3,)) but rank 1 passes int32 (shape (3,))"}},
    {"all_gather_v with counts that differ between ranks",
     2,
     [](int r, bool odd) {
       return all_gather_v(r, odd ? std::vector<int64_t>{3, 9} : std::vector<int64_t>{3, 8});
     },
     Expect::shape,
     {"all_gather_v", "counts", "(3, 9)"}},
    {"broadcast of 4 and 8 elements",
     2,
     [](int r, bool odd) { return broadcast(filled(odd ? 8 : 4, r + 1), 0); },
     Expect::shape,
     {"broadcast",
      "rank 0 passes shape (4,) (4 elements) but rank 1 passes shape (8,) (8 elements)"}},
    {"broadcast of float64 and int64",
     2,
     [](int r, bool odd) {
       return broadcast(filled(4, r + 1, odd ? DType::int64 : DType::float64), 0);
     },
     Expect::dtype,
     {"broadcast", "rank 0 passes float64 (shape (4,)) but rank 1 passes int64 (shape (4,))"}},
    {"broadcast from different roots",
     2,
     [](int r, bool odd) { return broadcast(filled(4, r + 1), odd ? 1 : 0); },
     Expect::value,
     {"broadcast", "rank 0 broadcasts from root rank 0 but rank 1 from root rank 1"}},
    {"all_gather on one rank, broadcast on the other",
     2,
     [](int r, bool odd) {
       return odd ? broadcast(filled(6, r + 1), 0) : all_gather(3, DType::float32, 2);
     },
     Expect::distributed,
     {"rank 0 issues all_gather but rank 1 issues broadcast"}},
    {"all_reduce on one rank, barrier on the other",
     2,
     [](int r, bool odd) { return odd ? barrier() : all_reduce(filled(4, r + 1)); },
     Expect::distributed,
     {"rank 0 issues all_reduce but rank 1 issues barrier"}},
    {"all_gather on one rank, all_reduce on the other",
     2,
     [](int r, bool odd) {
       return odd ? all_reduce(filled(6, r + 1)) : all_gather(3, DType::float32, 2);
     },
     Expect::distributed,
     {"rank 0 issues all_gather but rank 1 issues all_reduce"}},
    // On one host ranks 0 and 1 meet in the segment; rank 2 waits for their records over TCP.
    {"all_reduce on two of 3 ranks, barrier on the third",
     3,
     [](int r, bool odd) { return odd ? barrier() : all_reduce(filled(4, r + 1)); },
     Expect::distributed,
     {"rank 0 issues all_reduce but rank 2 issues barrier"}},
    // Rank 0 sends, rank 1 receives. A larger message than the receive posted for it used to end
    // the process (Gloo's enforce on its event-loop thread); a smaller one completed, the rest of
    // the receiver's tensor stale; another dtype of the same bytes was reinterpreted.
    {"send of 8 elements to a recv of 4",
     2,
     [](int r, bool odd) { return odd ? recv(filled(4, -1), 0) : send(filled(8, r + 1), 1); },
     Expect::shape,
     {"rank 0 sends shape (8,) (8 elements) to rank 1 but rank 1 receives into shape (4,) (4 "
      "elements)",
      "tag 7"}},
    {"send of 4 elements to a recv of 8",
     2,
     [](int r, bool odd) { return odd ? recv(filled(8, -1), 0) : send(filled(4, r + 1), 1); },
     Expect::shape,
     {"rank 0 sends shape (4,) (4 elements) to rank 1 but rank 1 receives into shape (8,) (8 "
      "elements)"}},
    {"send of float32 to a recv of int32",
     2,
     [](int r, bool odd) {
       return odd ? recv(filled(4, -1, DType::int32), 0) : send(filled(4, r + 1), 1);
     },
     Expect::dtype,
     {"rank 0 sends float32 (shape (4,)) to rank 1 but rank 1 receives into int32 (shape (4,))"}},
};

std::string thrown_expected(Expect e, const std::function<void()>& fn) {
  switch (e) {
    case Expect::shape:
      return thrown<ShapeError>(fn);
    case Expect::dtype:
      return thrown<DTypeError>(fn);
    case Expect::value:
      return thrown<ValueError>(fn);
    case Expect::distributed:
      break;
  }
  const std::string msg = thrown<DistributedError>(fn);
  EXPECT_EQ(msg.find("timed out"), std::string::npos) << msg;  // TimeoutError is one too
  return msg;
}

// Every rank of the case (a thread with its own group) fails promptly with the expected error,
// its tensor untouched; the next operation on the group fails at once, saying it is broken. Each
// rank keeps its group until all are done, so that none sees a peer's connections close instead.
void check_case(const MismatchCase& c, bool shared_memory) {
  SCOPED_TRACE(c.name);
  auto store = std::make_shared<HashStore>();
  std::latch done(c.size);
  std::vector<std::thread> threads;
  for (int r = 0; r < c.size; ++r) {
    threads.emplace_back([&, r] {
      SCOPED_TRACE("rank " + std::to_string(r));
      std::shared_ptr<ProcessGroup> pg;
      try {
        pg = make_gloo_process_group(store, r, c.size,
                                     {.timeout = kGroupTimeout, .shared_memory = shared_memory});
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
        done.count_down();
        return;
      }
      RankCall call = c.call(r, r == c.size - 1);
      const std::vector<double> before =
          call.written.defined() ? call.written.to_vector<double>() : std::vector<double>();
      auto t0 = Clock::now();
      const std::string msg = thrown_expected(c.error, [&] { call.issue(*pg)->wait(); });
      EXPECT_LT(Clock::now() - t0, kPromptly);
      EXPECT_CONTAINS(msg, "rank " + std::to_string(r) + " of " + std::to_string(c.size));
      for (const std::string& s : c.expected) EXPECT_CONTAINS(msg, s);
      EXPECT_CONTAINS(msg, "cannot be used again");
      if (call.written.defined()) EXPECT_EQ(call.written.to_vector<double>(), before);
      t0 = Clock::now();
      EXPECT_CONTAINS(thrown<DistributedError>([&] { pg->barrier()->wait(); }), "broken");
      EXPECT_LT(Clock::now() - t0, 1s);
      done.arrive_and_wait();
    });
  }
  for (auto& t : threads) t.join();
}

TEST(GlooMismatch, EveryMismatchFailsOnEveryRankOverTcp) {
  for (const MismatchCase& c : kCases) check_case(c, false);
}

TEST(GlooMismatch, EveryMismatchFailsOnEveryRankOnOneHost) {
  for (const MismatchCase& c : kCases) check_case(c, true);
}

}  // namespace
}  // namespace fabric::distributed
