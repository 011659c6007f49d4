// The Gloo process group: every collective on 2 and 3 ranks (threads sharing a HashStore) with
// integer-valued data compared exactly, async ordering, a reduce-scatter stress, timeouts, broken
// groups, input validation, and a peer process killed mid-run.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "distributed/gloo_process_group.h"
#include "distributed/store.h"
#include "distributed/tcp_store.h"
#include "tensor/factory.h"
#include "tests/common/expect_error.h"

namespace fabric::distributed {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Runs body(rank, group) for timeouts.size() ranks, each a thread with its own group (rank r's
// timeout timeouts[r]) over one HashStore. A rank's exception becomes a test failure naming the
// rank. Ranks that are threads share the host, so all_reduce takes the shared-memory segment
// unless shared_memory is false.
void run_ranks_with_timeouts(const std::vector<std::chrono::milliseconds>& timeouts,
                             bool shared_memory,
                             const std::function<void(int, ProcessGroup&)>& body) {
  const int size = int(timeouts.size());
  auto store = std::make_shared<HashStore>();
  std::vector<std::string> errors(static_cast<size_t>(size));
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) {
    threads.emplace_back([&, r] {
      try {
        auto pg = make_gloo_process_group(
            store, r, size, {.timeout = timeouts[size_t(r)], .shared_memory = shared_memory});
        body(r, *pg);
      } catch (const std::exception& e) {
        errors[size_t(r)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < size; ++r) EXPECT_EQ(errors[size_t(r)], "") << "rank " << r;
}

void run_ranks(int size, const std::function<void(int, ProcessGroup&)>& body,
               std::chrono::milliseconds timeout = 5s, bool shared_memory = true) {
  run_ranks_with_timeouts(std::vector<std::chrono::milliseconds>(size_t(size), timeout),
                          shared_memory, body);
}

Tensor make(const std::vector<double>& v, DType dtype) {
  return from_vector<double>(v, {int64_t(v.size())}, {.dtype = dtype});
}

// Small integers, exact in every dtype (bf16 and int8 included) after summing three ranks.
double val(int rank, int64_t i) { return double((i * 7 + rank * 5) % 23) - 11.0; }

const std::vector<DType> kAllReduceDTypes = {DType::float32, DType::float64, DType::bfloat16,
                                             DType::float16, DType::int64,   DType::int32,
                                             DType::int8,    DType::uint8};

// Rank r's input for `op` and the expected reduction over `size` ranks, element i.
double input_for(ReduceOp op, DType dtype, int r, int64_t i) {
  switch (op) {
    case ReduceOp::product:
      return double((i + r) % 4 + 1) * ((dtype != DType::uint8 && (i + r) % 5 == 0) ? -1 : 1);
    case ReduceOp::avg:
      return double(i % 16) + 2.0 * r;  // the sum divides by the world size exactly
    default:
      return dtype == DType::uint8 ? val(r, i) + 11.0 : val(r, i);
  }
}
double expected_for(ReduceOp op, DType dtype, int size, int64_t i) {
  double acc = input_for(op, dtype, 0, i);
  for (int r = 1; r < size; ++r) {
    const double x = input_for(op, dtype, r, i);
    switch (op) {
      case ReduceOp::sum:
      case ReduceOp::avg:
        acc += x;
        break;
      case ReduceOp::product:
        acc *= x;
        break;
      case ReduceOp::max:
        acc = std::max(acc, x);
        break;
      case ReduceOp::min:
        acc = std::min(acc, x);
        break;
    }
  }
  return op == ReduceOp::avg ? acc / size : acc;
}

std::vector<ReduceOp> ops_for(DType dtype) {
  std::vector<ReduceOp> ops = {ReduceOp::sum, ReduceOp::product, ReduceOp::max, ReduceOp::min};
  if (is_floating(dtype)) ops.push_back(ReduceOp::avg);
  return ops;
}

void check_all_reduce(int size, bool shared_memory = true) {
  run_ranks(size, [&](int r, ProcessGroup& pg) {
    EXPECT_EQ(pg.rank(), r);
    EXPECT_EQ(pg.size(), size);
    EXPECT_EQ(pg.backend(), "gloo");
    const int64_t n = 1000;
    for (DType dtype : kAllReduceDTypes) {
      for (ReduceOp op : ops_for(dtype)) {
        std::vector<double> in(n), want(n);
        for (int64_t i = 0; i < n; ++i)
          in[size_t(i)] = input_for(op, dtype, r, i),
          want[size_t(i)] = expected_for(op, dtype, size, i);
        Tensor t = make(in, dtype);
        pg.all_reduce(t, op)->wait();
        EXPECT_EQ(t.to_vector<double>(), want)
            << "rank " << r << " " << dtype_name(dtype) << " " << to_string(op);
      }
    }
    // bool: max is any, min is all.
    std::vector<bool> b(64);
    for (size_t i = 0; i < b.size(); ++i) b[i] = (i + size_t(r)) % 3 == 0;
    Tensor any = from_vector<bool>(b), all = from_vector<bool>(b);
    pg.all_reduce(any, ReduceOp::max)->wait();
    pg.all_reduce(all, ReduceOp::min)->wait();
    const auto got_any = any.to_vector<double>(), got_all = all.to_vector<double>();
    for (size_t i = 0; i < b.size(); ++i) {
      bool a = false, m = true;
      for (int q = 0; q < size; ++q)
        a = a || (i + size_t(q)) % 3 == 0, m = m && (i + size_t(q)) % 3 == 0;
      EXPECT_EQ(got_any[i], a ? 1.0 : 0.0) << i;
      EXPECT_EQ(got_all[i], m ? 1.0 : 0.0) << i;
    }
  }, 5s, shared_memory);
}

TEST(GlooProcessGroup, AllReduceEveryDTypeAndOpTwoRanks) { check_all_reduce(2); }
TEST(GlooProcessGroup, AllReduceEveryDTypeAndOpThreeRanks) { check_all_reduce(3); }
TEST(GlooProcessGroup, AllReduceEveryDTypeAndOpTwoRanksOverTcp) { check_all_reduce(2, false); }
TEST(GlooProcessGroup, AllReduceEveryDTypeAndOpThreeRanksOverTcp) { check_all_reduce(3, false); }

void check_large_all_reduce(bool shared_memory) {
  // 3M floats: Gloo's ring splits this into many 1 MiB segments; the shared-memory path into
  // three 4 MiB chunks.
  run_ranks(2, [](int r, ProcessGroup& pg) {
    const int64_t n = 3 << 20;
    Tensor t = empty({n}, {.dtype = DType::float32});
    float* p = t.data<float>();
    for (int64_t i = 0; i < n; ++i) p[i] = float(i % 1021 + r);
    pg.all_reduce(t)->wait();
    int64_t bad = 0;
    for (int64_t i = 0; i < n; ++i) bad += p[i] != float(2 * (i % 1021) + 1);
    EXPECT_EQ(bad, 0);
  }, 5s, shared_memory);
}
TEST(GlooProcessGroup, AllReduceLargeSpansManySegments) { check_large_all_reduce(true); }
TEST(GlooProcessGroup, AllReduceLargeSpansManySegmentsOverTcp) { check_large_all_reduce(false); }

void check_reduce_scatter(int size) {
  run_ranks(size, [&](int r, ProcessGroup& pg) {
    const int64_t n = 37;  // per-rank chunk
    for (DType dtype :
         {DType::float32, DType::float64, DType::bfloat16, DType::int64, DType::int8}) {
      const std::vector<ReduceOp> ops =
          dtype == DType::float32 ? ops_for(dtype) : std::vector<ReduceOp>{ReduceOp::sum};
      for (ReduceOp op : ops) {
        std::vector<double> in(size_t(n * size));
        for (int64_t i = 0; i < n * size; ++i) in[size_t(i)] = input_for(op, dtype, r, i);
        std::vector<double> want(n);
        for (int64_t k = 0; k < n; ++k) want[size_t(k)] = expected_for(op, dtype, size, r * n + k);
        Tensor input = make(in, dtype);
        Tensor out = zeros({n}, {.dtype = dtype});
        pg.reduce_scatter(out, input, op)->wait();
        EXPECT_EQ(out.to_vector<double>(), want)
            << "rank " << r << " " << dtype_name(dtype) << " " << to_string(op);
        EXPECT_EQ(input.to_vector<double>(), in) << "reduce_scatter must not modify its input";
      }
    }
  });
}

TEST(GlooProcessGroup, ReduceScatterTwoRanks) { check_reduce_scatter(2); }
TEST(GlooProcessGroup, ReduceScatterThreeRanks) { check_reduce_scatter(3); }
// From 5 ranks on, the ring reuses its two send buffers (after waitSend).
TEST(GlooProcessGroup, ReduceScatterFiveRanks) { check_reduce_scatter(5); }

void reduce_scatter_stress(int size) {
  run_ranks(size, [&](int r, ProcessGroup& pg) {
    const int64_t n = 65536 / size;  // per-rank chunk: about 64K floats of input per rank
    Tensor in[2] = {empty({n * size}, {.dtype = DType::float32}),
                    empty({n * size}, {.dtype = DType::float32})};
    Tensor out[2] = {empty({n}, {.dtype = DType::float32}), empty({n}, {.dtype = DType::float32})};
    auto value = [](int it, int rank, int64_t i) {
      return float((i * 31 + it * 7 + rank * 13) % 1024);
    };
    int64_t wrong = 0;
    for (int it = 0; it < 300; it += 2) {
      // Two reduce-scatters in flight at once, then wait: back-to-back rings over the same peers.
      WorkPtr w[2];
      for (int k = 0; k < 2; ++k) {
        float* p = in[k].data<float>();
        for (int64_t i = 0; i < n * size; ++i) p[i] = value(it + k, r, i);
        w[k] = pg.reduce_scatter(out[k], in[k]);
      }
      for (int k = 0; k < 2; ++k) {
        w[k]->wait();
        const float* o = out[k].data<float>();
        for (int64_t i = 0; i < n; ++i) {
          float want = 0;
          for (int q = 0; q < size; ++q) want += value(it + k, q, r * n + i);
          wrong += o[i] != want;
        }
      }
    }
    EXPECT_EQ(wrong, 0) << "rank " << r;
  });
}

TEST(GlooProcessGroup, ReduceScatterStress300TwoRanks) { reduce_scatter_stress(2); }
TEST(GlooProcessGroup, ReduceScatterStress300ThreeRanks) { reduce_scatter_stress(3); }

void check_all_gather(int size) {
  run_ranks(size, [&](int r, ProcessGroup& pg) {
    const int64_t n = 29;
    for (DType dtype :
         {DType::float32, DType::float64, DType::bfloat16, DType::int64, DType::uint8}) {
      std::vector<double> in(n), want;
      for (int64_t i = 0; i < n; ++i) in[size_t(i)] = val(r, i) + (dtype == DType::uint8 ? 11 : 0);
      for (int q = 0; q < size; ++q)
        for (int64_t i = 0; i < n; ++i)
          want.push_back(val(q, i) + (dtype == DType::uint8 ? 11 : 0));
      Tensor out = zeros({size, n}, {.dtype = dtype});
      pg.all_gather(out, make(in, dtype))->wait();
      EXPECT_EQ(out.to_vector<double>(), want) << "rank " << r << " " << dtype_name(dtype);
      // In place: the input is this rank's slot of the output.
      Tensor flat = zeros({size * n}, {.dtype = dtype});
      Tensor mine = flat.narrow(0, r * n, n);
      mine.copy_(make(in, dtype));
      pg.all_gather(flat, mine)->wait();
      EXPECT_EQ(flat.to_vector<double>(), want) << "in place, rank " << r;
    }
  });
}

TEST(GlooProcessGroup, AllGatherTwoRanks) { check_all_gather(2); }
TEST(GlooProcessGroup, AllGatherThreeRanks) { check_all_gather(3); }

void check_all_gather_v(const std::vector<int64_t>& counts) {
  const int size = int(counts.size());
  run_ranks(size, [&](int r, ProcessGroup& pg) {
    for (DType dtype : {DType::float32, DType::int64, DType::bfloat16}) {
      std::vector<double> in(size_t(counts[size_t(r)])), want;
      for (size_t i = 0; i < in.size(); ++i) in[i] = 100.0 * r + double(i);
      for (int q = 0; q < size; ++q)
        for (int64_t i = 0; i < counts[size_t(q)]; ++i) want.push_back(100.0 * q + double(i));
      Tensor out = full({int64_t(want.size())}, -1, {.dtype = dtype});
      pg.all_gather_v(out, make(in, dtype), counts)->wait();
      EXPECT_EQ(out.to_vector<double>(), want) << "rank " << r << " " << dtype_name(dtype);
    }
  });
}

TEST(GlooProcessGroup, AllGatherUnevenTwoRanks) { check_all_gather_v({3, 8}); }
TEST(GlooProcessGroup, AllGatherUnevenThreeRanks) { check_all_gather_v({5, 1, 9}); }
TEST(GlooProcessGroup, AllGatherUnevenWithAnEmptyRank) { check_all_gather_v({4, 0, 7}); }

void check_broadcast(int size) {
  run_ranks(size, [&](int r, ProcessGroup& pg) {
    for (int root : {size - 1, 0}) {
      for (DType dtype : {DType::float32, DType::float64, DType::bfloat16, DType::int64}) {
        std::vector<double> in(50), want(50);
        for (int64_t i = 0; i < 50; ++i) in[size_t(i)] = val(r, i), want[size_t(i)] = val(root, i);
        Tensor t = make(in, dtype);
        pg.broadcast(t, root)->wait();
        EXPECT_EQ(t.to_vector<double>(), want)
            << "rank " << r << " root " << root << " " << dtype_name(dtype);
      }
    }
  });
}

TEST(GlooProcessGroup, BroadcastFromNonZeroRootTwoRanks) { check_broadcast(2); }
TEST(GlooProcessGroup, BroadcastFromNonZeroRootThreeRanks) { check_broadcast(3); }

void check_send_recv_ring(int size) {
  run_ranks(size, [&](int r, ProcessGroup& pg) {
    const int next = (r + 1) % size, prev = (r + size - 1) % size;
    for (bool recv_first : {false, true}) {
      for (DType dtype : {DType::float32, DType::int64}) {
        std::vector<double> mine(40), want(40);
        for (int64_t i = 0; i < 40; ++i)
          mine[size_t(i)] = val(r, i), want[size_t(i)] = val(prev, i);
        Tensor out = make(mine, dtype), in = zeros({40}, {.dtype = dtype});
        // Every rank posts both before waiting: neither may block the other.
        WorkPtr s, v;
        if (recv_first) {
          v = pg.recv(in, prev, 7);
          s = pg.send(out, next, 7);
        } else {
          s = pg.send(out, next, 7);
          v = pg.recv(in, prev, 7);
        }
        v->wait();
        s->wait();
        EXPECT_TRUE(v->is_completed());
        EXPECT_EQ(in.to_vector<double>(), want) << "rank " << r << " " << dtype_name(dtype);
      }
    }
    // Different tags between the same pair are matched by tag, not by order.
    if (r == 0) {
      Tensor a = full({4}, 1.0f), b = full({4}, 2.0f);
      WorkPtr wa = pg.send(a, 1, 11), wb = pg.send(b, 1, 12);
      wa->wait();
      wb->wait();
    } else if (r == 1) {
      Tensor b = zeros({4}), a = zeros({4});
      WorkPtr wb = pg.recv(b, 0, 12), wa = pg.recv(a, 0, 11);
      wb->wait();
      wa->wait();
      EXPECT_EQ(a.to_vector<double>(), std::vector<double>(4, 1.0));
      EXPECT_EQ(b.to_vector<double>(), std::vector<double>(4, 2.0));
    }
  });
}

TEST(GlooProcessGroup, SendRecvRingTwoRanks) { check_send_recv_ring(2); }
TEST(GlooProcessGroup, SendRecvRingThreeRanks) { check_send_recv_ring(3); }

TEST(GlooProcessGroup, BarrierHoldsEveryRank) {
  for (int size : {2, 3}) {
    std::atomic<int> arrived{0};
    run_ranks(size, [&](int r, ProcessGroup& pg) {
      for (int round = 1; round <= 5; ++round) {
        // The last rank dawdles: nobody may leave the barrier before it arrived.
        if (r == size - 1) std::this_thread::sleep_for(5ms);
        arrived.fetch_add(1);
        pg.barrier()->wait();
        EXPECT_GE(arrived.load(), round * size)
            << "rank " << r << " left barrier " << round << " early";
      }
    });
  }
}

TEST(GlooProcessGroup, AsyncOpsInFlightWaitedInReverseOrder) {
  for (int size : {2, 3}) {
    run_ranks(size, [&](int r, ProcessGroup& pg) {
      const int64_t n = 4096;
      Tensor a = full({n}, double(r + 1)), b = full({n}, double(10 * r)), c = full({n}, double(r));
      Tensor gathered = zeros({size * n}), rs_in = full({size * n}, double(r + 2)),
             rs_out = zeros({n});
      std::vector<WorkPtr> works = {pg.all_reduce(a), pg.broadcast(b, size - 1),
                                    pg.all_gather(gathered, c), pg.reduce_scatter(rs_out, rs_in),
                                    pg.barrier()};
      for (auto it = works.rbegin(); it != works.rend(); ++it) (*it)->wait();
      for (auto& w : works) EXPECT_TRUE(w->is_completed());
      const double sum_a = size * (size + 1) / 2.0, sum_rs = size * (size + 3) / 2.0;
      EXPECT_EQ(a.to_vector<double>(), std::vector<double>(n, sum_a));
      EXPECT_EQ(b.to_vector<double>(), std::vector<double>(n, 10.0 * (size - 1)));
      std::vector<double> want_g;
      for (int q = 0; q < size; ++q) want_g.insert(want_g.end(), n, double(q));
      EXPECT_EQ(gathered.to_vector<double>(), want_g);
      EXPECT_EQ(rs_out.to_vector<double>(), std::vector<double>(n, sum_rs));
      // The Work holds its tensors: dropping our handles before wait() is safe.
      WorkPtr w;
      {
        Tensor tmp = full({n}, 1.0);
        w = pg.all_reduce(tmp);
      }
      w->wait();
    });
  }
}

TEST(GlooProcessGroup, SingleRankGroupIsTheIdentity) {
  run_ranks(1, [](int, ProcessGroup& pg) {
    Tensor t = full({5}, 3.0);
    pg.all_reduce(t, ReduceOp::avg)->wait();
    EXPECT_EQ(t.to_vector<double>(), std::vector<double>(5, 3.0));
    Tensor out = zeros({5});
    pg.reduce_scatter(out, t)->wait();
    EXPECT_EQ(out.to_vector<double>(), std::vector<double>(5, 3.0));
    Tensor g = zeros({5});
    pg.all_gather(g, t)->wait();
    EXPECT_EQ(g.to_vector<double>(), std::vector<double>(5, 3.0));
    pg.broadcast(t, 0)->wait();
    pg.barrier()->wait();
  });
}

TEST(GlooProcessGroup, GroupsShareOneStore) {
  // Two groups over the same store, created in the same order on every rank, stay apart.
  auto store = std::make_shared<HashStore>();
  std::vector<std::string> errors(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      try {
        auto g1 = make_gloo_process_group(store, r, 2, {.timeout = 5s});
        auto g2 = make_gloo_process_group(store, r, 2, {.timeout = 5s});
        Tensor a = full({8}, double(r + 1)), b = full({8}, double(10 * (r + 1)));
        auto w2 = g2->all_reduce(b);
        auto w1 = g1->all_reduce(a);
        w1->wait();
        w2->wait();
        if (a.to_vector<double>() != std::vector<double>(8, 3.0))
          errors[size_t(r)] = "group 1 wrong";
        if (b.to_vector<double>() != std::vector<double>(8, 30.0))
          errors[size_t(r)] += " group 2 wrong";
      } catch (const std::exception& e) {
        errors[size_t(r)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");
}

TEST(GlooProcessGroup, InputValidation) {
  run_ranks(2, [](int r, ProcessGroup& pg) {
    Tensor t = zeros({4});
    Tensor nc = zeros({3, 4}).t();
    EXPECT_CONTAINS(thrown<ValueError>([&] { pg.all_reduce(nc); }), "contiguous");
    EXPECT_CONTAINS(thrown<ValueError>([&] {
                      Tensor u;
                      pg.all_reduce(u);
                    }),
                    "undefined");
    Tensor i = zeros({4}, {.dtype = DType::int64});
    EXPECT_CONTAINS(thrown<DTypeError>([&] { pg.all_reduce(i, ReduceOp::avg); }), "avg");
    Tensor b = zeros({4}, {.dtype = DType::bool_});
    EXPECT_CONTAINS(thrown<DTypeError>([&] { pg.all_reduce(b, ReduceOp::sum); }), "bool");
    Tensor f8 = zeros({4}, {.dtype = DType::float8_e4m3fn});
    EXPECT_CONTAINS(thrown<DTypeError>([&] { pg.all_reduce(f8); }), "float8_e4m3fn");
    Tensor out3 = zeros({3}), out2 = zeros({2}), in8 = zeros({8});
    EXPECT_CONTAINS(thrown<ShapeError>([&] { pg.all_gather(out3, t); }), "all_gather");
    EXPECT_CONTAINS(thrown<ShapeError>([&] { pg.reduce_scatter(out3, in8); }), "reduce_scatter");
    Tensor out4i = zeros({4}, {.dtype = DType::int64});
    EXPECT_CONTAINS(thrown<DTypeError>([&] { pg.reduce_scatter(out4i, in8); }), "int64");
    Tensor out8i = zeros({8}, {.dtype = DType::int64});
    EXPECT_CONTAINS(thrown<DTypeError>([&] { pg.all_gather(out8i, t); }), "same dtype");
    Tensor out7 = zeros({7});
    EXPECT_CONTAINS(thrown<ValueError>([&] { pg.all_gather_v(out7, t, {4}); }), "one per rank");
    EXPECT_CONTAINS(thrown<ShapeError>([&] { pg.all_gather_v(out7, t, {4, 4}); }), "sum to 8");
    EXPECT_CONTAINS(thrown<ShapeError>([&] { pg.all_gather_v(out7, t, {3, 3}); }), "counts[");
    EXPECT_CONTAINS(thrown<ValueError>([&] { pg.all_gather_v(out7, t, {-1, 8}); }), "negative");
    EXPECT_CONTAINS(thrown<ValueError>([&] { pg.broadcast(t, 2); }), "root rank 2");
    EXPECT_CONTAINS(thrown<ValueError>([&] { pg.broadcast(t, -1); }), "out of range");
    EXPECT_CONTAINS(thrown<ValueError>([&] { pg.send(t, r); }), "is this rank");
    EXPECT_CONTAINS(thrown<ValueError>([&] { pg.recv(t, 5); }), "source rank 5");
    // Bad input is refused before anything is sent: the group still works.
    Tensor ok = full({4}, double(r));
    pg.all_reduce(ok)->wait();
    EXPECT_EQ(ok.to_vector<double>(), std::vector<double>(4, 1.0));
  });
}

TEST(GlooProcessGroup, MissingRankTimesOutTheRendezvous) {
  auto store = std::make_shared<HashStore>();
  const auto t0 = Clock::now();
  const std::string msg =
      thrown<TimeoutError>([&] { make_gloo_process_group(store, 0, 2, {.timeout = 500ms}); });
  EXPECT_CONTAINS(msg, "rank 0 of 2");
  EXPECT_CONTAINS(msg, "store prefix");
  EXPECT_LT(Clock::now() - t0, 10s);
}

void check_skipped_collective(bool shared_memory) {
  std::promise<void> rank0_done;
  std::shared_future<void> done = rank0_done.get_future().share();
  run_ranks(
      2,
      [&](int r, ProcessGroup& pg) {
        if (r == 1) {
          // Skips the collective but keeps its connections open until rank 0 has looked.
          done.wait();
          Tensor t = zeros({4});
          // Rank 0's timeout closed the connections (and marked the shared segment broken): this
          // fails instead of hanging.
          EXPECT_THROW(pg.all_reduce(t)->wait(), DistributedError);
          return;
        }
        Tensor t = zeros({1000});
        auto t0 = Clock::now();
        const std::string msg = thrown<TimeoutError>([&] { pg.all_reduce(t)->wait(); });
        const auto waited = Clock::now() - t0;
        EXPECT_CONTAINS(msg, "all_reduce");
        EXPECT_CONTAINS(msg, "rank 0 of 2");
        EXPECT_CONTAINS(msg, "rank 1");
        EXPECT_CONTAINS(msg, "timed out");
        EXPECT_GE(waited, 900ms);  // it did wait for the peer
        EXPECT_LT(waited, 10s);    // and did not hang
        // Broken: later ops fail at once, saying why.
        t0 = Clock::now();
        const std::string again = thrown<DistributedError>([&] { pg.broadcast(t, 0)->wait(); });
        EXPECT_LT(Clock::now() - t0, 1s);
        EXPECT_CONTAINS(again, "broken");
        EXPECT_CONTAINS(again, "broadcast");
        EXPECT_CONTAINS(again, "all_reduce");  // the original failure
        rank0_done.set_value();
      },
      1s, shared_memory);
}
TEST(GlooProcessGroup, SkippedCollectiveTimesOutThenTheGroupIsBroken) {
  check_skipped_collective(true);
}
TEST(GlooProcessGroup, SkippedCollectiveTimesOutThenTheGroupIsBrokenOverTcp) {
  check_skipped_collective(false);
}

// 3 ranks, rank 2 never calls all_reduce: both waiting ranks fail with TimeoutError naming the
// operation, their rank and rank 2, whichever of them reaches its timeout first (over the shared
// segment, the first one's timeout used to reach the other as "a peer's process group broke").
// Rank 2 keeps its group open until both have failed.
void check_all_reduce_skipped_by_one_of_three(const std::vector<std::chrono::milliseconds>& timeouts,
                                             bool shared_memory) {
  std::atomic<int> failed{0};
  run_ranks_with_timeouts(timeouts, shared_memory, [&](int r, ProcessGroup& pg) {
    if (r == 2) {
      const auto t0 = Clock::now();
      while (failed.load() < 2 && Clock::now() - t0 < 30s) std::this_thread::sleep_for(1ms);
      return;
    }
    Tensor t = zeros({1000});
    const auto t0 = Clock::now();
    const std::string msg = thrown<TimeoutError>([&] { pg.all_reduce(t)->wait(); });
    ++failed;
    EXPECT_LT(Clock::now() - t0, 5s) << "rank " << r;  // never sits out a much longer timeout
    EXPECT_CONTAINS(msg, "all_reduce");
    EXPECT_CONTAINS(msg, "rank " + std::to_string(r) + " of 3");
    // Over TCP the ranks exchange call records before Gloo's ring: the one never received names
    // rank 2 too.
    EXPECT_CONTAINS(msg,
                    shared_memory ? "waiting for rank 2" : "rank 2 did not enter the all_reduce");
  });
}
TEST(GlooProcessGroup, SkippedAllReduceTimesOutOnEveryWaitingRank) {
  // Rank 0's timeout comes long before rank 1's: rank 1 must still report a timeout.
  check_all_reduce_skipped_by_one_of_three({300ms, 20s, 20s}, true);
  for (int round = 0; round < 5; ++round)  // equal timeouts: either may be first
    check_all_reduce_skipped_by_one_of_three({300ms, 300ms, 300ms}, true);
}
TEST(GlooProcessGroup, SkippedAllReduceTimesOutOnEveryWaitingRankOverTcp) {
  for (int round = 0; round < 3; ++round)
    check_all_reduce_skipped_by_one_of_three({300ms, 300ms, 300ms}, false);
}

// A rank that never enters the barrier is named by every rank that waited for it, along with the
// ranks that did come.
TEST(GlooProcessGroup, SkippedBarrierNamesTheMissingRank) {
  for (int size : {2, 3}) {
    std::atomic<int> failed{0};
    const int missing = size - 1;
    run_ranks(
        size,
        [&](int r, ProcessGroup& pg) {
          if (r == missing) {
            const auto t0 = Clock::now();
            while (failed.load() < size - 1 && Clock::now() - t0 < 30s)
              std::this_thread::sleep_for(1ms);
            return;
          }
          const std::string msg = thrown<TimeoutError>([&] { pg.barrier()->wait(); });
          ++failed;
          EXPECT_CONTAINS(msg, "barrier");
          EXPECT_CONTAINS(msg, "rank " + std::to_string(r) + " of " + std::to_string(size));
          EXPECT_CONTAINS(msg, "rank " + std::to_string(missing) + " did not enter the barrier");
          if (size == 3) EXPECT_CONTAINS(msg, "(rank " + std::to_string(1 - r) + " did)");
        },
        500ms);
  }
}

TEST(GlooProcessGroup, UnmatchedRecvTimesOut) {
  std::promise<void> rank0_done;
  std::shared_future<void> done = rank0_done.get_future().share();
  run_ranks(
      2,
      [&](int r, ProcessGroup& pg) {
        if (r == 1) {
          done.wait();  // never sends, but stays connected
          return;
        }
        Tensor t = zeros({4});
        const std::string msg = thrown<TimeoutError>([&] { pg.recv(t, 1, 3)->wait(); });
        EXPECT_CONTAINS(msg, "recv");
        EXPECT_CONTAINS(msg, "rank 0 of 2");
        EXPECT_CONTAINS(msg, "peer rank 1");
        rank0_done.set_value();
      },
      1s);
}

// A peer process killed mid-run: the survivor's next collective fails within the timeout (over
// the shared segment: as soon as it sees the peer's process gone).
void check_killed_peer(bool shared_memory) {
  int port_pipe[2], ready_pipe[2];
  ASSERT_EQ(pipe(port_pipe), 0);
  ASSERT_EQ(pipe(ready_pipe), 0);
  const pid_t child = fork();  // before this process starts any thread of this test
  ASSERT_GE(child, 0);
  if (child == 0) {
    int code = 1;
    try {
      int port = 0;
      if (read(port_pipe[0], &port, sizeof port) != sizeof port) _exit(2);
      auto store = std::make_shared<TCPStore>(TCPStoreOptions{.port = port, .timeout = 10s});
      auto pg =
          make_gloo_process_group(store, 1, 2, {.timeout = 3s, .shared_memory = shared_memory});
      Tensor t = empty({1024}, {.dtype = DType::float32});
      float* p = t.data<float>();
      for (int i = 0; i < 1024; ++i) p[i] = float(i);
      pg->all_reduce(t)->wait();
      bool ok = true;
      for (int i = 0; i < 1024; ++i) ok = ok && p[i] == float(2 * i + 1);
      const char c = ok ? 'y' : 'n';
      if (write(ready_pipe[1], &c, 1) != 1) _exit(3);
      for (;;) pause();  // until killed
    } catch (...) {
      code = 4;
    }
    _exit(code);
  }
  auto store =
      std::make_shared<TCPStore>(TCPStoreOptions{.port = 0, .is_server = true, .timeout = 10s});
  const int port = store->port();
  ASSERT_EQ(write(port_pipe[1], &port, sizeof port), ssize_t(sizeof port));
  auto pg = make_gloo_process_group(store, 0, 2, {.timeout = 3s, .shared_memory = shared_memory});
  Tensor t = empty({1024}, {.dtype = DType::float32});
  float* p = t.data<float>();
  for (int i = 0; i < 1024; ++i) p[i] = float(i + 1);
  pg->all_reduce(t)->wait();
  char c = 0;
  ASSERT_EQ(read(ready_pipe[0], &c, 1), 1);
  EXPECT_EQ(c, 'y') << "the child saw a wrong all_reduce result";
  EXPECT_EQ(p[10], float(21));
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  const auto t0 = Clock::now();
  const std::string msg = thrown<DistributedError>([&] { pg->all_reduce(t)->wait(); });
  EXPECT_LT(Clock::now() - t0, 6s);  // within the timeout (3 s) plus slack: never a hang
  EXPECT_CONTAINS(msg, "all_reduce");
  EXPECT_CONTAINS(msg, "rank 0 of 2");
  for (int fd : {port_pipe[0], port_pipe[1], ready_pipe[0], ready_pipe[1]}) close(fd);
}
TEST(GlooProcessGroup, KilledPeerProcessFailsTheNextCollective) { check_killed_peer(true); }
TEST(GlooProcessGroup, KilledPeerProcessFailsTheNextCollectiveOverTcp) {
  check_killed_peer(false);
}

// traffic(): the bytes this rank put on the wire per the documented algorithm of each op, and
// one op per completed operation; reset_traffic() zeroes both.
TEST(GlooProcessGroup, TrafficCountersTwoRanks) {
  run_ranks(2, [](int r, ProcessGroup& pg) {
    EXPECT_EQ(pg.traffic().bytes_sent, 0);
    EXPECT_EQ(pg.traffic().ops, 0);
    const TensorOptions f32{.dtype = DType::float32};
    Tensor a = zeros({1000}, f32);
    pg.all_reduce(a)->wait();  // ring: 2 (N-1)/N x 4000 bytes
    Tensor rs_out = zeros({500}, f32);
    pg.reduce_scatter(rs_out, zeros({1000}, f32))->wait();  // (N-1)/N x 4000 input bytes
    Tensor ag_out = zeros({600}, f32);
    pg.all_gather(ag_out, zeros({300}, f32))->wait();  // (N-1)/N x 2400 output bytes
    const std::vector<int64_t> counts = {3, 8};
    Tensor agv_out = zeros({11}, f32);
    pg.all_gather_v(agv_out, zeros({counts[size_t(r)]}, f32), counts)->wait();  // all but (r+1)'s
    Tensor b = zeros({100}, f32);
    pg.broadcast(b, 1)->wait();  // the root sends (N-1) x 400 bytes
    pg.barrier()->wait();
    Tensor p2p = zeros({50}, f32);
    if (r == 0) pg.send(p2p, 1)->wait();  // 200 bytes
    else pg.recv(p2p, 0)->wait();         // receiving sends nothing
    const int64_t common = 4000 + 2000 + 1200;
    const int64_t expected = r == 0 ? common + 3 * 4 + 200 : common + 8 * 4 + 400;
    EXPECT_EQ(pg.traffic().bytes_sent, expected) << "rank " << r;
    EXPECT_EQ(pg.traffic().ops, 7) << "rank " << r;
    pg.reset_traffic();
    EXPECT_EQ(pg.traffic().bytes_sent, 0);
    EXPECT_EQ(pg.traffic().ops, 0);
    pg.all_reduce(a)->wait();
    EXPECT_EQ(pg.traffic().bytes_sent, 4000);
    EXPECT_EQ(pg.traffic().ops, 1);
  });
}

}  // namespace
}  // namespace fabric::distributed
