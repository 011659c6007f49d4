// Warnings, as Python's warnings.warn for the cases torch warns on: a result that is computed but
// likely not what was meant (a loss broadcasting its target, kl_div's "mean"). Not for errors.
#pragma once
#include <functional>
#include <source_location>
#include <string>

namespace fabric {

struct Warning {
  std::string message;
  std::source_location where;  // the warn() call
};

// Receives every warning, unfiltered.
using WarningHandler = std::function<void(const Warning&)>;

// Hands `message` to the warning handler. The default handler prints "fabric: warning: <message>"
// to stderr the first time each call site warns with each message in this process (Python's
// default filter), and nothing at all when the environment has FABRIC_WARNINGS=off.
void warn(std::string message, std::source_location where = std::source_location::current());

// Replaces the handler (tests capture warnings, an embedding app routes them to its own log);
// an empty one restores the default. Returns the previous handler (empty for the default).
WarningHandler set_warning_handler(WarningHandler handler);

}  // namespace fabric
