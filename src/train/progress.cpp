#include "train/progress.hpp"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

namespace linformer {

namespace {
std::string format_duration(double s) {
  if (!(s >= 0) || s > 1e7) return "?";
  long t = (long)(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02d}m", t / 3600, (t % 3600) / 60);
  if (t >= 60) return fmt::format("{}m{:02d}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}
}  // namespace

Progress::Progress(int64_t total_steps, int64_t start_step, bool enabled)
    : total_(total_steps), start_(start_step), enabled_(enabled), tty_(isatty(fileno(stderr))) {
  t0_ = last_print_ = std::chrono::steady_clock::now();
}

void Progress::update(int64_t step, double loss, double lr, double tps) {
  if (!enabled_) return;
  using namespace std::chrono;
  const auto now = steady_clock::now();
  const double elapsed = duration<double>(now - t0_).count();
  const double eta = step > start_ ? elapsed / (step - start_) * (total_ - step) : -1;
  // Redraw at most 10 times a second on a terminal; a log line every 10 s (and at the end) otherwise.
  const double since = duration<double>(now - last_print_).count();
  if (tty_) {
    if (since < 0.1 && step != total_) return;
    const int width = 24;
    const int filled = (int)(width * step / std::max<int64_t>(total_, 1));
    std::string bar(filled, '#');
    bar.resize(width, '.');
    fmt::print(stderr, "\r[{}] step {}/{} loss {:.4f} lr {:.2e} {:.0f} tok/s ETA {}  ", bar, step, total_, loss, lr,
               tps, format_duration(eta));
    bar_open_ = true;
  } else {
    if (since < 10.0 && step != total_ && step != start_ + 1) return;
    fmt::print(stderr, "step {}/{} loss {:.4f} lr {:.2e} {:.0f} tok/s elapsed {} ETA {}\n", step, total_, loss, lr,
               tps, format_duration(elapsed), format_duration(eta));
  }
  std::fflush(stderr);
  last_print_ = now;
}

void Progress::message(const std::string& line) {
  if (!enabled_) return;
  if (bar_open_) fmt::print(stderr, "\n");
  bar_open_ = false;
  fmt::print(stderr, "{}\n", line);
  std::fflush(stderr);
}

void Progress::finish() {
  if (bar_open_) fmt::print(stderr, "\n");
  bar_open_ = false;
}

}  // namespace linformer
