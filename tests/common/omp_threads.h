// The OpenMP thread count for the length of a scope, and a bitwise tensor comparison (tests that a
// kernel gives the same bits at any thread count). The test binaries do not link OpenMP themselves; the runtime library does,
// so its symbols are looked up at run time.
#pragma once
#include <dlfcn.h>

#include <cstring>
#include <stdexcept>
#include <string>

#include "tensor/tensor.h"

namespace fabric {

class OmpThreads {
 public:
  explicit OmpThreads(int n) : before_(max_threads()) { set(n); }
  ~OmpThreads() { set(before_); }
  OmpThreads(const OmpThreads&) = delete;
  OmpThreads& operator=(const OmpThreads&) = delete;

  static int max_threads() { return reinterpret_cast<int (*)()>(lookup("omp_get_max_threads"))(); }
  static void set(int n) { reinterpret_cast<void (*)(int)>(lookup("omp_set_num_threads"))(n); }

 private:
  static void* lookup(const char* name) {
    void* fn = dlsym(RTLD_DEFAULT, name);
    if (!fn) throw std::runtime_error(std::string("OpenMP runtime not loaded: no ") + name);
    return fn;
  }
  int before_;
};

// Same dtype, shape and bytes: what "the same bits at any thread count" compares.
inline bool bits_equal(const Tensor& a, const Tensor& b) {
  if (a.sizes() != b.sizes() || a.dtype() != b.dtype()) return false;
  const Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), static_cast<size_t>(ca.nbytes())) == 0;
}

}  // namespace fabric
