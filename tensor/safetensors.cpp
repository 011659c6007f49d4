// Safetensors reading (mmap, zero-copy, validated as strictly as the reference implementation)
// and atomic writing. See safetensors.h for the format and the guarantees.
#include "tensor/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "tensor/utf8.h"
#include "tensor/write_target.h"

namespace fabric {
namespace {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // as the reference implementation
constexpr size_t kMaxJsonDepth = 16;                // a valid header nests 3 deep

struct DTypeCode {
  std::string_view name;
  DType dtype;
};
constexpr DTypeCode kDTypeCodes[] = {
    {"F64", DType::float64}, {"F32", DType::float32},        {"F16", DType::float16},
    {"BF16", DType::bfloat16}, {"F8_E4M3", DType::float8_e4m3fn}, {"F8_E5M2", DType::float8_e5m2},
    {"I64", DType::int64},   {"I32", DType::int32},          {"I8", DType::int8},
    {"U8", DType::uint8},    {"BOOL", DType::bool_},
};

std::optional<DType> dtype_from_code(std::string_view s) {
  for (const auto& c : kDTypeCodes)
    if (c.name == s) return c.dtype;
  return std::nullopt;
}

template <typename... Args>
[[noreturn]] void fail(const std::string& where, const Args&... what) {
  throw IOError(detail::cat("safetensors: ", where, ": ", what...));
}

std::string errno_str() { return std::strerror(errno); }

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

struct Header {
  std::vector<Entry> entries;
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;  // 8 + N
  uint64_t data_size = 0;
};

struct Reject {
  std::string why;
};

// A first pass over the header's events that checks what a tree would hide: a key twice in one
// object (JSON parsers disagree on which one wins) and nesting deeper than a header has (a
// hostile one could exhaust memory building a tree). nlohmann's callback parser does the same
// in one pass but rescans each parent object at every nested object's end: quadratic in the
// number of tensors (40k tensors took a minute).
class HeaderShapeCheck final : public nlohmann::json_sax<json> {
 public:
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return open(true); }
  bool start_array(std::size_t) override { return open(false); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }
  bool key(string_t& k) override {
    if (!open_.empty() && open_.back() && !open_.back()->insert(k).second)
      throw Reject{detail::cat("duplicate key \"", k, "\" in the header")};
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    error_ = e.what();
    return false;
  }
  const std::string& error() const { return error_; }

 private:
  bool open(bool object) {
    if (open_.size() >= kMaxJsonDepth)
      throw Reject{detail::cat("header nests deeper than ", kMaxJsonDepth)};
    open_.emplace_back(object ? std::optional<std::set<std::string>>(std::in_place) : std::nullopt);
    return true;
  }
  bool close() {
    if (!open_.empty()) open_.pop_back();
    return true;
  }
  std::vector<std::optional<std::set<std::string>>> open_;  // each open object's keys so far
  std::string error_;
};

json parse_json(const char* text, size_t n, const std::string& where) {
  try {
    HeaderShapeCheck check;
    if (!json::sax_parse(text, text + n, &check, nlohmann::detail::input_format_t::json,
                         /*strict=*/true, /*ignore_comments=*/false))
      fail(where, "header is not valid JSON (", check.error(), ")");
    return json::parse(text, text + n, nullptr, /*allow_exceptions=*/true,
                       /*ignore_comments=*/false);
  } catch (const Reject& r) {
    fail(where, r.why);
  } catch (const json::exception& e) {
    fail(where, "header is not valid JSON (", e.what(), ")");
  }
}

uint64_t get_uint(const json& v, const std::string& where, const std::string& tensor, const char* field) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) fail(where, "tensor '", tensor, "': negative value ", v.get<int64_t>(), " in ", field);
  fail(where, "tensor '", tensor, "': ", field, " must hold non-negative integers, got ", v.dump());
}

Entry parse_entry(const std::string& name, const json& v, uint64_t data_size, const std::string& where) {
  if (!v.is_object()) fail(where, "entry '", name, "' must be an object, got ", v.type_name());
  auto field = [&](const char* key) -> const json& {
    auto it = v.find(key);
    if (it == v.end()) fail(where, "tensor '", name, "' has no \"", key, "\"");
    return *it;
  };
  Entry e{name, DType::float32, {}, 0, 0};
  const json& dt = field("dtype");
  if (!dt.is_string()) fail(where, "tensor '", name, "': \"dtype\" must be a string, got ", dt.dump());
  auto d = dtype_from_code(dt.get_ref<const std::string&>());
  if (!d) {
    fail(where, "tensor '", name, "': unsupported dtype \"", dt.get_ref<const std::string&>(),
         "\" (expected F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, I8, U8 or BOOL)");
  }
  e.dtype = *d;

  const json& shape = field("shape");
  if (!shape.is_array()) fail(where, "tensor '", name, "': \"shape\" must be an array, got ", shape.dump());
  uint64_t numel = 1;
  bool overflow = false;
  for (const json& s : shape) {
    const uint64_t dim = get_uint(s, where, name, "\"shape\"");
    if (dim > static_cast<uint64_t>(INT64_MAX)) fail(where, "tensor '", name, "': dimension ", dim, " is too large");
    e.shape.push_back(static_cast<int64_t>(dim));
    overflow = overflow || __builtin_mul_overflow(numel, dim, &numel);
  }
  uint64_t nbytes = 0;
  overflow = overflow || __builtin_mul_overflow(numel, static_cast<uint64_t>(itemsize(e.dtype)), &nbytes);
  if (overflow || numel > static_cast<uint64_t>(INT64_MAX)) {
    fail(where, "tensor '", name, "': shape ", shape.dump(), " has too many elements");
  }
  try {  // an empty tensor's other dimensions can still be too large to lay out
    (void)contiguous_strides(e.shape);
  } catch (const ShapeError& err) {
    fail(where, "tensor '", name, "': ", err.what());
  }

  const json& off = field("data_offsets");
  if (!off.is_array() || off.size() != 2) {
    fail(where, "tensor '", name, "': \"data_offsets\" must be [begin, end], got ", off.dump());
  }
  e.begin = get_uint(off[0], where, name, "\"data_offsets\"");
  e.end = get_uint(off[1], where, name, "\"data_offsets\"");
  if (e.begin > e.end) fail(where, "tensor '", name, "': data_offsets begin ", e.begin, " > end ", e.end);
  if (e.end > data_size) {
    fail(where, "tensor '", name, "': data_offsets [", e.begin, ", ", e.end, "] run past the data buffer of ",
         data_size, " bytes");
  }
  if (e.end - e.begin != nbytes) {
    fail(where, "tensor '", name, "': shape ", shape.dump(), " of ", dt.get_ref<const std::string&>(), " needs ",
         nbytes, " bytes but data_offsets [", e.begin, ", ", e.end, "] hold ", e.end - e.begin);
  }
  return e;
}

Header parse_header(const uint8_t* data, uint64_t size, const std::string& where) {
  if (size < 8) fail(where, "file is ", size, " bytes, shorter than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(data[i]) << (8 * i);
  // A text or other file read as safetensors gives its first 8 bytes as a huge length.
  if (n > kMaxHeaderBytes)
    fail(where, "header length ", n, " exceeds the limit of ", kMaxHeaderBytes,
         " bytes (is this a safetensors file? one starts with its JSON header's length, a "
         "little-endian uint64, then the '{' of the header)");
  if (n > size - 8) fail(where, "header length ", n, " runs past the end of the file (", size, " bytes)");
  const char* text = reinterpret_cast<const char*>(data + 8);
  if (utf8_invalid_at(std::string_view(text, n)) != n) fail(where, "header is not valid UTF-8");
  // nlohmann's lexer takes a NUL byte for the end of input and would ignore what follows; raw NUL
  // is never valid JSON.
  if (std::memchr(text, '\0', n) != nullptr) fail(where, "header is not valid JSON (it contains a NUL byte)");
  const json j = parse_json(text, n, where);
  if (!j.is_object()) fail(where, "header must be a JSON object, got ", j.type_name());

  Header h;
  h.data_start = 8 + n;
  h.data_size = size - 8 - n;
  for (const auto& [key, value] : j.items()) {
    if (key == "__metadata__") {
      if (value.is_null()) continue;
      if (!value.is_object()) fail(where, "__metadata__ must be an object of strings, got ", value.type_name());
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) fail(where, "__metadata__ value of \"", mk, "\" must be a string, got ", mv.dump());
        h.metadata.emplace(mk, mv.get<std::string>());
      }
      continue;
    }
    h.entries.push_back(parse_entry(key, value, h.data_size, where));
  }

  // The tensors must tile the data buffer exactly: no gaps, no overlaps, nothing left over.
  std::vector<const Entry*> order;
  for (const auto& e : h.entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t pos = 0;
  for (const Entry* e : order) {
    if (e->begin != pos) {
      fail(where, "tensor '", e->name, "' starts at byte ", e->begin, " of the data buffer but the previous tensor ends at ",
           pos, e->begin < pos ? " (tensors overlap)" : " (gap between tensors)");
    }
    pos = e->end;
  }
  if (pos != h.data_size) {
    fail(where, "tensors cover ", pos, " bytes but the data buffer holds ", h.data_size, " (trailing bytes)");
  }
  return h;
}

// Tensors viewing data_base (the start of the data buffer), kept alive by `owner`.
SafetensorsFile build_tensors(Header h, uint8_t* data_base, const std::shared_ptr<void>& owner) {
  SafetensorsFile f;
  f.metadata = std::move(h.metadata);
  for (const Entry& e : h.entries) {
    uint8_t* p = data_base + e.begin;
    const size_t nb = static_cast<size_t>(e.end - e.begin);
    const bool aligned = reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(itemsize(e.dtype)) == 0;
    // A C++ bool must hold 0 or 1; other bytes are read as true (NumPy's view) in a copy.
    const bool clean = e.dtype != DType::bool_ || std::all_of(p, p + nb, [](uint8_t b) { return b <= 1; });
    Storage st;
    if (aligned && clean) {
      st = std::make_shared<StorageImpl>(p, nb, Device::cpu(), owner);
    } else {
      st = std::make_shared<StorageImpl>(nb, Device::cpu());
      if (nb) std::memcpy(st->data(), p, nb);
      if (!clean) {
        auto* q = static_cast<uint8_t*>(st->data());
        for (size_t i = 0; i < nb; ++i) q[i] = q[i] != 0;
      }
    }
    f.tensors.emplace(e.name, Tensor::from_storage(std::move(st), e.dtype, e.shape, contiguous_strides(e.shape), 0));
  }
  return f;
}

// ---- writing -----------------------------------------------------------------------------------

struct Prepared {
  std::string header;  // padded
  std::vector<std::pair<std::string, Tensor>> tensors;  // contiguous, CPU, in data order
};

Prepared prepare(const std::vector<std::pair<std::string, Tensor>>& tensors,
                 const std::map<std::string, std::string>& metadata, const char* op) {
  Prepared p;
  std::set<std::string_view> names;
  for (const auto& [name, t] : tensors) {
    FABRIC_CHECK(name != "__metadata__", ValueError, op, ": \"__metadata__\" is reserved and cannot name a tensor");
    FABRIC_CHECK(names.insert(name).second, ValueError, op, ": duplicate tensor name '", name, "'");
    FABRIC_CHECK(t.defined(), ValueError, op, ": tensor '", name, "' is undefined");
    Tensor c = t.detach();
    if (!c.device().is_cpu()) c = c.to(Device::cpu());
    p.tensors.emplace_back(name, c.contiguous());
  }
  std::stable_sort(p.tensors.begin(), p.tensors.end(), [](const auto& a, const auto& b) {
    const int64_t ia = a.second.element_size(), ib = b.second.element_size();
    return ia != ib ? ia > ib : a.first < b.first;
  });
  ordered_json h = ordered_json::object();
  if (!metadata.empty()) {
    ordered_json m = ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    h["__metadata__"] = std::move(m);
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : p.tensors) {
    ordered_json e = ordered_json::object();
    e["dtype"] = std::string(safetensors_dtype_name(t.dtype()));
    e["shape"] = ordered_json::array();
    for (int64_t d : t.sizes()) e["shape"].push_back(d);
    const uint64_t nb = static_cast<uint64_t>(t.nbytes());
    e["data_offsets"] = ordered_json::array({offset, offset + nb});
    offset += nb;
    h[name] = std::move(e);
  }
  try {
    p.header = h.dump();
  } catch (const ordered_json::exception& e) {
    throw ValueError(detail::cat(op, ": tensor names and metadata must be valid UTF-8 (", e.what(), ")"));
  }
  p.header.append((8 - p.header.size() % 8) % 8, ' ');
  return p;
}

std::array<uint8_t, 8> le64(uint64_t v) {
  std::array<uint8_t, 8> b;
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
  return b;
}

void write_all(int fd, const void* data, size_t n, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, std::min<size_t>(n, size_t{1} << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      fail(path, "write failed: ", errno_str());
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void fsync_dir(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) fail(path, "cannot open directory ", dir, " to sync the rename: ", errno_str());
  // Some file systems cannot sync a directory (EINVAL); the rename itself has happened.
  if (::fsync(dfd) != 0 && errno != EINVAL && errno != EROFS) {
    const std::string err = errno_str();
    ::close(dfd);
    fail(path, "fsync of directory ", dir, " failed: ", err);
  }
  ::close(dfd);
}

}  // namespace

std::string_view safetensors_dtype_name(DType dtype) {
  for (const auto& c : kDTypeCodes)
    if (c.dtype == dtype) return c.name;
  throw DTypeError(detail::cat("safetensors: no code for dtype ", dtype_name(dtype)));
}

SafetensorsFile parse_safetensors(std::shared_ptr<std::vector<uint8_t>> bytes, const std::string& name) {
  FABRIC_CHECK(bytes != nullptr, ValueError, "parse_safetensors: null byte buffer");
  Header h = parse_header(bytes->data(), bytes->size(), name);
  uint8_t* base = bytes->data() + h.data_start;
  return build_tensors(std::move(h), base, std::shared_ptr<void>(bytes));
}

SafetensorsFile load_safetensors(const std::string& path) {
  // O_NONBLOCK: opening a FIFO returns at once (and is refused below as not a regular file) instead
  // of waiting for a writer; reads of a regular file ignore the flag.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail(path, "cannot open: ", errno_str());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string err = errno_str();
    ::close(fd);
    fail(path, "cannot stat: ", err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file");
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    fail(path, "file is ", size, " bytes, shorter than the 8-byte header length");
  }
  // Private and writable: tensors may be modified in place (copy-on-write), never the file.
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (base == MAP_FAILED) fail(path, "mmap of ", size, " bytes failed: ", std::strerror(map_errno));
  std::shared_ptr<void> owner(base, [size](void* p) { ::munmap(p, size); });
  auto* bytes = static_cast<uint8_t*>(base);
  Header h = parse_header(bytes, size, path);
  uint8_t* data = bytes + h.data_start;
  return build_tensors(std::move(h), data, owner);
}

std::vector<uint8_t> serialize_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                           const std::map<std::string, std::string>& metadata) {
  Prepared p = prepare(tensors, metadata, "serialize_safetensors");
  size_t total = 8 + p.header.size();
  for (const auto& [name, t] : p.tensors) total += static_cast<size_t>(t.nbytes());
  std::vector<uint8_t> out(total);
  const auto len = le64(p.header.size());
  std::memcpy(out.data(), len.data(), 8);
  std::memcpy(out.data() + 8, p.header.data(), p.header.size());
  size_t pos = 8 + p.header.size();
  for (const auto& [name, t] : p.tensors) {
    const size_t nb = static_cast<size_t>(t.nbytes());
    if (nb) std::memcpy(out.data() + pos, t.data_ptr(), nb);
    pos += nb;
  }
  return out;
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // Everything that can fail without touching the disk happens before the file is created.
  Prepared p = prepare(tensors, metadata, "save_safetensors");
  // A link at the path is written through (the link stays, as Python's safetensors leaves it);
  // a device, FIFO or folder there is refused rather than replaced by a regular file.
  const std::string target = regular_write_target(path, "save_safetensors", "a safetensors file");
  const std::string tmp = temporary_sibling(target);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(path, "cannot create temporary file ", tmp, ": ", errno_str());
  try {
    const auto len = le64(p.header.size());
    write_all(fd, len.data(), len.size(), path);
    write_all(fd, p.header.data(), p.header.size(), path);
    for (const auto& [name, t] : p.tensors) write_all(fd, t.data_ptr(), static_cast<size_t>(t.nbytes()), path);
    if (::fsync(fd) != 0) fail(path, "fsync of ", tmp, " failed: ", errno_str());
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    const std::string err = errno_str();
    ::unlink(tmp.c_str());
    fail(path, "close of ", tmp, " failed: ", err);
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    const std::string err = errno_str();
    ::unlink(tmp.c_str());
    fail(path, "cannot rename ", tmp, " over ", target, ": ", err);
  }
  fsync_dir(target);
}

}  // namespace fabric
