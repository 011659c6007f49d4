// CPU sort kernel behind sort, argsort and topk: each row sorts its positions by (value, position)
// with torch's order (NaN largest, -0.0 == 0.0), so equal values keep their input order; a full
// sort is a stable sort (by a radix sort of packed keys for dtypes whose keys fit 32 bits). topk
// runs torch's own selection instead (torch_topk_row), so that its order among equal values is
// torch's. Rows run in parallel.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/cpu/run_tasks.h"
#include "tensor/sort_kernels.h"

namespace fabric::cpu {
namespace {

// The type values compare in: 16-bit floats widen to float (exactly), the rest compare as stored.
template <typename T>
using KeyOf = std::conditional_t<std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>, float, T>;

template <typename K>
bool is_nan_key(K v) {
  if constexpr (std::is_floating_point_v<K>) {
    return std::isnan(v);
  } else {
    return false;
  }
}

// a before b in ascending order: NaN is the largest value and NaNs are all equal.
template <typename K>
bool less_nan_last(K a, K b) {
  return !is_nan_key(a) && (is_nan_key(b) || a < b);
}

// torch's CPU top-k (aten's topk_impl_loop), whose order among equal values users see: each row
// becomes (value, position) pairs compared by value alone (NaN largest); k * 64 <= n takes
// std::partial_sort of the first k, otherwise std::nth_element at k - 1 and, when sorted, a
// std::sort of the k - 1 before it. The same libstdc++ algorithms on the same comparisons move
// equal elements exactly as torch's do (tests/ops/topk_torch_rows.h, from torch 1.13).
template <typename K>
void torch_topk_row(std::vector<std::pair<K, int64_t>>& queue, int64_t k, bool largest,
                    bool sorted) {
  using Elem = std::pair<K, int64_t>;
  auto first = [largest](const Elem& x, const Elem& y) {
    return largest ? (is_nan_key(x.first) && !is_nan_key(y.first)) || x.first > y.first
                   : (!is_nan_key(x.first) && is_nan_key(y.first)) || x.first < y.first;
  };
  const int64_t n = static_cast<int64_t>(queue.size());
  if (k * 64 <= n) {
    std::partial_sort(queue.begin(), queue.begin() + k, queue.end(), first);
    return;
  }
  std::nth_element(queue.begin(), queue.begin() + k - 1, queue.end(), first);
  if (sorted) std::sort(queue.begin(), queue.begin() + k - 1, first);
}

// Whether v might go before `top` in torch_topk_row's order: 1 whenever it does (the exact
// test runs after), written to vectorise over a block. A NaN on either side lets v through.
template <bool Largest, typename K>
int may_go_before(K v, K top) {
  if constexpr (std::is_floating_point_v<K>) {
    return Largest ? !(v <= top) : !(v >= top);
  } else {
    return Largest ? v > top : v < top;
  }
}

// torch_topk_row's partial_sort branch (k * 64 <= n) without the n pairs: libstdc++'s
// std::partial_sort is __heap_select (make_heap of the first k, then for each later element that
// goes before the heap's top, __pop_heap(first, first + k, it): the top leaves for that element)
// followed by sort_heap of the k. heap[k] is the element's slot, so std::pop_heap over k + 1
// makes exactly that __pop_heap call and the results are the same bits. A block of elements none
// of which goes before the top at its start is skipped: the top only ever moves later in the
// order, so none of them would go before a later top either.
template <bool Largest, typename K, typename T>
void torch_partial_sort_row(const T* row, int64_t n, int64_t k,
                            std::vector<std::pair<K, int64_t>>& heap) {
  using Elem = std::pair<K, int64_t>;
  auto first = [](const Elem& x, const Elem& y) {
    return Largest ? (is_nan_key(x.first) && !is_nan_key(y.first)) || x.first > y.first
                   : (!is_nan_key(x.first) && is_nan_key(y.first)) || x.first < y.first;
  };
  heap.resize(static_cast<size_t>(k + 1));
  for (int64_t i = 0; i < k; ++i) heap[i] = {static_cast<K>(row[i]), i};
  std::make_heap(heap.begin(), heap.begin() + k, first);
  constexpr int64_t kBlock = 32;
  for (int64_t start = k; start < n; start += kBlock) {
    const K top = heap[0].first;
    // Nothing goes before a NaN when the largest come first.
    if (Largest && is_nan_key(top)) break;
    const int64_t end = std::min(n, start + kBlock);
    if (end - start == kBlock) {
      int hits = 0;
      for (int64_t i = start; i < start + kBlock; ++i)
        hits |= may_go_before<Largest>(static_cast<K>(row[i]), top);
      if (!hits) continue;
    }
    for (int64_t i = start; i < end; ++i) {
      const Elem e{static_cast<K>(row[i]), i};
      if (first(e, heap[0])) {
        heap[k] = e;
        std::pop_heap(heap.begin(), heap.begin() + k + 1, first);
      }
    }
  }
  std::sort_heap(heap.begin(), heap.begin() + k, first);
}

template <typename T>
void topk_rows(const SortDesc& d) {
  using K = KeyOf<T>;
  const T* src = static_cast<const T*>(d.src);
  T* values = static_cast<T*>(d.values);
  const int64_t n = d.n, k = d.k;
#ifdef __GLIBCXX__
  // The replay above is of libstdc++'s partial_sort; elsewhere the full queue runs it.
  const bool replay = k * 64 <= n;
#else
  const bool replay = false;
#endif
  run_tasks_with_scratch(
      d.slices, d.slices * n > 16384,
      [&] { return std::vector<std::pair<K, int64_t>>(static_cast<size_t>(replay ? k + 1 : n)); },
      [&](int64_t s, std::vector<std::pair<K, int64_t>>& queue) {
        const T* row = src + s * n;
        if (replay) {
          if (d.descending)
            torch_partial_sort_row<true>(row, n, k, queue);
          else
            torch_partial_sort_row<false>(row, n, k, queue);
        } else {
          for (int64_t i = 0; i < n; ++i) queue[i] = {static_cast<K>(row[i]), i};
          torch_topk_row(queue, k, d.descending, d.sorted);
        }
        for (int64_t j = 0; j < k; ++j) {
          values[s * k + j] = row[queue[j].second];
          d.indices[s * k + j] = queue[j].second;
        }
      });
}

// Keys of 32 bits or fewer sort as one uint64 each, (order-preserving key << 32) | position, by a
// least-significant-digit radix sort of the key (stable, so equal keys keep their positions'
// order) instead of comparisons of positions through the keys with NaN tests at each step: a
// (8192, 512) float32 sort took 280 ms that way (torch 1.13: 200-300 ms), std::sort of the packed
// keys ~150 ms (mispredicted branches), the radix sort below ~40.
template <typename K>
constexpr bool kPackedKey = std::is_same_v<K, float> || (std::is_integral_v<K> && sizeof(K) <= 4);

// Unsigned keys in torch's ascending order: NaN (any payload) the largest, -0.0 equal to 0.0.
template <typename K>
uint32_t packed_key(K v) {
  if constexpr (std::is_same_v<K, float>) {
    if (std::isnan(v)) return 0xFFFFFFFFu;  // no number maps there (0x7FFFFFFF is a NaN)
    if (v == 0.0f) v = 0.0f;                // -0.0 ties with 0.0
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  } else if constexpr (std::is_signed_v<K>) {
    return static_cast<uint32_t>(static_cast<int32_t>(v)) ^ 0x80000000u;
  } else {
    return static_cast<uint32_t>(v);
  }
}

// Sorts packed[0, n) by its upper 32 bits, stably (tmp: n elements of scratch): four counting
// passes over 8-bit digits, skipping a digit every element shares (bfloat16's low 16 bits). Short
// rows compare instead, the position bits keeping the order stable.
void radix_sort_packed(std::vector<uint64_t>& packed, std::vector<uint64_t>& tmp) {
  const size_t n = packed.size();
  if (n < 128) {
    std::sort(packed.begin(), packed.end());
    return;
  }
  for (int shift = 32; shift < 64; shift += 8) {
    size_t count[256] = {};
    for (uint64_t v : packed) ++count[(v >> shift) & 0xFF];
    if (count[(packed[0] >> shift) & 0xFF] == n) continue;
    size_t sum = 0;
    for (size_t& c : count) {
      const size_t here = c;
      c = sum;
      sum += here;
    }
    for (uint64_t v : packed) tmp[count[(v >> shift) & 0xFF]++] = v;
    packed.swap(tmp);
  }
}

template <typename T>
void sort_rows_packed(const SortDesc& d) {
  using K = KeyOf<T>;
  const T* src = static_cast<const T*>(d.src);
  T* values = static_cast<T*>(d.values);
  const int64_t n = d.n;
  // Descending: the complemented key, so the position still breaks ties upward (stable).
  const uint32_t flip = d.descending ? 0xFFFFFFFFu : 0u;
  struct RowScratch {
    std::vector<uint64_t> packed, tmp;  // the row's (key, position) words and the radix buffer
  };
  run_tasks_with_scratch(
      d.slices, d.slices * n > 16384,
      [&] {
        return RowScratch{std::vector<uint64_t>(static_cast<size_t>(n)),
                          std::vector<uint64_t>(static_cast<size_t>(n))};
      },
      [&](int64_t s, RowScratch& scratch) {
        std::vector<uint64_t>& packed = scratch.packed;
        const T* row = src + s * n;
        for (int64_t i = 0; i < n; ++i) {
          const uint32_t key = packed_key(static_cast<K>(row[i])) ^ flip;
          packed[i] = (uint64_t{key} << 32) | static_cast<uint64_t>(i);
        }
        radix_sort_packed(packed, scratch.tmp);
        for (int64_t j = 0; j < n; ++j) {
          const int64_t i = static_cast<int64_t>(packed[j] & 0xFFFFFFFFu);
          values[s * n + j] = row[i];
          d.indices[s * n + j] = i;
        }
      });
}

template <typename T>
void sort_rows(const SortDesc& d) {
  using K = KeyOf<T>;
  if constexpr (kPackedKey<K>) {
    if (d.k == d.n && d.n <= int64_t{0xFFFFFFFF}) return sort_rows_packed<T>(d);
  }
  const T* src = static_cast<const T*>(d.src);
  T* values = static_cast<T*>(d.values);
  const int64_t n = d.n, k = d.k;
  struct RowScratch {
    std::vector<K> keys;         // the row's keys
    std::vector<int64_t> order;  // its positions, sorted through the keys
  };
  run_tasks_with_scratch(
      d.slices, d.slices * n > 16384,
      [&] {
        return RowScratch{std::vector<K>(static_cast<size_t>(n)),
                          std::vector<int64_t>(static_cast<size_t>(n))};
      },
      [&](int64_t s, RowScratch& scratch) {
        std::vector<K>& keys = scratch.keys;
        std::vector<int64_t>& order = scratch.order;
        const T* row = src + s * n;
        for (int64_t i = 0; i < n; ++i) keys[i] = static_cast<K>(row[i]);
        std::iota(order.begin(), order.end(), int64_t{0});
        // The position breaks ties, which makes partial_sort's order stable too.
        auto before = [&](int64_t i, int64_t j) {
          const K a = keys[i], b = keys[j];
          if (d.descending ? less_nan_last(b, a) : less_nan_last(a, b)) return true;
          if (d.descending ? less_nan_last(a, b) : less_nan_last(b, a)) return false;
          return i < j;
        };
        if (k == n) {
          std::sort(order.begin(), order.end(), before);
        } else {
          std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
        }
        for (int64_t j = 0; j < k; ++j) {
          values[s * k + j] = row[order[j]];
          d.indices[s * k + j] = order[j];
        }
      });
}

void sort(const SortDesc& d) {
  if (d.slices * d.k == 0) return;
  visit_dtype(d.dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, Float8E4M3> || std::is_same_v<T, Float8E5M2>) {
      throw DTypeError(detail::cat("sort (CPU): unsupported dtype ", dtype_name(d.dtype),
                                   " (the op refuses fp8 inputs before this)"));
    } else if (d.topk_selection) {
      topk_rows<T>(d);
    } else {
      sort_rows<T>(d);
    }
  });
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(sort_stub, cpu, &cpu::sort);
}  // namespace fabric
