// TensorBoardLogger: TFRecord framing with CRC-32C, and the few protobuf fields of tensorflow's
// Event/Summary messages that scalars need, encoded by hand so there is no protobuf dependency.
#include "runtime/tensorboard_logger.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <regex>

#include "precision/pyyaml_compat.h"
#include "runtime/atomic_text_file.h"
#include "runtime/log_version.h"
#include "tensor/error.h"
#include "tensor/utf8.h"

#if defined(__SSE4_2__)
#include <nmmintrin.h>
#endif

namespace fabric {
namespace {
namespace fs = std::filesystem;

// ---- CRC-32C ----------------------------------------------------------------------------------

using CrcTables = std::array<std::array<uint32_t, 256>, 8>;

// tables[k][b] is the CRC of byte b followed by k zero bytes: slicing-by-8 folds 8 bytes per step.
constexpr CrcTables make_crc_tables() {
  CrcTables t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ ((c & 1u) ? 0x82F63B78u : 0u);
    t[0][i] = c;
  }
  for (int k = 1; k < 8; ++k)
    for (uint32_t i = 0; i < 256; ++i) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xFFu];
  return t;
}
constexpr CrcTables kCrcTables = make_crc_tables();

// ---- protobuf wire format ---------------------------------------------------------------------

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(char(uint8_t(v) | 0x80));
    v >>= 7;
  }
  out.push_back(char(uint8_t(v)));
}

void put_tag(std::string& out, uint32_t field, WireType wire) {
  put_varint(out, (uint64_t(field) << 3) | wire);
}

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(char(uint8_t(v >> (8 * i))));
}

void put_bytes_field(std::string& out, uint32_t field, const std::string& bytes) {
  put_tag(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out += bytes;
}

// Event { double wall_time = 1; int64 step = 2;
//         oneof { string file_version = 3; Summary summary = 5; SessionLog session_log = 7; } }
// (6 is the deprecated LogMessage: a session log there is not one TensorBoard purges on.)
std::string encode_event(double wall_time, int64_t step, uint32_t payload_field,
                         const std::string& payload) {
  std::string ev;
  put_tag(ev, 1, kFixed64);
  put_le(ev, std::bit_cast<uint64_t>(wall_time), 8);
  if (step != 0) {  // proto3 leaves default values out; readers take a missing step as 0
    put_tag(ev, 2, kVarint);
    put_varint(ev, uint64_t(step));  // negative int64 goes out as 10 two's-complement bytes
  }
  put_bytes_field(ev, payload_field, payload);
  return ev;
}

// Summary { repeated Value value = 1; }  Value { string tag = 1; float simple_value = 2; }
std::string encode_scalar_summary(const Metrics& metrics) {
  std::string summary;
  for (const auto& [tag, v] : metrics) {
    std::string value;
    put_bytes_field(value, 1, tag);
    put_tag(value, 2, kFixed32);
    put_le(value, std::bit_cast<uint32_t>(static_cast<float>(v)), 4);
    put_bytes_field(summary, 1, value);
  }
  return summary;
}

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  std::string h(buf);
  std::replace(h.begin(), h.end(), '/', '_');  // stays one path component whatever the system says
  return h;
}

}  // namespace

uint32_t crc32c_table(const void* data, size_t n, uint32_t crc) {
  const auto* p = static_cast<const uint8_t*>(data);
  const auto& t = kCrcTables;
  uint32_t c = ~crc;
  for (; n >= 8; n -= 8, p += 8) {
    c ^= uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
    c = t[7][c & 0xFF] ^ t[6][(c >> 8) & 0xFF] ^ t[5][(c >> 16) & 0xFF] ^ t[4][c >> 24] ^
        t[3][p[4]] ^ t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]];
  }
  for (; n > 0; --n, ++p) c = (c >> 8) ^ t[0][(c ^ *p) & 0xFF];
  return ~c;
}

uint32_t crc32c(const void* data, size_t n, uint32_t crc) {
#if defined(__SSE4_2__)
  const auto* p = static_cast<const uint8_t*>(data);
  uint64_t c = ~crc;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    c = _mm_crc32_u64(c, w);
  }
  uint32_t c32 = uint32_t(c);
  for (; n > 0; --n, ++p) c32 = _mm_crc32_u8(c32, *p);
  return ~c32;
#else
  return crc32c_table(data, n, crc);
#endif
}

uint32_t masked_crc32c(const void* data, size_t n) {
  const uint32_t c = crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

TensorBoardLogger::TensorBoardLogger(const TensorBoardLoggerOptions& o)
    : layout_(o), prefix_(o.prefix), flush_every_(std::max<int64_t>(1, o.flush_every)) {
  FABRIC_CHECK(!o.root_dir.empty(), ValueError, "TensorBoardLogger: root_dir is empty");
}

TensorBoardLogger::TensorBoardLogger(FromDir, std::string log_dir, int64_t flush_every)
    : log_dir_(std::move(log_dir)), flush_every_(std::max<int64_t>(1, flush_every)) {
  FABRIC_CHECK(!log_dir_.empty(), ValueError, "TensorBoardLogger: log_dir is empty");
}

TensorBoardLogger::~TensorBoardLogger() {
  try {
    finalize();
  } catch (...) {  // a destructor must not throw; only a failing disk loses the last events
  }
}

// root_dir/name/version[/sub_dir], the version chosen now; nothing is created.
void TensorBoardLogger::resolve_log_dir() const {
  if (!layout_ || !log_dir_.empty()) return;
  const std::string root = logger_root_dir(layout_->root_dir, layout_->name);
  version_ = resolve_log_version(root, layout_->version);
  fs::path dir = fs::path(root) / version_;
  if (!layout_->sub_dir.empty()) dir /= layout_->sub_dir;
  log_dir_ = dir.string();
}

std::string TensorBoardLogger::root_dir() const {
  return layout_ ? logger_root_dir(layout_->root_dir, layout_->name) : std::string();
}

std::string TensorBoardLogger::log_dir() const {
  resolve_log_dir();
  return log_dir_;
}

std::string TensorBoardLogger::version() const {
  resolve_log_dir();
  return version_;
}

void TensorBoardLogger::create_log_dir() {
  resolve_log_dir();
  std::error_code ec;
  fs::create_directories(log_dir_, ec);
  FABRIC_CHECK(fs::is_directory(log_dir_), IOError, "TensorBoardLogger: cannot create log_dir '",
               log_dir_, "'", ec ? ": " + ec.message() : std::string());
}

void TensorBoardLogger::open_new_file() {
  create_log_dir();
  const double wall = now_seconds();
  const std::string base =
      (fs::path(log_dir_) /
       ("events.out.tfevents." + std::to_string(int64_t(wall)) + "." + host_name()))
          .string();
  // Exclusive create: two loggers in one second (or one process) must never share a file. The
  // zero-padded suffix keeps name order equal to creation order, which TensorBoard reads by.
  for (int n = 0; n < 1000 && file_ == nullptr; ++n) {
    char suffix[8] = "";
    if (n > 0) std::snprintf(suffix, sizeof suffix, ".%03d", n);
    const std::string path = base + suffix;
    file_ = std::fopen(path.c_str(), "wbx");
    if (file_ != nullptr) {
      file_path_ = path;
    } else {
      FABRIC_CHECK(errno == EEXIST, IOError, "TensorBoardLogger: cannot create events file '", path,
                   "': ", std::strerror(errno));
    }
  }
  FABRIC_CHECK(file_ != nullptr, IOError, "TensorBoardLogger: 1000 events files named '", base,
               "*' exist already in this second; expected a free name");
  try {
    write_record(encode_event(wall, 0, 3, "brain.Event:2"));
    flush();
  } catch (...) {  // a file without its version record is no events file: not kept open
    std::fclose(file_);
    file_ = nullptr;
    throw;
  }
}

// TFRecord: uint64 length, masked crc32c(length), data, masked crc32c(data), all little-endian.
void TensorBoardLogger::write_record(const std::string& data) {
  std::string rec;
  rec.reserve(data.size() + 16);
  put_le(rec, data.size(), 8);
  put_le(rec, masked_crc32c(rec.data(), 8), 4);
  rec += data;
  put_le(rec, masked_crc32c(data.data(), data.size()), 4);
  const size_t wrote = std::fwrite(rec.data(), 1, rec.size(), file_);
  FABRIC_CHECK(wrote == rec.size(), IOError, "TensorBoardLogger: wrote ", wrote, " of ", rec.size(),
               " bytes to '", file_path_, "': ", std::strerror(errno));
}

void TensorBoardLogger::log_metrics(const Metrics& metrics,
                                    std::optional<int64_t> step) {
  if (metrics.empty()) return;
  const Metrics* tagged = &metrics;
  Metrics prefixed;
  if (!prefix_.empty()) {  // Lightning's _add_prefix with its LOGGER_JOIN_CHAR "-"
    prefixed.reserve(metrics.size());
    for (const auto& [tag, v] : metrics) prefixed.emplace_back(prefix_ + "-" + tag, v);
    tagged = &prefixed;
  }
  for (const auto& [tag, v] : *tagged) {
    // An event's tag is a protobuf string: UTF-8 only (TensorBoard's reader refuses the file).
    FABRIC_CHECK(utf8_invalid_at(tag) == tag.size(), ValueError,
                 "TensorBoardLogger::log_metrics: the metric name \"", tag,
                 "\" is not valid UTF-8; metric names are UTF-8 text");
    FABRIC_CHECK(!tag.empty(), ValueError,
                 "TensorBoardLogger::log_metrics: a metric has an empty name (value ", v,
                 "); TensorBoard needs a tag per scalar");
  }
  if (file_ == nullptr) open_new_file();
  write_record(encode_event(now_seconds(), step.value_or(0), 5, encode_scalar_summary(*tagged)));
  if (++unflushed_ >= flush_every_) flush();
}

void TensorBoardLogger::log_session_start(int64_t step) {
  if (file_ == nullptr) open_new_file();
  // Event.session_log (field 7) = SessionLog { SessionStatus status = 1; } with START = 1.
  std::string session_log;
  put_tag(session_log, 1, kVarint);
  put_varint(session_log, 1);
  write_record(encode_event(now_seconds(), step, 7, session_log));
  flush();
}

void TensorBoardLogger::log_hyperparams(const std::map<std::string, std::string>& params) {
  for (const auto& [k, v] : params) hparams_[k] = v;
  YAML::Emitter yaml;
  yaml << YAML::BeginMap;
  // Lightning's file loads with yaml.full_load: a decimal number is written plain (read back as
  // the number Lightning would have written), every other value and every key as a string PyYAML
  // reads back as such ("yes", "2024-06-01", "=" quoted, controls escaped).
  static const std::regex decimal("[-+]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][-+]?[0-9]+)?");
  for (const auto& [k, v] : hparams_) {
    yaml << YAML::Key;
    precision::emit_pyyaml_string(yaml, k);
    yaml << YAML::Value;
    if (std::regex_match(v, decimal) && (v.size() < 2 || v[0] != '0' || v[1] == '.'))
      yaml << v;  // not 010: YAML 1.1 octal
    else
      precision::emit_pyyaml_string(yaml, v);
  }
  yaml << YAML::EndMap;
  FABRIC_CHECK(yaml.good(), ValueError,
               "TensorBoardLogger::log_hyperparams: cannot emit YAML: ", yaml.GetLastError());
  create_log_dir();
  const fs::path path = fs::path(log_dir_) / "hparams.yaml";
  // Flushed and renamed over the old file through a temporary named by the pid: a reader never
  // sees a half-written file, and two processes logging into one folder never share a temporary.
  write_text_atomically(path.string(), std::string(yaml.c_str()) + "\n");
}

void TensorBoardLogger::flush() {
  if (file_ == nullptr) return;
  unflushed_ = 0;
  FABRIC_CHECK(std::fflush(file_) == 0, IOError, "TensorBoardLogger: cannot flush '", file_path_,
               "': ", std::strerror(errno));
}

void TensorBoardLogger::finalize() {
  if (file_ == nullptr) return;
  const int flushed = std::fflush(file_);
  const int flush_errno = errno;
  const int closed = std::fclose(file_);
  file_ = nullptr;  // closed even when it failed: fclose must not be retried on the same FILE
  unflushed_ = 0;
  FABRIC_CHECK(flushed == 0 && closed == 0, IOError, "TensorBoardLogger: cannot close '",
               file_path_, "': ", std::strerror(flushed != 0 ? flush_errno : errno));
}

}  // namespace fabric
