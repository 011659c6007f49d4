// Safetensors, the weight format (readable from PyTorch/NumPy): an 8-byte little-endian header
// length N, N bytes of JSON describing each tensor, then the raw little-endian data buffer.
// Loading memory-maps the file and hands out zero-copy views; saving is atomic.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace fabric {

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;  // the header's "__metadata__" (string -> string)
};

// Maps the file and returns CPU tensors viewing it (copy-on-write private mapping: writing into
// a loaded tensor never changes the file; the mapping lives as long as any tensor does). A
// tensor whose bytes are not aligned to its itemsize in the file, or a BOOL tensor holding bytes
// other than 0/1, is copied instead. Malformed files raise IOError naming the path and the
// problem; nothing is read out of bounds. (Truncating the file while it is mapped is outside
// this promise, as for any mapping.)
SafetensorsFile load_safetensors(const std::string& path);

// The same over bytes in memory: the tensors view `bytes` (kept alive by them). `name` is used in
// error messages in place of a path.
SafetensorsFile parse_safetensors(std::shared_ptr<std::vector<uint8_t>> bytes, const std::string& name = "<memory>");

// Writes tensors (any device, any layout: copied to contiguous CPU memory as needed) and string
// metadata. Layout: the header JSON is compact, with "__metadata__" first (when non-empty), then
// the tensors in data order, which is by itemsize, largest first, then by name (the reference
// implementation orders by dtype then name for the same reason: every tensor then starts at a
// multiple of its itemsize); the header is padded with spaces so the data starts 8-byte aligned.
// Atomic: written to `path + ".tmp.<pid>"`, fsynced, renamed over `path`, then the directory is
// fsynced; on any failure the temporary file is removed and an existing `path` is untouched.
// ValueError for duplicate or reserved ("__metadata__") names, undefined tensors or names/metadata
// that are not valid UTF-8; IOError for file system failures.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// The exact bytes save_safetensors writes.
std::vector<uint8_t> serialize_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                           const std::map<std::string, std::string>& metadata = {});

// "F32", "BF16", "F8_E4M3", ... for a dtype.
std::string_view safetensors_dtype_name(DType dtype);

}  // namespace fabric
