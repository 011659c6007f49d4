// CSVLogger.
#include "runtime/loggers.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/log_version.h"
#include "tensor/error.h"
#include "tensor/warning.h"

namespace fabric {
namespace {

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream ss(line);
  std::string cell;
  while (std::getline(ss, cell, ',')) out.push_back(cell);
  if (!line.empty() && line.back() == ',') out.emplace_back();
  return out;
}

// The shortest text that reads back as exactly v (Python's repr, as Lightning writes).
std::string format_value(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// A step cell as this logger writes it: an integer, nothing around it.
std::optional<int64_t> parse_step(const std::string& s) {
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
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
  if (fs::exists(file)) {
    warn("CSVLogger: " + file.parent_path().string() +
         " already holds a metrics.csv; it is replaced by this run's");
    fs::remove(file);
  }
  fs::create_directories(file.parent_path());
  prepared_ = true;
}

CSVLogger::CSVLogger(FromPath, std::string path, bool append, int64_t flush_every,
                     const std::vector<std::string>& columns)
    : path_(std::move(path)), flush_every_(std::max<int64_t>(1, flush_every)) {
  columns_.push_back("step");
  namespace fs = std::filesystem;
  bool kept = false;
  if (append && fs::exists(path_)) {
    std::ifstream in(path_);
    std::string line;
    // Lines as written here, or by an editor that ended them with "\r\n".
    auto next_line = [&] {
      if (!std::getline(in, line)) return false;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return true;
    };
    if (next_line()) {
      columns_ = split_csv_line(line);
      FABRIC_CHECK(std::find(columns_.begin(), columns_.end(), "step") != columns_.end(), IOError, "CSVLogger: ",
                   path_, " has no 'step' column (header: ", line, ")");
      // Every row this logger writes has a cell per column and an integer step; anything else is
      // not its file (or was edited), and rows under the wrong columns would go on silently.
      for (int64_t number = 2; next_line(); ++number) {
        if (line.empty()) continue;
        const auto cells = split_csv_line(line);
        FABRIC_CHECK(cells.size() == columns_.size(), IOError, "CSVLogger: ", path_, " line ", number, ": ",
                     cells.size(), " cells but the header has ", columns_.size(), " columns (",
                     line.substr(0, 80), ")");
        Row row;
        for (size_t i = 0; i < cells.size(); ++i)
          if (!cells[i].empty()) row[columns_[i]] = cells[i];
        const auto step = row.find("step");
        FABRIC_CHECK(step != row.end() && parse_step(step->second), IOError, "CSVLogger: ", path_, " line ", number,
                     ": step '", step == row.end() ? "" : step->second.substr(0, 40), "' is not an integer");
        rows_.push_back(std::move(row));
      }
      written_ = rows_.size();
      // A file from before the header was sorted (step first): rewritten in Lightning's order at
      // the next flush, its rows under the same column names.
      header_dirty_ = !std::is_sorted(columns_.begin(), columns_.end());
      std::sort(columns_.begin(), columns_.end());
      kept = true;
      file_is_ours_ = true;
    }
  } else {
    const auto parent = fs::path(path_).parent_path();
    if (!parent.empty()) fs::create_directories(parent);
  }
  if (!kept && !columns.empty()) {
    for (const auto& c : columns) add_column(c);
    rewrite();
  }
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
  Row row;
  for (const auto& [k, v] : metrics) {
    const std::string key = prefix_.empty() ? k : prefix_ + "-" + k;
    add_column(key);
    row[key] = format_value(v);
  }
  // Set last, as Lightning: a metric named "step" does not replace it.
  row["step"] = std::to_string(step ? *step : int64_t(rows_.size()));
  rows_.push_back(std::move(row));
  if (int64_t(rows_.size() - written_) >= flush_every_) flush();
}

void CSVLogger::log_hyperparams(const std::map<std::string, std::string>& params) {
  (void)params;
  throw NotImplementedError("The `CSVLogger` does not yet support logging hyperparameters.");
}

void CSVLogger::flush() {
  // Nothing logged: no file, and another's file at that path (rank 0's, seen from another rank) is
  // left alone.
  if (rows_.empty() && written_ == 0 && !file_is_ours_) return;
  if (header_dirty_) {
    rewrite();
  } else if (written_ < rows_.size()) {
    append_rows(written_);
  }
}

void CSVLogger::truncate_after(int64_t step) {
  std::vector<Row> kept;
  for (Row& row : rows_) {
    auto it = row.find("step");  // every row has an integer step (checked when read, set when logged)
    if (it != row.end() && parse_step(it->second).value_or(step) > step) continue;
    kept.push_back(std::move(row));
  }
  rows_ = std::move(kept);
  rewrite();
}

void CSVLogger::rewrite() {
  prepare_first_write();
  const std::string tmp = path_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    FABRIC_CHECK(out.good(), IOError, "CSVLogger: cannot write ", tmp);
    for (size_t i = 0; i < columns_.size(); ++i) out << (i ? "," : "") << columns_[i];
    out << "\n";
    for (const Row& row : rows_) {
      for (size_t i = 0; i < columns_.size(); ++i) {
        auto it = row.find(columns_[i]);
        out << (i ? "," : "") << (it == row.end() ? "" : it->second);
      }
      out << "\n";
    }
  }
  std::filesystem::rename(tmp, path_);
  written_ = rows_.size();
  header_dirty_ = false;
  file_is_ours_ = true;
}

void CSVLogger::append_rows(size_t from) {
  prepare_first_write();
  std::ofstream out(path_, std::ios::app);
  FABRIC_CHECK(out.good(), IOError, "CSVLogger: cannot append to ", path_);
  for (size_t r = from; r < rows_.size(); ++r) {
    for (size_t i = 0; i < columns_.size(); ++i) {
      auto it = rows_[r].find(columns_[i]);
      out << (i ? "," : "") << (it == rows_[r].end() ? "" : it->second);
    }
    out << "\n";
  }
  written_ = rows_.size();
}

}  // namespace fabric
