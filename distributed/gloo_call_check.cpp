// The call records of the Gloo group's collectives: built from the tensors, exchanged all-to-all
// over Gloo's unbound buffers (fixed-size messages, which cannot trip Gloo's size enforce), and
// compared against rank 0's.
#include "distributed/gloo_call_check.h"

#include <gloo/context.h>
#include <gloo/transport/unbound_buffer.h>

#include <algorithm>
#include <memory>
#include <string>
#include <type_traits>

#include "distributed/gloo_reduce.h"
#include "tensor/error.h"

namespace fabric::distributed::gloo_detail {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

static_assert(std::is_trivially_copyable_v<CallRecord> && sizeof(CallRecord) == 96,
              "a call record travels as raw bytes");

// FNV-1a over the counts: equal counts on every rank, or (all but surely) different hashes.
uint64_t fingerprint(const std::vector<int64_t>& counts) {
  uint64_t h = 14695981039346656037ull;
  for (const int64_t c : counts)
    for (int b = 0; b < 8; ++b) h = (h ^ ((uint64_t(c) >> (8 * b)) & 0xFF)) * 1099511628211ull;
  return h;
}

std::string rank_list(const std::vector<int>& ranks) {
  std::string s = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size(); ++i) s += (i ? ", " : "") + std::to_string(ranks[i]);
  return s;
}

std::string shape_of(const CallRecord& c) {
  if (c.ndim > kCallDims) return std::to_string(c.ndim) + "-dim shape";
  return "shape " + shape_str(Shape(c.sizes, c.sizes + c.ndim));
}

std::string elements(int64_t n) { return std::to_string(n) + (n == 1 ? " element" : " elements"); }

// One field the ranks must agree on: how a record shows it ("rank 0 <first> X but rank q <then>
// Y"), and the rule broken.
struct Field {
  const char* first;
  const char* then;
  std::string (*show)(const CallRecord&);
  const char* rule;
};

// "rank 0 passes A but rank q passes B; <rule>", with this rank's own when it is neither.
template <class E>
[[noreturn]] void mismatch(const std::vector<CallRecord>& records, int rank, int q,
                           const Field& f) {
  std::string msg = "rank 0 " + std::string(f.first) + " " + f.show(records[0]) + " but rank " +
                    std::to_string(q) + " " + f.then + " " + f.show(records[size_t(q)]);
  if (rank != 0 && rank != q)
    msg += " (this rank " + std::string(f.first) + " " + f.show(records[size_t(rank)]) + ")";
  throw E(msg + "; " + f.rule);
}

const Field kCollectiveField{
    "issues", "issues",
    [](const CallRecord& c) { return std::string(collective_name(Collective(c.collective))); },
    "every rank must issue the same collectives in the same order"};
const Field kDTypeField{"passes", "passes",
                        [](const CallRecord& c) {
                          return std::string(dtype_name(DType(c.dtype))) + " (" + shape_of(c) + ")";
                        },
                        "every rank must pass the same dtype"};
const Field kNumelField{
    "passes", "passes",
    [](const CallRecord& c) { return shape_of(c) + " (" + elements(c.numel) + ")"; },
    "every rank must pass the same number of elements"};
const Field kOpField{"reduces with", "with",
                     [](const CallRecord& c) { return std::string(to_string(ReduceOp(c.op))); },
                     "every rank must pass the same op"};
const Field kRootField{"broadcasts from", "from",
                       [](const CallRecord& c) { return "root rank " + std::to_string(c.root); },
                       "every rank must pass the same root"};

// all_gather_v: the element counts the ranks pass are the only counts that can be right; every
// rank's counts must be them.
void check_counts(const std::vector<CallRecord>& records, const std::vector<int64_t>& counts) {
  std::vector<int64_t> passed;
  for (const CallRecord& c : records) passed.push_back(c.numel);
  const std::string passed_str = shape_str(passed);
  FABRIC_CHECK(counts == passed, ShapeError, "this rank's counts are ", shape_str(counts),
               " but the ranks pass ", passed_str,
               " elements; every rank must pass the same counts, rank k's own element count at k");
  const uint64_t want = fingerprint(passed);
  for (size_t q = 0; q < records.size(); ++q)
    FABRIC_CHECK(records[q].counts_hash == want, ShapeError, "rank ", q,
                 "'s counts differ from this rank's, ", passed_str,
                 ", the element counts the ranks pass; every rank must pass the same counts, "
                 "rank k's own element count at k");
}

}  // namespace

const char* collective_name(Collective c) {
  switch (c) {
    case Collective::all_reduce:
      return "all_reduce";
    case Collective::reduce_scatter:
      return "reduce_scatter";
    case Collective::all_gather:
      return "all_gather";
    case Collective::all_gather_v:
      return "all_gather_v";
    case Collective::broadcast:
      return "broadcast";
    case Collective::barrier:
      return "barrier";
    case Collective::send:
      return "send";
    case Collective::recv:
      return "recv";
  }
  return "unknown collective";
}

CallRecord make_call_record(Collective collective, std::span<const int64_t> shape, DType dtype,
                            ReduceOp op) {
  CallRecord r;
  r.collective = uint8_t(collective);
  r.op = uint8_t(op);
  r.dtype = uint8_t(dtype);
  r.numel = 1;
  for (const int64_t d : shape) r.numel *= d;
  r.ndim = int32_t(shape.size());
  std::copy_n(shape.begin(), std::min<size_t>(shape.size(), kCallDims), r.sizes);
  return r;
}

CallRecord make_call_record(Collective collective, const Tensor& sent, ReduceOp op, int root,
                            const std::vector<int64_t>* counts) {
  CallRecord r;
  if (sent.defined()) r = make_call_record(collective, sent.sizes(), sent.dtype(), op);
  r.collective = uint8_t(collective);
  r.op = uint8_t(op);
  r.root = root;
  if (counts) r.counts_hash = fingerprint(*counts);
  return r;
}

// Every receive is posted before any send, so none can be missed. When one times out, Gloo closes
// every connection of the context: a record already in returns at once, one still missing throws,
// so each rank names every rank it did not hear from (Gloo's own dissemination barrier would name
// only its current round's peer, which may itself be stuck waiting for another).
std::vector<CallRecord> exchange_call_records(gloo::Context& context, uint32_t tag,
                                              const CallRecord& mine, Clock::time_point deadline) {
  const int P = context.size, me = context.rank;
  const char* what = collective_name(Collective(mine.collective));
  const uint64_t slot = make_slot(kCallSlotPrefix, tag);
  // Declared before the buffers on it, so that it outlives them when a wait throws.
  std::vector<CallRecord> records(static_cast<size_t>(P));
  records[size_t(me)] = mine;
  std::vector<std::unique_ptr<gloo::transport::UnboundBuffer>> from(static_cast<size_t>(P));
  for (int q = 0; q < P; ++q) {
    if (q == me) continue;
    from[size_t(q)] = context.createUnboundBuffer(&records[size_t(q)], sizeof(CallRecord));
    from[size_t(q)]->recv(q, slot);
  }
  auto out = context.createUnboundBuffer(&records[size_t(me)], sizeof(CallRecord));
  for (int q = 0; q < P; ++q)
    if (q != me) out->send(q, slot);
  auto left = [&] {
    return std::max(milliseconds(1), std::chrono::ceil<milliseconds>(deadline - Clock::now()));
  };
  std::vector<int> missing, arrived;
  for (int q = 0; q < P; ++q) {
    if (q == me) continue;
    try {
      if (!from[size_t(q)]->waitRecv(missing.empty() ? left() : milliseconds(1)))
        throw DistributedError("the transfer was aborted");
      arrived.push_back(q);
    } catch (const std::exception& e) {
      const bool timed_out = std::string(e.what()).find("Timed out") != std::string::npos;
      if (!timed_out && missing.empty())
        throw DistributedError("waiting for rank " + std::to_string(q) + " to enter the " + what +
                               ": " + e.what());
      missing.push_back(q);
    }
  }
  if (!missing.empty())
    throw TimeoutError(rank_list(missing) + " did not enter the " + what +
                       (arrived.empty() ? std::string() : " (" + rank_list(arrived) + " did)"));
  for (int q = 0; q < P; ++q)
    if (q != me && !out->waitSend(left()))
      throw DistributedError(std::string("sending this rank's ") + what + " call was aborted");
  return records;
}

void check_call_records(const std::vector<CallRecord>& records, int rank,
                        const std::vector<int64_t>* counts) {
  const CallRecord& first = records[0];
  const bool gather_v = Collective(first.collective) == Collective::all_gather_v;
  for (int q = 1; q < int(records.size()); ++q) {
    const CallRecord& c = records[size_t(q)];
    if (c.collective != first.collective)
      mismatch<DistributedError>(records, rank, q, kCollectiveField);
    if (c.dtype != first.dtype) mismatch<DTypeError>(records, rank, q, kDTypeField);
    if (c.numel != first.numel && !gather_v) mismatch<ShapeError>(records, rank, q, kNumelField);
    if (c.op != first.op) mismatch<ValueError>(records, rank, q, kOpField);
    if (c.root != first.root) mismatch<ValueError>(records, rank, q, kRootField);
  }
  if (gather_v && counts) check_counts(records, *counts);
}

uint64_t p2p_record_slot(uint32_t tag, int src, int dst) {
  return make_slot(kP2PRecordSlotPrefix, tag, src < dst ? 0 : 1);
}

uint64_t p2p_payload_slot(uint32_t tag, const CallRecord& record) {
  return make_slot(kSendRecvSlotPrefix, tag,
                   uint32_t(fingerprint({record.numel, int64_t(record.dtype)})));
}

void check_p2p_records(const CallRecord& mine, const CallRecord& peer, int rank, int peer_rank,
                       uint32_t tag) {
  const std::string with_tag = " with tag " + std::to_string(tag);
  // Named sender first, so that both ranks say the same.
  const bool i_send = Collective(mine.collective) == Collective::send;
  const CallRecord& sent = i_send ? mine : peer;
  const CallRecord& received = i_send ? peer : mine;
  const std::string src = std::to_string(i_send ? rank : peer_rank);
  const std::string dst = std::to_string(i_send ? peer_rank : rank);
  auto differ = [&](std::string (*show)(const CallRecord&), const char* rule) {
    return "rank " + src + " sends " + show(sent) + " to rank " + dst + " but rank " + dst +
           " receives into " + show(received) + with_tag + "; a send and its recv must pass " +
           rule;
  };
  if (sent.dtype != received.dtype) throw DTypeError(differ(kDTypeField.show, "the same dtype"));
  if (sent.numel != received.numel)
    throw ShapeError(differ(kNumelField.show, "the same number of elements"));
}

}  // namespace fabric::distributed::gloo_detail
