// CSVLogger.
#include "runtime/loggers.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tensor/error.h"

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

}  // namespace

CSVLogger::CSVLogger(std::string path, bool append, int64_t flush_every, const std::vector<std::string>& columns)
    : path_(std::move(path)), flush_every_(std::max<int64_t>(1, flush_every)) {
  columns_.push_back("step");
  namespace fs = std::filesystem;
  bool kept = false;
  if (append && fs::exists(path_)) {
    std::ifstream in(path_);
    std::string line;
    if (std::getline(in, line)) {
      columns_ = split_csv_line(line);
      FABRIC_CHECK(!columns_.empty() && columns_.front() == "step", IOError, "CSVLogger: ", path_,
                   " does not start with a 'step' column");
      while (std::getline(in, line)) {
        if (line.empty()) continue;
        const auto cells = split_csv_line(line);
        Row row;
        for (size_t i = 0; i < cells.size() && i < columns_.size(); ++i)
          if (!cells[i].empty()) row[columns_[i]] = cells[i];
        rows_.push_back(std::move(row));
      }
      written_ = rows_.size();
      header_dirty_ = false;
      kept = true;
    }
  } else {
    const auto parent = fs::path(path_).parent_path();
    if (!parent.empty()) fs::create_directories(parent);
  }
  if (!kept && !columns.empty()) {
    for (const auto& c : columns)
      if (std::find(columns_.begin(), columns_.end(), c) == columns_.end()) columns_.push_back(c);
    rewrite();
  }
}

CSVLogger::~CSVLogger() {
  try {
    flush();
  } catch (...) {  // a destructor must not throw; the last rows are lost only if the disk failed
  }
}

void CSVLogger::log_metrics(const Metrics& metrics, std::optional<int64_t> step) {
  Row row;
  if (step) row["step"] = std::to_string(*step);
  for (const auto& [k, v] : metrics) {
    if (std::find(columns_.begin(), columns_.end(), k) == columns_.end()) {
      columns_.push_back(k);
      header_dirty_ = true;
    }
    row[k] = format_value(v);
  }
  rows_.push_back(std::move(row));
  if (int64_t(rows_.size() - written_) >= flush_every_) flush();
}

void CSVLogger::flush() {
  if (rows_.empty() && written_ == 0 && !std::filesystem::exists(path_)) return;  // nothing logged: no file
  if (header_dirty_) {
    rewrite();
  } else if (written_ < rows_.size()) {
    append_rows(written_);
  }
}

void CSVLogger::truncate_after(int64_t step) {
  std::vector<Row> kept;
  for (Row& row : rows_) {
    auto it = row.find("step");
    if (it != row.end() && !it->second.empty() && std::stoll(it->second) > step) continue;
    kept.push_back(std::move(row));
  }
  rows_ = std::move(kept);
  rewrite();
}

void CSVLogger::rewrite() {
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
}

void CSVLogger::append_rows(size_t from) {
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
