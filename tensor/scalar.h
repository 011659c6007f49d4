// A number passed to an op beside tensors (add(t, 2), full(shape, 0.5)). It remembers whether it
// was written as a bool, an integer or a float, because PyTorch's promotion rules depend on it.
#pragma once
#include <cstdint>
#include <type_traits>

#include "tensor/dtype.h"

namespace fabric {

class Scalar {
 public:
  enum class Kind : uint8_t { boolean, integral, floating };
  Scalar() : kind_(Kind::integral), i_(0) {}
  template <typename T, std::enable_if_t<std::is_same_v<T, bool>, int> = 0>
  Scalar(T b) : kind_(Kind::boolean), i_(b ? 1 : 0) {}  // NOLINT
  template <typename T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
  Scalar(T i) : kind_(Kind::integral), i_(static_cast<int64_t>(i)) {}  // NOLINT
  template <typename T, std::enable_if_t<std::is_floating_point_v<T>, int> = 0>
  Scalar(T d) : kind_(Kind::floating), d_(static_cast<double>(d)) {}  // NOLINT

  Kind kind() const { return kind_; }
  bool is_floating() const { return kind_ == Kind::floating; }
  bool is_integral() const { return kind_ == Kind::integral; }
  bool is_bool() const { return kind_ == Kind::boolean; }
  double to_double() const { return kind_ == Kind::floating ? d_ : static_cast<double>(i_); }
  int64_t to_int() const { return kind_ == Kind::floating ? static_cast<int64_t>(d_) : i_; }
  // The dtype a 0-dim tensor holding this scalar would get by default.
  DType natural_dtype() const {
    return kind_ == Kind::floating ? DType::float64 : kind_ == Kind::integral ? DType::int64 : DType::bool_;
  }

 private:
  Kind kind_;
  union {
    int64_t i_;
    double d_;
  };
};

}  // namespace fabric
