// include/linformer/bench.hpp: the child side of one measurement, and the suite of tables.
#include "linformer/bench.hpp"

#include <thread>

#include <fmt/core.h>

#include "harness.hpp"
#include "linformer/error.hpp"
#include "linformer/files.hpp"

namespace linformer::bench {

void run_child(const BenchOptions& o) {
  auto r = o.child_mode == "infer" ? time_inference(o, o.child_kind, o.child_n, o.child_k)
                                   : time_train_step(o, o.child_kind, o.child_n, o.child_k, o.child_mode == "train-once");
  fmt::print("RESULT {:.9f} {:.3f}\n", r.first, r.second);
}

void run_suite(const BenchOptions& o, int threads) {
  if (!o.ceiling && !o.table3 && !o.train_step && !o.bf16_compare && !o.scaling && !o.max_train_n)
    throw ConfigError(
        "bench: choose at least one of --ceiling, --table3, --train-step, --bf16-compare, --scaling, --max-train-n");
  const bool bf16 = matmul_precision() == MatmulPrecision::bf16;
  fmt::print("# linformer bench\n\nCPU: {} ({} hardware threads); OpenMP threads: {}; matmul precision: {}\n",
             cpu_name(), std::thread::hardware_concurrency(), threads, bf16 ? "bf16 (--bf16)" : "float32");
  json out = {{"cpu", cpu_name()}, {"threads", threads}, {"precision", bf16 ? "bf16" : "f32"},
              {"config", {{"d_model", o.d_model}, {"heads", o.heads}, {"d_ff", o.d_ff}, {"layers", o.layers},
                          {"vocab", o.vocab}, {"batch", o.batch}, {"repeats", o.repeats}}}};
  if (o.ceiling) run_ceiling(o, out);
  if (o.table3) run_table3(o, out);
  if (o.train_step) run_train_step(o, out);
  if (o.bf16_compare) run_bf16_compare(o, out);
  if (o.scaling) run_scaling(o, out);
  if (o.max_train_n) run_max_train_n(o, out);
  if (!o.json.empty()) {
    write_file_atomic(o.json, out.dump(2) + "\n");
  }
}

}  // namespace linformer::bench
