// Inside the benchmark suite (include/linformer/bench.hpp): the child-process measurement harness and the
// helpers every table uses (bench/harness.cpp), and the tables themselves (bench/tables.cpp,
// bench/jobs.cpp). Not part of the library's API.
#pragma once
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "linformer/batch.hpp"
#include "linformer/config.hpp"
#include "linformer/precision.hpp"
#include "linformer/bench.hpp"

namespace linformer::bench {

using json = nlohmann::json;

double median(std::vector<double> v);
double now_s();  // steady clock, seconds
std::string cpu_name();
std::string fmt_time(double s);  // "12.3 ms", "-" for NaN
std::string fmt_mb(double mb);   // "123", "-" for NaN

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
                 bool bf16 = matmul_precision() == MatmulPrecision::bf16, int threads = 0);
Measure measure_inference(const BenchOptions& o, const std::string& kind, int n, int k);
Measure measure_train_step(const BenchOptions& o, const std::string& kind, int n, int k);

// The benchmarked model: the options' sizes, attention `kind`, Linformer k = min(k, n) with
// layerwise sharing (the paper's Table 3 setting).
ModelConfig bench_config(const BenchOptions& o, const std::string& kind, int n, int k);
Batch random_batch(int B, int n, int vocab);
// Bytes (GB) of the n x n probability buffers full attention needs: in training, P and dP of every
// (sequence, head) in every layer; in inference (inference-only mode), one block per thread.
double full_attention_gb(const BenchOptions& o, int n, bool training);

// Child side: {median seconds, RSS in MB before the first forward}. once: a single step, timed
// (no warm-up): for the largest-n search, where a step takes minutes.
std::pair<double, double> time_inference(const BenchOptions& o, const std::string& kind, int n, int k);
std::pair<double, double> time_train_step(const BenchOptions& o, const std::string& kind, int n, int k,
                                          bool once = false);
// Relative error ||bf16 - f32|| / ||f32|| of the MLM logits of one random batch (same model,
// same weights), and the largest absolute difference over the largest absolute logit.
std::pair<double, double> bf16_logit_error(const BenchOptions& o, const std::string& kind, int n, int k);

// The tables; each prints itself and adds its rows to `out`.
void run_ceiling(const BenchOptions& o, json& out);
void run_table3(const BenchOptions& o, json& out);
void run_train_step(const BenchOptions& o, json& out);
void run_bf16_compare(const BenchOptions& o, json& out);
void run_scaling(const BenchOptions& o, json& out);
void run_max_train_n(const BenchOptions& o, json& out);

}  // namespace linformer::bench
