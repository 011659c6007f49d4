// TensorBoardLogger: scalar metrics as TensorBoard event files (TFRecord frames of hand-encoded
// Event protobufs), so `tensorboard --logdir` reads a fabric run without TensorFlow or protobuf.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>

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

class TensorBoardLogger : public Logger {
 public:
  // Creates `log_dir` and a fresh `events.out.tfevents.<unix seconds>.<hostname>` in it (with a
  // `.<n>` suffix when a file of that name exists already), whose first record is the
  // "brain.Event:2" file version. Another logger on the same directory starts its own file, which
  // TensorBoard reads as the same run. The file is flushed after every `flush_every` events.
  explicit TensorBoardLogger(std::string log_dir, int64_t flush_every = 1);
  ~TensorBoardLogger() override;
  TensorBoardLogger(const TensorBoardLogger&) = delete;
  TensorBoardLogger& operator=(const TensorBoardLogger&) = delete;

  std::string name() const override { return "tensorboard"; }
  const std::string& log_dir() const { return log_dir_; }
  // The events file being written (after finalize(), the one last written).
  const std::string& file_path() const { return file_path_; }

  // One Event at `step` (0 when absent, as TensorBoard's writers do) holding one scalar
  // Summary.Value per metric. Values are stored as float32 (TensorBoard's `simple_value`), so a
  // value past float range becomes +-inf. After finalize() a new events file is opened.
  void log_metrics(const Metrics& metrics,
                   std::optional<int64_t> step) override;
  // Merged into `<log_dir>/hparams.yaml` (rewritten atomically), as Lightning's TensorBoardLogger
  // saves them; they are not written into the events file (no HParams-plugin summary).
  void log_hyperparams(const std::map<std::string, std::string>& params) override;
  void flush() override;
  // Flushes and closes the events file; safe to call more than once.
  void finalize() override;

 private:
  void open_new_file();
  void write_record(const std::string& data);
  std::string log_dir_;
  std::string file_path_;
  int64_t flush_every_;
  int64_t unflushed_ = 0;
  std::FILE* file_ = nullptr;
  std::map<std::string, std::string> hparams_;
};

}  // namespace fabric
