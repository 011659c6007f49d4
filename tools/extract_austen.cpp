// extract-austen: turns Debian's r-cran-janeaustenr R data (an R lazy-load database) into the
// plain-text char-LM corpus data/austen.txt, without R. Run by tools/build.sh after the build.
//
// Rdata.rdx (gzip) is an R-serialised list: `variables` maps each book to (offset, length) in
// Rdata.rdb, where a record is a 4-byte big-endian uncompressed length plus a zlib stream holding
// an R XDR-serialised character vector, one string per text line. Books are written in index order
// (alphabetical: Emma, Mansfield Park, Northanger Abbey, Persuasion, Pride and Prejudice, Sense
// and Sensibility), one text line per output line, in UTF-8.
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "tensor/error.h"

namespace fs = std::filesystem;
using fabric::IOError;
using fabric::ValueError;

namespace {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  FABRIC_CHECK(in, IOError, "extract-austen: cannot open ", path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Inflates a zlib or gzip stream (auto-detected). `size_hint` is only a starting capacity.
std::string inflate_stream(const unsigned char* data, size_t size, size_t size_hint,
                           const std::string& what) {
  z_stream zs{};
  FABRIC_CHECK(inflateInit2(&zs, 15 + 32) == Z_OK, IOError, "extract-austen: inflateInit2 failed");
  std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&zs, inflateEnd);
  // Deflate expands at most ~1032:1, so a corrupt hint cannot make us allocate gigabytes up front.
  size_t cap = size * 1032 + 64;
  std::string out(size_hint > 0 && size_hint < cap ? size_hint : std::min(size * 4 + 64, cap),
                  '\0');
  zs.next_in = const_cast<unsigned char*>(data);
  zs.avail_in = static_cast<uInt>(size);
  size_t produced = 0;
  for (;;) {
    if (produced == out.size()) out.resize(out.size() * 2);
    zs.next_out = reinterpret_cast<unsigned char*>(out.data() + produced);
    zs.avail_out = static_cast<uInt>(out.size() - produced);
    int rc = inflate(&zs, Z_NO_FLUSH);
    produced = out.size() - zs.avail_out;
    if (rc == Z_STREAM_END) break;
    FABRIC_CHECK(rc == Z_OK || (rc == Z_BUF_ERROR && zs.avail_out == 0), IOError,
                 "extract-austen: corrupt compressed data in ", what, " (zlib error ", rc, ": ",
                 zs.msg ? zs.msg : "truncated input", ")");
  }
  out.resize(produced);
  return out;
}

// An R object, reduced to what data files hold: vectors, lists, pairlists and their attributes.
struct RObject {
  int type = 254;                 // R SEXPTYPE; 254 = NULL
  std::vector<std::string> strs;  // STRSXP elements (UTF-8), SYMSXP/CHARSXP value in strs[0]
  std::vector<bool> na;           // STRSXP: element is NA
  std::vector<int64_t> ints;      // INTSXP / LGLSXP
  std::vector<double> reals;      // REALSXP
  std::vector<RObject> items;     // VECSXP / LISTSXP elements
  std::vector<std::string> tags;  // LISTSXP element tags
  std::vector<std::pair<std::string, RObject>> attrs;

  const RObject* attr(const std::string& name) const {
    for (const auto& [k, v] : attrs)
      if (k == name) return &v;
    return nullptr;
  }
};

std::string latin1_to_utf8(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else {
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  return out;
}

// Reads R's XDR serialisation format (versions 2 and 3), the subset data files use.
class RReader {
 public:
  RReader(const std::string& buf, std::string what) : buf_(buf), what_(std::move(what)) {}

  RObject read() {
    FABRIC_CHECK(buf_.size() >= 2 && buf_[0] == 'X' && buf_[1] == '\n', IOError,
                 "extract-austen: ", what_,
                 " is not R XDR serialisation (expected header \"X\\n\")");
    pos_ = 2;
    int version = read_int();
    FABRIC_CHECK(version == 2 || version == 3, IOError, "extract-austen: ", what_,
                 " has serialisation version ", version, ", expected 2 or 3");
    read_int();  // writer's R version
    read_int();  // minimal reader version
    if (version == 3) native_latin1_ = is_latin1_name(read_bytes(read_int()));
    return read_item();
  }

 private:
  static constexpr int kLatin1 = 1 << 2, kUtf8 = 1 << 3;  // CHARSXP encoding bits ("levels")

  static bool is_latin1_name(const std::string& enc) {
    return enc == "latin1" || enc == "ISO-8859-1" || enc == "ISO8859-1";
  }

  int32_t read_int() {
    need(4);
    auto* p = reinterpret_cast<const unsigned char*>(buf_.data() + pos_);
    pos_ += 4;
    return static_cast<int32_t>((uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) |
                                (uint32_t(p[2]) << 8) | uint32_t(p[3]));
  }

  double read_double() {
    uint64_t hi = static_cast<uint32_t>(read_int()), lo = static_cast<uint32_t>(read_int());
    uint64_t bits = (hi << 32) | lo;
    double d;
    std::memcpy(&d, &bits, sizeof d);
    return d;
  }

  std::string read_bytes(int64_t n) {
    FABRIC_CHECK(n >= 0, IOError, "extract-austen: negative length ", n, " in ", what_);
    need(static_cast<size_t>(n));
    std::string s = buf_.substr(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }

  // A vector length, checked against the bytes left (each element takes at least `min_bytes`), so
  // a corrupt length is reported instead of allocated.
  int64_t read_length(size_t min_bytes) {
    int64_t n = read_int();
    if (n == -1) {  // long vector
      int64_t hi = read_int(), lo = static_cast<uint32_t>(read_int());
      n = (hi << 32) | lo;
    }
    FABRIC_CHECK(n >= 0 && static_cast<uint64_t>(n) <= (buf_.size() - pos_) / min_bytes, IOError,
                 "extract-austen: ", what_, ": vector length ", n, " at byte ", pos_,
                 " exceeds the data left (", buf_.size() - pos_, " bytes)");
    return n;
  }

  void need(size_t n) const {
    FABRIC_CHECK(pos_ + n <= buf_.size(), IOError, "extract-austen: ", what_,
                 " is truncated at byte ", pos_, " (needs ", n, " more of ", buf_.size(), ")");
  }

  // Returns the string of a CHARSXP as UTF-8; `is_na` is set for NA_character_.
  std::string read_charsxp(int flags, bool* is_na) {
    FABRIC_CHECK((flags & 0xFF) == 9, IOError, "extract-austen: ", what_,
                 ": expected a CHARSXP (type 9), found type ", flags & 0xFF);
    int32_t n = read_int();
    *is_na = n == -1;
    if (*is_na) return {};
    std::string s = read_bytes(n);
    int levels = flags >> 12;
    bool latin1 = (levels & kLatin1) || (!(levels & kUtf8) && native_latin1_);
    return latin1 ? latin1_to_utf8(s) : s;
  }

  void read_attributes(RObject& obj) {
    RObject attrs = read_item();
    FABRIC_CHECK(attrs.type == 2, IOError, "extract-austen: ", what_,
                 ": attributes are not a pairlist (type ", attrs.type, ")");
    for (size_t i = 0; i < attrs.items.size(); ++i)
      obj.attrs.emplace_back(attrs.tags[i], std::move(attrs.items[i]));
  }

  RObject read_item() {
    // Data files nest a few levels: a deep nest is corrupt input, not a reason to overflow the
    // stack.
    FABRIC_CHECK(depth_ < 256, IOError, "extract-austen: ", what_,
                 ": objects nested over 256 deep");
    ++depth_;
    struct Leave {
      int& d;
      ~Leave() { --d; }
    } leave{depth_};
    int flags = read_int();
    int type = flags & 0xFF;
    bool has_attr = flags & (1 << 9), has_tag = flags & (1 << 10);
    RObject obj;
    obj.type = type;
    switch (type) {
      case 254:  // NILVALUE_SXP
        return obj;
      case 255: {  // REFSXP: a back-reference to a symbol read earlier
        int idx = flags >> 8;
        if (idx == 0) idx = read_int();
        FABRIC_CHECK(idx >= 1 && size_t(idx) <= refs_.size(), IOError, "extract-austen: ", what_,
                     ": reference ", idx, " out of range (", refs_.size(), " known)");
        return refs_[idx - 1];
      }
      case 1: {  // SYMSXP
        bool na = false;
        obj.strs.push_back(read_charsxp(read_int(), &na));
        refs_.push_back(obj);
        return obj;
      }
      case 2: {  // LISTSXP (pairlist): flattened into items/tags
        RObject* node = &obj;
        RObject head_attrs;
        for (;;) {
          if (has_attr) read_attributes(head_attrs);
          std::string tag;
          if (has_tag) {
            RObject t = read_item();
            tag = t.strs.empty() ? "" : t.strs[0];
          }
          node->tags.push_back(tag);
          node->items.push_back(read_item());
          int next = read_int();  // the CDR: another LISTSXP cell or the terminating NULL
          if ((next & 0xFF) == 254) break;
          FABRIC_CHECK((next & 0xFF) == 2, IOError, "extract-austen: ", what_,
                       ": pairlist tail of type ", next & 0xFF, " is not supported");
          has_attr = next & (1 << 9);
          has_tag = next & (1 << 10);
        }
        return obj;
      }
      case 9: {  // a bare CHARSXP
        bool na = false;
        obj.strs.push_back(read_charsxp(flags, &na));
        obj.na.push_back(na);
        return obj;
      }
      case 10:    // LGLSXP
      case 13: {  // INTSXP
        int64_t n = read_length(4);
        obj.ints.reserve(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) obj.ints.push_back(read_int());
        break;
      }
      case 14: {  // REALSXP
        int64_t n = read_length(8);
        for (int64_t i = 0; i < n; ++i) obj.reals.push_back(read_double());
        break;
      }
      case 16: {  // STRSXP
        int64_t n = read_length(8);
        obj.strs.reserve(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) {
          bool na = false;
          obj.strs.push_back(read_charsxp(read_int(), &na));
          obj.na.push_back(na);
        }
        break;
      }
      case 19:    // VECSXP
      case 20: {  // EXPRSXP
        int64_t n = read_length(4);
        for (int64_t i = 0; i < n; ++i) obj.items.push_back(read_item());
        break;
      }
      default:
        throw IOError(fabric::detail::cat("extract-austen: ", what_, ": R object type ", type,
                                          " is not supported (expected a data vector or list)"));
    }
    if (has_attr) read_attributes(obj);
    return obj;
  }

  const std::string& buf_;
  std::string what_;
  size_t pos_ = 0;
  int depth_ = 0;
  bool native_latin1_ = false;
  std::vector<RObject> refs_;
};

struct Book {
  std::string name;
  std::vector<std::string> lines;
  size_t na_lines = 0;
};

// Reads every variable of an R lazy-load database (`stem`.rdx + `stem`.rdb) as a character vector.
std::vector<Book> read_lazyload_db(const fs::path& rdx_path, const fs::path& rdb_path) {
  std::string rdx_raw = read_file(rdx_path);
  std::string rdx = inflate_stream(reinterpret_cast<const unsigned char*>(rdx_raw.data()),
                                   rdx_raw.size(), 0, rdx_path.string());
  RObject index = RReader(rdx, rdx_path.string()).read();
  const RObject* names = index.attr("names");
  FABRIC_CHECK(index.type == 19 && names && names->strs.size() == index.items.size(), IOError,
               "extract-austen: ", rdx_path, " is not a lazy-load index (a named list)");
  const RObject* variables = nullptr;
  int compressed = 1;
  for (size_t i = 0; i < names->strs.size(); ++i) {
    if (names->strs[i] == "variables") variables = &index.items[i];
    if (names->strs[i] == "compressed" && !index.items[i].ints.empty())
      compressed = static_cast<int>(index.items[i].ints[0]);
  }
  FABRIC_CHECK(compressed == 1, IOError, "extract-austen: ", rdx_path, " uses compression ",
               compressed, "; only zlib (1) is supported");
  const RObject* var_names = variables ? variables->attr("names") : nullptr;
  FABRIC_CHECK(var_names && var_names->strs.size() == variables->items.size(), IOError,
               "extract-austen: ", rdx_path, " has no named `variables` entry");

  std::string rdb = read_file(rdb_path);
  std::vector<Book> books;
  for (size_t v = 0; v < variables->items.size(); ++v) {
    const std::string& name = var_names->strs[v];
    const auto& loc = variables->items[v].ints;
    FABRIC_CHECK(loc.size() == 2, IOError, "extract-austen: index entry `", name,
                 "` should be (offset, length), has ", loc.size(), " values");
    auto offset = static_cast<size_t>(loc[0]), length = static_cast<size_t>(loc[1]);
    FABRIC_CHECK(length > 4 && offset + length <= rdb.size(), IOError, "extract-austen: record `",
                 name, "` at offset ", offset, " length ", length, " lies outside ", rdb_path, " (",
                 rdb.size(), " bytes)");
    auto* rec = reinterpret_cast<const unsigned char*>(rdb.data() + offset);
    size_t raw_len =
        (size_t(rec[0]) << 24) | (size_t(rec[1]) << 16) | (size_t(rec[2]) << 8) | rec[3];
    std::string what = rdb_path.string() + " record `" + name + "`";
    std::string raw = inflate_stream(rec + 4, length - 4, raw_len, what);
    FABRIC_CHECK(raw.size() == raw_len, IOError, "extract-austen: ", what, " inflates to ",
                 raw.size(), " bytes, its header says ", raw_len);
    RObject value = RReader(raw, what).read();
    FABRIC_CHECK(value.type == 16, IOError, "extract-austen: ", what, " is R type ", value.type,
                 ", expected a character vector (16)");
    Book book{name, std::move(value.strs), 0};
    for (bool na : value.na) book.na_lines += na;
    books.push_back(std::move(book));
  }
  return books;
}

// Accepts the unpacked .deb root, the janeaustenr package dir, its data/ dir, or Rdata.rdb itself.
fs::path find_rdb(const fs::path& src) {
  const fs::path candidates[] = {src, src / "Rdata.rdb", src / "data/Rdata.rdb",
                                 src / "janeaustenr/data/Rdata.rdb",
                                 src / "usr/lib/R/site-library/janeaustenr/data/Rdata.rdb"};
  for (const auto& c : candidates)
    if (c.filename() == "Rdata.rdb" && fs::is_regular_file(c)) return c;
  throw IOError(
      fabric::detail::cat("extract-austen: no janeaustenr Rdata.rdb under ", src,
                          " (run tools/install-deps.sh, which unpacks r-cran-janeaustenr)"));
}

size_t count_utf8_chars(const std::string& text, std::set<uint32_t>* distinct) {
  size_t n = 0;
  for (size_t i = 0; i < text.size();) {
    auto c = static_cast<unsigned char>(text[i]);
    int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    uint32_t cp = len == 1 ? c : c & (0x7F >> len);
    for (int k = 1; k < len && i + k < text.size(); ++k)
      cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    distinct->insert(cp);
    i += len;
    ++n;
  }
  return n;
}

int run(int argc, char** argv) {
  bool help = argc >= 2 && (std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help");
  if (help || argc < 2 || argc > 3) {
    (help ? std::cout : std::cerr)
        << "usage: extract-austen SRC [OUT]\n"
           "  SRC: the unpacked r-cran-janeaustenr .deb (e.g. data/janeaustenr) or its Rdata.rdb\n"
           "  OUT: the text file to write (default data/austen.txt)\n";
    return help ? 0 : 2;
  }
  fs::path rdb = find_rdb(argv[1]);
  fs::path rdx = fs::path(rdb).replace_extension(".rdx");
  fs::path out_path = argc == 3 ? fs::path(argv[2]) : fs::path("data/austen.txt");

  std::vector<Book> books = read_lazyload_db(rdx, rdb);
  FABRIC_CHECK(!books.empty(), ValueError, "extract-austen: ", rdx, " lists no books");
  std::string text;
  for (const auto& b : books) {
    for (const auto& line : b.lines) {
      text += line;
      text += '\n';
    }
  }
  std::set<uint32_t> distinct;
  size_t chars = count_utf8_chars(text, &distinct);

  // Written beside the target and renamed, so an interrupted run never leaves half a corpus.
  if (out_path.has_parent_path()) fs::create_directories(out_path.parent_path());
  fs::path tmp = out_path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    FABRIC_CHECK(out, IOError, "extract-austen: cannot write ", tmp);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    FABRIC_CHECK(out, IOError, "extract-austen: writing ", tmp, " failed (disk full?)");
  }
  fs::rename(tmp, out_path);

  for (const auto& b : books) {
    std::cout << "  " << b.name << ": " << b.lines.size() << " lines";
    if (b.na_lines) std::cout << " (" << b.na_lines << " NA, written as empty lines)";
    std::cout << "\n";
  }
  std::cout << "wrote " << out_path.string() << ": " << text.size() << " bytes, " << chars
            << " characters, " << distinct.size() << " distinct\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}
