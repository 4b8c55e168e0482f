// The benchmark suite's speed tables (bench/harness.hpp): the matmul ceiling, the paper's Table 3
// (with its FLOP models and the paper's own figures) and the training step.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include <fmt/core.h>
#include <omp.h>

#include "harness.hpp"
#include "linformer/ops.hpp"

namespace linformer::bench {

namespace {

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

}  // namespace

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
    const double gf = gflops(ops::matmul);
    json row = {{"M", s.M}, {"N", s.N}, {"K", s.K}, {"what", s.what}, {"gflops", gf}};
    if (bf16) {
      const double gb = gflops(ops::matmul_bf16);
      fmt::print("| {} x {} x {} | {} | {:.0f} | {:.0f} | {:.2f}x |\n", s.M, s.N, s.K, s.what, gf, gb, gb / gf);
      row["gflops_bf16"] = gb;
    } else {
      fmt::print("| {} x {} x {} | {} | {:.0f} |\n", s.M, s.N, s.K, s.what, gf);
    }
    out["ceiling"].push_back(row);
  }
}

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

}  // namespace linformer::bench
