// The warning handler and the default one: stderr, once per call site and message.
#include "tensor/warning.h"

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>
#include <set>
#include <string_view>
#include <tuple>

namespace fabric {
namespace {

std::mutex handler_mutex;
WarningHandler installed_handler;  // empty: print_once

bool warnings_off() {
  const char* v = std::getenv("FABRIC_WARNINGS");
  return v != nullptr && std::string_view(v) == "off";
}

// Python's "default" action: a loop that hits the same warning prints it once.
void print_once(const Warning& w) {
  if (warnings_off()) return;
  static std::mutex seen_mutex;
  static std::set<std::tuple<std::string, unsigned, std::string>> seen;
  {
    std::lock_guard lock(seen_mutex);
    if (!seen.emplace(w.where.file_name(), w.where.line(), w.message).second) return;
  }
  std::cerr << "fabric: warning: " << w.message << std::endl;
}

}  // namespace

void warn(std::string message, SourceLocation where) {
  WarningHandler handler;
  {
    std::lock_guard lock(handler_mutex);
    handler = installed_handler;
  }
  // Called outside the lock: a handler may warn or replace itself.
  const Warning w{std::move(message), where};
  if (handler) {
    handler(w);
  } else {
    print_once(w);
  }
}

WarningHandler set_warning_handler(WarningHandler handler) {
  std::lock_guard lock(handler_mutex);
  std::swap(installed_handler, handler);
  return handler;
}

}  // namespace fabric
