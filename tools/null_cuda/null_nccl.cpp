// NCCL (libnccl.so.2) for the null CUDA runtime (null_cudart.cpp): communicators are host handles
// made at once and collectives return at once, so the host side of multi-GPU training (rendezvous,
// communicator setup, bucketing, streams) runs on a machine without GPUs. The ranks never wait for
// each other. A collective of up to 64 KiB (metadata: sizes, dtypes, names) acts as if every rank
// had sent what this one did -- an all-gather repeats this rank's piece, a reduce-scatter keeps
// its share, an all-reduce or broadcast keeps its own values -- so that exchanges the ranks agree
// on come out consistent; larger ones (gradients, parameters) move nothing.
#include <nccl.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

extern "C" void null_cuda_count_collective();

namespace {

constexpr size_t kCopiedBelow = 64 * 1024;

struct Comm {
  int nranks, rank;
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

// Copies n bytes when the collective is small enough to be metadata.
void copy_small(void* dst, const void* src, size_t n, size_t total) {
  if (total <= kCopiedBelow && dst != src && n > 0) std::memmove(dst, src, n);
}

ncclResult_t collective() {
  null_cuda_count_collective();
  return ncclSuccess;
}

}  // namespace

extern "C" {

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  std::memset(id, 0, sizeof(*id));
  std::strncpy(id->internal, "null-nccl", sizeof(id->internal) - 1);
  return ncclSuccess;
}
ncclResult_t ncclCommInitRankConfig(ncclComm_t* comm, int nranks, ncclUniqueId, int rank,
                                    ncclConfig_t*) {
  *comm = reinterpret_cast<ncclComm_t>(new Comm{nranks, rank});
  return ncclSuccess;
}
ncclResult_t ncclCommGetAsyncError(ncclComm_t, ncclResult_t* state) {
  *state = ncclSuccess;
  return ncclSuccess;
}
ncclResult_t ncclCommFinalize(ncclComm_t) { return ncclSuccess; }
ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  delete reinterpret_cast<Comm*>(comm);
  return ncclSuccess;
}
ncclResult_t ncclCommAbort(ncclComm_t comm) { return ncclCommDestroy(comm); }
const char* ncclGetErrorString(ncclResult_t) { return "reported by the null NCCL"; }
const char* ncclGetLastError(ncclComm_t) { return ""; }
ncclResult_t ncclGroupStart() { return ncclSuccess; }
ncclResult_t ncclGroupEnd() { return ncclSuccess; }
ncclResult_t ncclAllReduce(const void* send, void* recv, size_t count, ncclDataType_t t,
                           ncclRedOp_t, ncclComm_t, cudaStream_t) {
  const size_t n = bytes_of(count, t);
  copy_small(recv, send, n, n);
  return collective();
}
ncclResult_t ncclAllGather(const void* send, void* recv, size_t count, ncclDataType_t t,
                           ncclComm_t comm, cudaStream_t) {
  const Comm* c = reinterpret_cast<const Comm*>(comm);
  const size_t n = bytes_of(count, t);
  for (int r = 0; r < c->nranks; ++r) {
    copy_small(static_cast<std::byte*>(recv) + r * n, send, n, n * c->nranks);
  }
  return collective();
}
ncclResult_t ncclReduceScatter(const void* send, void* recv, size_t count, ncclDataType_t t,
                               ncclRedOp_t, ncclComm_t comm, cudaStream_t) {
  const Comm* c = reinterpret_cast<const Comm*>(comm);
  const size_t n = bytes_of(count, t);
  copy_small(recv, static_cast<const std::byte*>(send) + c->rank * n, n, n * c->nranks);
  return collective();
}
ncclResult_t ncclBroadcast(const void* send, void* recv, size_t count, ncclDataType_t t, int,
                           ncclComm_t, cudaStream_t) {
  const size_t n = bytes_of(count, t);
  copy_small(recv, send, n, n);
  return collective();
}
ncclResult_t ncclSend(const void*, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t) {
  return collective();
}
ncclResult_t ncclRecv(void*, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t) {
  return collective();
}

}  // extern "C"
