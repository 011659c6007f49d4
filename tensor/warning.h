// Warnings, as Python's warnings.warn for the cases torch warns on: a result that is computed but
// likely not what was meant (a loss broadcasting its target, kl_div's "mean"). Not for errors.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

namespace fabric {

// Where warn() was called: std::source_location's members, from the compiler builtins that GCC
// and clang (9 and later) both have (the column where the compiler has __builtin_COLUMN: clang;
// 0 otherwise). Not std::source_location itself: clang 14 cannot compile
// libstdc++'s <source_location> (it lacks __builtin_source_location), so an app built with it
// could not include this installed header, nor call warn() with the type the library was built
// with.
#if defined(__has_builtin) && __has_builtin(__builtin_COLUMN)
#define FABRIC_CALLER_COLUMN __builtin_COLUMN()
#else
#define FABRIC_CALLER_COLUMN 0
#endif
class SourceLocation {
 public:
  static constexpr SourceLocation current(
      const char* file = __builtin_FILE(), const char* function = __builtin_FUNCTION(),
      std::uint_least32_t line = __builtin_LINE(),
      std::uint_least32_t column = FABRIC_CALLER_COLUMN) noexcept {
    SourceLocation at;
    at.file_ = file;
    at.function_ = function;
    at.line_ = line;
    at.column_ = column;
    return at;
  }
  constexpr const char* file_name() const noexcept { return file_; }
  constexpr const char* function_name() const noexcept { return function_; }
  constexpr std::uint_least32_t line() const noexcept { return line_; }
  constexpr std::uint_least32_t column() const noexcept { return column_; }

 private:
  const char* file_ = "";
  const char* function_ = "";
  std::uint_least32_t line_ = 0;
  std::uint_least32_t column_ = 0;
};
#undef FABRIC_CALLER_COLUMN

struct Warning {
  std::string message;
  SourceLocation where;  // the warn() call
};

// Receives every warning, unfiltered.
using WarningHandler = std::function<void(const Warning&)>;

// Hands `message` to the warning handler. The default handler prints "fabric: warning: <message>"
// to stderr the first time each call site warns with each message in this process (Python's
// default filter), and nothing at all when the environment has FABRIC_WARNINGS=off.
void warn(std::string message, SourceLocation where = SourceLocation::current());

// Replaces the handler (tests capture warnings, an embedding app routes them to its own log);
// an empty one restores the default. Returns the previous handler (empty for the default).
WarningHandler set_warning_handler(WarningHandler handler);

}  // namespace fabric
