// fabric-train's progress display: on a terminal one bar refreshed in place (step, epoch, loss,
// lr, throughput, ETA); otherwise one plain line every log_every steps, for log files.
#pragma once
#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace fabric {

class Progress {
 public:
  // interactive: refresh in place (pass stdout_is_terminal()).
  Progress(std::ostream& out, int64_t first_step, int64_t total_steps, int64_t log_every, bool interactive,
           std::string unit);
  // After optimizer step `step` (1-based count of steps done). items: samples or tokens of this step.
  void update(int64_t step, int64_t epoch, double loss, double lr, int64_t items);
  void message(const std::string& line);  // a line that must not be overwritten by the bar
  void finish();
  double items_per_second() const;
  double elapsed_seconds() const;

 private:
  std::string line(int64_t step, int64_t epoch, double loss, double lr) const;
  std::ostream& out_;
  int64_t first_step_, total_, log_every_;
  bool interactive_;
  std::string unit_;
  std::chrono::steady_clock::time_point start_;
  int64_t items_ = 0;
  bool bar_shown_ = false;
};

bool stdout_is_terminal();

}  // namespace fabric
