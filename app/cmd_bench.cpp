// linformer bench. Every measurement of a model runs in a forked child process, so that its peak
// resident memory (getrusage of the child) is its own and a configuration that runs out of
// memory cannot take the benchmark down. Times are medians over --repeats runs after a warm-up.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>
#include <omp.h>

#include "bench_commands.hpp"
#include "commands.hpp"
#include "core/fs.hpp"
#include "kernels/kernels.hpp"
#include "linformer/error.hpp"
#include "linformer/model.hpp"
#include "linformer/optimizer.hpp"
#include "linformer/precision.hpp"

using json = nlohmann::json;

namespace linformer::app {

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? NAN : v[v.size() / 2];
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

long current_rss_kb() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

std::string cpu_name() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

struct Measure {
  bool ok = false;
  std::string error;
  double seconds = NAN;     // median per run
  double static_mb = NAN;   // RSS after building the model, before any forward
  double peak_mb = NAN;     // peak RSS of the child
};

// Runs one measurement in a fresh process: this binary again, with the hidden --child-* options
// (fork + exec: a forked OpenMP process cannot safely use threads without exec). The child prints
// "RESULT <seconds> <static MB>"; wait4 gives its peak RSS.
// The child runs in bf16 mode when `bf16` (default: the mode of this process).
// threads: the child's OpenMP threads (0: this process's).
Measure in_child(const BenchOptions& o, const std::string& mode, const std::string& kind, int n, int k,
                 bool bf16 = matmul_precision() == MatmulPrecision::bf16, int threads = 0) {
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

// Bytes of the n x n probability buffers full attention needs: in training, P and dP of every
// (sequence, head) in every layer; in inference (inference-only mode), one block per thread.
double full_attention_gb(const BenchOptions& o, int n, bool training) {
  const double block = (double)n * n * 4.0;
  if (training) return 3.0 * o.layers * o.batch * o.heads * block / 1e9;
  return std::min(omp_get_max_threads(), o.batch * o.heads) * block / 1e9;
}

// Child side: returns {median seconds, RSS in MB before the first forward}.
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

// once: a single step, timed (no warm-up): for the largest-n search, where a step takes minutes.
std::pair<double, double> time_train_step(const BenchOptions& o, const std::string& kind, int n, int k,
                                          bool once = false) {
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

void run_ceiling(const BenchOptions& o, json& out) {
  const bool bf16 = bf16_supported();
  fmt::print("\n## Matmul ceiling (oneDNN: sgemm float32{}, {} threads)\n\n",
             bf16 ? "; bf16 operands with float32 accumulation, conversion included" : "", omp_get_max_threads());
  if (bf16)
    fmt::print("| shape (M x N x K) | what | f32 GFLOP/s | bf16 GFLOP/s | bf16 / f32 |\n|---|---|---|---|---|\n");
  else
    fmt::print("| shape (M x N x K) | what | f32 GFLOP/s |\n|---|---|---|\n");
  const int n = std::min(2048, o.n.empty() ? 512 : *std::max_element(o.n.begin(), o.n.end()));
  const int d = o.d_model, dh = o.d_model / o.heads, k = o.k.empty() ? 256 : o.k[0];
  struct Shape {
    int M, N, K;
    std::string what;
  };
  std::vector<Shape> shapes = {{n, d, d, "q/k/v/out maps"},
                               {n, o.d_ff, d, "FFN up"},
                               {n, d, o.d_ff, "FFN down"},
                               {k, d, n, "projection E X"},
                               {n, k, dh, "per-head scores (n x k)"}};
  for (const Shape& s : shapes) {
    std::vector<float> A((size_t)s.M * s.K, 0.5f), B((size_t)s.K * s.N, 0.25f), C((size_t)s.M * s.N);
    const double flop = 2.0 * s.M * s.N * s.K;
    int reps = std::max(3, (int)(2e10 / flop));
    reps = std::min(reps, 200);
    auto gflops = [&](auto&& product) {
      std::vector<double> t;
      product(false, false, s.M, s.N, s.K, 1.0f, A.data(), s.K, B.data(), s.N, 0.0f, C.data(), s.N);
      for (int r = 0; r < reps; ++r) {
        double t0 = now_s();
        product(false, false, s.M, s.N, s.K, 1.0f, A.data(), s.K, B.data(), s.N, 0.0f, C.data(), s.N);
        t.push_back(now_s() - t0);
      }
      return flop / median(t) / 1e9;
    };
    const double gf = gflops(kernels::matmul);
    json row = {{"M", s.M}, {"N", s.N}, {"K", s.K}, {"what", s.what}, {"gflops", gf}};
    if (bf16) {
      const double gb = gflops(kernels::matmul_bf16);
      fmt::print("| {} x {} x {} | {} | {:.0f} | {:.0f} | {:.2f}x |\n", s.M, s.N, s.K, s.what, gf, gb, gb / gf);
      row["gflops_bf16"] = gb;
    } else {
      fmt::print("| {} x {} x {} | {} | {:.0f} |\n", s.M, s.N, s.K, s.what, gf);
    }
    out["ceiling"].push_back(row);
  }
}

// FLOPs of one Linformer layer's forward as the bench runs it (input-first projection, one shared
// E = F, so E X is computed once): E X, the Q and output maps on n rows, the K and V maps on k rows,
// scores and context over k columns, and the FFN. Element-wise work (softmax, LayerNorm, GELU) is
// not counted.
double linformer_layer_flops(const BenchOptions& o, int n, int k) {
  const double d = o.d_model, f = o.d_ff;
  return 2.0 * k * n * d + 4.0 * n * d * d + 4.0 * k * d * d + 4.0 * n * k * d + 4.0 * n * d * f;
}

// FLOPs of one full-attention layer's forward: the four maps on n rows, scores and context over
// n columns, the FFN. Full over Linformer FLOPs is the speed-up both would show at the same
// GFLOP/s: what a CPU, where both run their matmuls at about the same rate, can expect.
double full_layer_flops(const BenchOptions& o, int n) {
  const double d = o.d_model, f = o.d_ff;
  return 8.0 * n * d * d + 4.0 * n * n * d + 4.0 * n * d * f;
}

// The paper's Table 3 (one V100, ../shared/PAPER.md): Linformer's inference speed-up over the
// Transformer at (n, k), NaN where the paper has no entry; and its memory saving at k = 128.
constexpr int kPaperN[] = {512, 1024, 2048, 4096, 8192, 16384, 32768, 65536};
double paper_speedup(int n, int k) {
  static const int ks[] = {128, 256, 512, 1024, 2048};
  static const double table[8][5] = {{1.5, 1.3, NAN, NAN, NAN},  {1.7, 1.6, 1.3, NAN, NAN},
                                     {2.6, 2.4, 2.1, 1.3, NAN},  {3.4, 3.2, 2.8, 2.2, 1.3},
                                     {5.5, 5.0, 4.4, 3.5, 2.1},  {8.6, 7.8, 7.0, 5.6, 3.3},
                                     {13, 12, 11, 8.8, 5.0},     {20, 18, 16, 14, 7.9}};
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 5; ++j)
      if (kPaperN[i] == n && ks[j] == k) return table[i][j];
  return NAN;
}
double paper_memory_ratio(int n) {
  static const double ratio[] = {1.7, 3.0, 6.1, 14, 28, 56, 56, 60};
  for (int i = 0; i < 8; ++i)
    if (kPaperN[i] == n) return ratio[i];
  return NAN;
}

// The matmul rate a layer could reach from the ceiling rows of this run: the FLOP-weighted
// harmonic mean of the maps (Q and output), FFN up and FFN down shapes. NaN without --ceiling.
double layer_ceiling_gflops(const json& out) {
  if (!out.contains("ceiling")) return NAN;
  double flops = 0, seconds = 0;
  for (const json& row : out["ceiling"]) {
    const std::string what = row["what"];
    const double weight = what == "q/k/v/out maps" ? 2.0 : (what == "FFN up" || what == "FFN down") ? 1.0 : 0.0;
    if (weight == 0.0) continue;
    const double f = weight * 2.0 * row["M"].get<double>() * row["N"].get<double>() * row["K"].get<double>();
    flops += f;
    seconds += f / row["gflops"].get<double>();
  }
  return seconds > 0 ? flops / seconds : NAN;
}

std::string fmt_time(double s) { return std::isnan(s) ? "-" : fmt::format("{:.1f} ms", s * 1e3); }
std::string fmt_mb(double mb) { return std::isnan(mb) ? "-" : fmt::format("{:.0f}", mb); }

void run_table3(const BenchOptions& o, json& out) {
  const double budget_mb = o.mem_budget_gb * 1024;
  fmt::print("\n## Table 3 on this CPU: whole-encoder inference, batch {}, {} layers, d {}, {} heads, FFN {}\n",
             o.batch, o.layers, o.d_model, o.heads, o.d_ff);
  fmt::print("Linformer uses layerwise sharing (as the paper's Table 3). Time: median of {} runs. "
             "Memory: peak RSS of the run (MB); 'batch ratio' is the paper's measure, the largest batch that fits "
             "{:.0f} GB for full attention over that for Linformer, from each run's memory per sequence.\n\n",
             o.repeats, o.mem_budget_gb);
  const double ceiling = layer_ceiling_gflops(out);
  fmt::print("Linformer GFLOP/s: {} layers x the FLOPs of a layer's matmuls / time{}.\n\n", o.layers,
             std::isnan(ceiling) ? ""
                                 : fmt::format("; 'of ceiling' against {:.0f} GFLOP/s, the ceiling of the layer's "
                                               "shapes measured above",
                                               ceiling));
  fmt::print("'paper': the paper's Table 3 on a V100 (speed-up; memory saving at k = 128). 'FLOP ratio': full "
             "attention's FLOPs over Linformer's, the speed-up at equal GFLOP/s.\n\n");
  fmt::print("| n | kind | k | time | speed-up vs full | paper | FLOP ratio | speed-up vs tiled | peak MB | "
             "batch ratio vs full | paper | GFLOP/s | of ceiling |\n");
  fmt::print("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (int n : o.n) {
    Measure full, tiled;
    auto max_batch = [&](const Measure& m) {
      if (!m.ok) return 0.0;
      const double per_seq = std::max(1.0, (m.peak_mb - m.static_mb) / o.batch);
      return std::floor((budget_mb - m.static_mb) / per_seq);
    };
    for (const std::string& kind : o.kinds) {
      if (kind == "linformer") continue;
      Measure m;
      if (kind == "full" && full_attention_gb(o, n, false) > o.mem_budget_gb) {
        m.error = fmt::format("does not fit: its n x n buffer alone is {:.1f} GB", full_attention_gb(o, n, false));
      } else {
        m = measure_inference(o, kind, n, 0);
      }
      (kind == "full" ? full : tiled) = m;
      const std::string vs_full = m.ok && full.ok ? fmt::format("{:.2f}x", full.seconds / m.seconds) : "-";
      fmt::print("| {} | {} | - | {} | {} |  |  | - | {} | {} |  |  |  |\n", n, kind, m.ok ? fmt_time(m.seconds) : m.error,
                 vs_full, fmt_mb(m.peak_mb), kind == "full" ? "1.00" : "-");
      out["table3"].push_back({{"n", n}, {"kind", kind}, {"ok", m.ok}, {"error", m.error}, {"seconds", m.seconds},
                               {"peak_mb", m.peak_mb}, {"static_mb", m.static_mb}});
      std::fflush(stdout);
    }
    if (std::find(o.kinds.begin(), o.kinds.end(), "linformer") == o.kinds.end()) continue;
    for (int k : o.k) {
      if (k >= n) continue;
      Measure m = measure_inference(o, "linformer", n, k);
      const double vs_full = full.ok && m.ok ? full.seconds / m.seconds : NAN;
      const double vs_tiled = tiled.ok && m.ok ? tiled.seconds / m.seconds : NAN;
      const double bf = max_batch(full), bl = max_batch(m);
      const bool full_failed = !full.ok && !full.error.empty();  // tried (not just left out with --kinds)
      const std::string ratio =
          bf > 0 && bl > 0 ? fmt::format("{:.1f}x", bl / bf) : (m.ok && full_failed ? "full does not fit" : "-");
      const double gflops = m.ok ? o.layers * o.batch * linformer_layer_flops(o, n, k) / m.seconds / 1e9 : NAN;
      const double paper = paper_speedup(n, k), paper_mem = k == 128 ? paper_memory_ratio(n) : NAN;
      const double flop_ratio = full_layer_flops(o, n) / linformer_layer_flops(o, n, k);
      auto times = [](double v) { return std::isnan(v) ? std::string("-") : fmt::format("{:.2g}x", v); };
      fmt::print("| {} | linformer | {} | {} | {} | {} | {:.2f}x | {} | {} | {} | {} | {} | {} |\n", n, k,
                 m.ok ? fmt_time(m.seconds) : m.error, std::isnan(vs_full) ? "-" : fmt::format("{:.2f}x", vs_full),
                 times(paper), flop_ratio, std::isnan(vs_tiled) ? "-" : fmt::format("{:.2f}x", vs_tiled),
                 fmt_mb(m.peak_mb), ratio, times(paper_mem),
                 std::isnan(gflops) ? "-" : fmt::format("{:.0f}", gflops),
                 std::isnan(gflops) || std::isnan(ceiling) ? "-" : fmt::format("{:.0f}%", 100 * gflops / ceiling));
      out["table3"].push_back({{"n", n}, {"kind", "linformer"}, {"k", k}, {"ok", m.ok}, {"error", m.error},
                               {"seconds", m.seconds}, {"peak_mb", m.peak_mb}, {"static_mb", m.static_mb},
                               {"speedup_vs_full", vs_full}, {"speedup_vs_tiled", vs_tiled},
                               {"batch_ratio_vs_full", bf > 0 && bl > 0 ? bl / bf : NAN}, {"gflops", gflops},
                               {"paper_speedup", paper}, {"paper_memory_ratio", paper_mem}, {"flop_ratio", flop_ratio},
                               {"share_of_ceiling", gflops / ceiling}});
      std::fflush(stdout);
    }
  }
}

void run_train_step(const BenchOptions& o, json& out) {
  const int k = o.k.empty() ? 256 : o.k[0];
  fmt::print("\n## Training step (forward, backward, clipping, AdamW), batch {}, {} layers, d {}; Linformer k = {}\n\n",
             o.batch, o.layers, o.d_model, k);
  fmt::print("| n | kind | step time | vs full | peak MB |\n|---|---|---|---|---|\n");
  for (int n : o.n) {
    double full_t = NAN;
    for (const std::string& kind : o.kinds) {
      Measure m;
      if (kind == "full" && full_attention_gb(o, n, true) > o.mem_budget_gb)
        m.error = fmt::format("does not fit ({:.1f} GB of n x n buffers)", full_attention_gb(o, n, true));
      else
        m = measure_train_step(o, kind, n, k);
      if (kind == "full" && m.ok) full_t = m.seconds;
      fmt::print("| {} | {} | {} | {} | {} |\n", n, kind, m.ok ? fmt_time(m.seconds) : m.error,
                 m.ok && !std::isnan(full_t) ? fmt::format("{:.2f}x", full_t / m.seconds) : "-", fmt_mb(m.peak_mb));
      out["train_step"].push_back({{"n", n}, {"kind", kind}, {"k", k}, {"ok", m.ok}, {"error", m.error},
                                   {"seconds", m.seconds}, {"peak_mb", m.peak_mb}});
      std::fflush(stdout);
    }
  }
}

// Relative error ||bf16 - f32|| / ||f32|| of the MLM logits of one random batch (same model,
// same weights), and the largest absolute difference over the largest absolute logit.
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

void run_bf16_compare(const BenchOptions& o, json& out) {
  if (!bf16_supported()) throw ConfigError("bench --bf16-compare: this CPU has no AVX512_BF16, so no bf16 mode");
  const int k = o.k.empty() ? 256 : o.k[0];
  fmt::print("\n## bf16 mode against float32: batch {}, {} layers, d {}, {} heads, FFN {}; Linformer k = {}\n\n",
             o.batch, o.layers, o.d_model, o.heads, o.d_ff, k);
  fmt::print("Same model and weights; time: median of {} runs. Logit error: ||bf16 - f32|| / ||f32|| over the MLM "
             "logits of one random batch (untrained weights), and max |difference| / max |logit|.\n\n",
             o.repeats);
  fmt::print("| n | kind | inference f32 | bf16 | speed-up | train step f32 | bf16 | speed-up | logit rel. error | max |\n");
  fmt::print("|---|---|---|---|---|---|---|---|---|---|\n");
  for (int n : o.n)
    for (const std::string& kind : o.kinds) {
      if (kind == "full" && full_attention_gb(o, n, true) > o.mem_budget_gb) {
        fmt::print("| {} | full | does not fit |  |  |  |  |  |  |  |\n", n);
        continue;
      }
      const Measure fi = in_child(o, "infer", kind, n, k, false), bi = in_child(o, "infer", kind, n, k, true);
      const Measure ft = in_child(o, "train", kind, n, k, false), bt = in_child(o, "train", kind, n, k, true);
      const auto [rel, max_rel] = bf16_logit_error(o, kind, n, k);
      auto ratio = [](const Measure& a, const Measure& b) {
        return a.ok && b.ok ? fmt::format("{:.2f}x", a.seconds / b.seconds) : std::string("-");
      };
      auto time = [](const Measure& m) { return m.ok ? fmt_time(m.seconds) : m.error; };
      fmt::print("| {} | {} | {} | {} | {} | {} | {} | {} | {:.2e} | {:.2e} |\n", n, kind, time(fi), time(bi),
                 ratio(fi, bi), time(ft), time(bt), ratio(ft, bt), rel, max_rel);
      out["bf16_compare"].push_back({{"n", n}, {"kind", kind}, {"k", k}, {"infer_f32_s", fi.seconds},
                                     {"infer_bf16_s", bi.seconds}, {"train_f32_s", ft.seconds},
                                     {"train_bf16_s", bt.seconds}, {"logit_rel_error", rel},
                                     {"logit_max_rel_error", max_rel}});
      std::fflush(stdout);
    }
}

// Speed-up of this process's thread count over one thread: inference and training step, per
// n and kind (Linformer at the first --k).
void run_scaling(const BenchOptions& o, json& out) {
  const int k = o.k.empty() ? 256 : o.k[0], threads = omp_get_max_threads();
  fmt::print("\n## Thread scaling: {} threads against 1, batch {}, {} layers, d {}; Linformer k = {}\n\n", threads,
             o.batch, o.layers, o.d_model, k);
  fmt::print("| n | kind | mode | 1 thread | {} threads | speed-up |\n|---|---|---|---|---|---|\n", threads);
  for (int n : o.n)
    for (const std::string& kind : o.kinds)
      for (const std::string mode : {"infer", "train"}) {
        if (kind == "full" && full_attention_gb(o, n, mode == "train") > o.mem_budget_gb) continue;
        const Measure one = in_child(o, mode, kind, n, k, matmul_precision() == MatmulPrecision::bf16, 1);
        const Measure many = in_child(o, mode, kind, n, k);
        const double ratio = one.ok && many.ok ? one.seconds / many.seconds : NAN;
        fmt::print("| {} | {} | {} | {} | {} | {} |\n", n, kind, mode == "infer" ? "inference" : "training step",
                   one.ok ? fmt_time(one.seconds) : one.error, many.ok ? fmt_time(many.seconds) : many.error,
                   std::isnan(ratio) ? "-" : fmt::format("{:.2f}x", ratio));
        out["scaling"].push_back({{"n", n}, {"kind", kind}, {"k", k}, {"mode", mode}, {"threads", threads},
                                  {"seconds_1", one.seconds}, {"seconds_n", many.seconds}, {"speedup", ratio}});
        std::fflush(stdout);
      }
}

// Largest n whose training step fits the memory budget, per kind: peak RSS of one step at three
// small n (the first three of --n), a fit through them (quadratic for full attention, whose
// n x n buffers dominate; linear for the others, least squares), the largest multiple of 256
// the fit allows, then one real step there to check (aiming lower while it does not fit).
// Sizes in MB of 1e6 bytes, as the budget (getrusage reports KiB).
void run_max_train_n(const BenchOptions& o, json& out) {
  const int k = o.k.empty() ? 256 : o.k[0];
  auto peak_mb = [](const Measure& m) { return m.peak_mb * 1.048576; };
  if (o.n.size() < 3) throw ConfigError("bench --max-train-n: give at least three --n values to fit memory against n");
  const std::vector<int> probe(o.n.begin(), o.n.begin() + 3);
  const double budget_mb = o.mem_budget_gb * 1000;
  fmt::print("\n## Largest trainable n in {:g} GB: training step, batch {}, {} layers, d {}; Linformer k = {}\n\n",
             o.mem_budget_gb, o.batch, o.layers, o.d_model, k);
  fmt::print("Peak RSS of one step at n = {}, {}, {}, fitted (quadratic for full attention, linear otherwise); the "
             "largest n (multiple of 256) the fit allows is then run once to check.\n\n",
             probe[0], probe[1], probe[2]);
  fmt::print("| kind | peak MB at n = {}, {}, {} | MB per 1k tokens (slope) | fitted largest n | checked n | "
             "peak MB there | step time |\n|---|---|---|---|---|---|---|\n",
             probe[0], probe[1], probe[2]);
  for (const std::string& kind : o.kinds) {
    std::vector<double> peak;
    for (int n : probe) {
      const Measure m = in_child(o, "train-once", kind, n, k);
      if (!m.ok) throw Error(fmt::format("bench --max-train-n: {} at n = {}: {}", kind, n, m.error));
      peak.push_back(peak_mb(m));
    }
    // Fit peak(n) = a + b n + c n^2: for full attention c from the three points, but never below
    // what its n x n buffers alone take (small probes can be all noise); c = 0 for the others;
    // then a + b n by least squares on what c leaves.
    double c = 0.0;
    const double x0 = probe[0], x1 = probe[1], x2 = probe[2];
    if (kind == "full") {
      const double d1 = (peak[1] - peak[0]) / (x1 - x0), d2 = (peak[2] - peak[1]) / (x2 - x1);
      c = std::max((d2 - d1) / (x2 - x0), full_attention_gb(o, 1, true) * 1000);
    }
    double mx = 0, my = 0, sxy = 0, sxx = 0;
    for (int i = 0; i < 3; ++i) {
      mx += probe[i] / 3.0;
      my += (peak[i] - c * probe[i] * probe[i]) / 3.0;
    }
    for (int i = 0; i < 3; ++i) {
      sxy += (probe[i] - mx) * (peak[i] - c * probe[i] * probe[i] - my);
      sxx += (probe[i] - mx) * (probe[i] - mx);
    }
    const double b = std::max(0.0, sxy / sxx), a = my - b * mx;
    auto fitted = [&](double n) { return a + b * n + c * n * n; };
    int n_fit = 256;
    while (fitted(n_fit + 256) <= budget_mb && n_fit < (1 << 22)) n_fit += 256;
    // Check; while it does not fit, aim again along the line through the largest probe and the
    // last attempt (a secant step), or at 80% after a crash.
    int n_check = n_fit;
    Measure m;
    for (int attempt = 0; attempt < 5; ++attempt) {
      m = in_child(o, "train-once", kind, n_check, k);
      const double got = peak_mb(m);
      if (m.ok && got <= budget_mb) break;
      double next = 0.8 * n_check;
      if (m.ok && got > peak[2] && n_check > x2) next = x2 + (budget_mb - peak[2]) / (got - peak[2]) * (n_check - x2) * 0.98;
      n_check = std::max(256, std::min((int)next, n_check - 256) / 256 * 256);
    }
    const bool ok = m.ok && peak_mb(m) <= budget_mb;
    fmt::print("| {} | {:.0f}, {:.0f}, {:.0f} | {:.1f} | {} | {} | {} | {} |\n", kind, peak[0], peak[1], peak[2],
               (fitted(x2) - fitted(x1)) / (x2 - x1) * 1000, n_fit, ok ? std::to_string(n_check) : "none fits",
               ok ? fmt::format("{:.0f}", peak_mb(m)) : "-", ok ? fmt_time(m.seconds) : m.error);
    out["max_train_n"].push_back({{"kind", kind}, {"k", k}, {"probe_n", probe}, {"probe_peak_mb", peak},
                                  {"fit", {a, b, c}}, {"fitted_n", n_fit}, {"checked_n", ok ? n_check : 0},
                                  {"checked_peak_mb", ok ? peak_mb(m) : NAN}, {"step_seconds", m.seconds},
                                  {"budget_gb", o.mem_budget_gb}});
    std::fflush(stdout);
  }
}

}  // namespace

CLI::App* add_bench_command(CLI::App& app, BenchOptions& o) {
  CLI::App* cmd = app.add_subcommand("bench", "Benchmarks: matmul ceiling, the paper's Table 3, training steps");
  cmd->add_flag("--ceiling", o.ceiling, "Measure the matmul GFLOP/s of the shapes the model uses");
  cmd->add_flag("--table3", o.table3, "Inference time and memory: Linformer vs full and tiled exact attention");
  cmd->add_flag("--train-step", o.train_step, "Training-step time and memory for each attention kind");
  cmd->add_flag("--bf16-compare", o.bf16_compare,
                "bf16 mode against float32: inference and training-step time, logit error (AVX512_BF16 CPUs)");
  cmd->add_flag("--scaling", o.scaling, "Thread scaling: inference and training step at --threads against 1 thread");
  cmd->add_flag("--max-train-n", o.max_train_n,
                "Largest n a training step fits in --mem-budget-gb, per kind (fit from the first three --n, then checked)");
  cmd->add_option("--n", o.n, "Sequence lengths")->delimiter(',')->capture_default_str();
  cmd->add_option("--k", o.k, "Linformer projected lengths")->delimiter(',')->capture_default_str();
  std::vector<std::string> kinds;  // every registered attention kind
  std::string kind_list;
  for (AttentionKind kind : attention_kinds()) {
    kinds.push_back(to_string(kind));
    kind_list += (kind_list.empty() ? "" : ", ") + kinds.back();
  }
  cmd->add_option("--kinds", o.kinds, "Attention kinds (" + kind_list + ")")
      ->delimiter(',')
      ->check(CLI::IsMember(kinds))
      ->capture_default_str();
  cmd->add_option("--d-model", o.d_model, "Model width")->capture_default_str();
  cmd->add_option("--heads", o.heads, "Attention heads")->capture_default_str();
  cmd->add_option("--d-ff", o.d_ff, "FFN width")->capture_default_str();
  cmd->add_option("--layers", o.layers, "Layers")->capture_default_str();
  cmd->add_option("--vocab", o.vocab, "Vocabulary size")->capture_default_str();
  cmd->add_option("--batch", o.batch, "Batch size")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--repeats", o.repeats, "Timed runs per measurement (median)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--mem-budget-gb", o.mem_budget_gb, "Memory budget: skips what cannot fit; batch-ratio basis")
      ->capture_default_str();
  cmd->add_option("--json", o.json, "Also write the results as JSON to this file")->type_name("FILE");
  // Internal options: one measurement in a child process.
  cmd->add_option("--child-mode", o.child_mode)->group("");
  cmd->add_option("--child-kind", o.child_kind)->group("");
  cmd->add_option("--child-n", o.child_n)->group("");
  cmd->add_option("--child-k", o.child_k)->group("");
  return cmd;
}

void run_bench(const BenchOptions& o, int threads) {
  const int nthreads = apply_threads(threads);
  if (!o.child_mode.empty()) {
    auto r = o.child_mode == "infer" ? time_inference(o, o.child_kind, o.child_n, o.child_k)
                                     : time_train_step(o, o.child_kind, o.child_n, o.child_k, o.child_mode == "train-once");
    fmt::print("RESULT {:.9f} {:.3f}\n", r.first, r.second);
    return;
  }
  if (!o.ceiling && !o.table3 && !o.train_step && !o.bf16_compare && !o.scaling && !o.max_train_n)
    throw ConfigError(
        "bench: choose at least one of --ceiling, --table3, --train-step, --bf16-compare, --scaling, --max-train-n");
  const bool bf16 = matmul_precision() == MatmulPrecision::bf16;
  fmt::print("# linformer bench\n\nCPU: {} ({} hardware threads); OpenMP threads: {}; matmul precision: {}\n",
             cpu_name(), std::thread::hardware_concurrency(), nthreads, bf16 ? "bf16 (--bf16)" : "float32");
  json out = {{"cpu", cpu_name()}, {"threads", nthreads}, {"precision", bf16 ? "bf16" : "f32"},
              {"config", {{"d_model", o.d_model}, {"heads", o.heads}, {"d_ff", o.d_ff}, {"layers", o.layers},
                          {"vocab", o.vocab}, {"batch", o.batch}, {"repeats", o.repeats}}}};
  if (o.ceiling) run_ceiling(o, out);
  if (o.table3) run_table3(o, out);
  if (o.train_step) run_train_step(o, out);
  if (o.bf16_compare) run_bf16_compare(o, out);
  if (o.scaling) run_scaling(o, out);
  if (o.max_train_n) run_max_train_n(o, out);
  if (!o.json.empty()) {
    core::write_file_atomic(o.json, out.dump(2) + "\n");
  }
}

}  // namespace linformer::app
