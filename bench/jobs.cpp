// The benchmark suite's comparison jobs (bench/harness.hpp): bf16 against float32, thread scaling,
// and the largest n a training step fits in the memory budget.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include <fmt/core.h>
#include <omp.h>

#include "harness.hpp"
#include "linformer/error.hpp"

namespace linformer::bench {

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

}  // namespace linformer::bench
