// The NCCL process group: the collectives and point-to-point ops, each checked and issued on the
// group's communicator state (nccl_comm.h), and Work that waits on its record against the timeout.
#include "distributed/nccl_process_group.h"

#include "tensor/error.h"

#ifdef FABRIC_WITH_CUDA
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "distributed/nccl_comm.h"
#endif

namespace fabric::distributed {

#ifdef FABRIC_WITH_CUDA

namespace {

using nccl_comm_detail::CommState;
using nccl_comm_detail::Launch;
using nccl_comm_detail::OpRecord;
using std::chrono::milliseconds;

class NcclWork : public Work {
 public:
  NcclWork(std::shared_ptr<CommState> state, std::shared_ptr<OpRecord> rec)
      : state_(std::move(state)), rec_(std::move(rec)) {}
  void wait() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (error_) std::rethrow_exception(error_);
    if (done_) return;
    try {
      state_->wait(*rec_);
      done_ = true;
    } catch (...) {
      error_ = std::current_exception();
      throw;
    }
  }
  bool is_completed() const override {
    std::lock_guard<std::mutex> lock(mu_);
    if (done_ || error_) return true;
    return state_->completed(*rec_);
  }

 private:
  std::shared_ptr<CommState> state_;
  std::shared_ptr<OpRecord> rec_;
  mutable std::mutex mu_;
  bool done_ = false;
  std::exception_ptr error_;
};

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
      return ncclSum;
    case ReduceOp::product:
      return ncclProd;
    case ReduceOp::max:
      return ncclMax;
    case ReduceOp::min:
      return ncclMin;
    case ReduceOp::avg:
      return ncclAvg;
  }
  return ncclSum;
}

class NcclProcessGroup : public ProcessGroup {
 public:
  explicit NcclProcessGroup(std::shared_ptr<CommState> state) : state_(std::move(state)) {}

  int rank() const override { return state_->rank(); }
  int size() const override { return state_->size(); }
  std::string backend() const override { return "nccl"; }
  milliseconds timeout() const override { return state_->timeout(); }
  std::optional<Device> device() const override { return Device::cuda(state_->device()); }

  WorkPtr all_reduce(Tensor& tensor, ReduceOp op) override;
  WorkPtr reduce_scatter(Tensor& output, const Tensor& input, ReduceOp op) override;
  WorkPtr all_gather(Tensor& output, const Tensor& input) override;
  WorkPtr all_gather_v(Tensor& output, const Tensor& input,
                       const std::vector<int64_t>& counts) override;
  WorkPtr broadcast(Tensor& tensor, int root) override;
  WorkPtr barrier() override;
  WorkPtr send(const Tensor& tensor, int dst, uint32_t tag) override;
  WorkPtr recv(Tensor& tensor, int src, uint32_t tag) override;

 private:
  std::string where() const {
    return "rank " + std::to_string(rank()) + " of " + std::to_string(size()) +
           ", cuda:" + std::to_string(state_->device());
  }
  void check_tensor(const Tensor& t, const char* op, const char* arg) const;
  ncclDataType_t data_type(DType dtype, const char* op) const;
  ncclDataType_t reduce_type(DType dtype, ReduceOp rop, const char* op) const;
  void check_peer(int peer, const char* op, const char* what) const;
  void check_same_dtype(const Tensor& out, const Tensor& in, const char* op) const;
  WorkPtr p2p(const char* op, const Tensor& tensor, int peer, uint32_t tag, bool is_send);
  // `launch` is left empty for an op with no elements.
  WorkPtr run(const char* op, std::string peers, std::vector<Tensor> keep, const char* call,
              const Launch& launch) {
    auto rec = state_->issue(op, std::move(peers), std::move(keep), call, launch);
    return std::make_shared<NcclWork>(state_, std::move(rec));
  }

  std::shared_ptr<CommState> state_;
};

void NcclProcessGroup::check_tensor(const Tensor& t, const char* op, const char* arg) const {
  FABRIC_CHECK(t.defined(), ValueError, "nccl ", op, " (", where(), "): ", arg,
               " is an undefined tensor");
  FABRIC_CHECK(t.device() == Device::cuda(state_->device()), DeviceError, "nccl ", op, " (",
               where(), "): ", arg, ": NCCL process group takes cuda:", state_->device(),
               " tensors; got ", t.device().str(),
               t.device().is_cpu() ? " (use the Gloo process group for CPU tensors)" : "");
  FABRIC_CHECK(t.is_contiguous(), ValueError, "nccl ", op, " (", where(), "): ", arg,
               " must be contiguous, got shape ", shape_str(t.shape()), " with strides ",
               shape_str(t.strides()), "; call .contiguous() first");
}

ncclDataType_t NcclProcessGroup::data_type(DType dtype, const char* op) const {
  switch (dtype) {
    case DType::float64:
      return ncclFloat64;
    case DType::float32:
      return ncclFloat32;
    case DType::float16:
      return ncclFloat16;
    case DType::bfloat16:
      return ncclBfloat16;
    case DType::int64:
      return ncclInt64;
    case DType::int32:
      return ncclInt32;
    case DType::int8:
      return ncclInt8;
    case DType::uint8:
      return ncclUint8;
    case DType::bool_:
      // One byte 0/1, as PyTorch maps it: moved as uint8 (reductions: reduce_type).
      return ncclUint8;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 24, 0)
    case DType::float8_e4m3fn:
      return ncclFloat8e4m3;
    case DType::float8_e5m2:
      return ncclFloat8e5m2;
#endif
    default:
      break;
  }
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 24, 0)
  const std::string fp8 = " (or float8_e4m3fn/float8_e5m2)";
#else
  const std::string fp8 = " (fp8 needs NCCL 2.24 or newer; this build has NCCL " +
                          std::to_string(NCCL_VERSION_CODE) + ")";
#endif
  throw DTypeError(
      "nccl " + std::string(op) + " (" + where() + "): NCCL does not take " +
      std::string(dtype_name(dtype)) +
      " tensors; expected float64, float32, float16, bfloat16, int64, int32, int8, uint8 or bool" +
      fp8);
}

ncclDataType_t NcclProcessGroup::reduce_type(DType dtype, ReduceOp rop, const char* op) const {
  const ncclDataType_t t = data_type(dtype, op);
  // As the Gloo group: an average of integers would truncate, so it is refused on both backends.
  FABRIC_CHECK(
      rop != ReduceOp::avg || is_floating(dtype), DTypeError, "nccl ", op, " (", where(),
      "): ReduceOp avg needs a floating tensor (float64, float32, float16, bfloat16), got ",
      dtype_name(dtype), "; use sum and divide");
  // As the Gloo group too: uint8 max/min of 0/1 bytes is logical or/and; a sum or product would
  // leave values other than 0/1 in a bool.
  FABRIC_CHECK(dtype != DType::bool_ || rop == ReduceOp::max || rop == ReduceOp::min, DTypeError,
               "nccl ", op, " (", where(), "): cannot reduce a bool tensor with ReduceOp ",
               to_string(rop), "; bool reduces with max or min only (as on Gloo)");
  FABRIC_CHECK(!is_fp8(dtype) || state_->fp8_reductions(), DTypeError, "nccl ", op, " (", where(),
               "): NCCL reduces ", dtype_name(dtype),
               " only on compute capability 9.0 or newer; cuda:", state_->device(),
               " is older (all_gather/broadcast/send/recv of fp8 work)");
  return t;
}

void NcclProcessGroup::check_peer(int peer, const char* op, const char* what) const {
  FABRIC_CHECK(peer >= 0 && peer < size(), ValueError, "nccl ", op, " (", where(), "): ", what,
               " rank ", peer, " is out of range (expected 0 <= rank < ", size(), ")");
}

void NcclProcessGroup::check_same_dtype(const Tensor& out, const Tensor& in, const char* op) const {
  FABRIC_CHECK(out.dtype() == in.dtype(), DTypeError, "nccl ", op, " (", where(), "): output is ",
               dtype_name(out.dtype()), " but input is ", dtype_name(in.dtype()),
               "; expected the same dtype");
}

WorkPtr NcclProcessGroup::all_reduce(Tensor& tensor, ReduceOp op) {
  check_tensor(tensor, "all_reduce", "tensor");
  const ncclDataType_t type = reduce_type(tensor.dtype(), op, "all_reduce");
  const size_t n = static_cast<size_t>(tensor.numel());
  void* p = tensor.data_ptr();
  const ncclRedOp_t rop = nccl_op(op);
  Launch launch;
  if (n > 0)
    launch = [=](ncclComm_t c, cudaStream_t s, const char*&) {
      return ncclAllReduce(p, p, n, type, rop, c, s);
    };
  return run("all_reduce", "", {tensor}, "ncclAllReduce", launch);
}

WorkPtr NcclProcessGroup::reduce_scatter(Tensor& output, const Tensor& input, ReduceOp op) {
  check_tensor(output, "reduce_scatter", "output");
  check_tensor(input, "reduce_scatter", "input");
  check_same_dtype(output, input, "reduce_scatter");
  FABRIC_CHECK(input.numel() == output.numel() * size(), ShapeError, "nccl reduce_scatter (",
               where(), "): input must hold size() = ", size(), " chunks of the output's numel ",
               output.numel(), " (", output.numel() * size(), " elements), got input shape ",
               shape_str(input.shape()), " and output shape ", shape_str(output.shape()));
  const ncclDataType_t type = reduce_type(input.dtype(), op, "reduce_scatter");
  const size_t n = static_cast<size_t>(output.numel());
  const void* in = input.data_ptr();
  void* out = output.data_ptr();
  const ncclRedOp_t rop = nccl_op(op);
  Launch launch;
  if (n > 0) {
    launch = [=](ncclComm_t c, cudaStream_t s, const char*&) {
      return ncclReduceScatter(in, out, n, type, rop, c, s);
    };
  }
  return run("reduce_scatter", "", {output, input}, "ncclReduceScatter", launch);
}

WorkPtr NcclProcessGroup::all_gather(Tensor& output, const Tensor& input) {
  check_tensor(output, "all_gather", "output");
  check_tensor(input, "all_gather", "input");
  check_same_dtype(output, input, "all_gather");
  FABRIC_CHECK(output.numel() == input.numel() * size(), ShapeError, "nccl all_gather (", where(),
               "): output must hold size() = ", size(), " copies of the input's numel ",
               input.numel(), " (", input.numel() * size(), " elements), got output shape ",
               shape_str(output.shape()), " and input shape ", shape_str(input.shape()));
  const ncclDataType_t type = data_type(input.dtype(), "all_gather");
  const size_t n = static_cast<size_t>(input.numel());
  const void* in = input.data_ptr();
  void* out = output.data_ptr();
  Launch launch;
  if (n > 0)
    launch = [=](ncclComm_t c, cudaStream_t s, const char*&) {
      return ncclAllGather(in, out, n, type, c, s);
    };
  return run("all_gather", "", {output, input}, "ncclAllGather", launch);
}

// NCCL has no uneven all-gather: one broadcast per rank, rooted at that rank, into its slot of the
// output, fused into one group so they progress together.
WorkPtr NcclProcessGroup::all_gather_v(Tensor& output, const Tensor& input,
                                       const std::vector<int64_t>& counts) {
  check_tensor(output, "all_gather_v", "output");
  check_tensor(input, "all_gather_v", "input");
  check_same_dtype(output, input, "all_gather_v");
  FABRIC_CHECK(counts.size() == size_t(size()), ValueError, "nccl all_gather_v (", where(),
               "): got ", counts.size(), " counts, expected one per rank (", size(), ")");
  int64_t total = 0;
  for (size_t k = 0; k < counts.size(); ++k) {
    FABRIC_CHECK(counts[k] >= 0, ValueError, "nccl all_gather_v (", where(), "): counts[", k,
                 "] = ", counts[k], " is negative");
    total += counts[k];
  }
  FABRIC_CHECK(counts[size_t(rank())] == input.numel(), ShapeError, "nccl all_gather_v (", where(),
               "): counts[", rank(), "] = ", counts[size_t(rank())], " but this rank's input has ",
               input.numel(), " elements (shape ", shape_str(input.shape()), ")");
  FABRIC_CHECK(total == output.numel(), ShapeError, "nccl all_gather_v (", where(),
               "): the counts sum to ", total, " but output has ", output.numel(),
               " elements (shape ", shape_str(output.shape()), ")");
  const ncclDataType_t type = data_type(input.dtype(), "all_gather_v");
  const size_t isz = static_cast<size_t>(input.element_size());
  const void* in = input.data_ptr();
  char* out = static_cast<char*>(output.data_ptr());
  const int me = rank();
  Launch launch;
  if (total > 0) {
    launch = [=](ncclComm_t c, cudaStream_t s, const char*& call) {
      call = "ncclGroupStart";
      ncclResult_t r = ncclGroupStart();
      if (r != ncclSuccess) return r;
      ncclResult_t failed = ncclSuccess;
      size_t offset = 0;
      for (size_t q = 0; q < counts.size() && failed == ncclSuccess; ++q) {
        const size_t n = static_cast<size_t>(counts[q]);
        char* slot = out + offset * isz;
        offset += n;
        if (n == 0) continue;  // every rank has the same counts, so every rank skips it
        const void* send = int(q) == me ? in : slot;  // only the root's send buffer is read
        r = ncclBroadcast(send, slot, n, type, int(q), c, s);
        if (r != ncclSuccess && r != ncclInProgress) failed = r;
      }
      const ncclResult_t end = ncclGroupEnd();  // closes the group even after a failed call
      call = failed != ncclSuccess ? "ncclBroadcast" : "ncclGroupEnd";
      return failed != ncclSuccess ? failed : end;
    };
  }
  return run("all_gather_v", "", {output, input}, "ncclGroupEnd", launch);
}

WorkPtr NcclProcessGroup::broadcast(Tensor& tensor, int root) {
  check_tensor(tensor, "broadcast", "tensor");
  check_peer(root, "broadcast", "root");
  const ncclDataType_t type = data_type(tensor.dtype(), "broadcast");
  const size_t n = static_cast<size_t>(tensor.numel());
  void* p = tensor.data_ptr();
  Launch launch;
  if (n > 0)
    launch = [=](ncclComm_t c, cudaStream_t s, const char*&) {
      return ncclBroadcast(p, p, n, type, root, c, s);
    };
  return run("broadcast", "root rank " + std::to_string(root), {tensor}, "ncclBroadcast", launch);
}

WorkPtr NcclProcessGroup::barrier() {
  // A one-float all-reduce: it completes on a rank only once every rank has issued it.
  float* buf = state_->barrier_buffer();
  return run("barrier", "all ranks", {}, "ncclAllReduce",
             [=](ncclComm_t c, cudaStream_t s, const char*&) {
               return ncclAllReduce(buf, buf, 1, ncclFloat32, ncclSum, c, s);
             });
}

// The tag is not sent: NCCL pairs a rank's sends to a peer with that peer's receives from it in
// issue order. A send holds its stream until the peer receives, so two ranks that both send
// first wait on each other until the timeout: one side must receive first.
WorkPtr NcclProcessGroup::p2p(const char* op, const Tensor& tensor, int peer, uint32_t tag,
                              bool is_send) {
  const char* what = is_send ? "destination" : "source";
  check_tensor(tensor, op, "tensor");
  check_peer(peer, op, what);
  FABRIC_CHECK(peer != rank(), ValueError, "nccl ", op, " (", where(), "): ", what, " rank ", peer,
               " is this rank; expected another rank");
  const ncclDataType_t type = data_type(tensor.dtype(), op);
  const size_t n = static_cast<size_t>(tensor.numel());
  void* p = tensor.data_ptr();
  Launch launch;
  if (n > 0) {
    launch = [=](ncclComm_t c, cudaStream_t s, const char*&) {
      return is_send ? ncclSend(p, n, type, peer, c, s) : ncclRecv(p, n, type, peer, c, s);
    };
  }
  std::string peers =
      "peer rank " + std::to_string(peer) + ", tag " + std::to_string(tag) + " (unused by NCCL)";
  return run(op, std::move(peers), {tensor}, is_send ? "ncclSend" : "ncclRecv", launch);
}

WorkPtr NcclProcessGroup::send(const Tensor& tensor, int dst, uint32_t tag) {
  return p2p("send", tensor, dst, tag, true);
}

WorkPtr NcclProcessGroup::recv(Tensor& tensor, int src, uint32_t tag) {
  return p2p("recv", tensor, src, tag, false);
}

}  // namespace

std::shared_ptr<ProcessGroup> make_nccl_process_group(std::shared_ptr<Store> store, int rank,
                                                      int size, int device,
                                                      const NcclOptions& options) {
  FABRIC_CHECK(store != nullptr, ValueError, "make_nccl_process_group: the store is null");
  FABRIC_CHECK(size >= 1, ValueError, "make_nccl_process_group: size must be >= 1, got ", size);
  FABRIC_CHECK(rank >= 0 && rank < size, ValueError, "make_nccl_process_group: rank ", rank,
               " is out of range for size ", size, " (expected 0 <= rank < size)");
  FABRIC_CHECK(device >= 0, ValueError,
               "make_nccl_process_group: device must be a CUDA device index >= 0, got ", device);
  FABRIC_CHECK(options.timeout.count() > 0, ValueError,
               "make_nccl_process_group: timeout must be > 0 ms, got ", options.timeout.count());
  auto state = std::make_shared<CommState>(rank, size, device, options.timeout);
  state->init(std::move(store));  // on failure ~CommState releases what init created
  return std::make_shared<NcclProcessGroup>(std::move(state));
}

bool nccl_available() { return true; }

#else  // !FABRIC_WITH_CUDA

std::shared_ptr<ProcessGroup> make_nccl_process_group(std::shared_ptr<Store> /*store*/, int rank,
                                                      int size, int device,
                                                      const NcclOptions& /*options*/) {
  throw DeviceError(
      "make_nccl_process_group (rank " + std::to_string(rank) + " of " + std::to_string(size) +
      ", cuda:" + std::to_string(device) +
      "): this build has no CUDA backend (FABRIC_CUDA=OFF or no nvcc); use the Gloo process group");
}

bool nccl_available() { return false; }

#endif  // FABRIC_WITH_CUDA

}  // namespace fabric::distributed
