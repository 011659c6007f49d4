// Datasets for fabric-train and user code: character-level text, flat uint16 token files,
// safetensors (inputs, targets) and IDX images. Each hands out batches of (inputs, targets).
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace fabric::data {

// One batch; `auto& [x, y] = batch` binds inputs and targets.
struct Batch {
  Tensor inputs;
  Tensor targets;
};

// Which part of a dataset to use: with val_fraction f the last floor(n * f) items (characters,
// tokens or examples) are the validation split and the rest the training split, nanoGPT's layout
// (its train part is data[:int(n * 0.9)], so where n * f is not whole its validation part holds
// one item more than ours).
enum class Split { train, val };
std::string_view split_name(Split split);
Split split_from_name(std::string_view name);  // "train" | "val"; ValueError otherwise

// How a loader chooses items: indexed datasets are visited in epochs over a (shuffled) order of
// their examples; window datasets are sampled at random window starts, nanoGPT style.
enum class Access { indexed, windows };

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual Access access() const = 0;
  // indexed: the number of examples; windows: the number of valid window starts.
  virtual int64_t size() const = 0;
  // The examples (indexed) or windows starting at `indices` (each in [0, size())), stacked
  // along a new first dimension. IndexError for an index out of range.
  virtual Batch get(std::span<const int64_t> indices) const = 0;
  // How many items make one pass over the data: size() for indexed datasets, and for window
  // datasets the number of non-overlapping windows (tokens / block_size), which is what a loader
  // counts as a (nominal) epoch.
  virtual int64_t epoch_size() const { return size(); }
  // A one-line description for logs: kind, file, split and size.
  virtual std::string describe() const = 0;
};

// ---- character vocabulary ---------------------------------------------------------------------
// The sorted unique Unicode code points of a text; id i is the i-th smallest. Stored as the
// UTF-8 string of each character, so vocab.json is readable and ids survive any re-encoding.
class CharVocab {
 public:
  CharVocab() = default;
  // From the characters in id order: each must be one UTF-8 encoded code point, strictly
  // increasing. ValueError otherwise.
  explicit CharVocab(std::vector<std::string> chars);
  // The vocabulary of a UTF-8 text. ValueError (naming `what` and the byte offset) on bad UTF-8.
  static CharVocab from_text(std::string_view text, std::string_view what = "text");

  // vocab.json: {"kind": "char", "chars": ["\n", " ", "!", ...]} (written atomically).
  void save(const std::string& path) const;
  static CharVocab load(const std::string& path);  // IOError naming the file on any problem
  // The same JSON as text (e.g. to store inside a checkpoint); from_json raises IOError naming
  // `what` on any problem.
  std::string to_json() const;
  static CharVocab from_json(std::string_view json, std::string_view what = "<json>");

  int64_t size() const { return static_cast<int64_t>(chars_.size()); }
  const std::vector<std::string>& chars() const { return chars_; }
  const std::vector<char32_t>& code_points() const { return code_points_; }
  // The id of a code point, or -1 when it is not in the vocabulary.
  int64_t id_of(char32_t cp) const;

  // Text -> ids; ValueError naming the character and its position when one is not in the
  // vocabulary, or on bad UTF-8.
  std::vector<int64_t> encode(std::string_view text) const;
  // Ids -> text; ValueError for an id outside [0, size()).
  std::string decode(std::span<const int64_t> ids) const;
  std::string decode(const Tensor& ids) const;  // any integer tensor, read in row-major order

  friend bool operator==(const CharVocab& a, const CharVocab& b) {
    return a.code_points_ == b.code_points_;
  }

 private:
  void build_index();
  std::vector<std::string> chars_;
  std::vector<char32_t> code_points_;
  std::vector<int32_t>
      small_index_;  // code point -> id for code points below its size (-1: absent)
};

// ---- text: character-level windows
// ---------------------------------------------------------------
struct TextDatasetOptions {
  int64_t block_size = 128;  // T: inputs and targets are (B, T)
  double val_fraction = 0.0;
  Split split = Split::train;
  // Use this vocabulary (e.g. a run's vocab.json) instead of building one from the file; a
  // character of the file not in it is an IOError.
  std::optional<CharVocab> vocab = std::nullopt;
};

// A UTF-8 text file, encoded once to character ids. Batches are random windows of block_size+1
// ids: x = ids[i : i+T], y = ids[i+1 : i+T+1], both int64 (B, T).
class TextDataset : public Dataset {
 public:
  TextDataset(const std::string& path, TextDatasetOptions opts = {});

  Access access() const override { return Access::windows; }
  int64_t size() const override { return num_tokens() - block_size_; }
  Batch get(std::span<const int64_t> indices) const override;
  int64_t epoch_size() const override { return std::max<int64_t>(1, num_tokens() / block_size_); }
  std::string describe() const override;

  const CharVocab& vocab() const { return *vocab_; }
  int64_t block_size() const { return block_size_; }
  int64_t num_tokens() const { return end_ - begin_; }  // characters in this split
  Split split() const { return split_; }
  // The same file and vocabulary, other split (shares the encoded text).
  TextDataset with_split(Split split) const;

 private:
  TextDataset() = default;
  void set_split(Split split, double val_fraction);
  std::string path_;
  std::shared_ptr<const CharVocab> vocab_;
  std::shared_ptr<const std::vector<int32_t>> ids_;  // the whole file
  int64_t block_size_ = 0, begin_ = 0, end_ = 0;
  double val_fraction_ = 0;
  Split split_ = Split::train;
};

// ---- tokens: flat uint16 files
// -------------------------------------------------------------------
struct TokenDatasetOptions {
  int64_t block_size = 128;
  double val_fraction = 0.0;
  Split split = Split::train;
  int64_t vocab_size = 0;  // > 0: a batch holding an id >= vocab_size is a ValueError
};

// A flat binary file of little-endian uint16 token ids (nanoGPT's train.bin, llm.c's layout
// without a header), read window by window (pread: a file cut shorter during the run is an
// IOError, never SIGBUS); windows as TextDataset's, int64 (B, T).
class TokenDataset : public Dataset {
 public:
  TokenDataset(const std::string& path, TokenDatasetOptions opts = {});

  Access access() const override { return Access::windows; }
  int64_t size() const override { return num_tokens() - block_size_; }
  Batch get(std::span<const int64_t> indices) const override;
  int64_t epoch_size() const override { return std::max<int64_t>(1, num_tokens() / block_size_); }
  std::string describe() const override;

  int64_t block_size() const { return block_size_; }
  int64_t num_tokens() const { return end_ - begin_; }
  Split split() const { return split_; }
  TokenDataset with_split(Split split) const;  // shares the open file
  // The largest id in the whole file (both splits): vocab_size - 1 when none is given. Reads
  // every token, so call it once.
  int64_t max_token_id() const;

 private:
  TokenDataset() = default;
  void set_split(Split split, double val_fraction);
  struct TokenFile;
  std::string path_;
  std::shared_ptr<const TokenFile> file_;
  int64_t block_size_ = 0, begin_ = 0, end_ = 0, vocab_size_ = 0;
  double val_fraction_ = 0;
  Split split_ = Split::train;
};

// ---- examples held in tensors ----------------------------------------------------------------
struct TensorDatasetOptions {
  double val_fraction = 0.0;
  Split split = Split::train;
  std::string inputs_key = "inputs";
  std::string targets_key = "targets";
};

// `inputs` (N, ...) and `targets` (N, ...) of any numeric dtype; example i is row i of each.
// Batches keep floating dtypes and widen integer (and bool) ones to int64, which is what
// embeddings and cross_entropy take: integer inputs (N, T) + targets (N, T) feed a GPT.
class TensorDataset : public Dataset {
 public:
  // A safetensors file holding the two tensors (memory-mapped, rows copied per batch).
  TensorDataset(const std::string& path, TensorDatasetOptions opts = {});
  // Tensors in memory (copied to contiguous CPU tensors when they are not). ValueError for a
  // tensor without examples or different example counts (the file constructor: IOError).
  TensorDataset(Tensor inputs, Tensor targets, TensorDatasetOptions opts = {});

  Access access() const override { return Access::indexed; }
  int64_t size() const override { return end_ - begin_; }
  Batch get(std::span<const int64_t> indices) const override;
  std::string describe() const override;

  const Tensor& inputs() const { return inputs_; }  // all N examples, file dtype
  const Tensor& targets() const { return targets_; }
  Split split() const { return split_; }
  TensorDataset with_split(Split split) const;

 private:
  TensorDataset() = default;
  void init(const std::string& what, Tensor inputs, Tensor targets,
            const TensorDatasetOptions& opts, bool from_file);
  std::string what_;
  Tensor inputs_, targets_;
  int64_t begin_ = 0, end_ = 0;
  double val_fraction_ = 0;
  Split split_ = Split::train;
};

// ---- IDX images (MNIST, Fashion-MNIST)
// -------------------------------------------------------------
struct IdxImageDatasetOptions {
  bool flatten = false;  // inputs (B, H*W) for an MLP instead of (B, 1, H, W)
  double val_fraction = 0.0;
  Split split = Split::train;
};

// Whether this build reads gzip-compressed files (.gz IDX files); without it they are an IOError
// telling the user to gunzip them.
bool gzip_supported();

// An images file (magic 0x00000803: u8 (N, H, W)) and a labels file (0x00000801: u8 (N)), plain
// or gzip-compressed (detected from the bytes, not the name). Inputs float32 in [0, 1]
// (pixel / 255, as torchvision's ToTensor), targets int64.
class IdxImageDataset : public Dataset {
 public:
  IdxImageDataset(const std::string& images_path, const std::string& labels_path,
                  IdxImageDatasetOptions opts = {});
  // `path` is a directory holding `<prefix>-images-idx3-ubyte[.gz]` and the matching labels file,
  // or an images file whose name contains "images-idx3" (the labels file is the same name with
  // "labels-idx1"). Returns {images, labels}; IOError when they do not exist.
  static std::pair<std::string, std::string> resolve_paths(const std::string& path,
                                                           const std::string& prefix = "train");
  // The images file alone, for a labels file given separately: `path` itself, or the directory's
  // `<prefix>-images-idx3-ubyte[.gz]` (IOError when it has none).
  static std::string resolve_images(const std::string& path, const std::string& prefix = "train");

  Access access() const override { return Access::indexed; }
  int64_t size() const override { return end_ - begin_; }
  Batch get(std::span<const int64_t> indices) const override;
  std::string describe() const override;

  int64_t height() const { return height_; }
  int64_t width() const { return width_; }
  // Every label of the file (both splits), as read.
  const std::vector<uint8_t>& labels() const { return *labels_; }
  Split split() const { return split_; }
  IdxImageDataset with_split(Split split) const;

 private:
  IdxImageDataset() = default;
  std::string images_path_;
  std::shared_ptr<const std::vector<uint8_t>> pixels_, labels_;  // (N, H, W) and (N)
  int64_t n_ = 0, height_ = 0, width_ = 0, begin_ = 0, end_ = 0;
  bool flatten_ = false;
  double val_fraction_ = 0;
  Split split_ = Split::train;
};

// [begin, end) of `split` among n items (see Split). ValueError for a fraction outside [0, 1).
std::pair<int64_t, int64_t> split_range(int64_t n, double val_fraction, Split split);

}  // namespace fabric::data
