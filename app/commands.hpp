// The `linformer` command's subcommands. Each has an options struct, a function that declares
// its command-line options on a CLI11 subcommand, and a function that runs it. main.cpp wires
// them together; a subcommand throws (linformer::Error or std::exception) on failure.
#pragma once
#include <cstdint>
#include <string>

namespace CLI {
class App;
class Validator;
}

namespace linformer {
struct RunSettings;
}

namespace linformer::app {


// Declares `--threads N` and `--bf16` on `app` (the command itself and every compute subcommand
// share one value). 0 threads keeps OpenMP's default (OMP_NUM_THREADS or all cores).
void add_threads_option(CLI::App& app, int& threads);
// Applies the values chosen with --threads (omp_set_num_threads) and --bf16 (matmul precision;
// a ConfigError on a CPU without bf16) and returns the thread count that parallel regions will use.
int apply_threads(int threads);
// With --resume, a run keeps its stored options: every option given on `cmd` other than --resume,
// --steps, --threads and --bf16 is an error naming it, `command` and `kept_in` (where the options
// are kept), rather than silently ignored. `cmd` may be null (library callers).
void refuse_options_with_resume(const CLI::App* cmd, const std::string& command, const std::string& kept_in);
// Validator of an integer option's lower bound, with a short message ("--steps: must be at least
// 1, not 0"; "'x' is not an integer").
CLI::Validator integer_at_least(long long min);
// Declares the training options pretrain and finetune share (RunSettings: --lr, --warmup, --end-lr,
// --power, --beta1, --beta2, --eps, --weight-decay, --clip, --save-every, --log-every, --keep);
// --steps, --eval-every and --seed stay with each command, whose help says what they mean there.
void add_run_settings_options(CLI::App& cmd, RunSettings& s);

// linformer init --config C.json --seed S --out M.safetensors
struct InitOptions {
  std::string config;
  uint64_t seed = 0;
  std::string out;
};
CLI::App* add_init_command(CLI::App& app, InitOptions& opt);
void run_init(const InitOptions& opt);

// linformer forward --model M.safetensors --ids IDS --out OUT.safetensors
struct ForwardOptions {
  std::string model;
  std::string ids;
  std::string out;
  int repeat = 1;
};
CLI::App* add_forward_command(CLI::App& app, ForwardOptions& opt, int& threads);
void run_forward(const ForwardOptions& opt, int threads);

}  // namespace linformer::app
