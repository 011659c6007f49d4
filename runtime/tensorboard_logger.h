// TensorBoardLogger: scalar metrics as TensorBoard event files (TFRecord frames of hand-encoded
// Event protobufs), so `tensorboard --logdir` reads a fabric run without TensorFlow or protobuf.
#pragma once
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "runtime/loggers.h"

namespace fabric {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum TFRecord frames carry.
// `crc` is a finished CRC of earlier bytes, so crc32c(b, nb, crc32c(a, na)) == crc32c(a ++ b).
// Uses the SSE4.2 crc32 instruction where the build targets it, the table otherwise.
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);
// The slicing-by-8 table version, always compiled, so it is tested on every machine.
uint32_t crc32c_table(const void* data, size_t n, uint32_t crc = 0);
// TFRecord's masked form: ((crc >> 15) | (crc << 17)) + 0xa282ead8, so a CRC stored inside the data
// it covers does not checksum to a fixed value.
uint32_t masked_crc32c(const void* data, size_t n);

// Lightning's TensorBoardLogger(root_dir, name, version, prefix, sub_dir): the events files go in
// root_dir/name/version[/sub_dir].
struct TensorBoardLoggerOptions {
  std::string root_dir;
  std::string name = "lightning_logs";  // empty: no such level
  // Empty: version_N with N one past the largest existing version_N (0 for the first); all digits:
  // version_<that number>; anything else: the directory name itself.
  std::string version;
  std::string sub_dir;  // empty: none; else one more level below the version (Lightning's sub_dir)
  std::string prefix;   // metric names become "<prefix>-<name>"
  int64_t flush_every = 1;  // events between flushes of the file
};

class TensorBoardLogger : public Logger {
 public:
  // Lightning's layout. As Lightning's (whose SummaryWriter is made on first use, on rank 0 only),
  // constructing one does nothing on disk: the version is chosen when first needed (version(),
  // log_dir() or the first write), and the directory and events file appear with the first
  // log_metrics (log_hyperparams makes the directory for hparams.yaml). So the logger every rank
  // builds under Fabric leaves no empty events file behind on ranks that never log.
  explicit TensorBoardLogger(const TensorBoardLoggerOptions& options);
  // Events files in `log_dir` itself, with the same laziness: at the first log_metrics, `log_dir`
  // is created and a fresh `events.out.tfevents.<unix seconds>.<hostname>` opened in it (with a
  // `.<n>` suffix when a file of that name exists already), whose first record is the
  // "brain.Event:2" file version. Another logger on the same directory starts its own file, which
  // TensorBoard reads as the same run. The file is flushed after every `flush_every` events.
  // (A template only so that TensorBoardLogger({.root_dir = ...}) picks the options: g++ 12 also
  // tries a designated list against a std::string parameter.)
  template <class Path>
    requires std::convertible_to<Path, std::string>
  explicit TensorBoardLogger(Path&& log_dir, int64_t flush_every = 1)
      : TensorBoardLogger(FromDir{}, std::string(std::forward<Path>(log_dir)), flush_every) {}
  ~TensorBoardLogger() override;
  TensorBoardLogger(const TensorBoardLogger&) = delete;
  TensorBoardLogger& operator=(const TensorBoardLogger&) = delete;

  std::string name() const override { return "tensorboard"; }
  // root_dir/name ("" with the log_dir constructor).
  std::string root_dir() const override;
  // root_dir/name/version[/sub_dir], or the directory given.
  std::string log_dir() const override;
  // The version directory's name ("" with the log_dir constructor).
  std::string version() const override;
  // The events file being written (after finalize(), the one last written); "" until the first
  // log_metrics opens one, since its name carries the time it was opened.
  const std::string& file_path() const { return file_path_; }

  // One Event at `step` (0 when absent, as TensorBoard's writers do) holding one scalar
  // Summary.Value per metric. Values are stored as float32 (TensorBoard's `simple_value`), so a
  // value past float range becomes +-inf. Metric names get the options' prefix ("<prefix>-<name>").
  // The first call opens the events file; after finalize() the next call opens a new one.
  void log_metrics(const Metrics& metrics,
                   std::optional<int64_t> step) override;
  // A SessionLog START event at `step`: a run resumed from an earlier step writes one, so that
  // TensorBoard drops the points an interrupted run had logged at `step` and after (as
  // torch.utils.tensorboard's add_event of a SessionLog.START does) instead of showing both.
  void log_session_start(int64_t step);
  // Merged into `<log_dir>/hparams.yaml` (rewritten atomically), as Lightning's TensorBoardLogger
  // saves them; they are not written into the events file (no HParams-plugin summary).
  void log_hyperparams(const std::map<std::string, std::string>& params) override;
  // Flushes the events file; nothing when none is open.
  void flush() override;
  // Flushes and closes the events file; safe to call more than once, and creates nothing when
  // nothing was logged.
  void finalize() override;

 private:
  struct FromDir {};
  TensorBoardLogger(FromDir, std::string log_dir, int64_t flush_every);
  // Chooses the version once (no disk effects); then log_dir_ is set.
  void resolve_log_dir() const;
  void create_log_dir();
  void open_new_file();
  void write_record(const std::string& data);
  std::optional<TensorBoardLoggerOptions> layout_;  // set by the Lightning-layout constructor
  mutable std::string log_dir_;
  mutable std::string version_;
  std::string prefix_;
  std::string file_path_;
  int64_t flush_every_;
  int64_t unflushed_ = 0;
  std::FILE* file_ = nullptr;
  std::map<std::string, std::string> hparams_;
};

}  // namespace fabric
