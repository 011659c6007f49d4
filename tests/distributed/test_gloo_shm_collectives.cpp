// reduce_scatter and all_gather of the Gloo group through the shared-memory segment against the
// same collectives over TCP (a second group with shared_memory off, in the same ranks): the same
// bytes for every dtype and op the group takes, with data whose sums and max/min depend on the
// order of the ranks (magnitudes from 2^-20 to 2^20, signed zeros, NaNs with distinct payloads),
// for chunks that are uneven, empty, or span several rounds of the segment, in place too; the
// same traffic counted; and FABRIC_GLOO_SHM=0 keeping every collective off the segment.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "distributed/gloo_process_group.h"
#include "distributed/store.h"
#include "tensor/factory.h"
#include "tensor/float_formats.h"

namespace fabric::distributed {
namespace {

using namespace std::chrono_literals;

// Mappings of the group segments in this process (their names are unlinked, the mappings stay).
int segments_mapped() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  int n = 0;
  while (std::getline(maps, line)) n += line.find("/fabric-gloo-") != std::string::npos;
  return n;
}

// Runs body(rank, segment group, TCP group) for `size` ranks, each a thread with its two groups
// over one HashStore. The segment group has shared_memory on; whether it gets a segment is the
// environment's (FABRIC_GLOO_SHM).
void run_pairs(int size, const std::function<void(int, ProcessGroup&, ProcessGroup&)>& body) {
  auto store = std::make_shared<HashStore>();
  std::vector<std::string> errors(static_cast<size_t>(size));
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) {
    threads.emplace_back([&, r] {
      try {
        auto shm = make_gloo_process_group(store, r, size, {.timeout = 30s});
        auto tcp = make_gloo_process_group(store, r, size, {.timeout = 30s, .shared_memory = false});
        body(r, *shm, *tcp);
      } catch (const std::exception& e) {
        errors[size_t(r)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < size; ++r) EXPECT_EQ(errors[size_t(r)], "") << "rank " << r;
}

// Rank r's n elements of `dtype`, as raw bytes. Floats span 2^-20..2^20 with either sign, so that
// a sum depends on the order it is taken in; every 7th is a signed zero and every 11th (float32,
// float64) a NaN with a rank-specific payload, so that max and min do too.
Tensor order_sensitive(DType dtype, int64_t n, int r, bool for_product) {
  Tensor t = empty({n}, {.dtype = dtype});
  std::mt19937_64 gen(uint64_t(r) * 1000003 + uint64_t(n) * 31 + uint64_t(dtype));
  std::uniform_real_distribution<double> unit(0.5, 1.0);
  std::uniform_int_distribution<int> exponent(for_product ? -2 : -20, for_product ? 2 : 20);
  auto real = [&](int64_t i) {
    if (i % 7 == 3) return (r + i) % 2 ? -0.0 : 0.0;
    const double v = std::ldexp(unit(gen), exponent(gen));
    return gen() % 2 ? -v : v;
  };
  auto nan_bits = [&](int64_t i) { return i % 11 == 5; };
  for (int64_t i = 0; i < n; ++i) {
    switch (dtype) {
      case DType::float64: {
        double v = real(i);
        if (nan_bits(i)) {
          const uint64_t bits = 0x7ff8000000000000ull | uint64_t(r + 1);
          std::memcpy(&v, &bits, 8);
        }
        t.data<double>()[i] = v;
        break;
      }
      case DType::float32: {
        float v = float(real(i));
        if (nan_bits(i)) {
          const uint32_t bits = 0x7fc00000u | uint32_t(r + 1);
          std::memcpy(&v, &bits, 4);
        }
        t.data<float>()[i] = v;
        break;
      }
      case DType::float16:
        t.data<Half>()[i] = Half(float(real(i) / 16));
        break;
      case DType::bfloat16:
        t.data<BFloat16>()[i] = BFloat16(float(real(i)));
        break;
      case DType::int64:
        t.data<int64_t>()[i] = int64_t(gen());  // wraps around in sums and products
        break;
      case DType::int32:
        t.data<int32_t>()[i] = int32_t(gen());
        break;
      case DType::int8:
        t.data<int8_t>()[i] = int8_t(gen());
        break;
      case DType::uint8:
      case DType::bool_:
        // bool is one byte 0/1.
        static_cast<uint8_t*>(t.data_ptr())[i] =
            dtype == DType::bool_ ? uint8_t(gen() % 2) : uint8_t(gen());
        break;
      default:
        ADD_FAILURE() << "no data for " << dtype_name(dtype);
    }
  }
  return t;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.data_ptr(), b.data_ptr(), size_t(a.nbytes())) == 0;
}

const std::vector<DType> kDTypes = {DType::float32, DType::float64, DType::bfloat16, DType::float16,
                                    DType::int64,   DType::int32,   DType::int8,     DType::uint8,
                                    DType::bool_};

std::vector<ReduceOp> ops_for(DType dtype) {
  if (dtype == DType::bool_) return {ReduceOp::max, ReduceOp::min};
  std::vector<ReduceOp> ops = {ReduceOp::sum, ReduceOp::product, ReduceOp::max, ReduceOp::min};
  if (is_floating(dtype)) ops.push_back(ReduceOp::avg);
  return ops;
}

// Per-rank chunks: uneven, one element, empty.
const std::vector<int64_t> kChunks = {0, 1, 13, 1001};

void check_reduce_scatter_matches_tcp(int size) {
  run_pairs(size, [&](int r, ProcessGroup& shm, ProcessGroup& tcp) {
    for (DType dtype : kDTypes) {
      for (ReduceOp op : ops_for(dtype)) {
        for (int64_t n : kChunks) {
          const Tensor in = order_sensitive(dtype, n * size, r, op == ReduceOp::product);
          const Tensor before = in.clone();
          Tensor a = full({n}, 7, {.dtype = dtype}), b = full({n}, 9, {.dtype = dtype});
          shm.reduce_scatter(a, in, op)->wait();
          tcp.reduce_scatter(b, in, op)->wait();
          EXPECT_TRUE(same_bytes(a, b)) << "rank " << r << " of " << size << ", "
                                        << dtype_name(dtype) << " " << to_string(op) << ", chunk "
                                        << n;
          EXPECT_TRUE(same_bytes(in, before)) << "reduce_scatter must not modify its input";
          // In place: the output is this rank's chunk of the input, on both paths.
          Tensor c = in.clone(), d = in.clone();
          Tensor c_out = c.narrow(0, r * n, n), d_out = d.narrow(0, r * n, n);
          shm.reduce_scatter(c_out, c, op)->wait();
          tcp.reduce_scatter(d_out, d, op)->wait();
          EXPECT_TRUE(same_bytes(c_out, b) && same_bytes(d_out, b))
              << "in place, rank " << r << " of " << size << ", " << dtype_name(dtype) << " "
              << to_string(op) << ", chunk " << n;
        }
      }
    }
    // Several rounds of the segment (4 MiB / (size x 4 bytes) columns each), uneven.
    const int64_t n = (int64_t{1} << 20) / size + 12345;
    for (ReduceOp op : {ReduceOp::sum, ReduceOp::max}) {
      const Tensor in = order_sensitive(DType::float32, n * size, r, false);
      Tensor a = empty({n}, {.dtype = DType::float32}), b = empty({n}, {.dtype = DType::float32});
      shm.reduce_scatter(a, in, op)->wait();
      tcp.reduce_scatter(b, in, op)->wait();
      EXPECT_TRUE(same_bytes(a, b)) << "rank " << r << ", large, " << to_string(op);
    }
    EXPECT_EQ(shm.traffic().bytes_sent, tcp.traffic().bytes_sent) << "rank " << r;
    EXPECT_EQ(shm.traffic().ops, tcp.traffic().ops) << "rank " << r;
  });
}

TEST(GlooShmCollectives, ReduceScatterMatchesTcpBitForBitTwoRanks) {
  check_reduce_scatter_matches_tcp(2);
}
TEST(GlooShmCollectives, ReduceScatterMatchesTcpBitForBitThreeRanks) {
  check_reduce_scatter_matches_tcp(3);
}

void check_all_gather_matches_tcp(int size) {
  run_pairs(size, [&](int r, ProcessGroup& shm, ProcessGroup& tcp) {
    std::vector<int64_t> sizes = kChunks;
    sizes.push_back((int64_t{1} << 20) + 3);  // float32: more than one 4 MiB round
    for (DType dtype : kDTypes) {
      for (int64_t n : sizes) {
        if (n > 1001 && dtype != DType::float32) continue;
        const Tensor in = order_sensitive(dtype, n, r, false);
        Tensor a = full({size, n}, 7, {.dtype = dtype}), b = full({size, n}, 9, {.dtype = dtype});
        shm.all_gather(a, in)->wait();
        tcp.all_gather(b, in)->wait();
        EXPECT_TRUE(same_bytes(a, b)) << "rank " << r << " of " << size << ", "
                                      << dtype_name(dtype) << ", " << n << " elements";
        // In place: the input is this rank's block of the output.
        Tensor c = full({size * n}, 5, {.dtype = dtype});
        Tensor mine = c.narrow(0, r * n, n);
        mine.copy_(in);
        shm.all_gather(c, mine)->wait();
        EXPECT_TRUE(same_bytes(c, b)) << "in place, rank " << r << ", " << dtype_name(dtype)
                                      << ", " << n << " elements";
      }
    }
    EXPECT_EQ(shm.traffic().bytes_sent, 2 * tcp.traffic().bytes_sent) << "rank " << r;
  });
}

TEST(GlooShmCollectives, AllGatherMatchesTcpBitForBitTwoRanks) { check_all_gather_matches_tcp(2); }
TEST(GlooShmCollectives, AllGatherMatchesTcpBitForBitThreeRanks) {
  check_all_gather_matches_tcp(3);
}

// FABRIC_GLOO_SHM=0: no group maps a segment, and the collectives give what they give over TCP.
// Without it, every rank of the same groups maps one (the check that the test can tell).
TEST(GlooShmCollectives, EnvironmentSwitchKeepsEveryCollectiveOffTheSegment) {
  for (const char* env : {"0", ""}) {
    SCOPED_TRACE(std::string("FABRIC_GLOO_SHM=") + env);
    if (*env) setenv("FABRIC_GLOO_SHM", env, 1);
    const int size = 3;
    run_pairs(size, [&](int r, ProcessGroup& shm, ProcessGroup& tcp) {
      shm.barrier()->wait();  // every rank's groups exist
      EXPECT_EQ(segments_mapped(), *env ? 0 : size);
      const Tensor in = order_sensitive(DType::float32, 3 * size, r, false);
      Tensor a = empty({3}, {.dtype = DType::float32}), b = empty({3}, {.dtype = DType::float32});
      shm.reduce_scatter(a, in)->wait();
      tcp.reduce_scatter(b, in)->wait();
      EXPECT_TRUE(same_bytes(a, b));
      Tensor ga = empty({size, 9}, {.dtype = DType::float32}), gb = ga.clone();
      shm.all_gather(ga, in)->wait();
      tcp.all_gather(gb, in)->wait();
      EXPECT_TRUE(same_bytes(ga, gb));
      shm.barrier()->wait();  // no group goes before every rank has counted
    });
    unsetenv("FABRIC_GLOO_SHM");
  }
}

}  // namespace
}  // namespace fabric::distributed
