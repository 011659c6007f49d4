// CSVLogger.
#include "runtime/loggers.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/log_version.h"
#include "tensor/error.h"
#include "tensor/utf8.h"
#include "tensor/warning.h"
#include "tensor/write_target.h"

namespace fabric {
namespace {

// One line of RFC 4180 CSV as Python's csv module writes it: a field in double quotes may hold
// commas and doubled quotes.
std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> out;
  std::string cell;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c != '"') {
        cell += c;
      } else if (i + 1 < line.size() && line[i + 1] == '"') {
        cell += '"';
        ++i;
      } else {
        quoted = false;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.push_back(std::move(cell));
      cell.clear();
    } else {
      cell += c;
    }
  }
  out.push_back(std::move(cell));
  return out;
}

// A field as Python's csv.DictWriter (QUOTE_MINIMAL) writes it: quoted when it holds a comma, a
// quote or a line break (a metric named "acc@1,5" must stay one column).
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// Python's repr of a float, which Lightning's csv writer puts in the file: the shortest digits
// that read back as exactly v, positional for decimal exponents -4..15 (with ".0" when integral:
// 3.0, 0.0001), else d.ddde+XX with at least two exponent digits (1e-05, 1.5e+16); inf, -inf, nan.
std::string format_value(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  const std::string sci(buf, r.ptr);  // [-]d[.ddd]e±XX
  const size_t e = sci.find('e');
  const bool negative = sci[0] == '-';
  std::string digits;
  for (size_t i = negative ? 1 : 0; i < e; ++i)
    if (sci[i] != '.') digits += sci[i];
  const int exp = std::stoi(sci.substr(e + 1));
  std::string out = negative ? "-" : "";
  if (exp >= -4 && exp < 16) {
    const int point = exp + 1;  // digits before the decimal point
    if (point <= 0) {
      out.append("0.").append(size_t(-point), '0').append(digits);
    } else if (size_t(point) >= digits.size()) {
      out.append(digits).append(size_t(point) - digits.size(), '0').append(".0");
    } else {
      out.append(digits, 0, size_t(point)).append(".").append(digits, size_t(point));
    }
    return out;
  }
  out.append(digits, 0, 1);
  if (digits.size() > 1) out.append(".").append(digits, 1);
  const int mag = exp < 0 ? -exp : exp;
  out.append(exp < 0 ? "e-" : "e+").append(mag < 10 ? "0" : "").append(std::to_string(mag));
  return out;
}

// A step cell as this logger writes it: an integer, nothing around it.
std::optional<int64_t> parse_step(const std::string& s) {
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// What a failed stream write says: errno's text when the write left one, else the usual cause.
std::string write_failure(int err) {
  return err != 0 ? std::strerror(err) : "the write failed (disk full?)";
}

// Whether the "step" cell of a row of `cells` under `columns` is an integer (a cell per column).
bool row_step_is_integer(const std::vector<std::string>& columns,
                         const std::vector<std::string>& cells) {
  const auto it = std::find(columns.begin(), columns.end(), "step");
  return it != columns.end() &&
         parse_step(cells[static_cast<size_t>(it - columns.begin())]).has_value();
}

}  // namespace

CSVLogger::CSVLogger(const CSVLoggerOptions& o)
    : layout_(o),
      prefix_(o.prefix),
      flush_every_(std::max<int64_t>(1, o.flush_logs_every_n_steps)) {
  FABRIC_CHECK(!o.root_dir.empty(), ValueError, "CSVLogger: root_dir is empty");
  columns_.push_back("step");
}

// root_dir/name/version/metrics.csv, the version chosen now; nothing is created or removed.
void CSVLogger::resolve_path() const {
  if (!layout_ || !path_.empty()) return;
  const std::string root = logger_root_dir(layout_->root_dir, layout_->name);
  version_ = resolve_log_version(root, layout_->version);
  path_ = (std::filesystem::path(root) / version_ / "metrics.csv").string();
}

const std::string& CSVLogger::path() const {
  resolve_path();
  return path_;
}

std::string CSVLogger::version() const {
  resolve_path();
  return version_;
}

std::string CSVLogger::root_dir() const {
  return layout_ ? logger_root_dir(layout_->root_dir, layout_->name) : std::string();
}

// Lightning's _ExperimentWriter, made at the first write: it warns about and deletes an earlier
// metrics.csv in the log directory, and creates that directory.
void CSVLogger::prepare_first_write() {
  if (!layout_ || prepared_) return;
  namespace fs = std::filesystem;
  resolve_path();
  const fs::path file(path_);
  std::error_code ec;
  if (fs::exists(file, ec)) {
    warn("CSVLogger: " + file.parent_path().string() +
         " already holds a metrics.csv; it is replaced by this run's");
    fs::remove(file, ec);
    if (ec) throw IOError("CSVLogger: cannot remove the earlier " + path_ + ": " + ec.message());
  }
  create_parent_folders();
  prepared_ = true;
}

void CSVLogger::create_parent_folders() const {
  const std::filesystem::path parent = std::filesystem::path(path_).parent_path();
  std::error_code ec;
  if (!parent.empty() && !std::filesystem::is_directory(parent, ec) &&
      !std::filesystem::create_directories(parent, ec))
    throw IOError("CSVLogger: cannot create the folder " + parent.string() + " for " + path_ +
                  (ec ? ": " + ec.message() : std::string()));
}

// The file the rows go to: path_, or what it links to (a link stays a link). IOError when it is
// something other than a regular file (a folder, a device), which a rewrite would replace.
std::string CSVLogger::target_file() const {
  return regular_write_target(path_, "CSVLogger", "the metrics CSV file");
}

CSVLogger::CSVLogger(FromPath, std::string path, bool append, int64_t flush_every,
                     const std::vector<std::string>& columns)
    : path_(std::move(path)), flush_every_(std::max<int64_t>(1, flush_every)) {
  columns_.push_back("step");
  namespace fs = std::filesystem;
  bool kept = false;
  int64_t rows = 0;  // only counted: rows written are not kept in memory
  bool unterminated = false;
  std::vector<std::string> header;
  if (append && fs::exists(path_))
    header = read_file_rows(
        path_, [&](Row&&) { ++rows; }, unterminated);
  if (!header.empty()) {  // an empty file is not kept: it is written anew
    columns_ = std::move(header);
    logged_ = written_ = rows;
    // A file from before the header was sorted (step first), or whose last row was cut off:
    // rewritten (sorted, in Lightning's order) at the next flush, its rows under the same column
    // names.
    header_dirty_ = unterminated || !std::is_sorted(columns_.begin(), columns_.end());
    std::sort(columns_.begin(), columns_.end());
    kept = true;
    file_is_ours_ = true;
  } else {
    create_parent_folders();
  }
  if (!kept && !columns.empty()) {
    for (const auto& c : columns) add_column(c);
    rewrite();
  }
}

// The rows of the metrics file `file` (as this logger writes it: a header with a "step" column,
// then a cell per column and an integer step on every row), returning its header (empty for an
// empty file). A last line
// without its newline sets `unterminated` (an append would continue that line); one that does not
// read as a row was cut off mid-write (a kill, a full disk) and is dropped. Anything else that is
// not a row is an IOError: rows under the wrong columns would go on silently.
std::vector<std::string> CSVLogger::read_file_rows(const std::string& file,
                                                   const std::function<void(Row&&)>& each,
                                                   bool& unterminated) const {
  std::ifstream in(file);
  FABRIC_CHECK(in.good(), IOError, "CSVLogger: cannot read ", file, ": ", std::strerror(errno));
  std::string line;
  // Lines as written here, or by an editor that ended them with "\r\n".
  auto next_line = [&] {
    if (!std::getline(in, line)) return false;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return true;
  };
  unterminated = false;
  if (!next_line()) return {};
  const std::vector<std::string> columns = split_csv_line(line);
  FABRIC_CHECK(std::find(columns.begin(), columns.end(), "step") != columns.end(), IOError,
               "CSVLogger: ", file, " has no 'step' column (header: ", line, ")");
  for (int64_t number = 2; next_line(); ++number) {
    if (line.empty()) continue;
    const auto cells = split_csv_line(line);
    unterminated = in.eof();
    if (unterminated && (cells.size() != columns.size() || !row_step_is_integer(columns, cells)))
      break;
    FABRIC_CHECK(cells.size() == columns.size(), IOError, "CSVLogger: ", file, " line ", number,
                 ": ", cells.size(), " cells but the header has ", columns.size(), " columns (",
                 line.substr(0, 80), ")");
    Row row;
    for (size_t i = 0; i < cells.size(); ++i)
      if (!cells[i].empty()) row[columns[i]] = cells[i];
    const auto step = row.find("step");
    FABRIC_CHECK(step != row.end() && parse_step(step->second), IOError, "CSVLogger: ", file,
                 " line ", number, ": step '", step == row.end() ? "" : step->second.substr(0, 40),
                 "' is not an integer");
    each(std::move(row));
  }
  return columns;
}

std::string CSVLogger::log_dir() const {
  return std::filesystem::path(path()).parent_path().string();
}

void CSVLogger::add_column(const std::string& name) {
  auto at = std::lower_bound(columns_.begin(), columns_.end(), name);
  if (at != columns_.end() && *at == name) return;
  columns_.insert(at, name);
  header_dirty_ = true;
}

CSVLogger::~CSVLogger() {
  try {
    flush();
  } catch (...) {  // a destructor must not throw; the last rows are lost only if the disk failed
  }
}

void CSVLogger::log_metrics(const Metrics& metrics, std::optional<int64_t> step) {
  // metrics.csv is UTF-8 text (Lightning's and pandas' readers decode it so); checked before any
  // column is added.
  // A line break in a name would split the header across lines of the file, which this logger
  // reads back line by line when the columns change.
  for (const auto& [k, v] : metrics) {
    FABRIC_CHECK(utf8_invalid_at(k) == k.size(), ValueError,
                 "CSVLogger::log_metrics: the metric name \"", k,
                 "\" is not valid UTF-8; metric names are UTF-8 text");
    FABRIC_CHECK(k.find_first_of("\r\n") == std::string::npos, ValueError,
                 "CSVLogger::log_metrics: the metric name \"", k,
                 "\" holds a line break; metric names are one line of text");
  }
  Row row;
  for (const auto& [k, v] : metrics) {
    const std::string key = prefix_.empty() ? k : prefix_ + "-" + k;
    add_column(key);
    row[key] = format_value(v);
  }
  // Set last, as Lightning: a metric named "step" does not replace it.
  row["step"] = std::to_string(step ? *step : int64_t(logged_));
  ++logged_;
  pending_.push_back(std::move(row));
  if (int64_t(pending_.size()) >= flush_every_) flush();
}

void CSVLogger::log_hyperparams(const std::map<std::string, std::string>& params) {
  (void)params;
  throw NotImplementedError("The `CSVLogger` does not yet support logging hyperparameters.");
}

void CSVLogger::flush() {
  // Nothing logged: no file, and another's file at that path (rank 0's, seen from another rank) is
  // left alone.
  if (pending_.empty() && !file_is_ours_) return;
  if (header_dirty_) {
    rewrite();
  } else if (!pending_.empty()) {
    append_pending();
  }
}

void CSVLogger::truncate_after(int64_t step) { rewrite(step); }

// The header and every row (those in the file, read back, then the pending ones; with `last_step`
// only rows up to that step), written to a temporary file that then replaces the file: a write
// that fails (a full disk, a file-size limit) leaves the earlier file and the pending rows as they
// were. Only a header change or a truncation rewrites, and the file's rows stream through one at a
// time: memory does not grow with the length of a run's metrics.csv (a resume cuts it back).
void CSVLogger::rewrite(std::optional<int64_t> last_step) {
  prepare_first_write();
  const std::string target = target_file();
  // Every row has an integer step (checked when read, set when logged).
  auto kept = [&](const Row& row) {
    return !last_step || parse_step(row.at("step")).value_or(*last_step) <= *last_step;
  };
  const std::string tmp = temporary_sibling(target);
  bool ok = false;
  int err = 0;
  int64_t rows = 0;
  try {
    errno = 0;
    std::ofstream out(tmp, std::ios::trunc);
    if (out.good()) {
      for (size_t i = 0; i < columns_.size(); ++i) out << (i ? "," : "") << csv_field(columns_[i]);
      out << "\n";
      auto write = [&](const Row& row) {
        if (!kept(row)) return;
        write_row(out, row);
        ++rows;
      };
      if (written_ > 0 && std::filesystem::exists(target)) {
        bool unterminated = false;
        read_file_rows(
            target, [&](Row&& row) { write(row); }, unterminated);
      }
      for (const Row& row : pending_) write(row);
      out.flush();
      ok = out.good();
    }
    err = errno;  // the failed open or write's (the stream keeps no cause of its own)
  } catch (...) {  // a row of the file that does not read: the file stays as it was
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw;
  }
  std::error_code ec;
  if (ok) std::filesystem::rename(tmp, target, ec);
  if (!ok || ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw IOError("CSVLogger: cannot write " + path_ + ": " +
                  (ec ? ec.message() : write_failure(err)) + "; the file is left as it was");
  }
  written_ = rows;
  pending_.clear();
  header_dirty_ = false;
  file_is_ours_ = true;
}

void CSVLogger::write_row(std::ostream& out, const Row& row) const {
  for (size_t i = 0; i < columns_.size(); ++i) {
    auto it = row.find(columns_[i]);
    out << (i ? "," : "") << (it == row.end() ? "" : csv_field(it->second));
  }
  out << "\n";
}

// The pending rows at the end of the file; a write that fails is cut back off (no half row stays)
// and they stay pending.
void CSVLogger::append_pending() {
  prepare_first_write();
  const std::string target = target_file();
  std::error_code ec;
  const auto size_before =
      std::filesystem::exists(target, ec) ? std::filesystem::file_size(target, ec) : 0;
  bool ok = false;
  int err = 0;
  {
    errno = 0;
    std::ofstream out(target, std::ios::app);
    if (out.good()) {
      for (const Row& row : pending_) write_row(out, row);
      out.flush();
      ok = out.good();
    }
    err = errno;
  }
  if (!ok) {
    std::error_code ignored;
    if (!ec) std::filesystem::resize_file(target, size_before, ignored);
    throw IOError("CSVLogger: cannot append to " + path_ + ": " + write_failure(err) +
                  "; its earlier rows are kept");
  }
  written_ += pending_.size();
  pending_.clear();
}

}  // namespace fabric
