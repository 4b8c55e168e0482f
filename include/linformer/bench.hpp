// The benchmark suite behind `linformer bench` (docs/BENCHMARKS.md): the machine's matmul ceiling,
// the paper's Table 3 (inference speed and memory of Linformer against full and tiled exact
// attention), a training-step benchmark, the bf16 mode against float32 (speed and logit error),
// thread scaling and the largest trainable n. Built as a small library on the public API only
// (include/linformer/; its sources in bench/, linformer_bench_lib, beside liblinformer and not
// installed with it), linked by the `linformer` program, whose `bench` subcommand
// (app/cmd_bench.cpp) declares these options.
//
// Every measurement of a model runs in a child process: the running program again, as
// `/proc/self/exe --threads N [--bf16] bench --child-mode ... --child-kind ... --child-n ...
// --child-k ... --d-model ... --heads ... --d-ff ... --layers ... --vocab ... --batch ... --repeats ...`,
// so a program linking this library must offer that command line and answer it with run_child.
#pragma once
#include <string>
#include <vector>

namespace linformer::bench {

struct BenchOptions {
  bool ceiling = false, table3 = false, train_step = false, bf16_compare = false;
  bool scaling = false;      // this many threads against one
  bool max_train_n = false;  // the largest n a training step fits in the memory budget, per kind
  std::vector<int> n = {512, 1024, 2048, 4096};
  std::vector<int> k = {128, 256};
  std::vector<std::string> kinds = {"full", "tiled", "linformer"};
  int d_model = 768, heads = 12, d_ff = 3072, layers = 12, vocab = 8000, batch = 1;
  int repeats = 3;
  double mem_budget_gb = 20.0;  // for the largest-batch-that-fits ratio and to skip what cannot fit
  std::string json;             // also write the results as JSON here
  // Internal: one measurement in a child process (the benchmark runs itself once per point).
  std::string child_mode;       // "infer", "train" or "train-once"
  std::string child_kind;
  int child_n = 0, child_k = 0;
};

// The child side: one measurement (child_mode, child_kind, child_n, child_k), printed as
// "RESULT <median seconds> <MB resident before the first forward>".
void run_child(const BenchOptions& o);
// The tables chosen (at least one; ConfigError otherwise), printed as Markdown on standard output
// and, with o.json, written as JSON. `threads`: the OpenMP threads this process runs with.
void run_suite(const BenchOptions& o, int threads);

}  // namespace linformer::bench
