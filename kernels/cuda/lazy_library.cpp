#include "kernels/cuda/lazy_library.h"

#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <link.h>

#include <cstring>
#include <utility>
#include <vector>

#include "tensor/error.h"

namespace fabric::cuda {
namespace {

// The folder libcudart was loaded from, found through one of its functions; "" if unknown.
std::string cuda_runtime_dir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&cudaRuntimeGetVersion), &info) == 0 || !info.dli_fname) {
    return "";
  }
  const std::string path = info.dli_fname;
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

std::string file_name_of(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}

}  // namespace

LazyLibrary::LazyLibrary(std::string what, std::string soname, std::string fallback_dir)
    : what_(std::move(what)), soname_(std::move(soname)), fallback_dir_(std::move(fallback_dir)) {}

void LazyLibrary::open() {
  std::vector<std::string> candidates{soname_};
  for (const std::string& dir : {cuda_runtime_dir(), fallback_dir_}) {
    if (!dir.empty()) candidates.push_back(dir + "/" + soname_);
  }
  for (const std::string& path : candidates) {
    // RTLD_LOCAL: its symbols serve only our lookups, never other libraries' undefined ones.
    handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle_) return;
    const char* why = dlerror();
    attempts_.push_back(path + ": " + (why ? why : "unknown reason"));
  }
}

void* LazyLibrary::symbol(const char* name) {
  std::call_once(opened_, [this] { open(); });
  if (!handle_) {
    std::string tried;
    for (const std::string& a : attempts_) tried += "\n  " + a;
    throw DeviceError(detail::cat(
        "the CUDA backend needs ", what_, " (", soname_, ") and could not load it; tried:", tried,
        "\ninstall it (it ships with the CUDA toolkit) or add its folder to LD_LIBRARY_PATH"));
  }
  dlerror();
  void* address = dlsym(handle_, name);
  FABRIC_CHECK(address != nullptr, DeviceError, what_, " (", soname_, ") has no function ", name,
               ": it is older than the CUDA headers fabric was built with");
  return address;
}

bool LazyLibrary::is_loaded() const { return handle_ != nullptr; }

bool is_mapped(const std::string& file_name) {
  struct Search {
    const std::string* wanted;
    bool found = false;
  } search{&file_name};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto* s = static_cast<Search*>(data);
        s->found = info->dlpi_name && file_name_of(info->dlpi_name) == *s->wanted;
        return s->found ? 1 : 0;  // non-zero stops the walk
      },
      &search);
  return search.found;
}

}  // namespace fabric::cuda
