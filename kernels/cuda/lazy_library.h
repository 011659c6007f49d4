// A shared library opened on first use (dlopen) instead of at program start. cuBLAS and cuBLASLt
// are loaded this way: mapping libcublasLt costs every process about 210 MiB of resident memory
// and a third of a second even when it never touches a GPU (measured on Debian 12, CUDA 13), which
// a CPU run, each rank of a CPU job and each test process would otherwise pay.
#pragma once

#include <mutex>
#include <string>
#include <vector>

namespace fabric::cuda {

class LazyLibrary {
 public:
  // `soname` is tried as the dynamic loader finds it (RUNPATH, LD_LIBRARY_PATH, ldconfig), then in
  // the folder the CUDA runtime was loaded from (a toolkit keeps its libraries together), then in
  // `fallback_dir` (the toolkit's library folder at build time). `what` names it in errors.
  LazyLibrary(std::string what, std::string soname, std::string fallback_dir);
  LazyLibrary(const LazyLibrary&) = delete;
  LazyLibrary& operator=(const LazyLibrary&) = delete;

  // The address of `name`, opening the library on the first call. Throws DeviceError naming the
  // library, every path tried and the loader's reasons when it cannot be opened, or the symbol
  // when the library lacks it (a library older than the headers we were built with).
  void* symbol(const char* name);
  // True once the library is open (it is never closed).
  bool is_loaded() const;
  const std::string& soname() const { return soname_; }

 private:
  void open();

  std::string what_, soname_, fallback_dir_;
  std::once_flag opened_;
  void* handle_ = nullptr;
  std::vector<std::string> attempts_;  // "path: reason" of each failed dlopen
};

// Whether a library with this file name (e.g. "libcublasLt.so.13") is mapped into the process.
// For tests and diagnostics.
bool is_mapped(const std::string& file_name);

}  // namespace fabric::cuda
