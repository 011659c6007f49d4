// Dataset implementations: UTF-8 decoding and the character vocabulary, text and token windows,
// and safetensors examples (IDX images are in idx_dataset.cpp).
#include "runtime/datasets.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "runtime/atomic_text_file.h"
#include "runtime/regular_file.h"
#include "tensor/factory.h"
#include "tensor/safetensors.h"
#include "tensor/utf8.h"

namespace fabric::data {

namespace fs = std::filesystem;

namespace {

std::string errno_str() { return std::strerror(errno); }

std::string hex(uint64_t v, int width = 2) {
  std::ostringstream os;
  os << "0x" << std::hex << std::uppercase;
  os.width(width);
  os.fill('0');
  os << v;
  return os.str();
}

std::string code_point_str(char32_t cp) {
  std::ostringstream os;
  os << "U+" << std::hex << std::uppercase;
  os.width(4);
  os.fill('0');
  os << static_cast<uint32_t>(cp);
  return os.str();
}

std::string utf8_encode(char32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

// A character for messages: itself when printable ASCII, and its code point.
std::string char_str(char32_t cp) {
  if (cp >= 0x20 && cp < 0x7F)
    return detail::cat("'", utf8_encode(cp), "' (", code_point_str(cp), ")");
  return code_point_str(cp);
}

std::string bad_utf8(std::string_view what, std::string_view s, size_t i) {
  return detail::cat(what, ": invalid UTF-8 at byte ", i, " (",
                     hex(static_cast<unsigned char>(s[i])), "); expected a UTF-8 encoded text");
}

// Refused before opening: a FIFO would block the open, /dev/zero never end, a directory read empty.
void check_regular_file(const std::string& path, const char* what) {
  const std::string kind = non_regular_file_kind(path);
  FABRIC_CHECK(kind.empty(), IOError, what, ": ", path, " is ", kind, ", expected a regular file");
}

std::vector<uint8_t> read_bytes(const std::string& path, const char* what) {
  check_regular_file(path, what);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IOError(detail::cat(what, ": cannot open ", path, ": ", errno_str()));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  FABRIC_CHECK(!in.bad(), IOError, what, ": error reading ", path);
  return bytes;
}

void check_block_size(const char* what, int64_t block_size) {
  FABRIC_CHECK(block_size >= 1, ValueError, what, ": block_size must be >= 1, got ", block_size);
}

// x = ids[i : i+T], y = ids[i+1 : i+T+1] for each start i, from any id type.
template <typename Id, typename Check>
Batch gather_windows(const char* what, const Id* ids, int64_t size, int64_t T,
                     std::span<const int64_t> starts, Check check) {
  const auto B = static_cast<int64_t>(starts.size());
  Tensor x = empty({B, T}, {.dtype = DType::int64}), y = empty({B, T}, {.dtype = DType::int64});
  int64_t* xp = x.data<int64_t>();
  int64_t* yp = y.data<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    const int64_t i = starts[static_cast<size_t>(b)];
    FABRIC_CHECK(i >= 0 && i < size, IndexError, what, ": window start ", i, " out of range [0, ",
                 size, ")");
    const Id* w = ids + i;
    for (int64_t t = 0; t <= T; ++t) check(w[t], i + t);
    for (int64_t t = 0; t < T; ++t) {
      xp[b * T + t] = static_cast<int64_t>(w[t]);
      yp[b * T + t] = static_cast<int64_t>(w[t + 1]);
    }
  }
  return {x, y};
}

}  // namespace

// ---- splits ------------------------------------------------------------------------------------

std::string_view split_name(Split split) { return split == Split::train ? "train" : "val"; }

Split split_from_name(std::string_view name) {
  if (name == "train") return Split::train;
  if (name == "val") return Split::val;
  throw ValueError(detail::cat("unknown split '", name, "': expected 'train' or 'val'"));
}

std::pair<int64_t, int64_t> split_range(int64_t n, double val_fraction, Split split) {
  FABRIC_CHECK(std::isfinite(val_fraction) && val_fraction >= 0 && val_fraction < 1, ValueError,
               "val_fraction must be in [0, 1), got ", val_fraction);
  const auto n_val = static_cast<int64_t>(std::floor(static_cast<double>(n) * val_fraction));
  return split == Split::train ? std::pair<int64_t, int64_t>{0, n - n_val}
                               : std::pair<int64_t, int64_t>{n - n_val, n};
}

// ---- CharVocab
// -----------------------------------------------------------------------------------

CharVocab::CharVocab(std::vector<std::string> chars) : chars_(std::move(chars)) {
  code_points_.reserve(chars_.size());
  for (size_t k = 0; k < chars_.size(); ++k) {
    const std::string& c = chars_[k];
    char32_t cp = 0;
    const size_t len = c.empty() ? 0 : utf8_next(c, 0, cp);
    FABRIC_CHECK(len != 0 && len == c.size(), ValueError, "CharVocab: entry ", k,
                 " must be exactly one UTF-8 encoded character, got ", c.size(), " bytes");
    FABRIC_CHECK(code_points_.empty() || cp > code_points_.back(), ValueError, "CharVocab: entry ",
                 k, " (", code_point_str(cp), ") is not after entry ", k - 1, " (",
                 code_points_.empty() ? "" : code_point_str(code_points_.back()),
                 "); characters must be sorted by code point and unique");
    code_points_.push_back(cp);
  }
  build_index();
}

void CharVocab::build_index() {
  const size_t table =
      code_points_.empty() ? 0 : std::min<size_t>(code_points_.back() + 1, 0x10000);
  small_index_.assign(table, -1);
  for (size_t id = 0; id < code_points_.size() && code_points_[id] < table; ++id)
    small_index_[code_points_[id]] = static_cast<int32_t>(id);
}

CharVocab CharVocab::from_text(std::string_view text, std::string_view what) {
  std::vector<bool> seen(0x110000, false);
  for (size_t i = 0; i < text.size();) {
    char32_t cp;
    const size_t len = utf8_next(text, i, cp);
    if (len == 0) throw ValueError(bad_utf8(what, text, i));
    seen[cp] = true;
    i += len;
  }
  CharVocab v;
  for (char32_t cp = 0; cp < 0x110000; ++cp) {
    if (!seen[cp]) continue;
    v.code_points_.push_back(cp);
    v.chars_.push_back(utf8_encode(cp));
  }
  v.build_index();
  return v;
}

int64_t CharVocab::id_of(char32_t cp) const {
  if (cp < small_index_.size()) return small_index_[cp];
  auto it = std::lower_bound(code_points_.begin(), code_points_.end(), cp);
  return it != code_points_.end() && *it == cp ? it - code_points_.begin() : -1;
}

std::vector<int64_t> CharVocab::encode(std::string_view text) const {
  std::vector<int64_t> ids;
  ids.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    char32_t cp;
    const size_t len = utf8_next(text, i, cp);
    if (len == 0) throw ValueError(bad_utf8("CharVocab::encode", text, i));
    const int64_t id = id_of(cp);
    FABRIC_CHECK(id >= 0, ValueError, "CharVocab::encode: character ", char_str(cp), " at byte ", i,
                 " is not in the vocabulary of ", size(), " characters");
    ids.push_back(id);
    i += len;
  }
  return ids;
}

std::string CharVocab::decode(std::span<const int64_t> ids) const {
  std::string out;
  out.reserve(ids.size());
  for (size_t k = 0; k < ids.size(); ++k) {
    FABRIC_CHECK(ids[k] >= 0 && ids[k] < size(), ValueError, "CharVocab::decode: id ", ids[k],
                 " at position ", k, " is outside the vocabulary [0, ", size(), ")");
    out += chars_[static_cast<size_t>(ids[k])];
  }
  return out;
}

std::string CharVocab::decode(const Tensor& ids) const {
  FABRIC_CHECK(is_integral(ids.dtype(), true), DTypeError,
               "CharVocab::decode: expects an integer tensor of ids, got ",
               dtype_name(ids.dtype()));
  const std::vector<int64_t> v = ids.to_vector<int64_t>();
  return decode(std::span<const int64_t>(v));
}

std::string CharVocab::to_json() const {
  return nlohmann::json{{"kind", "char"}, {"chars", chars_}}.dump(1) + "\n";
}

void CharVocab::save(const std::string& path) const {
  // Atomic like the checkpoints it sits beside: a temporary file, fsync, rename.
  write_text_atomically(path, to_json());
}

CharVocab CharVocab::load(const std::string& path) {
  const std::vector<uint8_t> bytes = read_bytes(path, "CharVocab::load");
  return from_json(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
                   path);
}

CharVocab CharVocab::from_json(std::string_view json, std::string_view what) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json);
  } catch (const nlohmann::json::exception& e) {
    throw IOError(detail::cat("CharVocab: ", what, " is not valid JSON: ", e.what()));
  }
  FABRIC_CHECK(j.is_object() && j.contains("chars") && j["chars"].is_array(), IOError,
               "CharVocab: ", what,
               ": expected an object with a \"chars\" list, as CharVocab::save writes");
  FABRIC_CHECK(!j.contains("kind") || j["kind"] == "char", IOError, "CharVocab: ", what,
               ": \"kind\" is ", j["kind"].dump(), ", expected \"char\"");
  std::vector<std::string> chars;
  for (size_t k = 0; k < j["chars"].size(); ++k) {
    FABRIC_CHECK(j["chars"][k].is_string(), IOError, "CharVocab: ", what, ": chars[", k,
                 "] is not a string");
    chars.push_back(j["chars"][k].get<std::string>());
  }
  try {
    return CharVocab(std::move(chars));
  } catch (const ValueError& e) {
    throw IOError(detail::cat("CharVocab: ", what, ": ", e.what()));
  }
}

// ---- TextDataset
// ---------------------------------------------------------------------------------

TextDataset::TextDataset(const std::string& path, TextDatasetOptions opts)
    : path_(path), block_size_(opts.block_size) {
  check_block_size("TextDataset", block_size_);
  const std::vector<uint8_t> bytes = read_bytes(path, "TextDataset");
  FABRIC_CHECK(!bytes.empty(), IOError, "TextDataset: ", path, " is empty");
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  if (opts.vocab) {
    vocab_ = std::make_shared<const CharVocab>(std::move(*opts.vocab));
  } else {
    try {
      vocab_ = std::make_shared<const CharVocab>(CharVocab::from_text(text, path));
    } catch (const ValueError& e) {
      throw IOError(detail::cat("TextDataset: ", e.what()));
    }
  }
  auto ids = std::make_shared<std::vector<int32_t>>();
  ids->reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    char32_t cp;
    const size_t len = utf8_next(text, i, cp);
    if (len == 0) throw IOError(detail::cat("TextDataset: ", bad_utf8(path, text, i)));
    const int64_t id = vocab_->id_of(cp);
    FABRIC_CHECK(id >= 0, IOError, "TextDataset: ", path, ": character ", char_str(cp), " at byte ",
                 i, " is not in the given vocabulary of ", vocab_->size(), " characters");
    ids->push_back(static_cast<int32_t>(id));
    i += len;
  }
  ids_ = std::move(ids);
  set_split(opts.split, opts.val_fraction);
}

void TextDataset::set_split(Split split, double val_fraction) {
  const auto n = static_cast<int64_t>(ids_->size());
  std::tie(begin_, end_) = split_range(n, val_fraction, split);
  split_ = split;
  val_fraction_ = val_fraction;
  FABRIC_CHECK(num_tokens() > block_size_, ValueError, "TextDataset: the ", split_name(split),
               " split of ", path_, " has ", num_tokens(), " characters (of ", n, ", val_fraction ",
               val_fraction, "); a window needs block_size + 1 = ", block_size_ + 1);
}

TextDataset TextDataset::with_split(Split split) const {
  TextDataset d = *this;
  d.set_split(split, val_fraction_);
  return d;
}

Batch TextDataset::get(std::span<const int64_t> indices) const {
  return gather_windows("TextDataset", ids_->data() + begin_, size(), block_size_, indices,
                        [](int32_t, int64_t) {});
}

std::string TextDataset::describe() const {
  return detail::cat("text ", path_, " (", split_name(split_), ": ", num_tokens(),
                     " characters, vocabulary ", vocab_->size(), ", block_size ", block_size_, ")");
}

// ---- TokenDataset
// --------------------------------------------------------------------------------

// The token file is read with pread, window by window, not through a mapping: a file cut shorter
// in place during the run (a data script rewriting it) then reads short, an IOError, where a page
// of a mapping past its new end would end the process with SIGBUS in the middle of a batch.
struct TokenDataset::TokenFile {
  int fd = -1;
  size_t len = 0;  // bytes when opened: the windows and splits are laid out over these
  ~TokenFile() {
    if (fd >= 0) ::close(fd);
  }
  // Reads `count` ids from token `first` on, or says the file shrank (or failed) under the run.
  void read(const std::string& path, int64_t first, int64_t count, uint16_t* out) const {
    auto* dst = reinterpret_cast<char*>(out);
    size_t want = static_cast<size_t>(count) * 2, done = 0;
    const auto offset = static_cast<off_t>(first) * 2;
    while (done < want) {
      const ssize_t got = ::pread(fd, dst + done, want - done, offset + static_cast<off_t>(done));
      if (got > 0) {
        done += static_cast<size_t>(got);
        continue;
      }
      if (got < 0 && errno == EINTR) continue;
      if (got < 0)
        throw IOError(detail::cat("TokenDataset: cannot read ", path, ": ", errno_str()));
      throw_shrank(path);
    }
  }
  // A batch after the file shrank is refused even where its windows still lie in what is left:
  // the splits and the epoch were laid out over the old length.
  void check_length(const std::string& path) const {
    struct stat st {};
    if (::fstat(fd, &st) == 0 && static_cast<size_t>(st.st_size) < len) throw_shrank(path);
  }
  [[noreturn]] void throw_shrank(const std::string& path) const {
    struct stat st {};
    const auto now = ::fstat(fd, &st) == 0 ? static_cast<int64_t>(st.st_size) : int64_t{-1};
    throw IOError(detail::cat("TokenDataset: ", path, " shrank from ", len, " to ", now,
                              " bytes while it was read; write a changed token file under a new "
                              "name (and rename it over the old one) rather than in place"));
  }
};

TokenDataset::TokenDataset(const std::string& path, TokenDatasetOptions opts)
    : path_(path), block_size_(opts.block_size), vocab_size_(opts.vocab_size) {
  check_block_size("TokenDataset", block_size_);
  FABRIC_CHECK(vocab_size_ >= 0 && vocab_size_ <= 65536, ValueError,
               "TokenDataset: vocab_size must be in [0, 65536] ",
               "(0: unchecked) for uint16 tokens, got ", vocab_size_);
  check_regular_file(path, "TokenDataset");
  auto file = std::make_shared<TokenFile>();
  file->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (file->fd < 0)
    throw IOError(detail::cat("TokenDataset: cannot open ", path, ": ", errno_str()));
  struct stat st {};
  if (::fstat(file->fd, &st) != 0)
    throw IOError(detail::cat("TokenDataset: cannot stat ", path, ": ", errno_str()));
  file->len = static_cast<size_t>(st.st_size);
  if (file->len == 0 || file->len % 2 != 0)
    throw IOError(detail::cat("TokenDataset: ", path, " has ", file->len,
                              " bytes; expected a non-empty, even number ",
                              "(little-endian uint16 token ids)"));
  file_ = std::move(file);
  set_split(opts.split, opts.val_fraction);
}

void TokenDataset::set_split(Split split, double val_fraction) {
  const auto n = static_cast<int64_t>(file_->len / 2);
  std::tie(begin_, end_) = split_range(n, val_fraction, split);
  split_ = split;
  val_fraction_ = val_fraction;
  FABRIC_CHECK(num_tokens() > block_size_, ValueError, "TokenDataset: the ", split_name(split),
               " split of ", path_, " has ", num_tokens(), " tokens (of ", n, ", val_fraction ",
               val_fraction, "); a window needs block_size + 1 = ", block_size_ + 1);
}

TokenDataset TokenDataset::with_split(Split split) const {
  TokenDataset d = *this;
  d.set_split(split, val_fraction_);
  return d;
}

Batch TokenDataset::get(std::span<const int64_t> indices) const {
  static_assert(std::endian::native == std::endian::little,
                "token files are read as little-endian uint16");
  const int64_t vocab = vocab_size_, begin = begin_, T = block_size_;
  const auto B = static_cast<int64_t>(indices.size());
  Tensor x = empty({B, T}, {.dtype = DType::int64}), y = empty({B, T}, {.dtype = DType::int64});
  int64_t* xp = x.data<int64_t>();
  int64_t* yp = y.data<int64_t>();
  std::vector<uint16_t> window(static_cast<size_t>(T + 1));
  file_->check_length(path_);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t i = indices[static_cast<size_t>(b)];
    FABRIC_CHECK(i >= 0 && i < size(), IndexError, "TokenDataset: window start ", i,
                 " out of range [0, ", size(), ")");
    file_->read(path_, begin + i, T + 1, window.data());
    for (int64_t t = 0; t <= T; ++t) {
      const uint16_t id = window[static_cast<size_t>(t)];
      FABRIC_CHECK(vocab == 0 || id < vocab, ValueError, "TokenDataset: ", path_, ": token ", id,
                   " at index ", begin + i + t, " is >= vocab_size ", vocab);
    }
    for (int64_t t = 0; t < T; ++t) {
      xp[b * T + t] = window[static_cast<size_t>(t)];
      yp[b * T + t] = window[static_cast<size_t>(t + 1)];
    }
  }
  return {x, y};
}

int64_t TokenDataset::max_token_id() const {
  const auto n = static_cast<int64_t>(file_->len / 2);
  constexpr int64_t kChunk = int64_t{1} << 20;  // ids per read: 2 MiB
  std::vector<uint16_t> chunk(static_cast<size_t>(std::min(n, kChunk)));
  uint16_t m = 0;
  for (int64_t first = 0; first < n; first += kChunk) {
    const int64_t count = std::min(kChunk, n - first);
    file_->read(path_, first, count, chunk.data());
    for (int64_t i = 0; i < count; ++i) m = std::max(m, chunk[static_cast<size_t>(i)]);
  }
  return m;
}

std::string TokenDataset::describe() const {
  return detail::cat("tokens ", path_, " (", split_name(split_), ": ", num_tokens(),
                     " tokens, block_size ", block_size_, ")");
}

// ---- TensorDataset
// -------------------------------------------------------------------------------

TensorDataset::TensorDataset(const std::string& path, TensorDatasetOptions opts) {
  check_regular_file(path, "TensorDataset");  // load_safetensors' open would block on a FIFO
  SafetensorsFile file = load_safetensors(path);
  auto take = [&](const std::string& key) {
    auto it = file.tensors.find(key);
    if (it != file.tensors.end()) return it->second;
    std::string names;
    for (const auto& [name, t] : file.tensors) names += (names.empty() ? "" : ", ") + name;
    throw IOError(detail::cat("TensorDataset: ", path, " has no tensor '", key,
                              "' (it holds: ", names.empty() ? "nothing" : names, ")"));
  };
  init(path, take(opts.inputs_key), take(opts.targets_key), opts, /*from_file=*/true);
}

TensorDataset::TensorDataset(Tensor inputs, Tensor targets, TensorDatasetOptions opts) {
  FABRIC_CHECK(inputs.defined() && targets.defined(), ValueError,
               "TensorDataset: inputs and targets must be defined");
  init("<tensors>", inputs.to(Device::cpu()).contiguous(), targets.to(Device::cpu()).contiguous(),
       opts, /*from_file=*/false);
}

void TensorDataset::init(const std::string& what, Tensor inputs, Tensor targets,
                         const TensorDatasetOptions& opts, bool from_file) {
  what_ = what;
  // A file's tensors that do not fit are a malformed file (IOError); tensors passed in are a bad
  // argument (ValueError, where torch's TensorDataset fails an assert on "Size mismatch").
  auto fail = [&](std::string msg) {
    if (from_file) throw IOError(msg);
    throw ValueError(msg);
  };
  auto check = [&](const std::string& name, const Tensor& t) {
    if (t.dim() < 1 || t.size(0) < 1)
      fail(detail::cat("TensorDataset: ", what, ": '", name, "' has shape ", shape_str(t.sizes()),
                       "; expected (N, ...) with N >= 1 examples"));
  };
  check(opts.inputs_key, inputs);
  check(opts.targets_key, targets);
  if (inputs.size(0) != targets.size(0))
    fail(detail::cat("TensorDataset: ", what, ": '", opts.inputs_key, "' has ", inputs.size(0),
                     " examples ", shape_str(inputs.sizes()), " but '", opts.targets_key, "' has ",
                     targets.size(0), " ", shape_str(targets.sizes()),
                     "; expected the same number of examples (size of dimension 0)"));
  inputs_ = std::move(inputs);
  targets_ = std::move(targets);
  val_fraction_ = opts.val_fraction;
  split_ = opts.split;
  std::tie(begin_, end_) = split_range(inputs_.size(0), val_fraction_, split_);
  FABRIC_CHECK(size() > 0, ValueError, "TensorDataset: the ", split_name(split_), " split of ",
               what, " is empty (", inputs_.size(0), " examples, val_fraction ", val_fraction_,
               ")");
}

TensorDataset TensorDataset::with_split(Split split) const {
  TensorDataset d = *this;
  d.split_ = split;
  std::tie(d.begin_, d.end_) = split_range(inputs_.size(0), val_fraction_, split);
  FABRIC_CHECK(d.size() > 0, ValueError, "TensorDataset: the ", split_name(split), " split of ",
               what_, " is empty (", inputs_.size(0), " examples, val_fraction ", val_fraction_,
               ")");
  return d;
}

Batch TensorDataset::get(std::span<const int64_t> indices) const {
  for (int64_t i : indices)
    FABRIC_CHECK(i >= 0 && i < size(), IndexError, "TensorDataset: example ", i,
                 " out of range [0, ", size(), ")");
  auto rows = [&](const Tensor& all) {
    Shape shape = all.sizes();
    shape[0] = static_cast<int64_t>(indices.size());
    Tensor out = empty(shape, {.dtype = all.dtype()});
    const int64_t row_bytes = all.nbytes() / all.size(0);
    const auto* src = static_cast<const uint8_t*>(all.data_ptr());
    auto* dst = static_cast<uint8_t*>(out.data_ptr());
    for (size_t b = 0; b < indices.size(); ++b)
      std::memcpy(dst + static_cast<int64_t>(b) * row_bytes,
                  src + (begin_ + indices[b]) * row_bytes, static_cast<size_t>(row_bytes));
    return is_floating(out.dtype()) ? out : out.to(DType::int64);
  };
  return {rows(inputs_), rows(targets_)};
}

std::string TensorDataset::describe() const {
  return detail::cat("tensors ", what_, " (", split_name(split_), ": ", size(),
                     " examples, inputs ", shape_str(inputs_.sizes()), " ",
                     dtype_name(inputs_.dtype()), ", targets ", shape_str(targets_.sizes()), " ",
                     dtype_name(targets_.dtype()), ")");
}

}  // namespace fabric::data
