// Loggers that Fabric::log / log_dict write to. CSVLogger keeps Lightning's CSVLogger layout: one
// `step` column then one column per metric name (in order of first appearance); when a new name
// shows up the file is rewritten with the wider header, as Lightning does.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace fabric {

// Named values of one logging call, in the caller's order (Python dicts keep insertion order,
// and Lightning's CSV columns follow it).
using Metrics = std::vector<std::pair<std::string, double>>;

class Logger {
 public:
  virtual ~Logger() = default;
  virtual std::string name() const = 0;
  virtual void log_metrics(const Metrics& metrics, std::optional<int64_t> step) = 0;
  virtual void log_hyperparams(const std::map<std::string, std::string>& params) { (void)params; }
  virtual void flush() {}
  virtual void finalize() { flush(); }
};

class CSVLogger : public Logger {
 public:
  // Writes to `path` (a metrics.csv); with append = true an existing file's rows and columns are
  // kept and new rows go after them (resuming a run). Without `columns` the file appears with the
  // first logged row, as Lightning's; with them (metric names, after `step`) a file that is not
  // kept is written with that header at once, so that it exists before the first row.
  explicit CSVLogger(std::string path, bool append = false, int64_t flush_every = 1,
                     const std::vector<std::string>& columns = {});
  ~CSVLogger() override;
  std::string name() const override { return "csv"; }
  const std::string& path() const { return path_; }
  void log_metrics(const Metrics& metrics, std::optional<int64_t> step) override;
  void flush() override;
  // Drops the rows whose step is after `step` (a resumed run repeats the steps after its last
  // checkpoint) and rewrites the file.
  void truncate_after(int64_t step);

 private:
  using Row = std::map<std::string, std::string>;
  void rewrite();
  void append_rows(size_t from);
  std::string path_;
  int64_t flush_every_;
  std::vector<std::string> columns_;  // "step" first
  std::vector<Row> rows_;
  size_t written_ = 0;     // rows already in the file
  bool header_dirty_ = true;
};

}  // namespace fabric
