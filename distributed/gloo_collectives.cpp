// The Gloo process group's operations: all_reduce, reduce_scatter (our ring), all_gather(_v) and
// broadcast run by Gloo on the tensors' own memory, each after the ranks agreed on the call over
// TCP (gloo_call_check.h: a mismatch reaching Gloo would end the process), the barrier (that same
// exchange alone), and the posting of sends/recvs. On one host all_reduce, reduce_scatter and
// all_gather go through the shared-memory segment instead (shm_collectives.h), which compares the
// calls itself.
#include <gloo/allgather.h>
#include <gloo/allgatherv.h>
#include <gloo/allreduce.h>
#include <gloo/broadcast.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "distributed/gloo_call_check.h"
#include "distributed/gloo_group.h"
#include "distributed/gloo_reduce.h"
#include "tensor/error.h"

namespace fabric::distributed::gloo_detail {

namespace {

// Gloo's typed setters only record sizeof(T): pick an unsigned type of the element's width so
// that segments never split an element.
void set_allreduce_output(gloo::AllreduceOptions& o, void* p, size_t n, int64_t itemsize) {
  switch (itemsize) {
    case 1:
      o.setOutput(static_cast<uint8_t*>(p), n);
      break;
    case 2:
      o.setOutput(static_cast<uint16_t*>(p), n);
      break;
    case 4:
      o.setOutput(static_cast<uint32_t*>(p), n);
      break;
    default:
      o.setOutput(static_cast<uint64_t*>(p), n);
      break;
  }
}

}  // namespace

void GlooProcessGroup::on_segment(const CallRecord& mine, uint32_t tag, Clock::time_point deadline,
                                  const std::function<void()>& run) {
  try {
    run();
  } catch (const ShmOtherCollective&) {
    // A peer issued a collective that runs over TCP and awaits this rank's call there: there
    // every rank finds the same mismatch.
    check_call_records(exchange_call_records(*context_, tag, mine, deadline), rank_);
    throw;
  }
}

void GlooProcessGroup::agree_on_call(const CallRecord& mine, uint32_t tag,
                                     Clock::time_point deadline,
                                     const std::vector<int64_t>* counts) {
  // On one host a peer may be in the shared-memory all_reduce at this point: it learns of this
  // call from the segment, and answers over TCP.
  if (shm_) shm_->announce(mine);
  check_call_records(exchange_call_records(*context_, tag, mine, deadline), rank_, counts);
}

WorkPtr GlooProcessGroup::all_reduce(Tensor& tensor, ReduceOp op) {
  check_tensor(tensor, "all_reduce", "tensor");
  const ReduceFn fn = gloo_detail::reduce_function(tensor.dtype(), op, "all_reduce");
  const uint32_t tag = next_tag();
  return enqueue("all_reduce", ring_peers(),
                 [this, t = tensor, op, fn, tag](Clock::time_point deadline, const auto&) {
                   const size_t n = static_cast<size_t>(t.numel());
                   if (size_ == 1) return true;
                   const CallRecord mine = make_call_record(Collective::all_reduce, t, op);
                   if (shm_) {
                     // The segment compares the calls itself, an empty tensor's too.
                     on_segment(mine, tag, deadline, [&] {
                       shm_->all_reduce(t.data_ptr(), {t.sizes(), t.dtype(), op}, fn, deadline);
                     });
                   } else {
                     agree_on_call(mine, tag, deadline);
                     if (n == 0) return true;
                     gloo::AllreduceOptions o(context_);
                     set_allreduce_output(o, t.data_ptr(), n, t.element_size());
                     o.setAlgorithm(gloo::AllreduceOptions::Algorithm::RING);
                     o.setReduceFunction(fn);
                     o.setTag(tag);
                     o.setTimeout(time_left(deadline));
                     gloo::allreduce(o);
                   }
                   // Ring: reduce-scatter then all-gather, each sends (N-1)/N of the tensor. The
                   // shared-memory path moves the same volume through the segment and counts it
                   // alike, so traffic() stays comparable with spec volumes.
                   op_bytes_ = 2 * (size_ - 1) * t.nbytes() / size_;
                   if (op == ReduceOp::avg)
                     gloo_detail::divide_in_place(t.data_ptr(), t.dtype(), n, size_);
                   return true;
                 });
}

WorkPtr GlooProcessGroup::reduce_scatter(Tensor& output, const Tensor& input, ReduceOp op) {
  check_tensor(output, "reduce_scatter", "output");
  check_tensor(input, "reduce_scatter", "input");
  check_same_dtype(output, input, "reduce_scatter");
  FABRIC_CHECK(input.numel() == output.numel() * size_, ShapeError, "gloo reduce_scatter (",
               where(), "): input must hold size() = ", size_, " chunks of the output's numel ",
               output.numel(), " (", output.numel() * size_, " elements), got input shape ",
               shape_str(input.shape()), " and output shape ", shape_str(output.shape()));
  const ReduceFn fn = gloo_detail::reduce_function(input.dtype(), op, "reduce_scatter");
  const uint32_t tag = next_tag();
  return enqueue(
      "reduce_scatter", ring_peers(),
      [this, out = output, in = input, op, fn, tag](Clock::time_point deadline, const auto&) {
        const size_t n = static_cast<size_t>(out.numel());
        const size_t bytes = n * static_cast<size_t>(out.element_size());
        if (size_ == 1) {
          if (n > 0 && out.data_ptr() != in.data_ptr())
            std::memmove(out.data_ptr(), in.data_ptr(), bytes);
          return true;
        }
        const CallRecord mine = make_call_record(Collective::reduce_scatter, in, op);
        if (shm_) {
          // The ring's summation order, the same bits (shm_collectives.h).
          on_segment(mine, tag, deadline, [&] {
            shm_->reduce_scatter(out.data_ptr(), in.data_ptr(), {in.sizes(), in.dtype(), op}, fn,
                                 deadline);
          });
        } else {
          agree_on_call(mine, tag, deadline);
          if (n == 0) return true;
          gloo_detail::ring_reduce_scatter(*context_, out.data_ptr(), in.data_ptr(), bytes, n, fn,
                                           tag, deadline, scratch_);
        }
        // Ring: (N-1)/N of the input. The segment moves as much and counts it alike.
        op_bytes_ = int64_t(size_ - 1) * int64_t(bytes);
        if (op == ReduceOp::avg)
          gloo_detail::divide_in_place(out.data_ptr(), out.dtype(), n, size_);
        return true;
      });
}

WorkPtr GlooProcessGroup::all_gather(Tensor& output, const Tensor& input) {
  check_tensor(output, "all_gather", "output");
  check_tensor(input, "all_gather", "input");
  check_same_dtype(output, input, "all_gather");
  FABRIC_CHECK(output.numel() == input.numel() * size_, ShapeError, "gloo all_gather (", where(),
               "): output must hold size() = ", size_, " copies of the input's numel ",
               input.numel(), " (", input.numel() * size_, " elements), got output shape ",
               shape_str(output.shape()), " and input shape ", shape_str(input.shape()));
  const uint32_t tag = next_tag();
  return enqueue("all_gather", ring_peers(),
                 [this, out = output, in = input, tag](Clock::time_point deadline, const auto&) {
                   const size_t bytes = static_cast<size_t>(in.nbytes());
                   uint8_t* o = static_cast<uint8_t*>(out.data_ptr());
                   uint8_t* i = static_cast<uint8_t*>(in.data_ptr());
                   if (size_ == 1) {
                     if (bytes > 0 && o != i) std::memmove(o, i, bytes);
                     return true;
                   }
                   const CallRecord mine = make_call_record(Collective::all_gather, in);
                   if (shm_) {
                     on_segment(mine, tag, deadline, [&] {
                       shm_->all_gather(o, i, {in.sizes(), in.dtype()}, deadline);
                     });
                   } else {
                     agree_on_call(mine, tag, deadline);
                     if (bytes == 0) return true;
                     gloo::AllgatherOptions opts(context_);
                     // In place (input already at this rank's slot): Gloo takes no input.
                     if (i != o + bytes * size_t(rank_)) opts.setInput(i, bytes);
                     opts.setOutput(o, bytes * size_t(size_));
                     opts.setTag(tag);
                     opts.setTimeout(time_left(deadline));
                     gloo::allgather(opts);
                   }
                   // Ring: (N-1)/N of the output. The segment moves as much and counts it alike.
                   op_bytes_ = int64_t(size_ - 1) * int64_t(bytes);
                   return true;
                 });
}

WorkPtr GlooProcessGroup::all_gather_v(Tensor& output, const Tensor& input,
                                       const std::vector<int64_t>& counts) {
  check_tensor(output, "all_gather_v", "output");
  check_tensor(input, "all_gather_v", "input");
  check_same_dtype(output, input, "all_gather_v");
  FABRIC_CHECK(counts.size() == size_t(size_), ValueError, "gloo all_gather_v (", where(),
               "): got ", counts.size(), " counts, expected one per rank (", size_, ")");
  int64_t total = 0;
  for (size_t k = 0; k < counts.size(); ++k) {
    FABRIC_CHECK(counts[k] >= 0, ValueError, "gloo all_gather_v (", where(), "): counts[", k,
                 "] = ", counts[k], " is negative");
    total += counts[k];
  }
  FABRIC_CHECK(counts[size_t(rank_)] == input.numel(), ShapeError, "gloo all_gather_v (", where(),
               "): counts[", rank_, "] = ", counts[size_t(rank_)], " but this rank's input has ",
               input.numel(), " elements (shape ", shape_str(input.shape()), ")");
  FABRIC_CHECK(total == output.numel(), ShapeError, "gloo all_gather_v (", where(),
               "): the counts sum to ", total, " but output has ", output.numel(),
               " elements (shape ", shape_str(output.shape()), ")");
  const uint32_t tag = next_tag();
  return enqueue("all_gather_v", ring_peers(),
                 [this, out = output, in = input, counts, total, tag](Clock::time_point deadline,
                                                                      const auto&) {
                   const size_t isz = static_cast<size_t>(in.element_size());
                   uint8_t* o = static_cast<uint8_t*>(out.data_ptr());
                   uint8_t* i = static_cast<uint8_t*>(in.data_ptr());
                   if (size_ == 1) {
                     if (total > 0 && o != i) std::memmove(o, i, size_t(total) * isz);
                     return true;
                   }
                   agree_on_call(
                       make_call_record(Collective::all_gather_v, in, ReduceOp::sum, -1, &counts),
                       tag, deadline, &counts);
                   if (total == 0) return true;
                   std::vector<size_t> bytes(counts.size());
                   for (size_t k = 0; k < counts.size(); ++k) bytes[k] = size_t(counts[k]) * isz;
                   gloo::AllgathervOptions opts(context_);
                   opts.setInput(i, bytes[size_t(rank_)]);
                   opts.setOutput(o, bytes);
                   opts.setTag(tag);
                   opts.setTimeout(time_left(deadline));
                   gloo::allgatherv(opts);
                   // Ring: this rank forwards every chunk but the one of its send peer (rank + 1).
                   op_bytes_ = (total - counts[size_t((rank_ + 1) % size_)]) * int64_t(isz);
                   return true;
                 });
}

WorkPtr GlooProcessGroup::broadcast(Tensor& tensor, int root) {
  check_tensor(tensor, "broadcast", "tensor");
  check_peer(root, "broadcast", "root");
  const uint32_t tag = next_tag();
  return enqueue("broadcast", "root rank " + std::to_string(root),
                 [this, t = tensor, root, tag](Clock::time_point deadline, const auto&) {
                   const size_t bytes = static_cast<size_t>(t.nbytes());
                   if (size_ == 1) return true;
                   agree_on_call(make_call_record(Collective::broadcast, t, ReduceOp::sum, root),
                                 tag, deadline);
                   if (bytes == 0) return true;
                   gloo::BroadcastOptions opts(context_);
                   opts.setOutput(static_cast<uint8_t*>(t.data_ptr()), bytes);
                   opts.setRoot(root);
                   opts.setTag(tag);
                   opts.setTimeout(time_left(deadline));
                   gloo::broadcast(opts);
                   // Gloo's broadcast is one-to-all: the root sends N-1 copies, others nothing.
                   if (rank_ == root) op_bytes_ = int64_t(size_ - 1) * int64_t(bytes);
                   return true;
                 });
}

WorkPtr GlooProcessGroup::barrier() {
  const uint32_t tag = next_tag();
  return enqueue("barrier", "all ranks", [this, tag](Clock::time_point deadline, const auto&) {
    if (size_ == 1) return true;
    agree_on_call(make_call_record(Collective::barrier, Tensor()), tag, deadline);
    return true;
  });
}

// Sends and receives are posted from the worker, in issue order, but do not hold it: a send
// completes only once the peer posts the matching receive, so waiting on the worker would
// deadlock a ring of send-then-recv. The waiter thread reports their completion. Each posts its
// call record's exchange with the peer along with its payload (gloo_call_check.h): the payload's
// slot differs unless the records agree, so a mismatched pair never hands Gloo a payload that
// does not fit, and the waiter reports the mismatch on both ranks.
WorkPtr GlooProcessGroup::post_p2p(const char* name, const Tensor& tensor, int peer, uint32_t tag,
                                   bool is_send) {
  check_tensor(tensor, name, "tensor");
  check_peer(peer, name, is_send ? "destination" : "source");
  FABRIC_CHECK(peer != rank_, ValueError, "gloo ", name, " (", where(),
               "): ", is_send ? "destination" : "source", " rank ", peer,
               " is this rank; expected another rank");
  std::string peers = "peer rank " + std::to_string(peer) + ", tag " + std::to_string(tag);
  return enqueue(
      name, peers,
      [this, name, t = tensor, peer, tag, is_send, peers](Clock::time_point deadline,
                                                          const std::shared_ptr<GlooWork>& work) {
        auto records = std::make_unique<P2PRecords>();
        records->mine = make_call_record(is_send ? Collective::send : Collective::recv, t);
        records->from_peer = context_->createUnboundBuffer(&records->peer, sizeof(CallRecord));
        records->to_peer = context_->createUnboundBuffer(&records->mine, sizeof(CallRecord));
        // Receive before send, on both ranks: a rank that has its peer's record knows that its
        // own is awaited, so sending it completes without delay, even after a mismatch.
        const uint64_t record_slot =
            is_send ? p2p_record_slot(tag, rank_, peer) : p2p_record_slot(tag, peer, rank_);
        records->from_peer->recv(peer, record_slot);
        records->to_peer->send(peer, record_slot);
        PendingP2P p{name,
                     peers,
                     is_send,
                     peer,
                     tag,
                     t,
                     context_->createUnboundBuffer(t.data_ptr(), size_t(t.nbytes())),
                     std::move(records),
                     deadline,
                     work};
        const uint64_t slot = p2p_payload_slot(tag, p.records->mine);
        if (is_send)
          p.buffer->send(peer, slot);
        else
          p.buffer->recv(peer, slot);
        {
          std::lock_guard<std::mutex> lock(mu_);
          p2p_.push_back(std::move(p));
        }
        p2p_cv_.notify_one();
        return false;
      });
}

WorkPtr GlooProcessGroup::send(const Tensor& tensor, int dst, uint32_t tag) {
  return post_p2p("send", tensor, dst, tag, true);
}

WorkPtr GlooProcessGroup::recv(Tensor& tensor, int src, uint32_t tag) {
  return post_p2p("recv", tensor, src, tag, false);
}

}  // namespace fabric::distributed::gloo_detail
