// linformer bench: the command line of the benchmark suite (include/linformer/bench.hpp, docs/BENCHMARKS.md),
// including the hidden options of the child process that each measurement runs in.
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "linformer/bench.hpp"
#include "linformer/config.hpp"
#include "registry.hpp"

namespace linformer::app {

namespace {

using bench::BenchOptions;

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

}  // namespace

void register_bench(CLI::App& app, Context& ctx) {
  auto o = std::make_shared<BenchOptions>();
  ctx.on_run(add_bench_command(app, *o), [o, &ctx] {
    const int threads = ctx.compute.apply();
    if (!o->child_mode.empty())
      bench::run_child(*o);
    else
      bench::run_suite(*o, threads);
  });
}

}  // namespace linformer::app
