// Loggers that Fabric::log / log_dict write to. CSVLogger keeps Lightning's CSVLogger layout: a
// `step` column and one column per metric name, sorted by name (`step` among them, e.g.
// lr,step,train_loss); when a new name shows up the file is rewritten with the wider header, as
// Lightning does.
#pragma once
#include <concepts>
#include <cstdint>
#include <functional>
#include <iosfwd>
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
  // Lightning's Logger properties. root_dir: the directory that holds the versions
  // (root_dir/name); log_dir: the directory this logger writes into; version: that version's
  // directory name (version_N or the name given). "" where a logger has no such thing. Asking for
  // log_dir or version may choose the version (a read of root_dir), never creates anything.
  virtual std::string root_dir() const { return {}; }
  virtual std::string log_dir() const { return {}; }
  virtual std::string version() const { return {}; }
};

// Lightning's CSVLogger(root_dir, name, version, prefix, flush_logs_every_n_steps): the file is
// root_dir/name/version/metrics.csv.
struct CSVLoggerOptions {
  std::string root_dir;
  std::string name = "lightning_logs";  // empty: no such level
  // Empty: version_N with N one past the largest existing version_N (0 for the first); all digits:
  // version_<that number>; anything else: the directory name itself.
  std::string version;
  std::string prefix;  // metric names become "<prefix>-<name>"
  // Lightning buffers 100 rows; here each row reaches the file at once by default.
  int64_t flush_logs_every_n_steps = 1;
};

class CSVLogger : public Logger {
 public:
  // Lightning's layout. As Lightning's (whose experiment is made on first use, on rank 0 only),
  // nothing happens on disk before the first row is written: the version is chosen when first
  // needed (version(), log_dir(), path() or the first write), and an existing metrics.csv in that
  // directory (an explicit version) is replaced, with a warning on stderr, at the first write. So a
  // logger that never logs (every rank but 0 under Fabric) neither creates nor touches a file.
  explicit CSVLogger(const CSVLoggerOptions& options);
  // Writes to `path` (a metrics.csv); with append = true an existing file's rows and columns are
  // kept and new rows go after them (resuming a run; a file whose header is not sorted, as this
  // logger wrote it before, is rewritten sorted at the next flush). Without `columns` the file
  // appears with the first logged row, as Lightning's; with them (metric names besides `step`) a
  // file that is not kept is written with that header at once, so that it exists before the first
  // row.
  // (A template only so that CSVLogger({.root_dir = ...}) picks the options: g++ 12 also tries a
  // designated list against a std::string parameter.)
  template <class Path>
    requires std::convertible_to<Path, std::string>
  explicit CSVLogger(Path&& path, bool append = false, int64_t flush_every = 1,
                     const std::vector<std::string>& columns = {})
      : CSVLogger(FromPath{}, std::string(std::forward<Path>(path)), append, flush_every, columns) {}
  ~CSVLogger() override;
  std::string name() const override { return "csv"; }
  const std::string& path() const;
  // root_dir/name ("" with the path constructor); the directory metrics.csv is in; the version
  // directory's name ("" with the path constructor).
  std::string root_dir() const override;
  std::string log_dir() const override;
  std::string version() const override;
  // A row per call; without `step` its step is the number of rows logged before it, as Lightning.
  void log_metrics(const Metrics& metrics, std::optional<int64_t> step) override;
  // Lightning Fabric's CSVLogger has no hyperparameter file: NotImplementedError, as there.
  void log_hyperparams(const std::map<std::string, std::string>& params) override;
  // Writes the rows logged since the last write. A logger that has logged nothing writes nothing,
  // except to a file it keeps (append) or made (columns).
  void flush() override;
  // Drops the rows whose step is after `step` (a resumed run repeats the steps after its last
  // checkpoint) and rewrites the file.
  void truncate_after(int64_t step);

 private:
  struct FromPath {};
  CSVLogger(FromPath, std::string path, bool append, int64_t flush_every, const std::vector<std::string>& columns);
  using Row = std::map<std::string, std::string>;
  void rewrite(std::optional<int64_t> last_step = std::nullopt);
  void append_pending();
  std::vector<std::string> read_file_rows(const std::string& file,
                                          const std::function<void(Row&&)>& each,
                                          bool& unterminated) const;
  void write_row(std::ostream& out, const Row& row) const;
  void add_column(const std::string& name);
  // IOError naming the folder when path_'s folder can neither be found nor made.
  void create_parent_folders() const;
  std::string target_file() const;
  // Lightning's layout: the path, chosen once (no disk effects); then, before the first write, the
  // earlier file there replaced and the directories made.
  void resolve_path() const;
  void prepare_first_write();
  std::optional<CSVLoggerOptions> layout_;  // set by the Lightning-layout constructor
  mutable std::string path_;
  mutable std::string version_;
  bool prepared_ = false;      // the first write's preparation is done
  bool file_is_ours_ = false;  // a file this logger kept (append) or wrote
  std::string prefix_;
  int64_t flush_every_;
  std::vector<std::string> columns_;  // sorted, "step" among them
  // Rows logged but not yet in the file; those written are not kept in memory (a long run's
  // metrics would grow without bound), and are read back from the file for a rewrite.
  std::vector<Row> pending_;
  size_t written_ = 0;  // rows in the file
  size_t logged_ = 0;   // rows logged, counting those the kept file held (the default step)
  bool header_dirty_ = true;
};

}  // namespace fabric
