// The benchmark harness (bench/harness.hpp): measurements in child processes (their peak resident
// memory is their own, and a configuration that runs out of memory cannot take the benchmark
// down), the child side's timed runs, and the helpers the tables share. Times are medians over
// --repeats runs after a warm-up.
#include "harness.hpp"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>

#include <fmt/core.h>
#include <omp.h>

#include "linformer/error.hpp"
#include "linformer/model.hpp"
#include "linformer/optimizer.hpp"

namespace linformer::bench {

namespace {

long current_rss_kb() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

}  // namespace

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? NAN : v[v.size() / 2];
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string cpu_name() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

std::string fmt_time(double s) { return std::isnan(s) ? "-" : fmt::format("{:.1f} ms", s * 1e3); }
std::string fmt_mb(double mb) { return std::isnan(mb) ? "-" : fmt::format("{:.0f}", mb); }

Measure in_child(const BenchOptions& o, const std::string& mode, const std::string& kind, int n, int k, bool bf16,
                 int threads) {
  if (threads <= 0) threads = omp_get_max_threads();
  std::vector<std::string> args = {"/proc/self/exe", "--threads", std::to_string(threads), "bench",
                                   "--child-mode", mode, "--child-kind", kind, "--child-n", std::to_string(n),
                                   "--child-k", std::to_string(k), "--d-model", std::to_string(o.d_model),
                                   "--heads", std::to_string(o.heads), "--d-ff", std::to_string(o.d_ff),
                                   "--layers", std::to_string(o.layers), "--vocab", std::to_string(o.vocab),
                                   "--batch", std::to_string(o.batch), "--repeats", std::to_string(o.repeats)};
  if (bf16) args.insert(args.begin() + 3, "--bf16");
  int pipefd[2];
  if (pipe(pipefd) != 0) throw Error("bench: pipe failed");
  std::fflush(stdout);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) throw Error("bench: fork failed");
  if (pid == 0) {
    dup2(pipefd[1], STDOUT_FILENO);
    close(pipefd[0]);
    close(pipefd[1]);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  close(pipefd[1]);
  std::string text;
  char buf[256];
  ssize_t got;
  while ((got = read(pipefd[0], buf, sizeof buf)) > 0) text.append(buf, got);
  close(pipefd[0]);
  int status = 0;
  rusage ru{};
  wait4(pid, &status, 0, &ru);
  Measure m;
  m.peak_mb = ru.ru_maxrss / 1024.0;
  const size_t at = text.find("RESULT ");
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && at != std::string::npos &&
      std::sscanf(text.c_str() + at, "RESULT %lf %lf", &m.seconds, &m.static_mb) == 2) {
    m.ok = true;
  } else {
    m.error = WIFSIGNALED(status) ? fmt::format("killed by signal {} (out of memory?)", WTERMSIG(status))
                                  : fmt::format("failed (exit {})", WEXITSTATUS(status));
  }
  return m;
}

ModelConfig bench_config(const BenchOptions& o, const std::string& kind, int n, int k) {
  ModelConfig c;
  c.vocab_size = o.vocab;
  c.max_len = n;
  c.d_model = o.d_model;
  c.n_heads = o.heads;
  c.d_ff = o.d_ff;
  c.n_layers = o.layers;
  c.dropout = 0.1f;
  c.attention_dropout = 0.1f;
  c.attention = attention_kind_from_string(kind);
  c.k = {std::min(k, n)};
  c.sharing = Sharing::Layerwise;  // the paper's Table 3 setting
  c.validate();
  return c;
}

Batch random_batch(int B, int n, int vocab) {
  std::mt19937 rng(1);
  std::vector<std::vector<int32_t>> seqs(B, std::vector<int32_t>(n));
  for (auto& s : seqs)
    for (auto& id : s) id = (int32_t)(5 + rng() % (vocab - 5));
  return Batch::from_sequences(seqs);
}

double full_attention_gb(const BenchOptions& o, int n, bool training) {
  const double block = (double)n * n * 4.0;
  if (training) return 3.0 * o.layers * o.batch * o.heads * block / 1e9;
  return std::min(omp_get_max_threads(), o.batch * o.heads) * block / 1e9;
}

std::pair<double, double> time_inference(const BenchOptions& o, const std::string& kind, int n, int k) {
  {
    Model m(bench_config(o, kind, n, k));
    m.init(1);
    m.eval();
    m.set_inference_only(true);  // what inference runs as (predict, evaluate): nothing kept for backward
    Batch b = random_batch(o.batch, n, o.vocab);
    const double static_mb = current_rss_kb() / 1024.0;
    m.encode(b);  // warm-up: allocates the activation buffers
    std::vector<double> t;
    for (int r = 0; r < o.repeats; ++r) {
      double t0 = now_s();
      m.encode(b);
      t.push_back(now_s() - t0);
    }
    return {median(t), static_mb};
  }
}

std::pair<double, double> time_train_step(const BenchOptions& o, const std::string& kind, int n, int k,
                                          bool once) {
  {
    Model m(bench_config(o, kind, n, k));
    m.init(1);
    m.train();
    AdamW opt(m.params(), AdamWOptions{});
    Batch b = random_batch(o.batch, n, o.vocab);
    std::vector<int32_t> labels(b.ids.size(), kIgnoreIndex);
    for (size_t i = 0; i < labels.size(); i += 7) labels[i] = b.ids[i];  // ~15% labelled
    const double static_mb = current_rss_kb() / 1024.0;
    std::vector<double> t;
    for (int r = once ? 1 : 0; r <= (once ? 1 : o.repeats); ++r) {
      double t0 = now_s();
      m.zero_grad();
      m.forward_mlm(b, labels);
      m.backward();
      clip_grad_norm(m.params(), 1.0f);
      opt.step(1e-4f);
      if (r > 0) t.push_back(now_s() - t0);  // r == 0 is the warm-up
    }
    return {median(t), static_mb};
  }
}

Measure measure_inference(const BenchOptions& o, const std::string& kind, int n, int k) {
  return in_child(o, "infer", kind, n, k);
}
Measure measure_train_step(const BenchOptions& o, const std::string& kind, int n, int k) {
  return in_child(o, "train", kind, n, k);
}

std::pair<double, double> bf16_logit_error(const BenchOptions& o, const std::string& kind, int n, int k) {
  Model m(bench_config(o, kind, n, k));
  m.init(1);
  m.eval();
  Batch b = random_batch(o.batch, n, o.vocab);
  const size_t count = (size_t)o.batch * n * o.vocab;
  const MatmulPrecision before = matmul_precision();
  set_matmul_precision(MatmulPrecision::f32);
  const float* p = m.forward_mlm_logits(b);
  std::vector<float> ref(p, p + count);
  set_matmul_precision(MatmulPrecision::bf16);
  p = m.forward_mlm_logits(b);
  set_matmul_precision(before);
  double diff2 = 0, ref2 = 0, max_diff = 0, max_ref = 0;
  for (size_t i = 0; i < count; ++i) {
    const double d = (double)p[i] - ref[i];
    diff2 += d * d;
    ref2 += (double)ref[i] * ref[i];
    max_diff = std::max(max_diff, std::fabs(d));
    max_ref = std::max(max_ref, std::fabs((double)ref[i]));
  }
  return {std::sqrt(diff2 / ref2), max_diff / max_ref};
}

}  // namespace linformer::bench
