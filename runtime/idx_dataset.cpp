// IDX image files (MNIST, Fashion-MNIST): header parsing, gzip through zlib when the build links
// it (FABRIC_HAVE_ZLIB), and batches of float pixels in [0, 1] with int64 labels.
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/datasets.h"
#include "runtime/regular_file.h"
#include "tensor/factory.h"

#ifdef FABRIC_HAVE_ZLIB
#include <zlib.h>
#endif

namespace fabric::data {

namespace fs = std::filesystem;

namespace {

std::string hex(uint64_t v, int width) {
  std::ostringstream os;
  os << "0x" << std::hex << std::uppercase;
  os.width(width);
  os.fill('0');
  os << v;
  return os.str();
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  // Before opening: a FIFO would block the open, a character device (/dev/zero) never end.
  const std::string kind = non_regular_file_kind(path);
  FABRIC_CHECK(kind.empty(), IOError, "IDX: ", path, " is ", kind, ", expected a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IOError(detail::cat("IDX: cannot open ", path, ": ", std::strerror(errno)));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  FABRIC_CHECK(!in.bad(), IOError, "IDX: error reading ", path);
  return bytes;
}

}  // namespace

// ---- IDX images
// ----------------------------------------------------------------------------------

bool gzip_supported() {
#ifdef FABRIC_HAVE_ZLIB
  return true;
#else
  return false;
#endif
}

namespace {

bool is_gzip(const std::vector<uint8_t>& b) {
  return b.size() >= 2 && b[0] == 0x1F && b[1] == 0x8B;
}

std::vector<uint8_t> gunzip(const std::vector<uint8_t>& in, const std::string& path) {
#ifdef FABRIC_HAVE_ZLIB
  std::vector<uint8_t> out;
  if (in.size() >= 18) {  // ISIZE, the trailer's uncompressed size mod 2^32: a capacity hint
    const size_t n = in.size();
    out.reserve(uint32_t(in[n - 4]) | uint32_t(in[n - 3]) << 8 | uint32_t(in[n - 2]) << 16 |
                uint32_t(in[n - 1]) << 24);
  }
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK)
    throw IOError(detail::cat("IDX: ", path, ": zlib inflateInit2 failed"));
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in =
      static_cast<uInt>(in.size());  // IDX files are far below 4 GiB; checked by the caller
  uint8_t chunk[1 << 16];
  int rc = Z_OK;
  while (true) {
    zs.next_out = chunk;
    zs.avail_out = sizeof(chunk);
    rc = inflate(&zs, Z_NO_FLUSH);
    out.insert(out.end(), chunk, chunk + (sizeof(chunk) - zs.avail_out));
    if (rc == Z_STREAM_END) {
      if (zs.avail_in == 0) break;
      if (inflateReset(&zs) != Z_OK) break;  // a further gzip member (gzip allows concatenation)
      continue;
    }
    if (rc != Z_OK) break;
    if (zs.avail_in == 0 && zs.avail_out != 0) {
      rc = Z_BUF_ERROR;  // the input ended inside the stream
      break;
    }
  }
  const std::string msg = zs.msg ? zs.msg : "";
  inflateEnd(&zs);
  FABRIC_CHECK(rc == Z_STREAM_END, IOError, "IDX: ", path,
               ": corrupt or truncated gzip data (zlib error ", rc, msg.empty() ? "" : ": " + msg,
               ")");
  return out;
#else
  throw IOError(detail::cat("IDX: ", path,
                            " is gzip-compressed, but this build of fabric has no zlib: ",
                            "decompress it first (gunzip -k ", path, ") and pass the .ubyte file"));
#endif
}

struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> bytes;  // whole (decompressed) file; data follows the header
  size_t data_offset = 0;
};

// An IDX file of unsigned bytes with `ndims` dimensions (magic 0x0000 08 ndims, big-endian dims).
IdxArray read_idx(const std::string& path, int ndims, const char* role) {
  IdxArray a;
  a.bytes = read_bytes(path);
  FABRIC_CHECK(a.bytes.size() < (size_t{1} << 32) || !is_gzip(a.bytes), IOError, "IDX: ", path,
               " is too large");
  if (is_gzip(a.bytes)) a.bytes = gunzip(a.bytes, path);
  const auto& b = a.bytes;
  const uint32_t want = 0x00000800u | static_cast<uint32_t>(ndims);
  FABRIC_CHECK(b.size() >= 4, IOError, "IDX: ", path, " has ", b.size(),
               " bytes, too short for an IDX header");
  const uint32_t magic = uint32_t(b[0]) << 24 | uint32_t(b[1]) << 16 | uint32_t(b[2]) << 8 | b[3];
  FABRIC_CHECK(magic == want, IOError, "IDX: ", path, ": magic ", hex(magic, 8), ", expected ",
               hex(want, 8), " (", role, ": unsigned bytes, ", ndims, " dimensions)",
               b[0] == 0 && b[1] == 0 && b[3] != ndims ? "; wrong file for this role?" : "");
  a.data_offset = 4 + 4 * static_cast<size_t>(ndims);
  FABRIC_CHECK(b.size() >= a.data_offset, IOError, "IDX: ", path,
               " is truncated inside its header");
  // At most three 32-bit sizes: their product fits 128 bits (in 64 it can wrap to the file's size).
  unsigned __int128 count = 1;
  for (int d = 0; d < ndims; ++d) {
    const uint8_t* p = b.data() + 4 + 4 * d;
    const int64_t v = int64_t(p[0]) << 24 | int64_t(p[1]) << 16 | int64_t(p[2]) << 8 | p[3];
    a.dims.push_back(v);
    count *= static_cast<uint64_t>(v);
  }
  const uint64_t held = b.size() - a.data_offset;
  FABRIC_CHECK(count == held, IOError, "IDX: ", path, ": header says ", shape_str(a.dims), " = ",
               count >> 64 ? std::string("more than 2^64") : std::to_string(uint64_t(count)),
               " bytes of data, but the file holds ", held);
  return a;
}

}  // namespace

IdxImageDataset::IdxImageDataset(const std::string& images_path, const std::string& labels_path,
                                 IdxImageDatasetOptions opts)
    : images_path_(images_path),
      flatten_(opts.flatten),
      val_fraction_(opts.val_fraction),
      split_(opts.split) {
  IdxArray images = read_idx(images_path, 3, "images");
  IdxArray labels = read_idx(labels_path, 1, "labels");
  FABRIC_CHECK(images.dims[0] == labels.dims[0], IOError, "IDX: ", images_path, " holds ",
               images.dims[0], " images but ", labels_path, " holds ", labels.dims[0], " labels");
  n_ = images.dims[0], height_ = images.dims[1], width_ = images.dims[2];
  FABRIC_CHECK(n_ > 0 && height_ > 0 && width_ > 0, IOError, "IDX: ", images_path,
               " holds no images (shape ", shape_str(images.dims), ")");
  images.bytes.erase(images.bytes.begin(),
                     images.bytes.begin() + static_cast<std::ptrdiff_t>(images.data_offset));
  labels.bytes.erase(labels.bytes.begin(),
                     labels.bytes.begin() + static_cast<std::ptrdiff_t>(labels.data_offset));
  pixels_ = std::make_shared<const std::vector<uint8_t>>(std::move(images.bytes));
  labels_ = std::make_shared<const std::vector<uint8_t>>(std::move(labels.bytes));
  *this = with_split(split_);
}

namespace {
// `base` or `base.gz`, whichever is a regular file; "" when neither is.
std::string existing_idx_file(const fs::path& base) {
  for (const char* ext : {"", ".gz"}) {
    const fs::path p = base.string() + ext;
    if (fs::is_regular_file(p)) return p.string();
  }
  return "";
}
}  // namespace

std::string IdxImageDataset::resolve_images(const std::string& path, const std::string& prefix) {
  if (!fs::is_directory(path)) return path;
  const std::string images = existing_idx_file(fs::path(path) / (prefix + "-images-idx3-ubyte"));
  FABRIC_CHECK(!images.empty(), IOError, "IDX: directory ", path, " has no ", prefix,
               "-images-idx3-ubyte[.gz]");
  return images;
}

std::pair<std::string, std::string> IdxImageDataset::resolve_paths(const std::string& path,
                                                                   const std::string& prefix) {
  if (fs::is_directory(path)) {
    const std::string images = existing_idx_file(fs::path(path) / (prefix + "-images-idx3-ubyte"));
    const std::string labels = existing_idx_file(fs::path(path) / (prefix + "-labels-idx1-ubyte"));
    FABRIC_CHECK(!images.empty() && !labels.empty(), IOError, "IDX: directory ", path, " has no ",
                 prefix, "-images-idx3-ubyte[.gz] and ", prefix, "-labels-idx1-ubyte[.gz] pair");
    return {images, labels};
  }
  FABRIC_CHECK(fs::is_regular_file(path), IOError, "IDX: ", path, " does not exist");
  const std::string name = fs::path(path).filename().string();
  const size_t at = name.find("images-idx3");
  FABRIC_CHECK(at != std::string::npos, IOError, "IDX: cannot tell the labels file for ", path,
               ": its name has no 'images-idx3' to replace with 'labels-idx1'; pass a directory or "
               "both files");
  const std::string labels =
      (fs::path(path).parent_path() / (name.substr(0, at) + "labels-idx1" + name.substr(at + 11)))
          .string();
  FABRIC_CHECK(fs::is_regular_file(labels), IOError, "IDX: labels file ", labels, " for ", path,
               " does not exist");
  return {path, labels};
}

IdxImageDataset IdxImageDataset::with_split(Split split) const {
  IdxImageDataset d = *this;
  d.split_ = split;
  std::tie(d.begin_, d.end_) = split_range(n_, val_fraction_, split);
  FABRIC_CHECK(d.size() > 0, ValueError, "IdxImageDataset: the ", split_name(split), " split of ",
               images_path_, " is empty (", n_, " images, val_fraction ", val_fraction_, ")");
  return d;
}

Batch IdxImageDataset::get(std::span<const int64_t> indices) const {
  const auto B = static_cast<int64_t>(indices.size());
  const int64_t hw = height_ * width_;
  Tensor x =
      empty(flatten_ ? Shape{B, hw} : Shape{B, 1, height_, width_}, {.dtype = DType::float32});
  Tensor y = empty({B}, {.dtype = DType::int64});
  float* xp = x.data<float>();
  int64_t* yp = y.data<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    const int64_t i = indices[static_cast<size_t>(b)];
    FABRIC_CHECK(i >= 0 && i < size(), IndexError, "IdxImageDataset: example ", i,
                 " out of range [0, ", size(), ")");
    const uint8_t* px = pixels_->data() + (begin_ + i) * hw;
    for (int64_t k = 0; k < hw; ++k) xp[b * hw + k] = static_cast<float>(px[k]) / 255.0f;
    yp[b] = (*labels_)[static_cast<size_t>(begin_ + i)];
  }
  return {x, y};
}

std::string IdxImageDataset::describe() const {
  return detail::cat("images ", images_path_, " (", split_name(split_), ": ", size(), " images of ",
                     height_, "x", width_, flatten_ ? ", flattened" : "", ")");
}

}  // namespace fabric::data
