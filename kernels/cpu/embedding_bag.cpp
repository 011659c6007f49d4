// CPU embedding_bag forward (embedding_bag_kernels.h): parallel over bags, each bag's table rows
// read in order and reduced into one accumulator row, as torch's CPU kernel does, so that the
// (lookups, dim) gather and the second pass adding it into bags are never made. The rows are
// random reads from a table larger than the caches: the rows a few lookups ahead are prefetched.
// Rows add in order (the same bits whatever the thread count); 16-bit dtypes accumulate in
// float32 and round once, mean divides the sum by the kept count.
// The weight gradient of sum/mean (add_bag_gradients) adds each lookup's bag gradient straight
// into its table row, where the composition gathered a (lookups, dim) copy of the bag gradients
// and index_added it: threads own ranges of destination rows and each walks every lookup in index
// order taking its own rows, so every row adds in index order (index_add's bits at any thread
// count).
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/cpu/run_tasks.h"
#include "tensor/embedding_bag_kernels.h"
#include "tensor/float_formats.h"

namespace fabric::cpu {
namespace {

template <typename T>
using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

constexpr int64_t kPrefetchAhead = 4;  // lookups; a row's lines arrive while 4 others are added

inline void prefetch_row(const char* row, int64_t bytes) {
  // Past 16 lines the hardware prefetcher follows the row on its own.
  const int64_t end = std::min<int64_t>(bytes, 1024);
  for (int64_t b = 0; b < end; b += 64) __builtin_prefetch(row + b);
}

template <typename T, typename A, typename I>
void reduce_bags(const EmbeddingBagDesc& d) {
  const T* weight = static_cast<const T*>(d.weight);
  const I* indices = static_cast<const I*>(d.indices);
  const T* psw = static_cast<const T*>(d.per_sample_weights);
  T* out = static_cast<T*>(d.out);
  const int64_t D = d.dim, stride = d.weight_stride0, pad = d.padding_idx;
  const int64_t row_bytes = D * static_cast<int64_t>(sizeof(T));
  const int64_t last = d.bag_begin[d.bags], lookups = last - d.bag_begin[0];
  constexpr bool kSameAcc = std::is_same_v<T, A>;
  // Per thread: the accumulator row (the output row itself where it is the accumulation type)
  // and max's positions where the caller keeps none.
  struct BagScratch {
    std::vector<A> acc;
    std::vector<int64_t> arg;
  };
  run_tasks_with_scratch(
      d.bags, lookups * D > 32768,
      [&] {
        return BagScratch{std::vector<A>(kSameAcc ? 0 : static_cast<size_t>(D)),
                          std::vector<int64_t>(d.argmax ? 0 : static_cast<size_t>(D))};
      },
      [&](int64_t b, BagScratch& scratch) {
        A* __restrict acc;
        if constexpr (kSameAcc)
          acc = out + b * D;
        else
          acc = scratch.acc.data();
        int64_t* __restrict arg = d.argmax ? d.argmax + b * D : scratch.arg.data();
        const int64_t begin = d.bag_begin[b], end = d.bag_begin[b + 1];
        std::fill(acc, acc + D, A(0));
        int64_t kept = 0;
        for (int64_t i = begin; i < end; ++i) {
          // Across bag ends too (the next bag's first rows): every index up to the last bag's end
          // is a checked row of the table, whichever thread adds it.
          if (i + kPrefetchAhead < last)
            prefetch_row(reinterpret_cast<const char*>(
                             weight + static_cast<int64_t>(indices[i + kPrefetchAhead]) * stride),
                         row_bytes);
          const int64_t r = static_cast<int64_t>(indices[i]);
          if (r == pad) continue;
          const T* __restrict w = weight + r * stride;
          if (d.mode == EmbeddingBagMode::max) {
            if (kept == 0) {
              for (int64_t j = 0; j < D; ++j) {
                acc[j] = static_cast<A>(w[j]);
                arg[j] = r;
              }
            } else {
              // Strictly greater: the first of equal maxima keeps its index, as torch's.
              for (int64_t j = 0; j < D; ++j) {
                const A v = static_cast<A>(w[j]);
                const bool greater = v > acc[j];
                acc[j] = greater ? v : acc[j];
                arg[j] = greater ? r : arg[j];
              }
            }
          } else if (psw) {
            const A s = static_cast<A>(psw[i]);
            for (int64_t j = 0; j < D; ++j) acc[j] += s * static_cast<A>(w[j]);
          } else {
            for (int64_t j = 0; j < D; ++j) acc[j] += static_cast<A>(w[j]);
          }
          ++kept;
        }
        if (d.mode == EmbeddingBagMode::mean && kept > 1) {
          const A count = static_cast<A>(kept);
          for (int64_t j = 0; j < D; ++j) acc[j] /= count;
        }
        if (kept == 0 && d.argmax) std::fill(arg, arg + D, int64_t{-1});
        if constexpr (!kSameAcc) {
          T* o = out + b * D;
          for (int64_t j = 0; j < D; ++j) o[j] = T(acc[j]);
        }
        if (d.bag_size) d.bag_size[b] = kept;
      });
}

template <typename T>
void reduce_bags_of(const EmbeddingBagDesc& d) {
  if (d.index_dtype == DType::int64)
    reduce_bags<T, acc_t<T>, int64_t>(d);
  else
    reduce_bags<T, acc_t<T>, int32_t>(d);
}

// The composition multiplies (mul) and then adds (index_add), each rounding: a fused multiply-add
// here would round once and differ in the last bit.
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
template <typename T, typename A, typename I>
void add_bag_gradients(const EmbeddingBagBackwardDesc& d) {
  const T* g = static_cast<const T*>(d.grad_out);
  const I* indices = static_cast<const I*>(d.indices);
  const T* psw = static_cast<const T*>(d.per_sample_weights);
  const int64_t D = d.dim, num = d.num_embeddings, pad = d.padding_idx;
  const int64_t row_bytes = D * static_cast<int64_t>(sizeof(A));
  const int64_t last = d.bag_begin[d.bags], lookups = last - d.bag_begin[0];
  constexpr bool kSameAcc = std::is_same_v<T, A>;
  // The 16-bit dtypes add in a float32 copy of the gradient (index_add's scratch), rounded once.
  std::vector<A> wide(kSameAcc ? 0 : static_cast<size_t>(num * D));
  A* const acc = kSameAcc ? static_cast<A*>(d.grad_weight) : wide.data();
  // The lambda is compiled under this function's fp-contract=off (checked: no FMA in the object).
  run_parallel_region(lookups * D > 32768 && num > 1, [&](int64_t t, int64_t threads) {
    const int64_t lo = num * t / threads, hi = num * (t + 1) / threads;
    std::fill(acc + lo * D, acc + hi * D, A(0));
    // The bag's gradient row as the composition rounds it: g, or mean's g / count in T.
    std::vector<A> bag_grad(static_cast<size_t>(D));
    for (int64_t b = 0; b < d.bags; ++b) {
      const int64_t begin = d.bag_begin[b], end = d.bag_begin[b + 1];
      bool any_here = false;
      int64_t kept = 0;
      for (int64_t i = begin; i < end; ++i) {
        const int64_t r = static_cast<int64_t>(indices[i]);
        if (r == pad) continue;
        ++kept;
        any_here |= r >= lo && r < hi;
      }
      if (!any_here) continue;
      const T* gb = g + b * D;
      if (d.mode == EmbeddingBagMode::mean) {
        // The divisor as the composition's tensor of the dtype holds it (bfloat16 rounds 257).
        const A count = static_cast<A>(T(static_cast<double>(std::max<int64_t>(kept, 1))));
        for (int64_t j = 0; j < D; ++j)
          bag_grad[j] = static_cast<A>(T(static_cast<A>(gb[j]) / count));
      } else {
        for (int64_t j = 0; j < D; ++j) bag_grad[j] = static_cast<A>(gb[j]);
      }
      const A* __restrict src = bag_grad.data();
      for (int64_t i = begin; i < end; ++i) {
        // Destination rows are random writes into a table larger than the caches.
        if (i + kPrefetchAhead < last) {
          const int64_t ahead = static_cast<int64_t>(indices[i + kPrefetchAhead]);
          if (ahead >= lo && ahead < hi)
            prefetch_row(reinterpret_cast<const char*>(acc + ahead * D), row_bytes);
        }
        const int64_t r = static_cast<int64_t>(indices[i]);
        if (r == pad || r < lo || r >= hi) continue;
        A* __restrict dst = acc + r * D;
        if (psw) {
          // mul(rows_grad, psw) is a tensor of the dtype: the product rounds before it adds.
          const A s = static_cast<A>(psw[i]);
          for (int64_t j = 0; j < D; ++j) dst[j] += static_cast<A>(T(src[j] * s));
        } else {
          for (int64_t j = 0; j < D; ++j) dst[j] += src[j];
        }
      }
    }
    if constexpr (!kSameAcc) {
      T* out = static_cast<T*>(d.grad_weight);
      for (int64_t k = lo * D; k < hi * D; ++k) out[k] = T(acc[k]);
    }
  });
}

#pragma GCC pop_options

template <typename T>
void add_bag_gradients_of(const EmbeddingBagBackwardDesc& d) {
  if (d.index_dtype == DType::int64)
    add_bag_gradients<T, acc_t<T>, int64_t>(d);
  else
    add_bag_gradients<T, acc_t<T>, int32_t>(d);
}

// Calls fn(T{}) for the table dtypes the kernels take.
template <typename Fn>
void visit_table_dtype(DType t, const char* what, Fn&& fn) {
  switch (t) {
    case DType::float32:
      return fn(float{});
    case DType::float64:
      return fn(double{});
    case DType::bfloat16:
      return fn(BFloat16{});
    case DType::float16:
      return fn(Half{});
    default:
      throw DTypeError(detail::cat(what, ": no CPU kernel for ", dtype_name(t)));
  }
}

void embedding_bag_backward(const EmbeddingBagBackwardDesc& d) {
  visit_table_dtype(d.dtype, "embedding_bag backward",
                    [&](auto t) { add_bag_gradients_of<decltype(t)>(d); });
}

void embedding_bag(const EmbeddingBagDesc& d) {
  visit_table_dtype(d.dtype, "embedding_bag", [&](auto t) { reduce_bags_of<decltype(t)>(d); });
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(embedding_bag_stub, cpu, &cpu::embedding_bag);
FABRIC_REGISTER_KERNEL(embedding_bag_backward_stub, cpu, &cpu::embedding_bag_backward);
}  // namespace fabric
