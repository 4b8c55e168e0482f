// Training progress: a one-line bar redrawn in place on a terminal (step, loss, lr, tokens/s,
// ETA); plain log lines every so often when stderr is not a terminal (CI, files).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace linformer {

class Progress {
 public:
  // enabled = false: prints nothing (the ranks of a data-parallel job other than rank 0).
  Progress(int64_t total_steps, int64_t start_step, bool enabled = true);
  void update(int64_t step, double loss, double lr, double tokens_per_s);
  void message(const std::string& line);  // printed on its own line
  void finish();

 private:
  int64_t total_, start_;
  bool enabled_, tty_;
  bool bar_open_ = false;
  std::chrono::steady_clock::time_point t0_, last_print_;
};

}  // namespace linformer
