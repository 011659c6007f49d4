// What the C API's implementation files (runtime/c_api_*.cpp) share: the handles' contents and
// their registry, the exception barrier every entry point runs its body in, argument checks.
// C++ only; not for apps (they include runtime/c_api.h).
#pragma once
#include <cstddef>
#include <mutex>
#include <new>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "runtime/c_api.h"
#include "runtime/train_config.h"
#include "tensor/tensor.h"

struct fabric_tensor {
  fabric::Tensor tensor;  // CPU, contiguous
};

namespace fabric::c_api {

// A bad argument: fabric-train's bad command line (FABRIC_CONFIG_ERROR), naming the function.
[[noreturn]] inline void bad_argument(const char* function, const std::string& what) {
  throw ConfigError(std::string(function) + ": " + what);
}

// `argument` must not be NULL.
inline void require_argument(const void* pointer, const char* function, const char* argument) {
  if (pointer == nullptr) bad_argument(function, std::string(argument) + " is NULL");
}

// The live handles of one kind. A pointer that is not one of them (freed, never made, or a handle
// of the other kind) is refused with a message, instead of being dereferenced.
template <class Handle>
class Registry {
 public:
  Handle* add(Handle* h) {
    std::lock_guard<std::mutex> lock(mutex_);
    live_.insert(h);
    return h;
  }
  bool contains(const Handle* h) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return live_.count(h) != 0;
  }
  bool remove(const Handle* h) {
    std::lock_guard<std::mutex> lock(mutex_);
    return live_.erase(h) != 0;
  }

 private:
  mutable std::mutex mutex_;
  std::unordered_set<const Handle*> live_;
};

Registry<fabric_tensor>& tensors();

// The tensor a live handle holds; bad_argument naming `function` for NULL or a dead handle.
const Tensor& tensor_of(const fabric_tensor* handle, const char* function, const char* argument);
// fabric_dtype <-> DType; bad_argument naming `function` for a value outside the enum.
DType dtype_from_c(fabric_dtype dtype, const char* function);
fabric_dtype dtype_to_c(DType dtype);

// A new handle owning `t` (made contiguous, on the CPU).
fabric_tensor* new_tensor_handle(const Tensor& t);

// Runs `body` with this thread's error cleared; any exception becomes its status
// (ConfigError: FABRIC_CONFIG_ERROR, anything else: FABRIC_ERROR) and the thread's message.
template <class Body>
fabric_status guarded(Body&& body) noexcept;
fabric_status fail_with(fabric_status status, const char* message) noexcept;
void clear_error() noexcept;

// While a C API call that writes files runs (fabric_fit, fabric_resume, fabric_export), a
// file-size limit (ulimit -f) fails a write with EFBIG, which the call returns as fabric-train's
// error (exit 1), instead of the kernel's default SIGXFSZ ending the caller's process without a
// word mid-write: the signal is ignored for the calls' duration unless the program set its own
// disposition (which is left alone, also one it sets meanwhile). Counted across threads.
class FileSizeLimitAsError {
 public:
  FileSizeLimitAsError() noexcept;
  ~FileSizeLimitAsError();
  FileSizeLimitAsError(const FileSizeLimitAsError&) = delete;
  FileSizeLimitAsError& operator=(const FileSizeLimitAsError&) = delete;
};

template <class Body>
fabric_status guarded(Body&& body) noexcept {
  clear_error();
  try {
    std::forward<Body>(body)();
    // A call the body made back into the API (fabric_model_generate's callback) may have failed
    // and left its message: a successful call ends with "".
    clear_error();
    return FABRIC_OK;
  } catch (const ConfigError& e) {
    return fail_with(FABRIC_CONFIG_ERROR, e.what());
  } catch (const std::bad_alloc&) {
    return fail_with(FABRIC_ERROR, "out of memory");
  } catch (const std::exception& e) {
    return fail_with(FABRIC_ERROR, e.what());
  } catch (...) {
    return fail_with(FABRIC_ERROR, "an exception that is no std::exception");
  }
}

// A malloc'ed copy (the caller frees it with fabric_string_free).
char* malloc_copy(const std::string& text);

// fabric-train's check of a path argument: one that names nothing is a bad command line,
// "'PATH' does not exist (expected EXPECTED)".
void require_existing_path(const char* path, const char* function, const char* argument,
                           const std::string& expected);

// What fabric-train's "a checkpoint" argument (sample, export) expects.
inline constexpr const char* kACheckpoint =
    "a checkpoint: RUN_DIR/checkpoints/last (or step-N), RUN_DIR, or a checkpoint's "
    "model.safetensors";

}  // namespace fabric::c_api
