// The NCCL process group on real GPUs: every op on a one-rank group (any machine with a GPU); every
// op across ranks that are threads, one per GPU, with integer-valued data compared exactly; a
// collective one rank never joins, which must time out and break the group; input validation.
// Without a CUDA build or a GPU every test is skipped.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "distributed/nccl_process_group.h"
#include "distributed/store.h"
#include "runtime/connector.h"
#include "tensor/factory.h"
#include "tests/common/expect_error.h"

#ifdef FABRIC_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace fabric::distributed {
namespace {

using namespace std::chrono_literals;

// Skips the test unless this build has CUDA and at least n GPUs are visible.
#ifdef FABRIC_WITH_CUDA
#define REQUIRE_GPUS(n)                                                             \
  do {                                                                              \
    std::string why_;                                                               \
    const int have_ = cuda_device_count(&why_);                                     \
    if (have_ < (n))                                                                \
      GTEST_SKIP() << "needs " << (n) << " CUDA device(s), " << have_ << " visible" \
                   << (why_.empty() ? std::string() : " (" + why_ + ")");           \
  } while (0)
#else
#define REQUIRE_GPUS(n) \
  GTEST_SKIP() << "this build has no CUDA backend (FABRIC_CUDA=OFF or no nvcc)"
#endif

#ifdef FABRIC_WITH_CUDA

void cuda_ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

// A cuda:device copy of a contiguous CPU tensor, in memory from cudaMalloc that the tensor frees.
Tensor to_cuda(const Tensor& host, int device) {
  cuda_ok(cudaSetDevice(device), "cudaSetDevice");
  void* p = nullptr;
  const size_t nbytes = std::max<size_t>(1, size_t(host.nbytes()));
  cuda_ok(cudaMalloc(&p, nbytes), "cudaMalloc");
  std::shared_ptr<void> owner(p, [](void* q) { cudaFree(q); });
  if (host.nbytes() > 0) {
    cuda_ok(cudaMemcpy(p, host.data_ptr(), size_t(host.nbytes()), cudaMemcpyHostToDevice),
            "cudaMemcpy H2D");
  }
  auto storage = std::make_shared<StorageImpl>(p, nbytes, Device::cuda(device), owner);
  return Tensor::from_storage(storage, host.dtype(), host.shape(), host.strides(), 0);
}

// A CPU copy of a CUDA tensor (cudaMemcpy runs on the default stream, after Work::wait's ordering).
Tensor to_cpu(const Tensor& dev) {
  Tensor host = empty(dev.shape(), {.dtype = dev.dtype()});
  cuda_ok(cudaSetDevice(dev.device().index), "cudaSetDevice");
  if (dev.nbytes() > 0) {
    cuda_ok(
        cudaMemcpy(host.data_ptr(), dev.data_ptr(), size_t(dev.nbytes()), cudaMemcpyDeviceToHost),
        "cudaMemcpy D2H");
  }
  return host;
}

Tensor make(const std::vector<double>& v, DType dtype, int device) {
  return to_cuda(from_vector<double>(v, {int64_t(v.size())}, {.dtype = dtype}), device);
}
std::vector<double> values(const Tensor& dev) { return to_cpu(dev).to_vector<double>(); }

// Small integers, exact in every dtype (bf16 and int8 included) after combining four ranks.
double val(int rank, int64_t i) { return double((i * 7 + rank * 5) % 23) - 11.0; }

const std::vector<DType> kDTypes = {DType::float32, DType::float64, DType::bfloat16, DType::float16,
                                    DType::int64,   DType::int32,   DType::int8,     DType::uint8};

std::vector<ReduceOp> ops_for(DType dtype) {
  std::vector<ReduceOp> ops = {ReduceOp::sum, ReduceOp::product, ReduceOp::max, ReduceOp::min};
  if (is_floating(dtype)) ops.push_back(ReduceOp::avg);
  return ops;
}

// Rank r's input for `op`, element i, and the reduction over `size` ranks.
double input_for(ReduceOp op, DType dtype, int r, int64_t i) {
  switch (op) {
    case ReduceOp::product:  // |x| <= 2: at most 16 over four ranks
      return double((i + r) % 2 + 1) * ((dtype != DType::uint8 && (i + r) % 5 == 0) ? -1 : 1);
    case ReduceOp::avg:
      return double(i % 16) + 2.0 * r;  // divides by the world size exactly
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

// Runs body(rank, group) for `size` ranks, each a thread on GPU `rank` with its own group over one
// HashStore. A rank's exception becomes a test failure naming the rank.
void run_ranks(int size, const std::function<void(int, ProcessGroup&)>& body,
               std::chrono::milliseconds timeout = 20s) {
  auto store = std::make_shared<HashStore>();
  store->set_timeout(timeout);
  std::vector<std::string> errors(static_cast<size_t>(size));
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) {
    threads.emplace_back([&, r] {
      try {
        cuda_ok(cudaSetDevice(r), "cudaSetDevice");
        auto pg = make_nccl_process_group(store, r, size, r, {.timeout = timeout});
        body(r, *pg);
      } catch (const std::exception& e) {
        errors[size_t(r)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < size; ++r) EXPECT_EQ(errors[size_t(r)], "") << "rank " << r;
}

int world_size() { return std::min(4, cuda_device_count()); }

std::shared_ptr<ProcessGroup> single_rank_group(std::chrono::milliseconds timeout = 20s) {
  auto store = std::make_shared<HashStore>();
  return make_nccl_process_group(store, 0, 1, 0, {.timeout = timeout});
}

// Every dtype and op issued before any is waited on: several ops in flight on the group stream.
void check_all_reduce(int r, int size, ProcessGroup& pg) {
  struct Pending {
    Tensor t;
    std::vector<double> want;
    WorkPtr work;
    std::string what;
  };
  std::vector<Pending> pending;
  const int64_t n = 1000;
  for (DType dtype : kDTypes) {
    for (ReduceOp op : ops_for(dtype)) {
      std::vector<double> in(n), want(n);
      for (int64_t i = 0; i < n; ++i) {
        in[size_t(i)] = input_for(op, dtype, r, i);
        want[size_t(i)] = expected_for(op, dtype, size, i);
      }
      Tensor t = make(in, dtype, r);
      WorkPtr w = pg.all_reduce(t, op);
      pending.push_back({t, want, w, std::string(dtype_name(dtype)) + " " + to_string(op)});
    }
  }
  for (auto& p : pending) {
    p.work->wait();
    EXPECT_TRUE(p.work->is_completed());
    EXPECT_EQ(values(p.t), p.want) << "rank " << r << " " << p.what;
  }
}

#endif  // FABRIC_WITH_CUDA

// ---- one GPU ----------------------------------------------------------------------------------

TEST(NcclProcessGroup, SingleRankAllReduceEveryDTypeAndOp) {
  REQUIRE_GPUS(1);
#ifdef FABRIC_WITH_CUDA
  EXPECT_TRUE(nccl_available());
  auto pg = single_rank_group(15s);
  EXPECT_EQ(pg->rank(), 0);
  EXPECT_EQ(pg->size(), 1);
  EXPECT_EQ(pg->backend(), "nccl");
  EXPECT_EQ(pg->timeout(), 15s);
  check_all_reduce(0, 1, *pg);
#endif
}

TEST(NcclProcessGroup, SingleRankRunsEveryOtherOp) {
  REQUIRE_GPUS(1);
#ifdef FABRIC_WITH_CUDA
  auto pg = single_rank_group();
  std::vector<double> in(77);
  for (size_t i = 0; i < in.size(); ++i) in[i] = val(3, int64_t(i));
  for (DType dtype : {DType::float32, DType::bfloat16, DType::int64, DType::int8}) {
    Tensor input = make(in, dtype, 0);
    Tensor out = make(std::vector<double>(in.size(), 0.0), dtype, 0);
    pg->reduce_scatter(out, input)->wait();
    EXPECT_EQ(values(out), in) << "reduce_scatter " << dtype_name(dtype);
    Tensor gathered = make(std::vector<double>(in.size(), 0.0), dtype, 0);
    pg->all_gather(gathered, input)->wait();
    EXPECT_EQ(values(gathered), in) << "all_gather " << dtype_name(dtype);
    Tensor gathered_v = make(std::vector<double>(in.size(), 0.0), dtype, 0);
    pg->all_gather_v(gathered_v, input, {int64_t(in.size())})->wait();
    EXPECT_EQ(values(gathered_v), in) << "all_gather_v " << dtype_name(dtype);
    pg->broadcast(input, 0)->wait();
    EXPECT_EQ(values(input), in) << "broadcast " << dtype_name(dtype);
  }
  WorkPtr b = pg->barrier();
  b->wait();
  b->wait();  // a second wait returns at once
  EXPECT_TRUE(b->is_completed());
  // No elements: no NCCL call, but still a Work that completes.
  Tensor none = make({}, DType::float32, 0);
  pg->all_reduce(none)->wait();
  // fp8 moves where the NCCL linked has the types (2.24+); otherwise the message says so.
  std::vector<double> small(40);
  for (size_t i = 0; i < small.size(); ++i) small[i] = double(int(i % 17) - 8);
  for (DType dtype : {DType::float8_e4m3fn, DType::float8_e5m2}) {
    Tensor x = make(small, dtype, 0);
    Tensor y = make(std::vector<double>(small.size(), 0.0), dtype, 0);
    try {
      pg->all_gather(y, x)->wait();
      EXPECT_EQ(values(y), small) << dtype_name(dtype);
    } catch (const DTypeError& e) {
      EXPECT_CONTAINS(e.what(), "fp8 needs NCCL 2.24");
    }
  }
#endif
}

TEST(NcclProcessGroup, SingleRankOrdersAfterTheDefaultStream) {
  REQUIRE_GPUS(1);
#ifdef FABRIC_WITH_CUDA
  // Writes queued on the default stream must land before the collective reads them: each round
  // queues 64 MiB memsets and issues a copy (a one-rank reduce_scatter) without synchronizing.
  auto pg = single_rank_group();
  const int64_t n = 64 << 20;
  Tensor in = to_cuda(empty({n}, {.dtype = DType::uint8}), 0);
  Tensor out = to_cuda(empty({n}, {.dtype = DType::uint8}), 0);
  for (int round = 1; round <= 4; ++round) {
    for (int k = 0; k < 8; ++k) {
      cuda_ok(cudaMemsetAsync(in.data_ptr(), round * 10 + k, size_t(n), cudaStreamLegacy),
              "cudaMemsetAsync");
    }
    pg->reduce_scatter(out, in)->wait();
    Tensor host = to_cpu(out);
    const uint8_t* p = host.data<uint8_t>();
    int64_t wrong = 0;
    for (int64_t i = 0; i < n; ++i) wrong += p[i] != uint8_t(round * 10 + 7);
    EXPECT_EQ(wrong, 0) << "round " << round;
  }
#endif
}

TEST(NcclProcessGroup, SingleRankWorkOutlivesTheGroup) {
  REQUIRE_GPUS(1);
#ifdef FABRIC_WITH_CUDA
  std::vector<double> in(300);
  for (size_t i = 0; i < in.size(); ++i) in[i] = val(1, int64_t(i));
  auto pg = single_rank_group();
  Tensor t = make(in, DType::float32, 0);
  WorkPtr w = pg->all_reduce(t, ReduceOp::max);
  pg.reset();  // the communicator lives on with the Work
  w->wait();
  EXPECT_EQ(values(t), in);
  // Two groups on one store (a prefix each), used interleaved.
  auto store = std::make_shared<HashStore>();
  auto g1 = make_nccl_process_group(store, 0, 1, 0, {.timeout = 20s});
  auto g2 = make_nccl_process_group(store, 0, 1, 0, {.timeout = 20s});
  Tensor a = make(in, DType::int32, 0), b = make(in, DType::int32, 0);
  WorkPtr wa = g1->all_reduce(a), wb = g2->all_reduce(b);
  wb->wait();
  wa->wait();
  EXPECT_EQ(values(a), in);
  EXPECT_EQ(values(b), in);
#endif
}

TEST(NcclProcessGroup, ValidatesInputs) {
  REQUIRE_GPUS(1);
#ifdef FABRIC_WITH_CUDA
  auto store = std::make_shared<HashStore>();
  EXPECT_CONTAINS(thrown<ValueError>([&] { make_nccl_process_group(store, 1, 1, 0); }),
                  "rank 1 is out of range for size 1");
  EXPECT_CONTAINS(thrown<ValueError>([&] { make_nccl_process_group(nullptr, 0, 1, 0); }),
                  "store is null");
  const int count = cuda_device_count();
  EXPECT_CONTAINS(thrown<DeviceError>([&] { make_nccl_process_group(store, 0, 1, count); }),
                  "does not exist");

  auto pg = single_rank_group();
  EXPECT_TRUE(pg->device() == Device::cuda(0));
  Tensor cpu = from_vector<float>({1, 2, 3});
  EXPECT_CONTAINS(thrown<DeviceError>([&] { pg->all_reduce(cpu); }),
                  "NCCL process group takes cuda:0 tensors; got cpu");
  Tensor f = make({1, 2, 3, 4, 5, 6}, DType::float32, 0);
  Tensor transposed = Tensor::from_storage(f.storage(), DType::float32, {2, 3}, {1, 2}, 0);
  EXPECT_CONTAINS(thrown<ValueError>([&] { pg->all_reduce(transposed); }), "must be contiguous");
  // bool moves as uint8 (PyTorch's ncclUint8) and reduces with max/min only, as on Gloo.
  Tensor flags = to_cuda(from_vector<bool>({true, false}), 0);
  pg->broadcast(flags, 0)->wait();
  pg->all_reduce(flags, ReduceOp::max)->wait();
  EXPECT_EQ(values(flags), (std::vector<double>{1, 0}));
  EXPECT_CONTAINS(thrown<DTypeError>([&] { pg->all_reduce(flags, ReduceOp::sum); }),
                  "cannot reduce a bool tensor with ReduceOp sum");
  Tensor ints = make({1, 2, 3}, DType::int32, 0);
  EXPECT_CONTAINS(thrown<DTypeError>([&] { pg->all_reduce(ints, ReduceOp::avg); }),
                  "avg needs a floating tensor");
  Tensor two = make({1, 2}, DType::float32, 0);
  EXPECT_CONTAINS(thrown<ShapeError>([&] { pg->reduce_scatter(two, f); }), "chunks");
  EXPECT_CONTAINS(thrown<ShapeError>([&] { pg->all_gather(two, f); }), "copies");
  EXPECT_CONTAINS(thrown<DTypeError>([&] { pg->all_gather(ints, f); }), "same dtype");
  EXPECT_CONTAINS(thrown<ValueError>([&] { pg->all_gather_v(f, f, {3, 3}); }), "one per rank");
  EXPECT_CONTAINS(thrown<ValueError>([&] { pg->all_gather_v(f, f, {-6}); }), "negative");
  EXPECT_CONTAINS(thrown<ShapeError>([&] { pg->all_gather_v(f, two, {2}); }), "counts sum to 2");
  EXPECT_CONTAINS(thrown<ValueError>([&] { pg->broadcast(f, 1); }), "root rank 1 is out of range");
  EXPECT_CONTAINS(thrown<ValueError>([&] { pg->send(f, 0); }), "is this rank");
  EXPECT_CONTAINS(thrown<ValueError>([&] { pg->recv(f, 3); }), "source rank 3 is out of range");
  // Refused input never reaches NCCL: the group still works.
  pg->all_reduce(f)->wait();
  EXPECT_EQ(values(f), (std::vector<double>{1, 2, 3, 4, 5, 6}));
#endif
}

// ---- one rank per GPU, ranks as threads --------------------------------------------------------

TEST(NcclProcessGroup, ThreadRanksAllReduceEveryDTypeAndOp) {
  REQUIRE_GPUS(2);
#ifdef FABRIC_WITH_CUDA
  const int size = world_size();
  run_ranks(size, [&](int r, ProcessGroup& pg) {
    EXPECT_EQ(pg.rank(), r);
    EXPECT_EQ(pg.size(), size);
    check_all_reduce(r, size, pg);
  });
#endif
}

TEST(NcclProcessGroup, ThreadRanksReduceScatterAndAllGathers) {
  REQUIRE_GPUS(2);
#ifdef FABRIC_WITH_CUDA
  const int size = world_size();
  run_ranks(size, [&](int r, ProcessGroup& pg) {
    const int64_t n = 37;  // per-rank chunk
    for (DType dtype : {DType::float32, DType::bfloat16, DType::int64, DType::int8}) {
      const auto ops =
          dtype == DType::float32 ? ops_for(dtype) : std::vector<ReduceOp>{ReduceOp::sum};
      for (ReduceOp op : ops) {
        std::vector<double> in(size_t(n * size)), want(static_cast<size_t>(n));
        for (int64_t i = 0; i < n * size; ++i) in[size_t(i)] = input_for(op, dtype, r, i);
        for (int64_t k = 0; k < n; ++k) want[size_t(k)] = expected_for(op, dtype, size, r * n + k);
        Tensor input = make(in, dtype, r);
        Tensor out = make(std::vector<double>(size_t(n), 0.0), dtype, r);
        pg.reduce_scatter(out, input, op)->wait();
        EXPECT_EQ(values(out), want)
            << "rank " << r << " " << dtype_name(dtype) << " " << to_string(op);
        EXPECT_EQ(values(input), in) << "reduce_scatter must not modify its input";
      }
    }
    for (DType dtype : {DType::float32, DType::float64, DType::int64, DType::uint8}) {
      std::vector<double> in(29), want;
      for (int64_t i = 0; i < 29; ++i) in[size_t(i)] = val(r, i) + (dtype == DType::uint8 ? 11 : 0);
      for (int q = 0; q < size; ++q)
        for (int64_t i = 0; i < 29; ++i)
          want.push_back(val(q, i) + (dtype == DType::uint8 ? 11 : 0));
      Tensor out = make(std::vector<double>(want.size(), 0.0), dtype, r);
      pg.all_gather(out, make(in, dtype, r))->wait();
      EXPECT_EQ(values(out), want) << "all_gather rank " << r << " " << dtype_name(dtype);
    }
    // Uneven, with one rank contributing nothing.
    std::vector<int64_t> counts(static_cast<size_t>(size));
    for (int q = 0; q < size; ++q) counts[size_t(q)] = q == 1 ? 0 : 2 * q + 3;
    std::vector<double> mine, want;
    for (int q = 0; q < size; ++q)
      for (int64_t i = 0; i < counts[size_t(q)]; ++i) {
        want.push_back(val(q, i) + 100.0 * q);
        if (q == r) mine.push_back(val(q, i) + 100.0 * q);
      }
    Tensor out = make(std::vector<double>(want.size(), -1.0), DType::int32, r);
    pg.all_gather_v(out, make(mine, DType::int32, r), counts)->wait();
    EXPECT_EQ(values(out), want) << "all_gather_v rank " << r;
  });
#endif
}

TEST(NcclProcessGroup, ThreadRanksBroadcastSendRecvBarrier) {
  REQUIRE_GPUS(2);
#ifdef FABRIC_WITH_CUDA
  const int size = world_size();
  run_ranks(size, [&](int r, ProcessGroup& pg) {
    const int root = size - 1;
    std::vector<double> data(513);
    for (size_t i = 0; i < data.size(); ++i) data[i] = val(root, int64_t(i));
    for (DType dtype : {DType::float64, DType::int32, DType::bfloat16}) {
      Tensor t = make(r == root ? data : std::vector<double>(data.size(), 0.0), dtype, r);
      pg.broadcast(t, root)->wait();
      EXPECT_EQ(values(t), data) << "broadcast rank " << r << " " << dtype_name(dtype);
    }
    // Ranks 0 and 1 swap buffers: one side receives first, as NCCL needs.
    if (r < 2) {
      const int peer = 1 - r;
      std::vector<double> mine(1000), theirs(1000);
      for (size_t i = 0; i < mine.size(); ++i) {
        mine[i] = val(r, int64_t(i)) * 1000 + double(i);
        theirs[i] = val(peer, int64_t(i)) * 1000 + double(i);
      }
      Tensor send = make(mine, DType::int32, r);
      Tensor recv = make(std::vector<double>(1000, 0.0), DType::int32, r);
      if (r == 0) {
        pg.send(send, peer, 7)->wait();
        pg.recv(recv, peer, 7)->wait();
      } else {
        WorkPtr got = pg.recv(recv, peer, 7);
        WorkPtr sent = pg.send(send, peer, 7);
        got->wait();
        sent->wait();
      }
      EXPECT_EQ(values(recv), theirs) << "recv rank " << r;
    }
    pg.barrier()->wait();
  });
#endif
}

#ifdef FABRIC_WITH_CUDA
// Two thread ranks that all-reduce once together (NCCL connects the ranks lazily, on the first
// collective of a kind, and that setup would otherwise be what waits for the missing rank); then
// rank 0 runs `rank0` with the group and a tensor of 64 twos while rank 1 joins nothing more,
// leaving once rank 0 is done.
void with_a_peer_that_stops_joining(std::chrono::milliseconds timeout,
                                    const std::function<void(ProcessGroup&, Tensor&)>& rank0) {
  std::promise<void> rank0_done;
  std::shared_future<void> done = rank0_done.get_future().share();
  run_ranks(
      2,
      [&](int r, ProcessGroup& pg) {
        Tensor t = make(std::vector<double>(64, 1.0), DType::float32, r);
        pg.all_reduce(t)->wait();
        EXPECT_EQ(values(t), std::vector<double>(64, 2.0)) << "rank " << r;
        if (r == 1) {
          EXPECT_EQ(done.wait_for(60s), std::future_status::ready);
          return;
        }
        struct Release {  // rank 1 leaves even when an expectation of rank0 throws
          std::promise<void>& p;
          ~Release() { p.set_value(); }
        } release{rank0_done};
        rank0(pg, t);
      },
      timeout);
}
#endif

TEST(NcclProcessGroup, ThreadRanksCollectiveNobodyJoinsTimesOutAndBreaksTheGroup) {
  REQUIRE_GPUS(2);
#ifdef FABRIC_WITH_CUDA
  with_a_peer_that_stops_joining(5s, [](ProcessGroup& pg, Tensor& t) {
    std::string msg;
    WorkPtr w;
    try {
      w = pg.all_reduce(t);
    } catch (const TimeoutError& e) {
      msg = e.what();  // an NCCL that still had setup to do times out in the call itself
    }
    if (w) {
      EXPECT_FALSE(w->is_completed());
      msg = thrown<TimeoutError>([&] { w->wait(); });
      EXPECT_EQ(thrown<TimeoutError>([&] { w->wait(); }), msg);  // the same error again
      EXPECT_TRUE(w->is_completed());
    }
    EXPECT_CONTAINS(msg, "nccl all_reduce (rank 0 of 2, cuda:0");
    EXPECT_CONTAINS(msg, "timed out after 5000 ms");
    const std::string broken = thrown<DistributedError>([&] { pg.barrier(); });
    EXPECT_CONTAINS(broken, "broken by an earlier failure");
    EXPECT_CONTAINS(broken, "all_reduce");
  });
#endif
}

// A rank that waits for its whole device (cudaDeviceSynchronize: the caching allocator freeing a
// segment, fabric::cuda::synchronize) while a collective waits for a peer that never joins has no
// timeout of its own: the group's watchdog must abort the communicator at the op's deadline, which
// stops NCCL's kernel, so that the wait returns and the op reports the timeout. (10 s: the group's
// timeout also bounds the communicators' setup and the first, connecting all-reduce.)
TEST(NcclProcessGroup, ThreadRanksDeviceWaitReturnsWhenAPeerNeverJoins) {
  REQUIRE_GPUS(2);
#ifdef FABRIC_WITH_CUDA
  with_a_peer_that_stops_joining(10s, [](ProcessGroup& pg, Tensor& t) {
    WorkPtr w = pg.all_reduce(t);
    // Detached: should the watchdog fail, the test reports it instead of hanging here.
    auto synced = std::make_shared<std::promise<cudaError_t>>();
    std::future<cudaError_t> sync_result = synced->get_future();
    std::thread([synced] { synced->set_value(cudaDeviceSynchronize()); }).detach();
    ASSERT_EQ(sync_result.wait_for(30s), std::future_status::ready)
        << "cudaDeviceSynchronize still waits 30 s after the group's 10000 ms timeout";
    const std::string msg = thrown<TimeoutError>([&] { w->wait(); });
    EXPECT_CONTAINS(msg, "nccl all_reduce (rank 0 of 2, cuda:0");
    EXPECT_CONTAINS(msg, "timed out after 10000 ms");
    EXPECT_CONTAINS(msg, "watchdog");
  });
#endif
}

}  // namespace
}  // namespace fabric::distributed
