// The numbers and flat-vector reductions of torch 1.13's LBFGS, rounded as torch rounds them: the
// Python code mixes Python floats with 0-dim tensors of the parameters' dtype, and which of the two
// a number is decides how each later op rounds. Internal to optim/lbfgs.cpp and strong_wolfe.cpp.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

// Each rounding here is torch's: the compiler must fuse no multiply-add (a pragma placed after this
// header's inclusion would not reach these templates). GCC takes that as an optimize option, clang
// (which ignores GCC's) as its fp pragma; both saved and restored around this header, so that the
// includer's code after it contracts as the includer's flags say. Clang's -ffp-contract=fast
// disregards every pragma by design (its -ffp-contract=on default and =off do not).
#if defined(__clang__)
#pragma float_control(push)
#pragma clang fp contract(off)
#else
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif

namespace fabric::optim::lbfgs_detail {

// A number of torch's LBFGS code: a Python float (`tensor` false: double arithmetic) or a 0-dim
// tensor of dtype T (`value` holds a T). An op with a tensor operand rounds its Python operand to T
// and computes in T, as torch's ops on wrapped Python scalars do.
template <class T>
struct Num {
  double value = 0;
  bool tensor = false;
};
template <class T>
Num<T> py(double v) {
  return {v, false};
}
template <class T>
Num<T> ten(T v) {
  return {static_cast<double>(v), true};
}
template <class T>
T as_t(Num<T> a) {
  return static_cast<T>(a.value);
}

template <class T>
Num<T> operator+(Num<T> a, Num<T> b) {
  if (!a.tensor && !b.tensor) return py<T>(a.value + b.value);
  return ten<T>(static_cast<T>(as_t(a) + as_t(b)));
}
template <class T>
Num<T> operator-(Num<T> a, Num<T> b) {
  if (!a.tensor && !b.tensor) return py<T>(a.value - b.value);
  return ten<T>(static_cast<T>(as_t(a) - as_t(b)));
}
template <class T>
Num<T> operator*(Num<T> a, Num<T> b) {
  if (!a.tensor && !b.tensor) return py<T>(a.value * b.value);
  return ten<T>(static_cast<T>(as_t(a) * as_t(b)));
}
// `float / tensor` is Tensor.__rtruediv__: reciprocal(tensor) * float, two roundings.
template <class T>
Num<T> operator/(Num<T> a, Num<T> b) {
  if (!a.tensor && !b.tensor) return py<T>(a.value / b.value);
  if (!a.tensor) return ten<T>(static_cast<T>(static_cast<T>(T(1) / as_t(b)) * as_t(a)));
  return ten<T>(static_cast<T>(as_t(a) / as_t(b)));
}
template <class T>
Num<T> operator-(Num<T> a) {
  return {-a.value, a.tensor};
}
template <class T>
Num<T> abs(Num<T> a) {
  return {std::abs(a.value), a.tensor};
}
template <class T>
Num<T> sqrt(Num<T> a) {
  return a.tensor ? ten<T>(std::sqrt(as_t(a))) : py<T>(std::sqrt(a.value));
}
template <class T>
Num<T> square(Num<T> a) {  // `a ** 2`: torch's pow computes x * x for the exponent 2
  return a * a;
}

// Comparisons: in T when either side is a tensor (torch casts the Python scalar to the tensor's
// dtype), else in double.
template <class T>
bool operator<(Num<T> a, Num<T> b) {
  return (a.tensor || b.tensor) ? as_t(a) < as_t(b) : a.value < b.value;
}
template <class T>
bool operator>(Num<T> a, Num<T> b) {
  return b < a;
}
template <class T>
bool operator<=(Num<T> a, Num<T> b) {
  return (a.tensor || b.tensor) ? as_t(a) <= as_t(b) : a.value <= b.value;
}
template <class T>
bool operator>=(Num<T> a, Num<T> b) {
  return b <= a;
}
// Python's min(a, b) and max(a, b) (also over a two-element list): the first operand unless the
// second is strictly smaller (larger); the result keeps its kind.
template <class T>
Num<T> py_min(Num<T> a, Num<T> b) {
  return b < a ? b : a;
}
template <class T>
Num<T> py_max(Num<T> a, Num<T> b) {
  return b > a ? b : a;
}

// torch's dot on the CPU (BLAS ?dot, generic build): one accumulator, left to right, no fusion.
template <class T>
T dot(const std::vector<T>& a, const std::vector<T>& b) {
  T acc = 0;
  for (size_t i = 0; i < a.size(); ++i) acc = static_cast<T>(acc + static_cast<T>(a[i] * b[i]));
  return acc;
}

template <class T>
T max_abs(const std::vector<T>& a) {
  T m = 0;
  for (T x : a) {
    if (std::isnan(x)) return x;  // torch's max propagates NaN (no convergence test then passes)
    m = std::max(m, std::abs(x));
  }
  return m;
}

// `x.abs().sum()` as torch 1.13's cascade sum runs on an AVX2 CPU (SumKernel.cpp): whole vectors
// of W lanes (4 doubles, 8 floats) go, in rows of four, to four vector accumulators that carry into
// up to three more levels every 16 rows (multi_row_sum); the vectors after the last whole row join
// the first accumulator, the four fold into it, and the scalar tail, added up first, takes its
// lanes in order. Fewer elements than one vector take torch's four scalar chains instead: element
// k < 4 starts chain k, the rest join chain 0, and the chains fold in order (this differs from a
// plain left-to-right sum only for 5 to 7 float32 elements). Checked against torch for 1 to 300000
// elements in both dtypes.
template <class T>
T sum_abs(const std::vector<T>& x) {
  constexpr int64_t W = 32 / sizeof(T), ILP = 4, LEVELS = 4;
  const auto n = static_cast<int64_t>(x.size());
  if (n < W) {
    T chain[ILP] = {};
    for (int64_t k = 0; k < n; ++k) {
      T& c = chain[k < ILP ? k : 0];
      c = static_cast<T>(c + std::abs(x[k]));
    }
    return static_cast<T>(static_cast<T>(static_cast<T>(chain[0] + chain[1]) + chain[2]) +
                          chain[3]);
  }
  const int64_t vecs = n / W, rows = vecs / ILP;
  const int64_t ceil_log2 = rows <= 2 ? 1 : 64 - __builtin_clzll(static_cast<uint64_t>(rows - 1));
  const int64_t power = std::max<int64_t>(4, ceil_log2 / LEVELS);
  const int64_t step = int64_t{1} << power, mask = step - 1;
  std::vector<T> acc(LEVELS * ILP * W, T(0));  // [level][chain][lane]
  auto at = [&](int64_t level, int64_t chain, int64_t lane) -> T& {
    return acc[(level * ILP + chain) * W + lane];
  };
  auto add_vector = [&](int64_t chain, int64_t v) {
    for (int64_t k = 0; k < W; ++k)
      at(0, chain, k) = static_cast<T>(at(0, chain, k) + std::abs(x[v * W + k]));
  };
  auto add_row = [&](int64_t r) {
    for (int64_t c = 0; c < ILP; ++c) add_vector(c, r * ILP + c);
  };
  int64_t i = 0;
  while (i + step <= rows) {
    for (int64_t j = 0; j < step; ++j, ++i) add_row(i);
    for (int64_t level = 1; level < LEVELS; ++level) {
      for (int64_t c = 0; c < ILP; ++c) {
        for (int64_t k = 0; k < W; ++k) {
          at(level, c, k) = static_cast<T>(at(level, c, k) + at(level - 1, c, k));
          at(level - 1, c, k) = T(0);
        }
      }
      if ((i & (mask << (level * power))) != 0) break;
    }
  }
  for (; i < rows; ++i) add_row(i);
  for (int64_t level = 1; level < LEVELS; ++level) {
    for (int64_t c = 0; c < ILP; ++c)
      for (int64_t k = 0; k < W; ++k) at(0, c, k) = static_cast<T>(at(0, c, k) + at(level, c, k));
  }
  for (int64_t v = rows * ILP; v < vecs; ++v) add_vector(0, v);
  for (int64_t c = 1; c < ILP; ++c)
    for (int64_t k = 0; k < W; ++k) at(0, 0, k) = static_cast<T>(at(0, 0, k) + at(0, c, k));
  T total = 0;
  for (int64_t k = vecs * W; k < n; ++k) total = static_cast<T>(total + std::abs(x[k]));
  for (int64_t k = 0; k < W; ++k) total = static_cast<T>(total + at(0, 0, k));
  return total;
}

}  // namespace fabric::optim::lbfgs_detail

#if defined(__clang__)
#pragma float_control(pop)
#else
#pragma GCC pop_options
#endif
