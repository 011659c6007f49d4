// The Gloo process group's reductions: sum, product, max, min for every reducible dtype, compiled
// with our flags (-O3 -march=native) so the loops vectorise, and the ring reduce-scatter.
#include "distributed/gloo_reduce.h"

#include <gloo/context.h>
#include <gloo/transport/unbound_buffer.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>

#include "tensor/error.h"
#include "tensor/float_formats.h"

namespace fabric::distributed::gloo_detail {

namespace {

// Half and BFloat16 reduce in float, rounding once per pairwise call (as PyTorch's Gloo does).
template <typename T>
constexpr bool kReducedFloat = std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;

struct Sum {
  template <typename T>
  static T apply(T a, T b) {
    if constexpr (std::is_integral_v<T>) {
      // Two's-complement wrap-around, as torch's integer sum (signed overflow would be UB).
      using U = std::make_unsigned_t<T>;
      return static_cast<T>(static_cast<U>(static_cast<U>(a) + static_cast<U>(b)));
    } else {
      return a + b;
    }
  }
};

struct Product {
  template <typename T>
  static T apply(T a, T b) {
    if constexpr (std::is_integral_v<T>) {
      using U =
          std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, std::make_unsigned_t<T>>;
      return static_cast<T>(static_cast<U>(static_cast<U>(a) * static_cast<U>(b)));
    } else {
      return a * b;
    }
  }
};

// max/min propagate NaN, as torch.maximum/torch.minimum (std::max would drop a NaN in a).
struct Max {
  template <typename T>
  static T apply(T a, T b) {
    if constexpr (std::is_floating_point_v<T>) {
      return (a > b || a != a) ? a : b;
    } else {
      return a > b ? a : b;
    }
  }
};

struct Min {
  template <typename T>
  static T apply(T a, T b) {
    if constexpr (std::is_floating_point_v<T>) {
      return (a < b || a != a) ? a : b;
    } else {
      return a < b ? a : b;
    }
  }
};

template <typename T, typename Op>
void reduce_loop(void* c_, const void* a_, const void* b_, size_t n) {
  T* c = static_cast<T*>(c_);
  const T* a = static_cast<const T*>(a_);
  const T* b = static_cast<const T*>(b_);
  // Gloo passes c == a (or disjoint buffers): no loop-carried dependence, so vectorise without
  // the runtime overlap check that would reject c == a.
  if constexpr (kReducedFloat<T>) {
#pragma GCC ivdep
    for (size_t i = 0; i < n; ++i)
      c[i] = T(Op::apply(static_cast<float>(a[i]), static_cast<float>(b[i])));
  } else {
#pragma GCC ivdep
    for (size_t i = 0; i < n; ++i) c[i] = Op::apply(a[i], b[i]);
  }
}

template <typename T>
ReduceFn pick(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
    case ReduceOp::avg:
      return &reduce_loop<T, Sum>;
    case ReduceOp::product:
      return &reduce_loop<T, Product>;
    case ReduceOp::max:
      return &reduce_loop<T, Max>;
    case ReduceOp::min:
      return &reduce_loop<T, Min>;
  }
  return nullptr;
}

template <typename T>
void divide_loop(void* data, size_t n, int divisor) {
  T* x = static_cast<T*>(data);
  if constexpr (kReducedFloat<T>) {
    for (size_t i = 0; i < n; ++i) x[i] = T(static_cast<float>(x[i]) / static_cast<float>(divisor));
  } else {
    const T d = static_cast<T>(divisor);
    for (size_t i = 0; i < n; ++i) x[i] = x[i] / d;
  }
}

}  // namespace

ReduceFn reduce_function(DType dtype, ReduceOp op, const char* what) {
  if (op == ReduceOp::avg && !(is_floating(dtype) && !is_fp8(dtype)))
    throw DTypeError(std::string("gloo ") + what +
                     ": ReduceOp avg needs a floating tensor (float64, float32, "
                     "float16, bfloat16), got " +
                     std::string(dtype_name(dtype)) +
                     "; reduce with sum and divide, or convert first");
  switch (dtype) {
    case DType::float64:
      return pick<double>(op);
    case DType::float32:
      return pick<float>(op);
    case DType::float16:
      return pick<Half>(op);
    case DType::bfloat16:
      return pick<BFloat16>(op);
    case DType::int64:
      return pick<int64_t>(op);
    case DType::int32:
      return pick<int32_t>(op);
    case DType::int8:
      return pick<int8_t>(op);
    case DType::uint8:
      return pick<uint8_t>(op);
    case DType::bool_:
      // bool is stored as one byte 0/1: max is logical or, min is logical and.
      if (op == ReduceOp::max) return &reduce_loop<uint8_t, Max>;
      if (op == ReduceOp::min) return &reduce_loop<uint8_t, Min>;
      break;
    default:
      break;
  }
  throw DTypeError(std::string("gloo ") + what + ": cannot reduce a " +
                   std::string(dtype_name(dtype)) + " tensor with ReduceOp " + to_string(op) +
                   "; supported: float64, float32, float16, bfloat16, int64, int32, int8, uint8 "
                   "(any op), bool (max, min)");
}

void divide_in_place(void* data, DType dtype, size_t n, int divisor) {
  switch (dtype) {
    case DType::float64:
      return divide_loop<double>(data, n, divisor);
    case DType::float32:
      return divide_loop<float>(data, n, divisor);
    case DType::float16:
      return divide_loop<Half>(data, n, divisor);
    case DType::bfloat16:
      return divide_loop<BFloat16>(data, n, divisor);
    default:
      throw DTypeError("gloo avg: cannot divide a " + std::string(dtype_name(dtype)) + " tensor");
  }
}

namespace {

void wait_buffer(gloo::transport::UnboundBuffer& b, bool send,
                 std::chrono::steady_clock::time_point deadline) {
  using std::chrono::milliseconds;
  const auto left = std::max(milliseconds(1), std::chrono::duration_cast<milliseconds>(
                                                  deadline - std::chrono::steady_clock::now()));
  const bool ok = send ? b.waitSend(left) : b.waitRecv(left);
  if (!ok) throw DistributedError("a transfer was aborted");
}

}  // namespace

// Gloo's own ReduceScatterHalvingDoubling rewrites its send buffer before the send completed
// and returns wrong sums now and then, hence this ring. Step s (0 <= s < P-1): rank r sends its
// partial of chunk r-s-1 to r+1 and receives r-1's partial of chunk r-s-2, adding its own chunk;
// after P-1 steps that is chunk r reduced over every rank. Receives and sends alternate between
// two scratch buffers each, and a send buffer is rewritten only after its waitSend.
void ring_reduce_scatter(gloo::Context& context, void* out, const void* in, size_t bytes,
                         size_t count, ReduceFn fn, uint32_t tag,
                         std::chrono::steady_clock::time_point deadline,
                         std::vector<uint8_t>& scratch) {
  const int P = context.size, r = context.rank;
  const int next = (r + 1) % P, prev = (r + P - 1) % P;
  auto mod = [P](int i) { return ((i % P) + P) % P; };
  auto slot = [tag](int step) { return make_slot(kReduceScatterSlotPrefix, tag, uint32_t(step)); };
  const int steps = P - 1;
  const int nrecv = std::min(2, steps), nsend = std::min(2, steps - 1);
  if (scratch.size() < bytes * size_t(nrecv + nsend)) scratch.resize(bytes * size_t(nrecv + nsend));
  uint8_t* R[2] = {scratch.data(), scratch.data() + bytes};
  uint8_t* S[2] = {scratch.data() + bytes * size_t(nrecv),
                   scratch.data() + bytes * size_t(nrecv + 1)};
  const uint8_t* chunks = static_cast<const uint8_t*>(in);

  auto in_buf = context.createUnboundBuffer(const_cast<void*>(in), bytes * size_t(P));
  std::unique_ptr<gloo::transport::UnboundBuffer> recv_buf[2], send_buf[2];
  for (int i = 0; i < nrecv; ++i) recv_buf[i] = context.createUnboundBuffer(R[i], bytes);
  for (int i = 0; i < nsend; ++i) send_buf[i] = context.createUnboundBuffer(S[i], bytes);
  bool send_pending[2] = {false, false};

  recv_buf[0]->recv(prev, slot(0));
  in_buf->send(next, slot(0), bytes * size_t(mod(r - 1)), bytes);
  for (int s = 0; s < steps; ++s) {
    const int b = s % 2;
    wait_buffer(*recv_buf[b], false, deadline);
    if (s + 1 < steps) recv_buf[(s + 1) % 2]->recv(prev, slot(s + 1));
    const uint8_t* own = chunks + bytes * size_t(mod(r - s - 2));
    if (s == steps - 1) {
      fn(out, R[b], own, count);
    } else {
      if (send_pending[b]) wait_buffer(*send_buf[b], true, deadline);
      fn(S[b], R[b], own, count);
      send_buf[b]->send(next, slot(s + 1));
      send_pending[b] = true;
    }
  }
  wait_buffer(*in_buf, true, deadline);
  for (int i = 0; i < nsend; ++i)
    if (send_pending[i]) wait_buffer(*send_buf[i], true, deadline);
}

}  // namespace fabric::distributed::gloo_detail
