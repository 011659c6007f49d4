#include "runtime/yaml_int.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <vector>

namespace fabric {
namespace {

bool only(const std::string& s, const char* allowed) {
  return s.find_first_not_of(allowed) == std::string::npos;
}

unsigned digit_value(char c) {
  if (c >= '0' && c <= '9') return unsigned(c - '0');
  if (c >= 'a' && c <= 'f') return unsigned(c - 'a' + 10);
  return unsigned(c - 'A' + 10);
}

// The magnitude built digit by digit, past uint64 too (then only approximately, as a long double).
struct Magnitude {
  uint64_t value = 0;
  bool overflow = false;
  long double approx = 0;
  int digits = 0;
  void push(unsigned base, unsigned digit) {
    approx = approx * base + digit;
    if (overflow || value > (std::numeric_limits<uint64_t>::max() - digit) / base)
      overflow = true;
    else
      value = value * base + digit;
    ++digits;
  }
  // Each digit of `text` in `base`, its `_` separators skipped.
  void push_all(unsigned base, const std::string& text) {
    for (const char c : text)
      if (c != '_') push(base, digit_value(c));
  }
};

// `1:30:05`'s parts after the first: each one or two digits, [0-5]?[0-9]; nullopt when one is not.
std::optional<std::vector<unsigned>> base60_digits(const std::string& rest) {
  std::vector<unsigned> out;
  size_t at = 0;
  while (at < rest.size()) {
    // `rest` starts with ':' and every part is followed by one, or by the end.
    const size_t end = rest.find(':', at + 1);
    const std::string part = rest.substr(at + 1, end == std::string::npos ? end : end - at - 1);
    if (part.empty() || part.size() > 2 || !only(part, "0123456789")) return std::nullopt;
    if (part.size() == 2 && part[0] > '5') return std::nullopt;
    out.push_back(unsigned(std::stoul(part)));
    if (end == std::string::npos) break;
    at = end;
  }
  return out;
}

}  // namespace

std::optional<Yaml11Int> yaml11_int(const std::string& s) {
  const bool signed_text = !s.empty() && (s[0] == '+' || s[0] == '-');
  const bool negative = signed_text && s[0] == '-';
  const std::string body = s.substr(signed_text ? 1 : 0);
  if (body.empty()) return std::nullopt;
  Magnitude m;
  bool decimal = false;  // plain decimal digits: the double is read from the text itself
  if (body.starts_with("0b")) {
    if (body.size() == 2 || !only(body.substr(2), "01_")) return std::nullopt;
    m.push_all(2, body.substr(2));
  } else if (body.starts_with("0x")) {
    if (body.size() == 2 || !only(body.substr(2), "0123456789abcdefABCDEF_")) return std::nullopt;
    m.push_all(16, body.substr(2));
  } else if (body == "0") {
    m.push(10, 0);
  } else if (body[0] == '0') {
    if (!only(body, "01234567_")) return std::nullopt;  // 08, 0_9: strings to PyYAML
    m.push_all(8, body);
  } else if (body[0] >= '1' && body[0] <= '9') {
    const size_t colon = body.find(':');
    const std::string first = body.substr(0, colon);
    if (!only(first, "0123456789_")) return std::nullopt;
    m.push_all(10, first);
    if (colon == std::string::npos) {
      decimal = true;
    } else {
      const auto parts = base60_digits(body.substr(colon));
      if (!parts) return std::nullopt;
      for (const unsigned p : *parts) m.push(60, p);
    }
  } else {
    return std::nullopt;
  }
  if (m.digits == 0) return std::nullopt;  // 0b_, 0x_: PyYAML's int() fails on them
  Yaml11Int out;
  constexpr uint64_t kMinMagnitude = uint64_t(1) << 63;  // -2^63 fits, +2^63 does not
  out.fits = !m.overflow && (negative ? m.value <= kMinMagnitude : m.value < kMinMagnitude);
  if (out.fits)
    out.value = negative ? (m.value == kMinMagnitude ? std::numeric_limits<int64_t>::min()
                                                     : -int64_t(m.value))
                         : int64_t(m.value);
  if (decimal) {
    std::string digits = negative ? "-" : "";
    for (const char c : body)
      if (c != '_') digits += c;
    out.approx = std::strtod(digits.c_str(), nullptr);  // past a double's range: +-HUGE_VAL
  } else {
    // Past a double's range: +-HUGE_VAL, as strtod gives (a plain conversion would be undefined).
    const long double a = m.approx > std::numeric_limits<double>::max() ? HUGE_VAL : m.approx;
    out.approx = double(negative ? -a : a);
  }
  return out;
}

}  // namespace fabric
