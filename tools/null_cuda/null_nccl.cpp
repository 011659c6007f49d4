// NCCL (libnccl.so.2) for the null CUDA runtime (null_cudart.cpp): communicators are host handles
// made at once, so the host side of multi-GPU training (rendezvous, communicator setup, bucketing,
// streams, sharded checkpoints) runs on a machine without GPUs. A collective of up to 64 KiB
// (metadata: sizes, dtypes, names, a checkpoint's piece lists, a small model's gradients) really
// happens: the ranks exchange their buffers through files in a shared directory and each computes
// the result, so what the ranks tell each other is true. Larger ones (gradients, parameters) move
// nothing and return at once; every rank sees the same sizes, so all agree on which kind a
// collective is. The null runtime's device memory is host memory, so the buffers are read here.
// With NULL_NCCL_STALL=1 in the environment (read at each call) a collective acts out a peer that
// never joins: it moves nothing and its stream never completes (null_cuda_stall_stream) until the
// communicator is aborted or destroyed, as a real NCCL kernel spins until an abort stops it. With
// NULL_NCCL_ASYNC_ERROR=1 every communicator reports an asynchronous error (ncclRemoteError).
#include <nccl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

extern "C" void null_cuda_count_collective();
extern "C" void null_cuda_stall_stream(cudaStream_t stream, const void* owner);
extern "C" void null_cuda_release_stalls(const void* owner);

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<char>;

constexpr size_t kExchangedUpTo = 64 * 1024;
// A peer that has not written its part by then has failed (the launcher stops the others).
constexpr auto kPeerTimeout = std::chrono::seconds(300);

struct Comm {
  int nranks, rank;
  std::string id;                 // from ncclGetUniqueId, names this communicator's files
  uint64_t collectives = 0;       // collectives exchanged so far, the same count on every rank
  std::map<int, uint64_t> sent;   // point-to-point messages to each peer
  std::map<int, uint64_t> taken;  // and from each peer
};

size_t bytes_of(size_t count, ncclDataType_t t) {
  switch (t) {
    case ncclInt8:
    case ncclUint8:
    case ncclFloat8e4m3:
    case ncclFloat8e5m2:
      return count;
    case ncclFloat16:
    case ncclBfloat16:
      return 2 * count;
    case ncclInt32:
    case ncclUint32:
    case ncclFloat32:
      return 4 * count;
    default:
      return 8 * count;  // int64, uint64, float64
  }
}

fs::path exchange_dir() {
  const fs::path shm = "/dev/shm";
  std::error_code ec;
  return fs::is_directory(shm, ec) ? shm : fs::temp_directory_path();
}

fs::path file_of(const Comm& c, const std::string& what) {
  return exchange_dir() / ("null-nccl-" + c.id + "-" + what);
}

// Written under a temporary name and renamed, so a reader sees all of it or nothing.
void publish(const fs::path& path, const void* data, size_t n) {
  const fs::path tmp = path.string() + ".part";
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(static_cast<const char*>(data), std::streamsize(n));
  }
  fs::rename(tmp, path);
}

// Waits for `path` and returns its contents; false after `timeout`.
bool take(const fs::path& path, Bytes& out,
          std::chrono::steady_clock::duration timeout = kPeerTimeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::error_code ec;
  while (!fs::exists(path, ec)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  std::ifstream in(path, std::ios::binary);
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

// Every rank's `n` bytes, in rank order. A rank that finished collective k has read every rank's
// part of k, so every rank has finished k - 1: each rank then removes its own part of k - 1.
bool exchange(Comm& c, const void* mine, size_t n, std::vector<Bytes>& all) {
  if (c.nranks == 1) {
    all.assign(1, Bytes(static_cast<const char*>(mine), static_cast<const char*>(mine) + n));
    return true;
  }
  const uint64_t k = c.collectives++;
  auto part = [&](uint64_t seq, int r) {
    return file_of(c, "c" + std::to_string(seq) + "-r" + std::to_string(r));
  };
  publish(part(k, c.rank), mine, n);
  all.assign(size_t(c.nranks), {});
  for (int r = 0; r < c.nranks; ++r) {
    if (!take(part(k, r), all[size_t(r)]) || all[size_t(r)].size() != n) return false;
  }
  std::error_code ec;
  if (k > 0) fs::remove(part(k - 1, c.rank), ec);
  return true;
}

float bf16_to_float(uint16_t b) {
  const uint32_t bits = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
uint16_t float_to_bf16(float f) {  // round to nearest even; NaN stays NaN
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);
  return uint16_t((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

template <typename T, typename Acc = T>
void reduce_as(std::vector<Bytes>& all, ncclRedOp_t op, int nranks, std::byte* out, size_t n,
               Acc (*load)(T) = nullptr, T (*store)(Acc) = nullptr) {
  const size_t count = n / sizeof(T);
  for (size_t i = 0; i < count; ++i) {
    Acc acc{};
    for (int r = 0; r < nranks; ++r) {
      T v;
      std::memcpy(&v, all[size_t(r)].data() + i * sizeof(T), sizeof(T));
      const Acc a = load ? load(v) : Acc(v);
      if (r == 0)
        acc = a;
      else if (op == ncclProd)
        acc = acc * a;
      else if (op == ncclMax)
        acc = std::max(acc, a);
      else if (op == ncclMin)
        acc = std::min(acc, a);
      else
        acc = acc + a;  // sum, avg
    }
    if (op == ncclAvg) acc = Acc(acc / Acc(nranks));
    const T v = store ? store(acc) : T(acc);
    std::memcpy(out + i * sizeof(T), &v, sizeof(T));
  }
}

// out = the reduction of every rank's `n` bytes, element by element.
void reduce(std::vector<Bytes>& all, ncclDataType_t t, ncclRedOp_t op, int nranks, void* out,
            size_t n) {
  std::byte* o = static_cast<std::byte*>(out);
  switch (t) {
    case ncclInt8:
      return reduce_as<int8_t>(all, op, nranks, o, n);
    case ncclUint8:
      return reduce_as<uint8_t>(all, op, nranks, o, n);
    case ncclInt32:
      return reduce_as<int32_t>(all, op, nranks, o, n);
    case ncclUint32:
      return reduce_as<uint32_t>(all, op, nranks, o, n);
    case ncclInt64:
      return reduce_as<int64_t>(all, op, nranks, o, n);
    case ncclUint64:
      return reduce_as<uint64_t>(all, op, nranks, o, n);
    case ncclFloat32:
      return reduce_as<float>(all, op, nranks, o, n);
    case ncclFloat64:
      return reduce_as<double>(all, op, nranks, o, n);
    case ncclFloat16:
      return reduce_as<_Float16, float>(
          all, op, nranks, o, n, +[](_Float16 h) { return float(h); },
          +[](float f) { return _Float16(f); });
    case ncclBfloat16:
      return reduce_as<uint16_t, float>(all, op, nranks, o, n, bf16_to_float, float_to_bf16);
    default:  // fp8: no reductions of them in fabric; keep this rank's values
      std::memmove(out, all[0].data(), n);
  }
}

ncclResult_t collective(bool ok = true) {
  null_cuda_count_collective();
  return ok ? ncclSuccess : ncclSystemError;
}

Comm& comm_of(ncclComm_t comm) { return *reinterpret_cast<Comm*>(comm); }

// NULL_NCCL_STALL: this collective's peer never comes; its stream waits until the communicator
// goes. True when the collective stalled (and so moves nothing).
bool stalls(ncclComm_t comm, cudaStream_t stream) {
  const char* e = std::getenv("NULL_NCCL_STALL");
  if (e == nullptr || std::strcmp(e, "1") != 0) return false;
  null_cuda_stall_stream(stream, comm);
  return true;
}

void remove_when_all_done(const Comm& c) {
  Bytes unused;
  for (int r = 0; r < c.nranks; ++r) {
    if (!take(file_of(c, "done-r" + std::to_string(r)), unused, std::chrono::seconds(30))) return;
  }
  const std::string prefix = "null-nccl-" + c.id + "-";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(exchange_dir(), ec)) {
    if (e.path().filename().string().rfind(prefix, 0) == 0) fs::remove(e.path(), ec);
  }
}

// Files of runs that were killed or aborted, an hour old or more.
void sweep_stale_files() {
  std::error_code ec;
  const auto cutoff = fs::file_time_type::clock::now() - std::chrono::hours(1);
  for (const auto& e : fs::directory_iterator(exchange_dir(), ec)) {
    if (e.path().filename().string().rfind("null-nccl-", 0) != 0) continue;
    std::error_code time_ec;
    const auto t = fs::last_write_time(e.path(), time_ec);
    if (!time_ec && t < cutoff) fs::remove(e.path(), time_ec);
  }
}

}  // namespace

extern "C" {

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  // Unique per communicator and run: the ranks learn it from rank 0 as from the real NCCL.
  static std::atomic<uint64_t> made{0};
  if (made == 0) sweep_stale_files();
  std::random_device rd;
  std::memset(id, 0, sizeof(*id));
  std::snprintf(id->internal, sizeof(id->internal), "%d-%llu-%08x", int(getpid()),
                static_cast<unsigned long long>(made++), unsigned(rd()));
  return ncclSuccess;
}
ncclResult_t ncclCommInitRankConfig(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank,
                                    ncclConfig_t*) {
  const std::string name(id.internal, strnlen(id.internal, sizeof(id.internal)));
  *comm = reinterpret_cast<ncclComm_t>(new Comm{nranks, rank, name});
  return ncclSuccess;
}
ncclResult_t ncclCommGetAsyncError(ncclComm_t, ncclResult_t* state) {
  // NULL_NCCL_ASYNC_ERROR=1: a failure NCCL found in the background (a peer's connection lost).
  const char* e = std::getenv("NULL_NCCL_ASYNC_ERROR");
  *state = e != nullptr && std::strcmp(e, "1") == 0 ? ncclRemoteError : ncclSuccess;
  return ncclSuccess;
}
ncclResult_t ncclCommFinalize(ncclComm_t) { return ncclSuccess; }
ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  Comm* c = &comm_of(comm);
  // A slower peer may still read this rank's last part: every rank says it is done and rank 0,
  // once all have, removes the communicator's files.
  if (c->nranks > 1) {
    const std::string done = "done-r" + std::to_string(c->rank);
    publish(file_of(*c, done), "", 0);
    if (c->rank == 0) remove_when_all_done(*c);
  }
  null_cuda_release_stalls(comm);
  delete c;
  return ncclSuccess;
}
ncclResult_t ncclCommAbort(ncclComm_t comm) {
  null_cuda_release_stalls(comm);  // an abort makes the kernels waiting for a peer quit
  delete &comm_of(comm);  // peers may be gone: no waiting; sweep_stale_files takes the files later
  return ncclSuccess;
}
const char* ncclGetErrorString(ncclResult_t r) {
  return r == ncclSystemError ? "a peer of the null NCCL did not join a collective within 300 s"
                              : "reported by the null NCCL";
}
const char* ncclGetLastError(ncclComm_t) { return ""; }
ncclResult_t ncclGroupStart() { return ncclSuccess; }
ncclResult_t ncclGroupEnd() { return ncclSuccess; }

ncclResult_t ncclAllReduce(const void* send, void* recv, size_t count, ncclDataType_t t,
                           ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
  Comm& c = comm_of(comm);
  const size_t n = bytes_of(count, t);
  if (n == 0 || stalls(comm, stream) || n > kExchangedUpTo) return collective();
  std::vector<Bytes> all;
  if (!exchange(c, send, n, all)) return collective(false);
  reduce(all, t, op, c.nranks, recv, n);
  return collective();
}
ncclResult_t ncclAllGather(const void* send, void* recv, size_t count, ncclDataType_t t,
                           ncclComm_t comm, cudaStream_t stream) {
  Comm& c = comm_of(comm);
  const size_t n = bytes_of(count, t);
  if (n == 0 || stalls(comm, stream) || n * size_t(c.nranks) > kExchangedUpTo) return collective();
  std::vector<Bytes> all;
  if (!exchange(c, send, n, all)) return collective(false);
  for (int r = 0; r < c.nranks; ++r) {
    std::memcpy(static_cast<std::byte*>(recv) + size_t(r) * n, all[size_t(r)].data(), n);
  }
  return collective();
}
ncclResult_t ncclReduceScatter(const void* send, void* recv, size_t count, ncclDataType_t t,
                               ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
  Comm& c = comm_of(comm);
  const size_t n = bytes_of(count, t);
  if (n == 0 || stalls(comm, stream) || n * size_t(c.nranks) > kExchangedUpTo) return collective();
  std::vector<Bytes> all;
  if (!exchange(c, send, n * size_t(c.nranks), all)) return collective(false);
  for (Bytes& b : all)
    b = Bytes(b.begin() + std::ptrdiff_t(size_t(c.rank) * n),
              b.begin() + std::ptrdiff_t(size_t(c.rank + 1) * n));
  reduce(all, t, op, c.nranks, recv, n);
  return collective();
}
ncclResult_t ncclBroadcast(const void* send, void* recv, size_t count, ncclDataType_t t, int root,
                           ncclComm_t comm, cudaStream_t stream) {
  Comm& c = comm_of(comm);
  const size_t n = bytes_of(count, t);
  if (n == 0 || stalls(comm, stream) || n > kExchangedUpTo) return collective();
  // Every rank takes part (the counts stay in step); only the root's bytes are used.
  std::vector<Bytes> all;
  if (!exchange(c, c.rank == root ? send : recv, n, all)) return collective(false);
  std::memmove(recv, all[size_t(root)].data(), n);
  return collective();
}
ncclResult_t ncclSend(const void* send, size_t count, ncclDataType_t t, int peer, ncclComm_t comm,
                      cudaStream_t stream) {
  Comm& c = comm_of(comm);
  const size_t n = bytes_of(count, t);
  if (n == 0 || stalls(comm, stream) || n > kExchangedUpTo) return collective();
  const uint64_t k = c.sent[peer]++;
  publish(file_of(c, "p" + std::to_string(c.rank) + "-" + std::to_string(peer) + "-" +
                         std::to_string(k)),
          send, n);
  return collective();
}
ncclResult_t ncclRecv(void* recv, size_t count, ncclDataType_t t, int peer, ncclComm_t comm,
                      cudaStream_t stream) {
  Comm& c = comm_of(comm);
  const size_t n = bytes_of(count, t);
  if (n == 0 || stalls(comm, stream) || n > kExchangedUpTo) return collective();
  const uint64_t k = c.taken[peer]++;
  const fs::path path = file_of(
      c, "p" + std::to_string(peer) + "-" + std::to_string(c.rank) + "-" + std::to_string(k));
  Bytes got;
  if (!take(path, got) || got.size() != n) return collective(false);
  std::memcpy(recv, got.data(), n);
  std::error_code ec;
  fs::remove(path, ec);
  return collective();
}

}  // extern "C"
