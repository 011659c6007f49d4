// The C API's status, per-thread error message, version and strings (runtime/c_api.h).
#include <signal.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>

#include "runtime/c_api_detail.h"

#ifndef FABRIC_PACKAGE_VERSION
#error \
    "FABRIC_PACKAGE_VERSION (the project's version) is set for this file by cmake/FabricInstall.cmake"
#endif

namespace fabric::c_api {
namespace {
// The message of this thread's last failed call: a string the thread keeps, so that the pointer
// fabric_last_error returns stays valid until the thread's next call.
thread_local std::string t_last_error;
}  // namespace

void clear_error() noexcept { t_last_error.clear(); }

namespace {
std::mutex g_file_size_mutex;
int g_file_size_calls = 0;     // C API calls running now
bool g_file_size_set = false;  // this library set SIGXFSZ to SIG_IGN (and puts SIG_DFL back)
}  // namespace

FileSizeLimitAsError::FileSizeLimitAsError() noexcept {
  std::lock_guard<std::mutex> lock(g_file_size_mutex);
  if (g_file_size_calls++ > 0) return;
  struct sigaction now {};
  if (::sigaction(SIGXFSZ, nullptr, &now) == 0 && now.sa_handler == SIG_DFL &&
      !(now.sa_flags & SA_SIGINFO)) {
    std::signal(SIGXFSZ, SIG_IGN);
    g_file_size_set = true;
  }
}

FileSizeLimitAsError::~FileSizeLimitAsError() {
  std::lock_guard<std::mutex> lock(g_file_size_mutex);
  if (--g_file_size_calls > 0 || !g_file_size_set) return;
  g_file_size_set = false;
  // Put the default back only over the SIG_IGN set here: a handler the program installed while
  // the call ran stays.
  struct sigaction now {};
  if (::sigaction(SIGXFSZ, nullptr, &now) == 0 && now.sa_handler == SIG_IGN &&
      !(now.sa_flags & SA_SIGINFO))
    std::signal(SIGXFSZ, SIG_DFL);
}

fabric_status fail_with(fabric_status status, const char* message) noexcept {
  try {
    t_last_error = message;
  } catch (...) {  // no memory for the message: the status still says what happened
    t_last_error.clear();
  }
  return status;
}

char* malloc_copy(const std::string& text) {
  char* copy = static_cast<char*>(std::malloc(text.size() + 1));
  if (copy == nullptr) throw std::bad_alloc();
  std::memcpy(copy, text.c_str(), text.size() + 1);
  return copy;
}

void require_existing_path(const char* path, const char* function, const char* argument,
                           const std::string& expected) {
  require_argument(path, function, argument);
  std::error_code ec;
  if (std::filesystem::status(path, ec).type() == std::filesystem::file_type::not_found)
    bad_argument(function,
                 "'" + std::string(path) + "' does not exist (expected " + expected + ")");
}

}  // namespace fabric::c_api

extern "C" {

const char* fabric_version(void) { return FABRIC_PACKAGE_VERSION; }

const char* fabric_last_error(void) { return fabric::c_api::t_last_error.c_str(); }

void fabric_string_free(char* text) { std::free(text); }

}  // extern "C"
