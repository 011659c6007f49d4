// The one interface every collective backend implements (Gloo on CPU tensors, NCCL on CUDA
// tensors). Operations are asynchronous and run in the order they were issued on this rank; the
// returned Work is waited on before the tensors are read or reused. Every operation has a timeout
// and fails with a TimeoutError / DistributedError naming the operation, this rank and the peer
// instead of hanging.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace fabric::distributed {

enum class ReduceOp { sum, avg, max, min, product };

// "sum", "mean"/"avg", "max", "min", "product"/"prod" (case-insensitive); ValueError otherwise.
ReduceOp parse_reduce_op(const std::string& name);
const char* to_string(ReduceOp op);

class Work {
 public:
  virtual ~Work() = default;
  // Blocks until the operation finished; rethrows its error (once per Work, on every call).
  virtual void wait() = 0;
  virtual bool is_completed() const = 0;
};
using WorkPtr = std::shared_ptr<Work>;

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;  // "gloo" | "nccl"
  virtual std::chrono::milliseconds timeout() const = 0;

  // The device every tensor handed to this group must be on: cpu (Gloo), cuda:N (NCCL), or
  // nullopt for a group that takes any device (the single-process group, which only copies). A
  // caller whose tensors may live elsewhere (host-side shapes, flags, counts) goes through
  // collective_staging.h instead of moving them itself.
  virtual std::optional<Device> device() const = 0;

  // Tensors must be contiguous and on device(); the ops keep them alive until done.
  // In place.
  virtual WorkPtr all_reduce(Tensor& tensor, ReduceOp op = ReduceOp::sum) = 0;
  // input holds size() equal chunks in rank order; output (numel = input.numel() / size()) receives
  // this rank's chunk reduced over all ranks.
  virtual WorkPtr reduce_scatter(Tensor& output, const Tensor& input, ReduceOp op = ReduceOp::sum) = 0;
  // output (numel = size() * input.numel()) receives every rank's input, concatenated in rank order.
  virtual WorkPtr all_gather(Tensor& output, const Tensor& input) = 0;
  // Uneven: rank r contributes counts[r] elements; output numel = sum(counts).
  virtual WorkPtr all_gather_v(Tensor& output, const Tensor& input, const std::vector<int64_t>& counts) = 0;
  virtual WorkPtr broadcast(Tensor& tensor, int root) = 0;
  virtual WorkPtr barrier() = 0;
  virtual WorkPtr send(const Tensor& tensor, int dst, uint32_t tag = 0) = 0;
  virtual WorkPtr recv(Tensor& tensor, int src, uint32_t tag = 0) = 0;

  // What this rank has put on the wire since construction or the last reset_traffic(): bytes by
  // the algorithm the backend uses (each backend documents its formulas), ops counts every op
  // that completed without error. For benchmarks; a backend that does not count leaves zeros.
  struct Traffic {
    int64_t bytes_sent = 0;
    int64_t ops = 0;
  };
  Traffic traffic() const {
    return Traffic{bytes_sent_.load(std::memory_order_relaxed), ops_.load(std::memory_order_relaxed)};
  }
  void reset_traffic() {
    bytes_sent_.store(0, std::memory_order_relaxed);
    ops_.store(0, std::memory_order_relaxed);
  }

 protected:
  void add_traffic(int64_t bytes_sent) {
    bytes_sent_.fetch_add(bytes_sent, std::memory_order_relaxed);
    ops_.fetch_add(1, std::memory_order_relaxed);
  }

 private:
  std::atomic<int64_t> bytes_sent_{0};
  std::atomic<int64_t> ops_{0};
};

}  // namespace fabric::distributed
