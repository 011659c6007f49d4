// Datasets and the data loader on small fixtures written here: the character vocabulary, text and
// token windows, safetensors and IDX (plain and gzip) examples, DistributedSampler orders,
// prefetching, worker errors and bit-exact resume.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <thread>

#include "runtime/data_loader.h"
#include "runtime/datasets.h"
#include "runtime_test_util.h"
#include "tensor/factory.h"
#include "tensor/safetensors.h"

namespace fabric::data {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

// A fresh directory per test, removed afterwards.
class DataFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / (std::string("fabric_data_") + info->test_suite_name() +
                                        "_" + info->name() + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string write(const std::string& name, const std::string& bytes) const {
    std::ofstream(path(name), std::ios::binary) << bytes;
    return path(name);
  }
  std::string write(const std::string& name, const Bytes& bytes) const {
    return write(name, std::string(bytes.begin(), bytes.end()));
  }
  fs::path dir_;
};

using testing_util::error_of;

std::vector<int64_t> ints(const Tensor& t) { return t.to_vector<int64_t>(); }

Bytes raw(const Tensor& t) {
  const auto* p = static_cast<const uint8_t*>(t.contiguous().data_ptr());
  return Bytes(p, p + t.nbytes());
}

void expect_same_batch(const Batch& a, const Batch& b, const std::string& where) {
  ASSERT_EQ(a.inputs.dtype(), b.inputs.dtype()) << where;
  ASSERT_EQ(a.inputs.sizes(), b.inputs.sizes()) << where;
  ASSERT_EQ(a.targets.sizes(), b.targets.sizes()) << where;
  EXPECT_EQ(raw(a.inputs), raw(b.inputs)) << where;
  EXPECT_EQ(raw(a.targets), raw(b.targets)) << where;
}

// ---- CharVocab
// -----------------------------------------------------------------------------------

TEST(CharVocabData, SortedCodePointsEncodeDecodeAndJsonRoundTrip) {
  const std::string text =
      "b\xC2\xA3"
      "a\n\xF0\x9F\x98\x80"
      "ab\xE2\x82\xAC";  // b £ a \n 😀 a b €
  const CharVocab v = CharVocab::from_text(text);
  ASSERT_EQ(v.size(), 6);
  EXPECT_EQ(v.chars(), (std::vector<std::string>{"\n", "a", "b", "\xC2\xA3", "\xE2\x82\xAC",
                                                 "\xF0\x9F\x98\x80"}));
  EXPECT_EQ(v.code_points(), (std::vector<char32_t>{0x0A, 0x61, 0x62, 0xA3, 0x20AC, 0x1F600}));
  const std::vector<int64_t> ids = v.encode(text);
  EXPECT_EQ(ids, (std::vector<int64_t>{2, 3, 1, 0, 5, 1, 2, 4}));
  EXPECT_EQ(v.decode(ids), text);
  EXPECT_EQ(v.decode(from_vector<int32_t>({4, 1}, {2})),
            "\xE2\x82\xAC"
            "a");
  EXPECT_EQ(v.id_of(U'z'), -1);
  EXPECT_EQ(v.id_of(0x1F600), 5);

  const std::string file =
      (fs::temp_directory_path() / ("fabric_vocab_" + std::to_string(::getpid()) + ".json"))
          .string();
  v.save(file);
  const CharVocab back = CharVocab::load(file);
  EXPECT_EQ(back.chars(), v.chars());
  EXPECT_TRUE(back == v);
  std::ifstream in(file);
  const std::string json((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(json.find("\"chars\""), std::string::npos) << json;
  EXPECT_EQ(json, v.to_json());
  EXPECT_TRUE(CharVocab::from_json(json) == v);
  EXPECT_NE(error_of<IOError>([] {
              CharVocab::from_json("{}", "checkpoint state.json");
            }).find("checkpoint state.json"),
            std::string::npos);
  fs::remove(file);
}

TEST(CharVocabData, BadInputsNameWhatAndWhere) {
  EXPECT_NE(error_of<ValueError>([] {
              CharVocab::from_text("ok\xC0\xAF");
            }).find("invalid UTF-8 at byte 2"),
            std::string::npos);  // overlong '/'
  EXPECT_NE(error_of<ValueError>([] { CharVocab::from_text("\xED\xA0\x80"); }).find("byte 0"),
            std::string::npos);
  EXPECT_NE(error_of<ValueError>([] { CharVocab::from_text("abc\xE2\x82"); }).find("byte 3"),
            std::string::npos);
  EXPECT_NE(
      error_of<ValueError>([] { CharVocab::from_text("\xF4\x90\x80\x80"); }).find("invalid UTF-8"),
      std::string::npos);  // above U+10FFFF
  const CharVocab v = CharVocab::from_text("abc");
  EXPECT_NE(error_of<ValueError>([&] { v.encode("abz"); }).find("'z' (U+007A) at byte 2"),
            std::string::npos);
  EXPECT_NE(error_of<ValueError>([&] {
              v.decode(std::vector<int64_t>{0, 3});
            }).find("id 3 at position 1"),
            std::string::npos);
  EXPECT_NE(error_of<ValueError>([] { CharVocab({"b", "a"}); }).find("sorted"), std::string::npos);
  EXPECT_NE(error_of<ValueError>([] { CharVocab({"ab"}); }).find("exactly one"), std::string::npos);
  EXPECT_NE(error_of<IOError>([] {
              CharVocab::load("/nonexistent/vocab.json");
            }).find("/nonexistent/vocab.json"),
            std::string::npos);
}

TEST_F(DataFixture, CharVocabLoadRejectsMalformedFiles) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"chars\": [\"a\",", "not valid JSON"},
      {"[\"a\"]", "\"chars\""},
      {"{\"chars\": [\"b\", \"a\"]}", "sorted"},
      {"{\"chars\": [1]}", "chars[0] is not a string"},
      {"{\"kind\": \"bpe\", \"chars\": []}", "expected \"char\""},
  };
  for (size_t k = 0; k < cases.size(); ++k) {
    const std::string file = write("v" + std::to_string(k) + ".json", cases[k].first);
    const std::string msg = error_of<IOError>([&] { CharVocab::load(file); });
    EXPECT_NE(msg.find(cases[k].second), std::string::npos) << msg;
    EXPECT_NE(msg.find(file), std::string::npos) << msg;
  }
}

// ---- TextDataset
// ---------------------------------------------------------------------------------

TEST_F(DataFixture, TextDatasetWindowsAndSplit) {
  const std::string text = "hello world, h\xC3\xA9llo again\n";  // 25 characters, 26 bytes
  const std::string file = write("t.txt", text);
  TextDataset train(file, {.block_size = 4, .val_fraction = 0.2});
  const CharVocab& v = train.vocab();
  const std::vector<int64_t> all = v.encode(text);
  ASSERT_EQ(all.size(), 25u);
  EXPECT_EQ(train.num_tokens(), 20);  // floor(25 * 0.2) = 5 characters go to val
  EXPECT_EQ(train.size(), 16);
  Batch b = train.get(std::vector<int64_t>{0, 15});
  ASSERT_EQ(b.inputs.sizes(), (Shape{2, 4}));
  ASSERT_EQ(b.inputs.dtype(), DType::int64);
  EXPECT_EQ(ints(b.inputs), (std::vector<int64_t>{all[0], all[1], all[2], all[3], all[15], all[16],
                                                  all[17], all[18]}));
  EXPECT_EQ(ints(b.targets), (std::vector<int64_t>{all[1], all[2], all[3], all[4], all[16], all[17],
                                                   all[18], all[19]}));
  EXPECT_EQ(v.decode(b.inputs.select(0, 0)), "hell");

  // The vocabulary covers the whole file, the val split is the last 5 characters.
  TextDataset val = train.with_split(Split::val);
  EXPECT_EQ(val.num_tokens(), 5);
  EXPECT_TRUE(val.vocab() == v);
  Batch vb = val.get(std::vector<int64_t>{0});
  EXPECT_EQ(v.decode(vb.inputs) + v.decode(vb.targets.narrow(1, 3, 1)), "gain\n");
  TextDataset val2(file, {.block_size = 4, .val_fraction = 0.2, .split = Split::val});
  expect_same_batch(val2.get(std::vector<int64_t>{0}), vb, "val split");

  EXPECT_NE(error_of<IndexError>([&] {
              train.get(std::vector<int64_t>{16});
            }).find("out of range [0, 16)"),
            std::string::npos);
  EXPECT_NE(error_of<ValueError>([&] {
              TextDataset(file, {.block_size = 5, .val_fraction = 0.2, .split = Split::val});
            }).find("val split"),
            std::string::npos);
  EXPECT_NE(error_of<ValueError>([&] { TextDataset(file, {.block_size = 0}); }).find("block_size"),
            std::string::npos);
  EXPECT_NE(
      error_of<ValueError>([&] { TextDataset(file, {.val_fraction = 1.0}); }).find("val_fraction"),
      std::string::npos);
}

TEST_F(DataFixture, TextDatasetFileErrorsAndGivenVocabulary) {
  EXPECT_NE(error_of<IOError>([&] { TextDataset(path("missing.txt")); }).find("missing.txt"),
            std::string::npos);
  EXPECT_NE(error_of<IOError>([&] { TextDataset(write("e.txt", std::string())); }).find("empty"),
            std::string::npos);
  const std::string bad = write("bad.txt", std::string("abcdef\xFF"));
  const std::string msg = error_of<IOError>([&] { TextDataset(bad, {.block_size = 2}); });
  EXPECT_NE(msg.find("bad.txt"), std::string::npos) << msg;
  EXPECT_NE(msg.find("byte 6"), std::string::npos) << msg;

  // A run's stored vocabulary is used as is (ids keep their meaning even if the file has fewer
  // characters); a character outside it is an error naming the file.
  const CharVocab v({"\n", "a", "b", "c", "z"});
  TextDataset d(write("abc.txt", std::string("abcabc")), {.block_size = 2, .vocab = v});
  EXPECT_EQ(d.vocab().size(), 5);
  EXPECT_EQ(ints(d.get(std::vector<int64_t>{0}).inputs), (std::vector<int64_t>{1, 2}));
  const std::string msg2 = error_of<IOError>(
      [&] { TextDataset(write("x.txt", std::string("abx")), {.block_size = 1, .vocab = v}); });
  EXPECT_NE(msg2.find("'x'"), std::string::npos) << msg2;
  EXPECT_NE(msg2.find("x.txt"), std::string::npos) << msg2;
}

// ---- TokenDataset
// --------------------------------------------------------------------------------

Bytes uint16_le(const std::vector<uint16_t>& v) {
  Bytes b;
  for (uint16_t x : v) {
    b.push_back(static_cast<uint8_t>(x & 0xFF));
    b.push_back(static_cast<uint8_t>(x >> 8));
  }
  return b;
}

// A token file cut shorter in place while a run reads it: an IOError naming it, where reading the
// mapping past the file's new end ended the process with SIGBUS.
TEST_F(DataFixture, TokenDatasetRefusesAFileThatShrankUnderIt) {
  std::vector<uint16_t> tokens(8192, 3);  // 16 KiB: several pages
  const std::string file = write("shrink.bin", uint16_le(tokens));
  TokenDataset d(file, {.block_size = 4});
  EXPECT_NO_THROW(d.get(std::vector<int64_t>{8000}));
  std::filesystem::resize_file(file, 1000);
  const std::string msg = error_of<IOError>([&] { d.get(std::vector<int64_t>{8000}); });
  EXPECT_NE(msg.find("shrank from 16384 to 1000 bytes while it was read"), std::string::npos)
      << msg;
}

// The file cut and restored over and over while batches are read: every batch is either whole or
// an IOError, never a SIGBUS (a cut landing inside a batch's reads, which a mapping died of).
TEST_F(DataFixture, TokenDatasetSurvivesAFileCutWhileABatchIsRead) {
  std::vector<uint16_t> tokens(1 << 16, 5);  // 128 KiB
  const Bytes full = uint16_le(tokens);
  const std::string file = write("cut.bin", full);
  TokenDataset d(file, {.block_size = 256});
  std::atomic<bool> stop{false};
  std::thread cutter([&] {
    while (!stop) {
      std::filesystem::resize_file(file, 4096);
      std::ofstream(file, std::ios::binary | std::ios::in | std::ios::out)
          .write(reinterpret_cast<const char*>(full.data()),
                 static_cast<std::streamsize>(full.size()));
    }
  });
  std::vector<int64_t> starts;
  for (int64_t i = 0; i < 64; ++i) starts.push_back((i * 1013) % d.size());
  int whole = 0, refused = 0;
  for (int k = 0; k < 300; ++k) {
    try {
      Batch b = d.get(starts);
      EXPECT_EQ(b.inputs.size(0), 64);
      ++whole;
    } catch (const IOError& e) {
      EXPECT_NE(std::string(e.what()).find("shrank from 131072 to"), std::string::npos) << e.what();
      ++refused;
    }
  }
  stop = true;
  cutter.join();
  EXPECT_EQ(whole + refused, 300);
}

TEST_F(DataFixture, TokenDatasetReadsLittleEndianUint16Windows) {
  std::vector<uint16_t> tokens;
  for (int i = 0; i < 50; ++i)
    tokens.push_back(static_cast<uint16_t>(1000 * i + 7));  // high bytes matter
  const std::string file = write("tok.bin", uint16_le(tokens));
  TokenDataset d(file, {.block_size = 3, .val_fraction = 0.1});
  EXPECT_EQ(d.num_tokens(), 45);
  EXPECT_EQ(d.size(), 42);
  EXPECT_EQ(d.epoch_size(), 15);
  Batch b = d.get(std::vector<int64_t>{41, 2});
  EXPECT_EQ(ints(b.inputs), (std::vector<int64_t>{41007, 42007, 43007, 2007, 3007, 4007}));
  EXPECT_EQ(ints(b.targets), (std::vector<int64_t>{42007, 43007, 44007, 3007, 4007, 5007}));
  TokenDataset val = d.with_split(Split::val);
  EXPECT_EQ(val.num_tokens(), 5);
  EXPECT_EQ(ints(val.get(std::vector<int64_t>{1}).targets),
            (std::vector<int64_t>{47007, 48007, 49007}));

  EXPECT_EQ(val.max_token_id(), 49007);  // of the whole file
  TokenDataset checked(file, {.block_size = 3, .vocab_size = 40000});
  EXPECT_NO_THROW(checked.get(std::vector<int64_t>{36}));  // tokens 36..39 < 40000
  const std::string msg = error_of<ValueError>([&] { checked.get(std::vector<int64_t>{37}); });
  EXPECT_NE(msg.find("token 40007 at index 40"), std::string::npos) << msg;

  EXPECT_NE(error_of<IOError>([&] {
              TokenDataset(write("odd.bin", Bytes{1, 2, 3}));
            }).find("3 bytes"),
            std::string::npos);
  EXPECT_NE(error_of<IOError>([&] { TokenDataset(path("none.bin")); }).find("none.bin"),
            std::string::npos);
  EXPECT_NE(error_of<ValueError>([&] {
              TokenDataset(file, {.block_size = 50});
            }).find("block_size + 1 = 51"),
            std::string::npos);
}

// ---- TensorDataset
// -------------------------------------------------------------------------------

TEST_F(DataFixture, TensorDatasetBatchesRowsWidensIntegers) {
  const std::string file = path("d.safetensors");
  Tensor x = from_vector<float>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}, {5, 3});
  Tensor y = from_vector<int32_t>({4, 3, 2, 1, 0}, {5});
  save_safetensors(file, {{"inputs", x}, {"targets", y}});
  TensorDataset d(file);
  EXPECT_EQ(d.size(), 5);
  Batch b = d.get(std::vector<int64_t>{4, 0});
  EXPECT_EQ(b.inputs.dtype(), DType::float32);
  EXPECT_EQ(b.inputs.sizes(), (Shape{2, 3}));
  EXPECT_EQ(b.inputs.to_vector<float>(), (std::vector<float>{12, 13, 14, 0, 1, 2}));
  EXPECT_EQ(b.targets.dtype(), DType::int64);
  EXPECT_EQ(ints(b.targets), (std::vector<int64_t>{0, 4}));

  // GPT data: integer (N, T) inputs and targets, both int64 in batches; val is the last rows.
  const std::string gpt = path("gpt.safetensors");
  save_safetensors(gpt, {{"inputs", from_vector<uint8_t>({1, 2, 3, 4, 5, 6, 7, 8}, {4, 2})},
                         {"targets", from_vector<int64_t>({2, 3, 4, 5, 6, 7, 8, 9}, {4, 2})}});
  TensorDataset g(gpt, {.val_fraction = 0.25});
  EXPECT_EQ(g.size(), 3);
  Batch gb = g.get(std::vector<int64_t>{2, 1});
  EXPECT_EQ(gb.inputs.dtype(), DType::int64);
  EXPECT_EQ(ints(gb.inputs), (std::vector<int64_t>{5, 6, 3, 4}));
  EXPECT_EQ(ints(gb.targets), (std::vector<int64_t>{6, 7, 4, 5}));
  TensorDataset gv = g.with_split(Split::val);
  EXPECT_EQ(gv.size(), 1);
  EXPECT_EQ(ints(gv.get(std::vector<int64_t>{0}).inputs), (std::vector<int64_t>{7, 8}));

  // In-memory tensors, float64 regression targets kept as they are.
  TensorDataset m(from_vector<double>({1, 2}, {2, 1}), from_vector<double>({3, 4}, {2, 1}));
  EXPECT_EQ(m.get(std::vector<int64_t>{1}).targets.to_vector<double>(), (std::vector<double>{4}));
}

TEST_F(DataFixture, TensorDatasetErrorsNameFileAndKeys) {
  const std::string file = path("bad.safetensors");
  save_safetensors(file,
                   {{"x", from_vector<float>({1, 2})}, {"targets", from_vector<int64_t>({0, 1})}});
  const std::string msg = error_of<IOError>([&] { TensorDataset{file}; });
  EXPECT_NE(msg.find("no tensor 'inputs'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("targets, x"), std::string::npos) << msg;
  TensorDataset renamed(file, {.inputs_key = "x"});
  EXPECT_EQ(renamed.size(), 2);

  save_safetensors(
      file, {{"inputs", from_vector<float>({1, 2, 3})}, {"targets", from_vector<int64_t>({0, 1})}});
  EXPECT_NE(error_of<IOError>([&] { TensorDataset{file}; }).find("3 examples"), std::string::npos);
  EXPECT_NE(
      error_of<IOError>([&] { TensorDataset{path("nope.safetensors")}; }).find("nope.safetensors"),
      std::string::npos);
  EXPECT_NE(error_of<ValueError>([&] {
              TensorDataset(from_vector<float>({1}), from_vector<float>({1}),
                            {.val_fraction = 0.5, .split = Split::val});
            }).find("val split"),
            std::string::npos);
  // Tensors passed in that do not fit are a bad argument, not a file problem; torch 1.13:
  //   TensorDataset(torch.zeros(3, 1), torch.zeros(2))  # AssertionError: Size mismatch between
  //   tensors
  const std::string mismatch = error_of<ValueError>([] {
    TensorDataset(from_vector<float>({1, 2, 3}, {3, 1}), from_vector<float>({1, 2}));
  });
  EXPECT_EQ(mismatch.find("(other error)"), std::string::npos) << mismatch;  // was an IOError
  EXPECT_NE(mismatch.find("'inputs' has 3 examples"), std::string::npos) << mismatch;
  EXPECT_NE(mismatch.find("'targets' has 2"), std::string::npos) << mismatch;
  //   TensorDataset(torch.zeros(()), torch.zeros(2))  # IndexError: Dimension specified as 0 ...
  const std::string scalar = error_of<ValueError>(
      [] { TensorDataset(from_vector<float>({1}).reshape({}), from_vector<float>({1})); });
  EXPECT_EQ(scalar.find("(other error)"), std::string::npos) << scalar;
  EXPECT_NE(scalar.find("expected (N, ...)"), std::string::npos) << scalar;
  TensorDataset d(from_vector<float>({1, 2}), from_vector<float>({1, 2}));
  EXPECT_NE(error_of<IndexError>([&] { d.get(std::vector<int64_t>{2}); }).find("out of range"),
            std::string::npos);
}

// ---- IDX images
// ----------------------------------------------------------------------------------

Bytes idx_file(uint32_t magic, const std::vector<uint32_t>& dims, const Bytes& data) {
  Bytes b;
  auto be32 = [&](uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
  };
  be32(magic);
  for (uint32_t d : dims) be32(d);
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

uint32_t crc32(const Bytes& data) {
  uint32_t c = 0xFFFFFFFFu;
  for (uint8_t byte : data) {
    c ^= byte;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

// A gzip member whose deflate stream is "stored" blocks (RFC 1951 BTYPE 00), built by hand so the
// test needs no compressor.
Bytes gzip_stored(const Bytes& data) {
  Bytes g = {0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3};
  size_t pos = 0;
  do {
    const size_t len = std::min<size_t>(data.size() - pos, 65535);
    const bool last = pos + len == data.size();
    g.push_back(last ? 1 : 0);
    g.push_back(static_cast<uint8_t>(len & 0xFF));
    g.push_back(static_cast<uint8_t>(len >> 8));
    g.push_back(static_cast<uint8_t>(~len & 0xFF));
    g.push_back(static_cast<uint8_t>((~len >> 8) & 0xFF));
    g.insert(g.end(), data.begin() + static_cast<std::ptrdiff_t>(pos),
             data.begin() + static_cast<std::ptrdiff_t>(pos + len));
    pos += len;
  } while (pos < data.size());
  for (uint32_t v : {crc32(data), static_cast<uint32_t>(data.size())})
    for (int s = 0; s < 32; s += 8) g.push_back(static_cast<uint8_t>(v >> s));
  return g;
}

struct IdxFixture {
  Bytes pixels, labels, images_file, labels_file;
};

IdxFixture make_idx(uint32_t n, uint32_t h, uint32_t w) {
  IdxFixture f;
  for (uint32_t i = 0; i < n * h * w; ++i)
    f.pixels.push_back(static_cast<uint8_t>((i * 37 + 11) % 256));
  for (uint32_t i = 0; i < n; ++i) f.labels.push_back(static_cast<uint8_t>((i * 3) % 10));
  f.images_file = idx_file(0x803, {n, h, w}, f.pixels);
  f.labels_file = idx_file(0x801, {n}, f.labels);
  return f;
}

TEST_F(DataFixture, IdxImageDatasetScalesPixelsAndReadsLabels) {
  const IdxFixture f = make_idx(6, 3, 4);
  const std::string images = write("train-images-idx3-ubyte", f.images_file);
  const std::string labels = write("train-labels-idx1-ubyte", f.labels_file);
  IdxImageDataset d(images, labels);
  EXPECT_EQ(d.size(), 6);
  EXPECT_EQ(d.height(), 3);
  EXPECT_EQ(d.width(), 4);
  Batch b = d.get(std::vector<int64_t>{5, 1});
  ASSERT_EQ(b.inputs.sizes(), (Shape{2, 1, 3, 4}));
  ASSERT_EQ(b.inputs.dtype(), DType::float32);
  const std::vector<float> px = b.inputs.to_vector<float>();
  for (int k = 0; k < 12; ++k) {
    EXPECT_EQ(px[k], static_cast<float>(f.pixels[5 * 12 + k]) / 255.0f) << k;
    EXPECT_EQ(px[12 + k], static_cast<float>(f.pixels[12 + k]) / 255.0f) << k;
  }
  EXPECT_EQ(ints(b.targets), (std::vector<int64_t>{5, 3}));

  IdxImageDataset flat(images, labels, {.flatten = true, .val_fraction = 0.5});
  EXPECT_EQ(flat.size(), 3);
  Batch fb = flat.with_split(Split::val).get(std::vector<int64_t>{0});
  EXPECT_EQ(fb.inputs.sizes(), (Shape{1, 12}));
  EXPECT_EQ(ints(fb.targets), (std::vector<int64_t>{9}));  // example 3
  EXPECT_EQ(fb.inputs.to_vector<float>()[0], static_cast<float>(f.pixels[36]) / 255.0f);

  // Paths from a directory or from the images file.
  EXPECT_EQ(IdxImageDataset::resolve_paths(dir_.string()), std::make_pair(images, labels));
  EXPECT_EQ(IdxImageDataset::resolve_paths(images), std::make_pair(images, labels));
  EXPECT_NE(error_of<IOError>([&] {
              IdxImageDataset::resolve_paths(dir_.string(), "t10k");
            }).find("t10k-images"),
            std::string::npos);
  // The images file alone (labels given apart): from a directory or as it is.
  EXPECT_EQ(IdxImageDataset::resolve_images(dir_.string()), images);
  EXPECT_EQ(IdxImageDataset::resolve_images(images), images);
  EXPECT_NE(error_of<IOError>([&] {
              IdxImageDataset::resolve_images(dir_.string(), "t10k");
            }).find("has no t10k-images-idx3-ubyte[.gz]"),
            std::string::npos);
}

TEST_F(DataFixture, IdxImageDatasetRejectsMalformedFiles) {
  const IdxFixture f = make_idx(4, 2, 2);
  const std::string images = write("i", f.images_file), labels = write("l", f.labels_file);
  std::string msg = error_of<IOError>([&] { IdxImageDataset(labels, labels); });
  EXPECT_NE(msg.find("magic 0x00000801, expected 0x00000803"), std::string::npos) << msg;
  Bytes truncated(f.images_file.begin(), f.images_file.end() - 1);
  msg = error_of<IOError>([&] { IdxImageDataset(write("t", truncated), labels); });
  EXPECT_NE(msg.find("(4, 2, 2) = 16 bytes of data, but the file holds 15"), std::string::npos)
      << msg;
  msg = error_of<IOError>([&] {
    IdxImageDataset(images, write("l3", idx_file(0x801, {3}, {1, 2, 3})));
  });
  EXPECT_NE(msg.find("4 images"), std::string::npos) << msg;
  EXPECT_NE(msg.find("3 labels"), std::string::npos) << msg;
  // Dimensions whose product is 2^64 wrapped to 0 and passed an empty file.
  msg = error_of<IOError>([&] {
    IdxImageDataset(write("wrap", idx_file(0x803, {1u << 22, 1u << 21, 1u << 21}, {})), labels);
  });
  EXPECT_NE(msg.find("(4194304, 2097152, 2097152) = more than 2^64 bytes of data, but the file "
                     "holds 0"),
            std::string::npos)
      << msg;
  msg = error_of<IOError>([&] { IdxImageDataset(write("s", Bytes{0, 0}), labels); });
  EXPECT_NE(msg.find("too short"), std::string::npos) << msg;
  msg = error_of<IOError>([&] { IdxImageDataset(images, path("absent")); });
  EXPECT_NE(msg.find("absent"), std::string::npos) << msg;
}

// A data file that is not a regular file is refused before it is opened: a FIFO blocked the open
// and /dev/zero read until memory ran out. /dev/null (a character device, but one that ends) stands
// for them here; fabric-train's tests run a FIFO and /dev/zero under a timeout.
TEST_F(DataFixture, DataFilesMustBeRegularFiles) {
  const IdxFixture f = make_idx(4, 2, 2);
  const std::string labels = write("l", f.labels_file);
  const std::vector<std::pair<std::string, std::function<void(const std::string&)>>> readers = {
      {"TextDataset", [](const std::string& p) { (void)TextDataset(p, {.block_size = 1}); }},
      {"TokenDataset", [](const std::string& p) { (void)TokenDataset(p, {.block_size = 1}); }},
      {"TensorDataset", [](const std::string& p) { (void)TensorDataset{p}; }},
      {"IDX", [&](const std::string& p) { (void)IdxImageDataset(p, labels); }}};
  for (const auto& [name, read] : readers) {
    std::string msg = error_of<IOError>([&] { read("/dev/null"); });
    EXPECT_NE(msg.find(name + ": /dev/null is a character device, expected a regular file"), std::string::npos) << msg;
    msg = error_of<IOError>([&] { read(dir_.string()); });
    EXPECT_NE(msg.find(name + ": " + dir_.string() + " is a directory, expected a regular file"), std::string::npos)
        << msg;
  }
}

TEST_F(DataFixture, IdxImageDatasetReadsGzipOrSaysHowToDecompress) {
  const IdxFixture f = make_idx(300, 16, 16);  // 76,800 pixel bytes: two stored deflate blocks
  const std::string images = write("train-images-idx3-ubyte.gz", gzip_stored(f.images_file));
  const std::string labels = write("train-labels-idx1-ubyte.gz", gzip_stored(f.labels_file));
  if (!gzip_supported()) {
    const std::string msg = error_of<IOError>([&] { IdxImageDataset(images, labels); });
    EXPECT_NE(msg.find("gunzip"), std::string::npos) << msg;
    GTEST_SKIP() << "this build has no zlib: .gz IDX files are reported, not read";
  }
  IdxImageDataset gz(images, labels);
  IdxImageDataset plain(write("p-images", f.images_file), write("p-labels", f.labels_file));
  ASSERT_EQ(gz.size(), 300);
  std::vector<int64_t> all(300);
  for (int64_t i = 0; i < 300; ++i) all[static_cast<size_t>(i)] = i;
  expect_same_batch(gz.get(all), plain.get(all), "gzip vs plain");
  EXPECT_EQ(IdxImageDataset::resolve_paths(dir_.string()), std::make_pair(images, labels));

  Bytes cut = gzip_stored(f.labels_file);
  cut.resize(cut.size() - 12);
  const std::string msg = error_of<IOError>([&] { IdxImageDataset(images, write("cut.gz", cut)); });
  EXPECT_NE(msg.find("truncated gzip"), std::string::npos) << msg;
  Bytes crc = gzip_stored(f.labels_file);
  crc[crc.size() - 8] ^= 1;
  EXPECT_NE(error_of<IOError>([&] { IdxImageDataset(images, write("crc.gz", crc)); }).find("gzip"),
            std::string::npos);
}

}  // namespace
}  // namespace fabric::data
