// Progress bar and log lines.
#include "runtime/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace fabric {

bool stdout_is_terminal() { return ::isatty(STDOUT_FILENO) == 1; }

Progress::Progress(std::ostream& out, int64_t first_step, int64_t total_steps, int64_t log_every, bool interactive,
                   std::string unit)
    : out_(out),
      first_step_(first_step),
      total_(total_steps),
      log_every_(std::max<int64_t>(1, log_every)),
      interactive_(interactive),
      unit_(std::move(unit)),
      start_(std::chrono::steady_clock::now()) {}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

double Progress::items_per_second() const {
  const double s = elapsed_seconds();
  return s > 0 ? double(items_) / s : 0.0;
}

std::string Progress::line(int64_t step, int64_t epoch, double loss, double lr) const {
  const double done = double(step - first_step_);
  const double secs = elapsed_seconds();
  const double eta = done > 0 && total_ > step ? secs / done * double(total_ - step) : 0.0;
  // Whole seconds as a 64-bit count, capped: a run without an epoch limit (2^63 steps) has an ETA
  // past any int, whose conversion would be undefined (it printed a negative one).
  const long long eta_s = static_cast<long long>(std::min(eta, 1e15));
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "step %lld/%lld  epoch %lld  loss %.4f  lr %.3g  %.0f %s/s  ETA %lldm%02llds",
                (long long)step, (long long)total_, (long long)epoch, loss, lr, items_per_second(),
                unit_.c_str(), eta_s / 60, eta_s % 60);
  return buf;
}

void Progress::update(int64_t step, int64_t epoch, double loss, double lr, int64_t items) {
  items_ += items;
  if (interactive_) {
    const int width = 24;
    const int filled = total_ > 0 ? int(std::lround(double(width) * double(step) / double(total_))) : 0;
    std::string bar(size_t(std::min(filled, width)), '#');
    bar.resize(size_t(width), '.');
    out_ << "\r[" << bar << "] " << line(step, epoch, loss, lr) << "\x1b[K" << std::flush;
    bar_shown_ = true;
  } else if (step % log_every_ == 0 || step == total_) {
    out_ << line(step, epoch, loss, lr) << "\n" << std::flush;
  }
}

void Progress::message(const std::string& text) {
  if (bar_shown_) out_ << "\r\x1b[K";
  out_ << text << "\n" << std::flush;
  bar_shown_ = false;
}

void Progress::finish() {
  if (bar_shown_) out_ << "\n" << std::flush;
  bar_shown_ = false;
}

}  // namespace fabric
