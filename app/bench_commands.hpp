// linformer bench: the machine's matmul ceiling, the paper's Table 3 (inference speed and memory
// of Linformer against full and tiled exact attention), a training-step benchmark and the bf16
// mode against float32 (speed and logit error), thread scaling and the largest trainable n.
#pragma once
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace linformer::app {

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
  std::string child_mode;       // "infer" or "train"
  std::string child_kind;
  int child_n = 0, child_k = 0;
};
CLI::App* add_bench_command(CLI::App& app, BenchOptions& o);
void run_bench(const BenchOptions& o, int threads);

}  // namespace linformer::app
