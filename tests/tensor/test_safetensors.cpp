// Tests of safetensors I/O: round trips for every dtype and layout, the exact bytes written,
// atomic saving, every malformed-header case (built by hand), a mutation fuzz loop, and interop
// with files written/read by Python + NumPy (tools/fixtures/make_safetensors_fixture.py).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <chrono>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <random>

#include "tensor/factory.h"
#include "tensor/safetensors.h"

namespace fabric {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;
using Bytes = std::vector<uint8_t>;
using Named = std::vector<std::pair<std::string, Tensor>>;

Bytes tensor_bytes(const Tensor& t) {
  Tensor c = t.contiguous();
  const auto* p = static_cast<const uint8_t*>(c.data_ptr());
  return Bytes(p, p + c.nbytes());
}

void expect_same(const Tensor& got, const Tensor& want, const std::string& name) {
  ASSERT_TRUE(got.defined()) << name;
  EXPECT_EQ(got.dtype(), want.dtype()) << name;
  EXPECT_EQ(got.sizes(), want.sizes()) << name;
  EXPECT_TRUE(got.is_contiguous()) << name;
  EXPECT_EQ(tensor_bytes(got), tensor_bytes(want)) << name;
}

Bytes read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
void write_file(const fs::path& p, const Bytes& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// A file from a header string and a data buffer, with an explicit header length when given.
Bytes make_file(const std::string& header, const Bytes& data = {}, std::optional<uint64_t> n = std::nullopt) {
  Bytes out(8 + header.size() + data.size());
  const uint64_t len = n.value_or(header.size());
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(len >> (8 * i));
  std::copy(header.begin(), header.end(), out.begin() + 8);
  std::copy(data.begin(), data.end(), out.begin() + 8 + static_cast<int64_t>(header.size()));
  return out;
}

SafetensorsFile parse(const Bytes& b) { return parse_safetensors(std::make_shared<Bytes>(b), "case.safetensors"); }

// Every tensor of every dtype, shape and layout the format has to carry.
Named all_dtype_tensors() {
  Named v;
  const std::vector<double> vals = {0.0, -1.5, 2.25, 1e-3, -7.0, 448.0, 0.1, 3.0};
  for (DType dt : {DType::float64, DType::float32, DType::float16, DType::bfloat16, DType::float8_e4m3fn,
                   DType::float8_e5m2}) {
    v.emplace_back(std::string(dtype_name(dt)), from_vector(vals, {2, 4}, {.dtype = DType::float64}).to(dt));
  }
  const std::vector<int64_t> ints = {-128, -1, 0, 1, 127, 42};
  v.emplace_back("int64", from_vector<int64_t>({INT64_MIN, -1, 0, 1, INT64_MAX, 1ll << 40}, {3, 2}));
  v.emplace_back("int32", from_vector(ints, {6}).to(DType::int32));
  v.emplace_back("int8", from_vector(ints, {6}).to(DType::int8));
  v.emplace_back("uint8", from_vector<int64_t>({0, 255, 7, 128}, {4}).to(DType::uint8));
  v.emplace_back("bool", from_vector<bool>({true, false, false, true, true}, {5}));
  v.emplace_back("scalar_f32", scalar_tensor(3.5, {.dtype = DType::float32}));
  v.emplace_back("scalar_i64", scalar_tensor(int64_t{-9}, {.dtype = DType::int64}));
  v.emplace_back("empty_f32", empty({0, 3}, {.dtype = DType::float32}));
  v.emplace_back("empty_bf16", empty({4, 0}, {.dtype = DType::bfloat16}));
  v.emplace_back("empty_bool", empty({0}, {.dtype = DType::bool_}));
  Tensor base = arange(0, 24, 1, DType::float32).view({4, 6});
  v.emplace_back("transposed", base.t());
  v.emplace_back("strided", base.slice(1, 1, 6, 2));
  v.emplace_back("row", base.select(0, 2));
  v.emplace_back("expanded", from_vector<float>({1, 2, 3}, {3}).expand({2, 3}));
  v.emplace_back("unicode_ключ_名前", from_vector<int64_t>({5}, {1}));
  return v;
}

class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("fabric_st_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

// ---- round trips ------------------------------------------------------------------------------------

TEST_F(Safetensors, RoundTripsEveryDtypeShapeAndLayout) {
  const Named tensors = all_dtype_tensors();
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "ünïcode ✓"}, {"empty", ""}};
  save_safetensors(path("all.safetensors"), tensors, meta);
  SafetensorsFile f = load_safetensors(path("all.safetensors"));
  EXPECT_EQ(f.metadata, meta);
  ASSERT_EQ(f.tensors.size(), tensors.size());
  for (const auto& [name, t] : tensors) expect_same(f.tensors.at(name), t, name);
  // Values, not only bytes, for a few.
  EXPECT_EQ(f.tensors.at("transposed").to_vector<float>(),
            (std::vector<float>{0, 6, 12, 18, 1, 7, 13, 19, 2, 8, 14, 20, 3, 9, 15, 21, 4, 10, 16, 22, 5, 11, 17, 23}));
  EXPECT_EQ(f.tensors.at("expanded").to_vector<float>(), (std::vector<float>{1, 2, 3, 1, 2, 3}));
  EXPECT_EQ(f.tensors.at("bool").to_vector<bool>(), (std::vector<bool>{true, false, false, true, true}));
  EXPECT_EQ(f.tensors.at("scalar_f32").dim(), 0);
  EXPECT_EQ(f.tensors.at("scalar_f32").item<float>(), 3.5f);

  // The in-memory path agrees with the file.
  SafetensorsFile g = parse(serialize_safetensors(tensors, meta));
  EXPECT_EQ(g.metadata, meta);
  for (const auto& [name, t] : tensors) expect_same(g.tensors.at(name), t, name);
  EXPECT_EQ(read_file(path("all.safetensors")), serialize_safetensors(tensors, meta));
}

TEST_F(Safetensors, EmptyFileAndNoMetadata) {
  save_safetensors(path("none.safetensors"), {});
  const Bytes b = read_file(path("none.safetensors"));
  // "{}" padded to 8 bytes, no data.
  EXPECT_EQ(b, make_file("{}      "));
  SafetensorsFile f = load_safetensors(path("none.safetensors"));
  EXPECT_TRUE(f.tensors.empty());
  EXPECT_TRUE(f.metadata.empty());
}

TEST_F(Safetensors, DataStartAndEveryTensorAreAligned) {
  const Named tensors = all_dtype_tensors();
  const Bytes b = serialize_safetensors(tensors, {{"k", "odd length value"}});
  uint64_t n = 0;
  std::memcpy(&n, b.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u);
  const std::string header(b.begin() + 8, b.begin() + 8 + static_cast<int64_t>(n));
  EXPECT_EQ(header.find_last_not_of(' ') + 1, header.rfind('}') + 1);  // padding is spaces only
  const auto j = nlohmann::json::parse(header);
  for (const auto& [name, info] : j.items()) {
    if (name == "__metadata__") continue;
    const uint64_t begin = info["data_offsets"][0];
    const std::string code = info["dtype"];
    const uint64_t size = code == "F64" || code == "I64" ? 8 : code == "F32" || code == "I32" ? 4
                        : code == "F16" || code == "BF16" ? 2 : 1;
    EXPECT_EQ(begin % size, 0u) << name;
  }
  // Loaded views are aligned for their dtype.
  SafetensorsFile f = parse(b);
  for (const auto& [name, t] : f.tensors)
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data_ptr()) % static_cast<uintptr_t>(t.element_size()), 0u) << name;
}

TEST_F(Safetensors, ExactBytesOfATinyFile) {
  const Named tensors = {
      {"b", from_vector<int64_t>({1, -2}, {2}).to(DType::int8)},
      {"a", from_vector<float>({1.0f, -2.0f}, {1, 2})},
  };
  const Bytes got = serialize_safetensors(tensors, {{"k", "v"}});
  // Metadata first; then data order: 4-byte dtypes before 1-byte ones, names ascending.
  const std::string json =
      R"({"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"I8","shape":[2],"data_offsets":[8,10]}})";
  ASSERT_EQ(json.size(), 134u);
  const std::string padded = json + std::string(2, ' ');  // 8 + 136 = 144, a multiple of 8
  const Bytes data = {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0,  // 1.0f, -2.0f little-endian
                      0x01, 0xfe};                                     // int8 1, -2
  const Bytes want = make_file(padded, data);
  ASSERT_EQ(want[0], 136);  // the header length, little-endian
  EXPECT_EQ(got, want);
  save_safetensors(path("tiny.safetensors"), tensors, {{"k", "v"}});
  EXPECT_EQ(read_file(path("tiny.safetensors")), want);
}

TEST_F(Safetensors, LoadedTensorsAreCopyOnWriteAndOutliveTheFile) {
  const std::string p = path("w.safetensors");
  save_safetensors(p, {{"w", from_vector<float>({1, 2, 3, 4}, {4})}});
  const Bytes before = read_file(p);
  SafetensorsFile f = load_safetensors(p);
  Tensor w = f.tensors.at("w");
  w.fill_(7.0);  // writes the private mapping, not the file
  EXPECT_EQ(w.to_vector<float>(), (std::vector<float>{7, 7, 7, 7}));
  EXPECT_EQ(read_file(p), before);
  // Replacing the file (atomic rename) leaves the mapped tensors intact.
  SafetensorsFile g = load_safetensors(p);
  save_safetensors(p, {{"w", from_vector<float>({9, 9}, {2})}});
  EXPECT_EQ(g.tensors.at("w").to_vector<float>(), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(load_safetensors(p).tensors.at("w").to_vector<float>(), (std::vector<float>{9, 9}));
}

// ---- saving errors and atomicity -----------------------------------------------------------------------

TEST_F(Safetensors, SaveRejectsBadNames) {
  Tensor t = zeros({2});
  EXPECT_THROW(save_safetensors(path("x"), {{"a", t}, {"a", t}}), ValueError);
  EXPECT_THROW(save_safetensors(path("x"), {{"__metadata__", t}}), ValueError);
  EXPECT_THROW(save_safetensors(path("x"), {{"u", Tensor()}}), ValueError);
  EXPECT_THROW(save_safetensors(path("x"), {{std::string("bad\xff"), t}}), ValueError);
  EXPECT_THROW(save_safetensors(path("x"), {{"a", t}}, {{"k", std::string("\xc3(")}}), ValueError);
  EXPECT_FALSE(fs::exists(path("x")));
  try {
    save_safetensors(path("x"), {{"dup", t}, {"dup", t}});
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("duplicate tensor name 'dup'"), std::string::npos) << e.what();
  }
  try {
    save_safetensors((dir_ / "no_such_dir" / "f.safetensors").string(), {{"a", t}});
    ADD_FAILURE() << "saved into a missing directory";
  } catch (const IOError& e) {
    EXPECT_NE(std::string(e.what()).find("no_such_dir"), std::string::npos) << e.what();
  }
}

TEST_F(Safetensors, FailedSaveLeavesTheExistingFileIntact) {
  const std::string p = path("model.safetensors");
  save_safetensors(p, {{"w", from_vector<float>({1, 2, 3}, {3})}});
  const Bytes original = read_file(p);
  const std::string tmp = p + ".tmp." + std::to_string(::getpid());

  // 1. The temporary file cannot be created (a directory sits at its path).
  fs::create_directory(tmp);
  EXPECT_THROW(save_safetensors(p, {{"w", zeros({3})}}), IOError);
  EXPECT_EQ(read_file(p), original);
  fs::remove(tmp);

  // 2. The writer fails midway: the file-size limit makes write() fail with EFBIG after the
  //    header and part of the data are written.
  struct rlimit old {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  struct rlimit lim = old;
  lim.rlim_cur = 64 * 1024;
  auto old_handler = signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
  bool threw = false;
  std::string msg;
  try {
    save_safetensors(p, {{"big", zeros({1 << 20})}, {"w", zeros({3})}});
  } catch (const IOError& e) {
    threw = true;
    msg = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, old_handler);
  EXPECT_TRUE(threw);
  EXPECT_NE(msg.find("write failed"), std::string::npos) << msg;
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  EXPECT_EQ(read_file(p), original);
  EXPECT_FALSE(fs::exists(tmp)) << "temporary file left behind";
  EXPECT_EQ(load_safetensors(p).tensors.at("w").to_vector<float>(), (std::vector<float>{1, 2, 3}));

  // A successful save then replaces it and leaves no temporary behind.
  save_safetensors(p, {{"w", from_vector<float>({5}, {1})}});
  EXPECT_EQ(load_safetensors(p).tensors.at("w").to_vector<float>(), (std::vector<float>{5}));
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

// ---- malformed input ---------------------------------------------------------------------------------

void expect_bad(const Bytes& b, const std::string& what, const std::string& label) {
  try {
    parse(b);
    ADD_FAILURE() << label << ": accepted; expected an IOError mentioning \"" << what << "\"";
  } catch (const IOError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("case.safetensors"), std::string::npos) << label << ": " << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << label << ": " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << label << ": threw a non-IOError: " << e.what();
  }
}

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
}

TEST_F(Safetensors, RejectsTruncatedAndOversizedHeaders) {
  expect_bad({}, "shorter than the 8-byte header length", "empty");
  expect_bad({1, 0, 0, 0, 0, 0, 0}, "7 bytes, shorter", "7 bytes");
  expect_bad(make_file("{}", {}, 3), "runs past the end of the file", "length past end");
  expect_bad(make_file("{}", {}, ~uint64_t{0}), "exceeds the limit", "length 2^64-1");
  expect_bad(make_file("{}", {}, 100'000'001), "exceeds the limit of 100000000", "just over 100 MB");
  expect_bad(make_file(""), "not valid JSON", "empty header");
  const std::string text = "step,loss\n1,4.17\n";  // a CSV given as safetensors
  expect_bad(Bytes(text.begin(), text.end()), "is this a safetensors file?", "a text file");
}

TEST_F(Safetensors, RejectsHeadersThatAreNotAJsonObject) {
  expect_bad(make_file("{"), "not valid JSON", "unterminated");
  expect_bad(make_file("{} x"), "not valid JSON", "trailing garbage");
  expect_bad(make_file("{\"a\":1,}"), "not valid JSON", "trailing comma");
  expect_bad(make_file("[]"), "must be a JSON object, got array", "array");
  expect_bad(make_file("3      "), "must be a JSON object, got number", "number");
  expect_bad(make_file("{}\0"s), "NUL byte", "NUL padding");
  expect_bad(make_file("{\"a\0\":1}"s), "NUL byte", "NUL in a key");
  expect_bad(make_file("{\"\xff\":1}"), "not valid UTF-8", "0xff byte");
  expect_bad(make_file("{\"\xc0\xaf\":1}"), "not valid UTF-8", "overlong");
  expect_bad(make_file("{\"\xed\xa0\x80\":1}"), "not valid UTF-8", "surrogate");
  expect_bad(make_file("{\"a\xe2\x82\":1}"), "not valid UTF-8", "truncated sequence");
  expect_bad(make_file("{\"x\":" + std::string(100, '[') + std::string(100, ']') + "}"), "nests deeper",
             "deep nesting");
}

TEST_F(Safetensors, RejectsBadEntries) {
  const Bytes d4(4, 0);
  expect_bad(make_file("{\"t\":5}", d4), "entry 't' must be an object", "entry not object");
  expect_bad(make_file(R"({"t":{"shape":[1],"data_offsets":[0,4]}})", d4), "tensor 't' has no \"dtype\"",
             "missing dtype");
  expect_bad(make_file(R"({"t":{"dtype":"F32","data_offsets":[0,4]}})", d4), "has no \"shape\"", "missing shape");
  expect_bad(make_file(R"({"t":{"dtype":"F32","shape":[1]}})", d4), "has no \"data_offsets\"", "missing offsets");
  expect_bad(make_file(R"({"t":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", d4), "\"dtype\" must be a string",
             "dtype not string");
  expect_bad(make_file("{" + entry("t", "F128", "[1]", "[0,4]") + "}", d4), "unsupported dtype \"F128\"",
             "unknown dtype");
  expect_bad(make_file("{" + entry("t", "I16", "[2]", "[0,4]") + "}", d4), "unsupported dtype \"I16\"",
             "I16 not supported");
  expect_bad(make_file("{" + entry("t", "f32", "[1]", "[0,4]") + "}", d4), "unsupported dtype", "lower case");
  expect_bad(make_file("{" + entry("t", "F32", "4", "[0,4]") + "}", d4), "\"shape\" must be an array",
             "shape not array");
  expect_bad(make_file("{" + entry("t", "F32", "[-1]", "[0,4]") + "}", d4), "negative value -1 in \"shape\"",
             "negative dim");
  expect_bad(make_file("{" + entry("t", "F32", "[1.0]", "[0,4]") + "}", d4), "non-negative integers",
             "float dim");
  expect_bad(make_file("{" + entry("t", "F32", "[\"1\"]", "[0,4]") + "}", d4), "non-negative integers",
             "string dim");
  expect_bad(make_file("{" + entry("t", "F32", "[[1]]", "[0,4]") + "}", d4), "non-negative integers",
             "nested dim");
  expect_bad(make_file("{" + entry("t", "F32", "[4294967296,4294967296]", "[0,4]") + "}", d4),
             "too many elements", "numel overflow");
  expect_bad(make_file("{" + entry("t", "I64", "[2305843009213693952]", "[0,4]") + "}", d4), "too many elements",
             "nbytes overflow");
  expect_bad(make_file("{" + entry("t", "F32", "[1]", "[0]") + "}", d4), "must be [begin, end]", "one offset");
  expect_bad(make_file("{" + entry("t", "F32", "[1]", "[0,4,8]") + "}", d4), "must be [begin, end]",
             "three offsets");
  expect_bad(make_file("{" + entry("t", "F32", "[1]", "{}") + "}", d4), "must be [begin, end]", "offsets object");
  expect_bad(make_file("{" + entry("t", "F32", "[1]", "[\"0\",\"4\"]") + "}", d4), "non-negative integers",
             "string offsets");
  expect_bad(make_file("{" + entry("t", "F32", "[1]", "[-4,0]") + "}", d4), "negative value -4", "negative offset");
  expect_bad(make_file("{" + entry("t", "F32", "[1]", "[4,0]") + "}", d4), "begin 4 > end 0", "begin > end");
  expect_bad(make_file("{" + entry("t", "F32", "[1]", "[0,8]") + "}", d4), "run past the data buffer of 4 bytes",
             "past the buffer");
  expect_bad(make_file("{" + entry("t", "F32", "[1]", "[0,18446744073709551615]") + "}", d4),
             "run past the data buffer", "huge end");
  expect_bad(make_file("{" + entry("t", "F32", "[2]", "[0,4]") + "}", d4), "needs 8 bytes but data_offsets [0, 4] hold 4",
             "size mismatch");
  expect_bad(make_file("{" + entry("t", "BOOL", "[]", "[0,4]") + "}", d4), "needs 1 bytes", "scalar mismatch");
  // No element, but the other dimensions' strides overflow: an IOError naming the file, not a
  // ShapeError from deep inside.
  expect_bad(
      make_file("{" + entry("t", "F32", "[0,9223372036854775807,9223372036854775807]", "[0,0]") +
                "}"),
      "stride calculation overflows", "empty with huge dims");
}

// 100k tensors: the header's duplicate-key check used to rescan each parent object at every
// nested object's end (nlohmann's callback parser), 57 s for 40k tensors.
TEST_F(Safetensors, AHeaderOfManyTensorsLoadsInLinearTime) {
  constexpr int kTensors = 100000;
  std::string header = "{";
  for (int i = 0; i < kTensors; ++i)
    header += (i ? "," : "") + entry("t" + std::to_string(i), "U8", "[1]",
                                     "[" + std::to_string(i) + "," + std::to_string(i + 1) + "]");
  header += "}";
  const auto start = std::chrono::steady_clock::now();
  const SafetensorsFile f = parse(make_file(header, Bytes(kTensors, 7)));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(f.tensors.size(), static_cast<size_t>(kTensors));
  EXPECT_LT(seconds, 20.0);  // about 1 s here; the quadratic parse took hours
}

// A link at the path is written through (it stays a link); a FIFO or a folder there is refused
// rather than replaced by a regular file; a name of 255 bytes can be written (its temporary's
// name is cut to fit).
TEST_F(Safetensors, SaveWritesThroughLinksAndRefusesWhatIsNotAFile) {
  const Named one = {{"x", from_vector<float>({1, 2}, {2})}};
  const std::string target = path("target.safetensors"), link = path("link.safetensors");
  fs::create_symlink(target, link);
  save_safetensors(link, one);
  EXPECT_TRUE(fs::is_symlink(link));
  expect_same(load_safetensors(target).tensors.at("x"), one[0].second, "through the link");
  const std::string fifo = path("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  try {
    save_safetensors(fifo, one);
    ADD_FAILURE() << "a FIFO was replaced";
  } catch (const IOError& e) {
    EXPECT_NE(std::string(e.what()).find("is not a regular file"), std::string::npos) << e.what();
  }
  EXPECT_EQ(fs::status(fifo).type(), fs::file_type::fifo);
  EXPECT_THROW(save_safetensors(dir_.string(), one), IOError);
  const std::string longest = path(std::string(255 - 12, 'w') + ".safetensors");
  save_safetensors(longest, one);
  expect_same(load_safetensors(longest).tensors.at("x"), one[0].second, "255-byte name");
  for (const auto& e : fs::directory_iterator(dir_))  // no temporary left behind
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

TEST_F(Safetensors, RejectsBuffersTheTensorsDoNotTile) {
  const Bytes d8(8, 0);
  expect_bad(make_file("{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[1]", "[4,8]") + "}", d8),
             "(tensors overlap)", "overlap");
  expect_bad(make_file("{" + entry("a", "F32", "[1]", "[0,4]") + "," + entry("b", "F32", "[1]", "[0,4]") + "}", d8),
             "tensors overlap", "same span");
  expect_bad(make_file("{" + entry("a", "F32", "[1]", "[4,8]") + "}", d8), "(gap between tensors)", "gap at start");
  expect_bad(make_file("{" + entry("a", "I8", "[2]", "[0,2]") + "," + entry("b", "I8", "[2]", "[4,6]") + "}",
                       Bytes(6, 0)),
             "gap between tensors", "gap in the middle");
  expect_bad(make_file("{" + entry("a", "F32", "[1]", "[0,4]") + "}", d8), "trailing bytes", "trailing data");
  expect_bad(make_file("{}", d8), "tensors cover 0 bytes but the data buffer holds 8", "data with no tensors");
  // Zero-size tensors may sit anywhere inside the tiling, including at its end.
  SafetensorsFile ok = parse(make_file("{" + entry("a", "F32", "[0]", "[0,0]") + "," + entry("b", "F32", "[2]", "[0,8]") +
                                       "," + entry("c", "I8", "[0,5]", "[8,8]") + "}",
                                       d8));
  EXPECT_EQ(ok.tensors.size(), 3u);
  EXPECT_EQ(ok.tensors.at("c").sizes(), (Shape{0, 5}));
}

TEST_F(Safetensors, RejectsDuplicatesAndBadMetadata) {
  const Bytes d4(4, 0);
  expect_bad(make_file("{" + entry("a", "F32", "[1]", "[0,4]") + "," + entry("a", "F32", "[1]", "[0,4]") + "}", d4),
             "duplicate key \"a\"", "duplicate tensor");
  expect_bad(make_file(R"({"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}})", d4),
             "duplicate key \"dtype\"", "duplicate field");
  expect_bad(make_file(R"({"__metadata__":{"k":"v","k":"w"}})"), "duplicate key \"k\"", "duplicate metadata key");
  expect_bad(make_file(R"({"__metadata__":{"k":1}})"), "__metadata__ value of \"k\" must be a string, got 1",
             "number value");
  expect_bad(make_file(R"({"__metadata__":{"k":{"x":"y"}}})"), "must be a string", "object value");
  expect_bad(make_file(R"({"__metadata__":{"k":null}})"), "must be a string", "null value");
  expect_bad(make_file(R"({"__metadata__":["k"]})"), "__metadata__ must be an object of strings", "array metadata");
  expect_bad(make_file(R"({"__metadata__":"k"})"), "__metadata__ must be an object", "string metadata");
  // Keys in different objects may repeat; null metadata means none.
  SafetensorsFile ok = parse(make_file(R"({"__metadata__":{"dtype":"shape"},)" + entry("dtype", "U8", "[1]", "[0,1]") +
                                       "}", Bytes{9}));
  EXPECT_EQ(ok.metadata.at("dtype"), "shape");
  EXPECT_EQ(ok.tensors.at("dtype").item<int64_t>(), 9);
  EXPECT_TRUE(parse(make_file(R"({"__metadata__":null})")).metadata.empty());
}

TEST_F(Safetensors, LoadErrorsNameThePath) {
  try {
    load_safetensors(path("missing.safetensors"));
    ADD_FAILURE();
  } catch (const IOError& e) {
    EXPECT_NE(std::string(e.what()).find("missing.safetensors: cannot open"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_safetensors(dir_.string()), IOError);  // a directory
  // A FIFO is refused without waiting for a writer (the open blocked before). Should it block, a
  // writer's open and close release it, so the test fails instead of hanging.
  const std::string fifo = path("fifo.safetensors");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto load = std::async(std::launch::async, [&] {
    try {
      load_safetensors(fifo);
    } catch (const IOError& e) {
      return std::string(e.what());
    }
    return std::string("(loaded)");
  });
  if (load.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
    ADD_FAILURE() << "load_safetensors blocked on a FIFO";
    ::close(::open(fifo.c_str(), O_WRONLY));
  }
  EXPECT_NE(load.get().find("not a regular file"), std::string::npos);
  write_file(path("short.safetensors"), {1, 2, 3});
  try {
    load_safetensors(path("short.safetensors"));
    ADD_FAILURE();
  } catch (const IOError& e) {
    EXPECT_NE(std::string(e.what()).find(path("short.safetensors")), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("3 bytes"), std::string::npos) << e.what();
  }
  write_file(path("empty.safetensors"), {});
  EXPECT_THROW(load_safetensors(path("empty.safetensors")), IOError);
  write_file(path("bad.safetensors"), make_file("{" + entry("t", "F32", "[1]", "[0,8]") + "}", Bytes(4, 0)));
  EXPECT_THROW(load_safetensors(path("bad.safetensors")), IOError);
}

TEST_F(Safetensors, BoolBytesOtherThanZeroOrOneReadAsTrue) {
  SafetensorsFile f = parse(make_file("{" + entry("b", "BOOL", "[3]", "[0,3]") + "}", Bytes{0, 2, 255}));
  EXPECT_EQ(f.tensors.at("b").to_vector<bool>(), (std::vector<bool>{false, true, true}));
  EXPECT_EQ(tensor_bytes(f.tensors.at("b")), (Bytes{0, 1, 1}));
}

TEST_F(Safetensors, MisalignedTensorsAreCopiedToAlignedMemory) {
  // An I8 of 1 byte first puts the F32 at an odd offset of the data buffer.
  const std::string h = "{" + entry("a", "I8", "[1]", "[0,1]") + "," + entry("f", "F32", "[2]", "[1,9]") + "}";
  Bytes data = {7};
  const float v[2] = {1.5f, -3.25f};
  const auto* vb = reinterpret_cast<const uint8_t*>(v);
  data.insert(data.end(), vb, vb + 8);
  SafetensorsFile f = parse(make_file(h, data));
  Tensor t = f.tensors.at("f");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data_ptr()) % 4, 0u);
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{1.5f, -3.25f}));
  EXPECT_EQ(f.tensors.at("a").item<int64_t>(), 7);
}

// ---- fuzzing: mutated files load or throw fabric::Error, never crash ----------------------------------

TEST_F(Safetensors, MutatedFilesNeverCrash) {
  Named tensors = {
      {"w", from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3})},
      {"b", from_vector<int64_t>({-1, 1}, {2})},
      {"h", from_vector<float>({0.5f, 0.25f}, {2}).to(DType::bfloat16)},
      {"m", from_vector<bool>({true, false, true}, {3})},
      {"s", scalar_tensor(1.0, {.dtype = DType::float64})},
  };
  const Bytes valid = serialize_safetensors(tensors, {{"format", "pt"}});
  uint64_t n = 0;
  std::memcpy(&n, valid.data(), 8);
  const size_t header_end = 8 + static_cast<size_t>(n);
  std::mt19937_64 rng(12345);
  const std::string alphabet = "{}[]\",:0123456789-. eE\xff\x80" "Ftrue";
  int loaded = 0, rejected = 0;
  for (int iter = 0; iter < 2000; ++iter) {
    Bytes b = valid;
    const int kind = static_cast<int>(rng() % 6);
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      // Most edits land in the length and header, where the parser's decisions are.
      const size_t pos = rng() % 4 ? rng() % header_end : rng() % b.size();
      switch (kind) {
        case 0: b[pos] = static_cast<uint8_t>(rng()); break;                   // random byte
        case 1: b[pos] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;       // bit flip
        case 2: b[pos] = static_cast<uint8_t>(alphabet[rng() % alphabet.size()]); break;  // JSON-ish byte
        case 3: b.resize(rng() % b.size()); break;                             // truncate
        case 4: b.insert(b.begin() + static_cast<int64_t>(pos), static_cast<uint8_t>(alphabet[rng() % alphabet.size()])); break;
        case 5: b.erase(b.begin() + static_cast<int64_t>(pos)); break;
      }
      if (b.empty()) break;
    }
    try {
      SafetensorsFile f = (iter % 100 == 0) ? [&] {
        write_file(path("fuzz.safetensors"), b);
        return load_safetensors(path("fuzz.safetensors"));
      }()
                                            : parse(b);
      // Touch every byte of every tensor: they must lie within the buffer.
      uint64_t sum = 0;
      for (const auto& [name, t] : f.tensors) {
        const auto* p = static_cast<const uint8_t*>(t.data_ptr());
        for (int64_t i = 0; i < t.nbytes(); ++i) sum += p[i];
        if (t.numel() > 0) (void)t.to_vector<double>();
      }
      (void)sum;
      ++loaded;
    } catch (const Error&) {
      ++rejected;
    }
  }
  EXPECT_EQ(loaded + rejected, 2000);
  EXPECT_GT(rejected, 1000);  // most mutations break the header
  EXPECT_GT(loaded, 0);       // some (e.g. data bytes, whitespace) stay valid
}

// ---- interop with Python/NumPy --------------------------------------------------------------------------

// tests/tensor/data, beside this file.
std::string fixture_dir() { return (fs::path(__FILE__).parent_path() / "data").string(); }

// Reads tests/tensor/data/interop.safetensors, written by tools/fixtures/make_safetensors_fixture.py
// in a foreign style (spaced JSON, metadata last, unaligned tensors), and checks the values it lists.
TEST_F(Safetensors, ReadsTheFileWrittenByPython) {
  const std::string dir = fixture_dir();
  SafetensorsFile f = load_safetensors(dir + "/interop.safetensors");
  std::ifstream ef(dir + "/interop_expected.json");
  ASSERT_TRUE(ef.good()) << "missing interop_expected.json";
  const auto expected = nlohmann::json::parse(ef);
  std::map<std::string, std::string> meta = expected["metadata"];
  EXPECT_EQ(f.metadata, meta);
  ASSERT_EQ(f.tensors.size(), expected["tensors"].size());
  for (const auto& [name, info] : expected["tensors"].items()) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(f.tensors.count(name));
    const Tensor& t = f.tensors.at(name);
    EXPECT_EQ(safetensors_dtype_name(t.dtype()), info["dtype"].get<std::string>());
    EXPECT_EQ(t.sizes(), info["shape"].get<Shape>());
    const auto& vals = info["values"];
    ASSERT_EQ(static_cast<size_t>(t.numel()), vals.size());
    if (t.dtype() == DType::int64 || t.dtype() == DType::int32 || t.dtype() == DType::int8 ||
        t.dtype() == DType::uint8) {
      EXPECT_EQ(t.to_vector<int64_t>(), vals.get<std::vector<int64_t>>());
    } else if (t.dtype() == DType::bool_) {
      EXPECT_EQ(t.to_vector<bool>(), vals.get<std::vector<bool>>());
    } else {
      const std::vector<double> got = t.to_vector<double>();
      for (size_t i = 0; i < got.size(); ++i) {
        if (vals[i].is_string()) {
          const std::string s = vals[i];
          if (s == "nan") EXPECT_TRUE(std::isnan(got[i])) << i;
          else EXPECT_EQ(got[i], s == "inf" ? INFINITY : -INFINITY) << i;
        } else {
          const double want = vals[i];
          EXPECT_EQ(got[i], want) << i;  // exact: every value is representable
          EXPECT_EQ(std::signbit(got[i]), std::signbit(want)) << i;
        }
      }
    }
  }
}

// Must match CPP_GOLDEN in tools/fixtures/make_safetensors_fixture.py, which reads the file with
// NumPy. Regenerate with FABRIC_UPDATE_FIXTURES=1 after an intended format change.
Named golden_tensors() {
  Tensor base = from_vector<float>({0, 1, 2, 3, 4, 5}, {2, 3});
  return {
      {"f64_scalar", scalar_tensor(3.141592653589793, {.dtype = DType::float64})},
      {"i64", from_vector<int64_t>({-3, 0, int64_t{1} << 40}, {3})},
      {"f32", from_vector<float>({0, 0.25f, 0.5f, 0.75f, 1.0f, 1.25f}, {2, 3})},
      {"transposed", base.t()},
      {"empty", empty({0, 3})},
      {"i32", from_vector<int32_t>({INT32_MIN, INT32_MAX}, {2})},
      {"bf16", from_vector<float>({1.0f, -2.5f, 0.15625f}, {3}).to(DType::bfloat16)},
      {"f16", from_vector<float>({0.5f, -1.5f, 65504.0f}, {3}).to(DType::float16)},
      {"bool", from_vector<bool>({true, false, true}, {3})},
      {"e4m3", from_vector<float>({1.0f, -448.0f}, {2}).to(DType::float8_e4m3fn)},
      {"e5m2", from_vector<float>({2.0f}, {1}).to(DType::float8_e5m2)},
      {"i8", from_vector<int64_t>({-128, 127, 0}, {3}).to(DType::int8)},
      {"u8", from_vector<int64_t>({0, 255, 7}, {3}).to(DType::uint8)},
  };
}

TEST_F(Safetensors, GoldenFileWrittenByCpp) {
  const std::string golden = fixture_dir() + "/written_by_cpp.safetensors";
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"writer", "fabric"}};
  const char* update = std::getenv("FABRIC_UPDATE_FIXTURES");
  if (update && std::string(update) == "1") {
    save_safetensors(golden, golden_tensors(), meta);
    GTEST_SKIP() << "wrote " << golden;
  }
  ASSERT_TRUE(fs::exists(golden)) << golden << " is missing; run with FABRIC_UPDATE_FIXTURES=1";
  EXPECT_EQ(read_file(golden), serialize_safetensors(golden_tensors(), meta))
      << "the writer's output changed; if intended, regenerate with FABRIC_UPDATE_FIXTURES=1 and re-run "
         "tools/fixtures/make_safetensors_fixture.py";
  SafetensorsFile f = load_safetensors(golden);
  for (const auto& [name, t] : golden_tensors()) expect_same(f.tensors.at(name), t, name);
}

}  // namespace
}  // namespace fabric
