// TensorBoardLogger: CRC-32C vectors, and event files read back by an independent TFRecord/protobuf
// decoder (bitwise CRC, its own varint parser) that checks both CRCs, tags, steps and values.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "runtime/fabric.h"
#include "runtime/loggers.h"
#include "runtime/tensorboard_logger.h"
#include "tensor/error.h"
#include "tests/runtime/fabric_train_contract.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

// A fresh, empty directory per test, removed afterwards.
struct TempDir {
  explicit TempDir(const std::string& name)
      : path((fs::temp_directory_path() / (name + "_" + std::to_string(::getpid()))).string()) {
    fs::remove_all(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string path;
};

// ---- the reference decoder ---------------------------------------------------------------------

// Bit-at-a-time CRC-32C: slow and obviously the definition, so it checks the fast ones.
uint32_t crc32c_bitwise(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
  }
  return ~c;
}

uint32_t masked_bitwise(const uint8_t* p, size_t n) {
  const uint32_t c = crc32c_bitwise(p, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

uint64_t read_le(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t(p[i]) << (8 * i);
  return v;
}

struct DecodeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Splits a TFRecord stream into payloads, verifying both masked CRCs of every record.
std::vector<std::string> read_records(const std::string& bytes) {
  std::vector<std::string> out;
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  size_t pos = 0;
  while (pos < bytes.size()) {
    if (bytes.size() - pos < 12) throw DecodeError("truncated record header");
    const uint64_t len = read_le(p + pos, 8);
    if (uint32_t(read_le(p + pos + 8, 4)) != masked_bitwise(p + pos, 8))
      throw DecodeError("length CRC mismatch");
    pos += 12;
    if (bytes.size() - pos < len + 4) throw DecodeError("truncated record data");
    if (uint32_t(read_le(p + pos + len, 4)) != masked_bitwise(p + pos, len))
      throw DecodeError("data CRC mismatch");
    out.emplace_back(bytes.substr(pos, len));
    pos += len + 4;
  }
  return out;
}

struct Field {
  uint32_t number = 0;
  uint32_t wire = 0;
  uint64_t scalar = 0;  // varint, fixed32 or fixed64 bits
  std::string bytes;    // length-delimited
};

std::vector<Field> parse_message(const std::string& msg) {
  const auto* p = reinterpret_cast<const uint8_t*>(msg.data());
  size_t pos = 0;
  auto varint = [&] {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos >= msg.size()) throw DecodeError("truncated varint");
      const uint8_t b = p[pos++];
      v |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    throw DecodeError("varint longer than 10 bytes");
  };
  std::vector<Field> fields;
  while (pos < msg.size()) {
    Field f;
    const uint64_t key = varint();
    f.number = uint32_t(key >> 3);
    f.wire = uint32_t(key & 7);
    if (f.wire == 0) {
      f.scalar = varint();
    } else if (f.wire == 1 || f.wire == 5) {
      const int n = f.wire == 1 ? 8 : 4;
      if (msg.size() - pos < size_t(n)) throw DecodeError("truncated fixed field");
      f.scalar = read_le(p + pos, n);
      pos += n;
    } else if (f.wire == 2) {
      const uint64_t n = varint();
      if (msg.size() - pos < n) throw DecodeError("truncated length-delimited field");
      f.bytes = msg.substr(pos, n);
      pos += n;
    } else {
      throw DecodeError("unexpected wire type " + std::to_string(f.wire));
    }
    fields.push_back(std::move(f));
  }
  return fields;
}

struct DecodedEvent {
  double wall_time = 0;
  int64_t step = 0;
  std::optional<std::string> file_version;
  std::vector<std::pair<std::string, float>> values;  // in file order
  std::optional<int64_t> session_status;              // SessionLog.status (START = 1)
};

DecodedEvent decode_event(const std::string& data) {
  DecodedEvent ev;
  for (const Field& f : parse_message(data)) {
    if (f.number == 1 && f.wire == 1) {
      ev.wall_time = std::bit_cast<double>(f.scalar);
    } else if (f.number == 2 && f.wire == 0) {
      ev.step = int64_t(f.scalar);
    } else if (f.number == 3 && f.wire == 2) {
      ev.file_version = f.bytes;
    } else if (f.number == 5 && f.wire == 2) {
      for (const Field& v : parse_message(f.bytes)) {
        if (v.number != 1 || v.wire != 2) throw DecodeError("Summary holds a non-Value field");
        std::string tag;
        std::optional<float> simple;
        for (const Field& vf : parse_message(v.bytes)) {
          if (vf.number == 1 && vf.wire == 2) tag = vf.bytes;
          if (vf.number == 2 && vf.wire == 5) simple = std::bit_cast<float>(uint32_t(vf.scalar));
        }
        if (!simple) throw DecodeError("Value '" + tag + "' has no simple_value");
        ev.values.emplace_back(tag, *simple);
      }
    } else if (f.number == 7 && f.wire == 2) {  // SessionLog session_log = 7
      ev.session_status = 0;
      for (const Field& sf : parse_message(f.bytes))
        if (sf.number == 1 && sf.wire == 0) ev.session_status = int64_t(sf.scalar);
    } else {
      throw DecodeError("unexpected Event field " + std::to_string(f.number));
    }
  }
  return ev;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

std::vector<DecodedEvent> read_events(const std::string& path) {
  std::vector<DecodedEvent> out;
  for (const std::string& rec : read_records(read_file(path))) out.push_back(decode_event(rec));
  return out;
}

std::vector<std::string> event_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0)
      out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// ---- CRC-32C -----------------------------------------------------------------------------------

TEST(TensorBoardCrc32c, KnownVectors) {
  const std::string digits = "123456789";
  const std::vector<uint8_t> zeros(32, 0x00), ones(32, 0xFF);
  std::vector<uint8_t> inc(32), dec(32);
  for (int i = 0; i < 32; ++i) inc[i] = uint8_t(i), dec[i] = uint8_t(31 - i);
  for (auto fn : {&crc32c, &crc32c_table}) {
    EXPECT_EQ(fn(digits.data(), digits.size(), 0), 0xE3069283u);
    EXPECT_EQ(fn(zeros.data(), zeros.size(), 0), 0x8A9136AAu);  // RFC 3720 B.4
    EXPECT_EQ(fn(ones.data(), ones.size(), 0), 0x62A8AB43u);
    EXPECT_EQ(fn(inc.data(), inc.size(), 0), 0x46DD794Eu);
    EXPECT_EQ(fn(dec.data(), dec.size(), 0), 0x113FDB5Cu);
    EXPECT_EQ(fn(nullptr, 0, 0), 0u);
  }
  EXPECT_EQ(crc32c_bitwise(reinterpret_cast<const uint8_t*>(digits.data()), 9), 0xE3069283u);
}

TEST(TensorBoardCrc32c, FastPathsMatchBitwiseAtEveryLengthAndAlignment) {
  std::mt19937 rng(7);
  std::vector<uint8_t> buf(300);
  for (auto& b : buf) b = uint8_t(rng());
  for (size_t off = 0; off < 8; ++off) {
    for (size_t n = 0; n + off <= buf.size(); n += (n < 40 ? 1 : 13)) {
      const uint32_t want = crc32c_bitwise(buf.data() + off, n);
      ASSERT_EQ(crc32c(buf.data() + off, n), want) << "off " << off << " n " << n;
      ASSERT_EQ(crc32c_table(buf.data() + off, n), want) << "off " << off << " n " << n;
      ASSERT_EQ(masked_crc32c(buf.data() + off, n), masked_bitwise(buf.data() + off, n));
    }
  }
}

TEST(TensorBoardCrc32c, ExtendsAFinishedCrc) {
  const std::string a = "hello, ", b = "tensorboard event files";
  const std::string ab = a + b;
  for (auto fn : {&crc32c, &crc32c_table})
    EXPECT_EQ(fn(b.data(), b.size(), fn(a.data(), a.size(), 0)), fn(ab.data(), ab.size(), 0));
}

// ---- event files -------------------------------------------------------------------------------

TEST(TensorBoardLogger, WritesEventsThatDecodeToTheLoggedScalars) {
  TempDir dir("fabric_tb_roundtrip");
  const std::string sub = dir.path + "/run/version_0";  // created on demand, parents included
  std::string path;
  {
    TensorBoardLogger tb(sub);
    EXPECT_EQ(tb.name(), "tensorboard");
    EXPECT_EQ(tb.file_path(), "");  // opened by the first log_metrics
    tb.log_metrics({{"train/loss", 1.5}, {"acc", 0.1}}, 3);
    path = tb.file_path();
    tb.log_metrics({{"train/loss", 0.75}}, std::nullopt);
    tb.log_metrics({{"lr", 3e-4}, {"big", 1e300}, {"nan", std::nan("")}}, int64_t(1) << 40);
    tb.log_metrics({{"neg", -2.0}}, -5);
    tb.log_metrics({}, 9);  // nothing to record: no event
    tb.finalize();
  }
  const std::string name = fs::path(path).filename().string();
  char host[256] = {};
  ASSERT_EQ(::gethostname(host, sizeof host - 1), 0);
  const std::string prefix = "events.out.tfevents.";
  ASSERT_EQ(name.rfind(prefix, 0), 0u) << name;
  const size_t dot = name.find('.', prefix.size());
  ASSERT_NE(dot, std::string::npos) << name;
  const std::string secs = name.substr(prefix.size(), dot - prefix.size());
  EXPECT_EQ(secs.find_first_not_of("0123456789"), std::string::npos) << name;
  EXPECT_EQ(name.substr(dot + 1), std::string(host));
  EXPECT_EQ(fs::path(path).parent_path(), fs::path(sub));

  const auto events = read_events(path);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  EXPECT_EQ(events[0].step, 0);
  EXPECT_TRUE(events[0].values.empty());
  // The file's name and the first event carry the same clock reading.
  EXPECT_EQ(std::to_string(int64_t(events[0].wall_time)), secs);
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_FALSE(events[i].file_version) << i;
    EXPECT_GE(events[i].wall_time, events[0].wall_time) << i;
  }

  using V = std::vector<std::pair<std::string, float>>;
  EXPECT_EQ(events[1].step, 3);
  EXPECT_EQ(events[1].values, (V{{"train/loss", 1.5f}, {"acc", 0.1f}}));  // the caller's order
  EXPECT_EQ(events[2].step, 0);
  EXPECT_EQ(events[2].values, (V{{"train/loss", 0.75f}}));
  EXPECT_EQ(events[3].step, int64_t(1) << 40);
  ASSERT_EQ(events[3].values.size(), 3u);
  EXPECT_EQ(events[3].values[0], (std::pair<std::string, float>{"lr", 3e-4f}));
  EXPECT_EQ(events[3].values[1], (std::pair<std::string, float>{"big", INFINITY}));
  EXPECT_EQ(events[3].values[2].first, "nan");
  EXPECT_TRUE(std::isnan(events[3].values[2].second));
  EXPECT_EQ(events[4].step, -5);
  EXPECT_EQ(events[4].values, (V{{"neg", -2.0f}}));
}

TEST(TensorBoardLogger, DecoderCatchesACorruptedByte) {
  TempDir dir("fabric_tb_corrupt");
  std::string path;
  {
    TensorBoardLogger tb(dir.path);
    tb.log_metrics({{"loss", 2.0}}, 1);
    tb.log_metrics({{"loss", 1.0}}, 2);
    path = tb.file_path();
  }
  const std::string good = read_file(path);
  ASSERT_EQ(read_records(good).size(), 3u);
  const size_t first_len = size_t(read_le(reinterpret_cast<const uint8_t*>(good.data()), 8));
  const size_t second = 12 + first_len + 4;  // start of the second record
  auto corrupt_at = [&](size_t i) {
    std::string bad = good;
    bad[i] = char(bad[i] ^ 0x10);
    return bad;
  };
  auto error_of = [](const std::string& bytes) -> std::string {
    try {
      read_records(bytes);
    } catch (const DecodeError& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_EQ(error_of(corrupt_at(second + 14)), "data CRC mismatch");      // inside the Event
  EXPECT_EQ(error_of(corrupt_at(good.size() - 1)), "data CRC mismatch");  // the data CRC itself
  EXPECT_EQ(error_of(corrupt_at(second)), "length CRC mismatch");         // the length
  EXPECT_EQ(error_of(corrupt_at(second + 9)), "length CRC mismatch");     // the length CRC
  EXPECT_EQ(error_of(good.substr(0, good.size() - 2)), "truncated record data");
}

TEST(TensorBoardLogger, AnotherLoggerOnTheSameDirStartsItsOwnFile) {
  TempDir dir("fabric_tb_append");
  {
    TensorBoardLogger a(dir.path);
    TensorBoardLogger b(dir.path);
    a.log_metrics({{"loss", 1.0}}, 1);
    b.log_metrics({{"loss", 0.5}}, 2);  // almost surely the same second: the name must still differ
    EXPECT_NE(a.file_path(), b.file_path());
  }
  {
    TensorBoardLogger c(dir.path);
    c.log_metrics({{"loss", 0.25}}, 3);
  }
  const auto files = event_files(dir.path);
  ASSERT_EQ(files.size(), 3u);
  std::vector<int64_t> steps;
  for (const auto& f : files) {
    const auto events = read_events(f);
    ASSERT_EQ(events.size(), 2u) << f;
    EXPECT_EQ(events[0].file_version, "brain.Event:2") << f;
    steps.push_back(events[1].step);
  }
  std::sort(steps.begin(), steps.end());
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3}));
}

TEST(TensorBoardLogger, FlushMakesEventsReadableAndFinalizeThenLogOpensANewFile) {
  TempDir dir("fabric_tb_flush");
  TensorBoardLogger tb(dir.path, /*flush_every=*/100);
  tb.log_metrics({{"x", 1.0}}, 1);
  tb.flush();
  EXPECT_EQ(read_events(tb.file_path()).size(), 2u);
  tb.finalize();
  tb.finalize();  // a second finalize is a no-op
  const std::string first = tb.file_path();
  tb.log_metrics({{"x", 2.0}}, 2);
  EXPECT_NE(tb.file_path(), first);
  tb.finalize();
  EXPECT_EQ(read_events(first).size(), 2u);
  const auto again = read_events(tb.file_path());
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0].file_version, "brain.Event:2");
  EXPECT_EQ(again[1].step, 2);
  EXPECT_EQ(event_files(dir.path).size(), 2u);
}

TEST(TensorBoardLogger, HyperparamsMergeIntoHparamsYaml) {
  TempDir dir("fabric_tb_hparams");
  TensorBoardLogger tb(dir.path);
  tb.log_hyperparams({{"lr", "0.001"}, {"optimizer", "adamw"}});
  tb.log_hyperparams({{"lr", "0.0003"}, {"note", "a: b, c"}});
  const std::string yaml = read_file(dir.path + "/hparams.yaml");
  EXPECT_NE(yaml.find("lr: 0.0003"), std::string::npos) << yaml;
  EXPECT_EQ(yaml.find("0.001"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("optimizer: adamw"), std::string::npos) << yaml;
  // A value that is not a plain YAML scalar must come out quoted, not as a nested mapping.
  EXPECT_NE(yaml.find("note: \"a: b, c\""), std::string::npos) << yaml;
  for (const auto& e : fs::directory_iterator(dir.path))  // no temporary left behind
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  // Hyperparameters alone open no events file.
  EXPECT_EQ(tb.file_path(), "");
  EXPECT_TRUE(event_files(dir.path).empty());
  tb.log_metrics({{"loss", 1.0}}, 1);
  EXPECT_EQ(fs::path(tb.file_path()).parent_path(), fs::path(dir.path));
}

TEST(TensorBoardLogger, BadInputRaisesActionableErrors) {
  TempDir dir("fabric_tb_errors");
  fs::create_directories(dir.path);
  const std::string not_a_dir = dir.path + "/plain_file";
  std::ofstream(not_a_dir) << "x";
  TensorBoardLogger blocked(not_a_dir);  // the disk is touched at the first write only
  try {
    blocked.log_metrics({{"loss", 1.0}}, 1);
    FAIL() << "expected IOError";
  } catch (const IOError& e) {
    EXPECT_NE(std::string(e.what()).find(not_a_dir), std::string::npos) << e.what();
  }
  EXPECT_THROW(blocked.log_hyperparams({{"lr", "0.1"}}), IOError);
  EXPECT_THROW(TensorBoardLogger(""), ValueError);
  EXPECT_THROW(TensorBoardLogger(TensorBoardLoggerOptions{.root_dir = ""}), ValueError);
  TensorBoardLogger tb(dir.path + "/ok");
  try {
    tb.log_metrics({{"", 1.0}}, 1);
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("empty name"), std::string::npos) << e.what();
  }
  tb.finalize();
  EXPECT_EQ(tb.file_path(), "");  // the rejected call opened nothing
  EXPECT_FALSE(fs::exists(dir.path + "/ok"));
  // With a prefix the same metric has a tag ("<prefix>-"), as Lightning's _add_prefix gives it.
  TensorBoardLogger prefixed({.root_dir = dir.path, .prefix = "train"});
  prefixed.log_metrics({{"", 1.0}}, 1);
  prefixed.finalize();
  const auto events = read_events(prefixed.file_path());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].values, (std::vector<std::pair<std::string, float>>{{"train-", 1.0f}}));
}

TEST(TensorBoardLogger, FabricLogDictReachesTheEventsFile) {
  TempDir dir("fabric_tb_fabric");
  auto tb = std::make_shared<TensorBoardLogger>(dir.path);
  FabricOptions opts;
  opts.accelerator = "cpu";
  opts.loggers = {tb};
  Fabric fab(opts);
  fab.log_dict({{"loss", 0.5}, {"step_time", 2.0}}, 7);
  tb->finalize();
  const auto events = read_events(tb->file_path());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].step, 7);
  using V = std::vector<std::pair<std::string, float>>;
  EXPECT_EQ(events[1].values, (V{{"loss", 0.5f}, {"step_time", 2.0f}}));
}

// ---- Lightning's layout and laziness ------------------------------------------------------------

// Every file and directory under `dir` (relative paths, sorted); empty when `dir` does not exist.
std::vector<std::string> tree(const std::string& dir) {
  std::vector<std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    out.push_back(fs::relative(e.path(), dir).string());
  std::sort(out.begin(), out.end());
  return out;
}

using Values = std::vector<std::pair<std::string, float>>;

// As Lightning's (its SummaryWriter is made on first use, and only rank 0 ever uses it), a logger
// that never logs, as every rank but 0 under Fabric, leaves nothing on disk: not on construction,
// flush, finalize or destruction, nor when its directories are asked for.
TEST(TensorBoardLogger, ALoggerThatNeverLogsCreatesNothing) {
  TempDir dir("fabric_tb_idle");
  const std::string root = dir.path + "/root";
  {
    TensorBoardLogger plain(root + "/events");
    TensorBoardLogger layout({.root_dir = root, .sub_dir = "train"});
    TensorBoardLogger numbered({.root_dir = root, .version = "2"});
    EXPECT_EQ(layout.version(), "version_0");  // chosen, not created
    EXPECT_EQ(layout.log_dir(), root + "/lightning_logs/version_0/train");
    for (TensorBoardLogger* tb : {&plain, &layout, &numbered}) {
      tb->log_metrics({}, 1);  // nothing to record
      tb->flush();
      tb->finalize();
      tb->flush();
      EXPECT_EQ(tb->file_path(), "");
    }
  }
  EXPECT_FALSE(fs::exists(root));
  // Under Fabric, rank 0 logs through its logger; the others' loggers stay idle.
  {
    auto tb = std::make_shared<TensorBoardLogger>(TensorBoardLoggerOptions{.root_dir = root});
    Fabric fab(FabricOptions{.accelerator = "cpu", .loggers = {tb}});
    tb->finalize();
  }
  EXPECT_FALSE(fs::exists(root));
}

TEST(TensorBoardLogger, FirstLogCreatesTheEventsFileInVersionZero) {
  TempDir dir("fabric_tb_layout");
  TensorBoardLogger tb({.root_dir = dir.path});
  EXPECT_EQ(tb.root_dir(), dir.path + "/lightning_logs");
  EXPECT_FALSE(fs::exists(dir.path));
  tb.log_metrics({{"loss", 0.5}}, 4);
  const std::string log_dir = dir.path + "/lightning_logs/version_0";
  EXPECT_EQ(tb.log_dir(), log_dir);
  EXPECT_EQ(tb.version(), "version_0");
  EXPECT_EQ(event_files(log_dir), std::vector<std::string>{tb.file_path()});
  EXPECT_EQ(tree(dir.path), (std::vector<std::string>{
                                "lightning_logs", "lightning_logs/version_0",
                                "lightning_logs/version_0/" + fs::path(tb.file_path()).filename().string()}));
  tb.finalize();
  const auto events = read_events(tb.file_path());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  EXPECT_EQ(events[1].step, 4);
  EXPECT_EQ(events[1].values, (Values{{"loss", 0.5f}}));
}

// The version is chosen when first needed (version(), log_dir() or the first write) from the
// version_N directories that exist then, as Lightning's _get_next_version: a logger made before
// another has written still gets the next number if it writes after it; two that choose before
// either writes share the version (each then writes its own events file there).
TEST(TensorBoardLogger, NextVersionIsChosenAtFirstUse) {
  TempDir dir("fabric_tb_versions");
  const std::string logs = dir.path + "/lightning_logs";
  TensorBoardLogger a({.root_dir = dir.path});
  TensorBoardLogger b({.root_dir = dir.path});
  a.log_metrics({{"x", 1.0}}, 1);
  EXPECT_EQ(tree(logs).size(), 2u);  // version_0 and its events file
  b.log_metrics({{"x", 2.0}}, 2);
  EXPECT_EQ(a.version(), "version_0");
  EXPECT_EQ(b.version(), "version_1");
  a.finalize();
  b.finalize();
  EXPECT_EQ(read_events(event_files(logs + "/version_0").at(0)).at(1).step, 1);
  EXPECT_EQ(read_events(event_files(logs + "/version_1").at(0)).at(1).step, 2);
  // One past the largest, gaps and other directories ignored.
  fs::create_directories(logs + "/version_7");
  fs::create_directories(logs + "/version_x");
  fs::create_directories(logs + "/other");
  TensorBoardLogger c({.root_dir = dir.path});
  TensorBoardLogger d({.root_dir = dir.path});
  EXPECT_EQ(c.version(), "version_8");
  EXPECT_EQ(d.log_dir(), logs + "/version_8");  // chosen before c wrote: the same
  c.log_metrics({{"x", 3.0}}, 3);
  d.log_metrics({{"x", 4.0}}, 4);
  EXPECT_EQ(event_files(logs + "/version_8").size(), 2u);
  EXPECT_FALSE(fs::exists(logs + "/version_9"));
  // The number is the name's second "_" part, as Lightning's name.split("_")[1].
  fs::create_directories(logs + "/version_11_old");
  fs::create_directories(logs + "/version__12");
  EXPECT_EQ(TensorBoardLogger({.root_dir = dir.path}).version(), "version_12");
}

TEST(TensorBoardLogger, ExplicitVersionsNamesAndSubDir) {
  TempDir dir("fabric_tb_explicit");
  struct Case {
    TensorBoardLoggerOptions options;
    std::string root_dir, log_dir, version;
  };
  const std::string r = dir.path;
  const std::vector<Case> cases = {
      {{.root_dir = r, .version = "3"}, r + "/lightning_logs", r + "/lightning_logs/version_3", "version_3"},
      {{.root_dir = r, .version = "run-a"}, r + "/lightning_logs", r + "/lightning_logs/run-a", "run-a"},
      {{.root_dir = r, .name = "exp", .version = "12"}, r + "/exp", r + "/exp/version_12", "version_12"},
      {{.root_dir = r, .name = ""}, r, r + "/version_0", "version_0"},
      {{.root_dir = r, .version = "3", .sub_dir = "val"}, r + "/lightning_logs",
       r + "/lightning_logs/version_3/val", "version_3"},
      {{.root_dir = r, .name = "exp", .sub_dir = "a/b"}, r + "/exp", r + "/exp/version_0/a/b", "version_0"},
  };
  for (const Case& c : cases) {
    fs::remove_all(r);
    TensorBoardLogger tb(c.options);
    EXPECT_EQ(tb.root_dir(), c.root_dir);
    EXPECT_EQ(tb.log_dir(), c.log_dir);
    EXPECT_EQ(tb.version(), c.version);
    EXPECT_FALSE(fs::exists(r)) << c.log_dir;
    tb.log_metrics({{"m", 1.0}}, 5);
    tb.finalize();
    ASSERT_EQ(fs::path(tb.file_path()).parent_path(), fs::path(c.log_dir));
    const auto events = read_events(tb.file_path());
    ASSERT_EQ(events.size(), 2u) << c.log_dir;
    EXPECT_EQ(events[1].values, (Values{{"m", 1.0f}})) << c.log_dir;
  }
  // An explicit version keeps the events already there: TensorBoard reads both files as one run.
  fs::remove_all(r);
  for (int i = 0; i < 2; ++i) {
    TensorBoardLogger tb({.root_dir = r, .version = "1"});
    tb.log_metrics({{"m", double(i)}}, i);
  }
  EXPECT_EQ(event_files(r + "/lightning_logs/version_1").size(), 2u);
}

// Lightning joins the prefix with "-"; the options' flush_every reaches the file.
TEST(TensorBoardLogger, PrefixAndFlushEveryFromTheOptions) {
  TempDir dir("fabric_tb_prefix");
  TensorBoardLogger tb({.root_dir = dir.path, .prefix = "train", .flush_every = 100});
  tb.log_metrics({{"loss", 2.0}, {"acc/top1", 0.25}}, 1);
  // The version record is flushed when the file is opened; the event waits for the 100th.
  EXPECT_EQ(read_events(tb.file_path()).size(), 1u);
  tb.flush();
  const auto events = read_events(tb.file_path());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].values, (Values{{"train-loss", 2.0f}, {"train-acc/top1", 0.25f}}));
}

TEST(TensorBoardLogger, HyperparamsInTheVersionDirectory) {
  TempDir dir("fabric_tb_layout_hparams");
  TensorBoardLogger tb({.root_dir = dir.path, .sub_dir = "s"});
  tb.log_hyperparams({{"lr", "0.5"}});
  const std::string log_dir = dir.path + "/lightning_logs/version_0/s";
  EXPECT_EQ(tree(log_dir), std::vector<std::string>{"hparams.yaml"});
  EXPECT_NE(read_file(log_dir + "/hparams.yaml").find("lr: 0.5"), std::string::npos);
  tb.log_metrics({{"loss", 1.0}}, 1);  // the same version, though its directory exists now
  EXPECT_EQ(tb.log_dir(), log_dir);
  EXPECT_EQ(event_files(log_dir).size(), 1u);
  EXPECT_FALSE(fs::exists(dir.path + "/lightning_logs/version_1"));
}

// Lightning's Logger.root_dir / log_dir / version, through the base class.
TEST(LoggerDirectories, BaseClassPropertiesOfEachLogger) {
  TempDir dir("fabric_logger_dirs");
  const std::string r = dir.path;
  struct Plain : Logger {
    std::string name() const override { return "plain"; }
    void log_metrics(const Metrics&, std::optional<int64_t>) override {}
  };
  auto props = [](const Logger& l) {
    return std::vector<std::string>{l.root_dir(), l.log_dir(), l.version()};
  };
  using P = std::vector<std::string>;
  EXPECT_EQ(props(Plain()), (P{"", "", ""}));
  fs::create_directories(r + "/lightning_logs/version_2");
  EXPECT_EQ(props(TensorBoardLogger({.root_dir = r, .sub_dir = "x"})),
            (P{r + "/lightning_logs", r + "/lightning_logs/version_3/x", "version_3"}));
  EXPECT_EQ(props(TensorBoardLogger(r + "/tb")), (P{"", r + "/tb", ""}));
  EXPECT_EQ(props(CSVLogger({.root_dir = r, .name = "csv", .version = "run"})),
            (P{r + "/csv", r + "/csv/run", "run"}));
  EXPECT_EQ(props(CSVLogger({.root_dir = r})),
            (P{r + "/lightning_logs", r + "/lightning_logs/version_3", "version_3"}));
  EXPECT_EQ(props(CSVLogger(r + "/flat/metrics.csv")), (P{"", r + "/flat", ""}));
  // Only the path constructor, which makes the file's directory at once, touched the disk.
  EXPECT_EQ(tree(r), (P{"flat", "lightning_logs", "lightning_logs/version_2"}));
}

// fabric-train's `logger.tensorboard` (the log_dir constructor on run_dir/tensorboard): one event
// per logged step; a run that logs nothing (max_steps 0) leaves no tensorboard directory.
using train_test::FabricTrain;

TEST_F(FabricTrain, TensorBoardLoggerGetsEveryLoggedStep) {
  const train_test::Result r = train_test::run("fit " + write_contract() + " --set logger.tensorboard=true");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto files = event_files((dir_ / "run/tensorboard").string());
  ASSERT_EQ(files.size(), 1u);
  const auto events = read_events(files[0]);
  ASSERT_EQ(events.size(), 6u);  // the version record and steps 1..5
  for (int64_t step = 1; step <= 5; ++step) {
    EXPECT_EQ(events[step].step, step);
    ASSERT_EQ(events[step].values.size(), 2u);
    EXPECT_EQ(events[step].values[0].first, "train_loss");
    EXPECT_TRUE(std::isfinite(events[step].values[0].second));
    EXPECT_EQ(events[step].values[1].first, "lr");
    EXPECT_FLOAT_EQ(events[step].values[1].second, 0.1f);
  }
  // A fit into the same run directory keeps the earlier run's events (the user's files) and starts
  // its own file with a session at step 0, which TensorBoard reads as superseding them; one that
  // logs nothing in a fresh directory makes none.
  const auto earlier_size = fs::file_size(files[0]);
  const train_test::Result idle =
      train_test::run("fit " + write_contract() + " --set logger.tensorboard=true trainer.max_steps=0");
  ASSERT_EQ(idle.status, 0) << idle.output;
  const auto after = event_files((dir_ / "run/tensorboard").string());
  ASSERT_EQ(after.size(), 2u);
  EXPECT_TRUE(std::find(after.begin(), after.end(), files[0]) != after.end());
  EXPECT_EQ(fs::file_size(files[0]), earlier_size);
  const std::string added = after[0] == files[0] ? after[1] : after[0];
  const auto session = read_events(added);
  ASSERT_EQ(session.size(), 2u);  // the version record and the session start
  EXPECT_EQ(session[1].step, 0);
  EXPECT_EQ(session[1].session_status, std::optional<int64_t>(1));
  EXPECT_TRUE(session[1].values.empty());
  fs::remove_all(dir_ / "run");
  const train_test::Result fresh = train_test::run(
      "fit " + write_contract() + " --set logger.tensorboard=true trainer.max_steps=0");
  ASSERT_EQ(fresh.status, 0) << fresh.output;
  EXPECT_FALSE(fs::exists(dir_ / "run/tensorboard"));
}

}  // namespace
}  // namespace fabric
