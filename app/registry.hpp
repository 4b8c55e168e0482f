// The `linformer` command's subcommands and what they share. Each cmd_*.cpp declares its
// subcommands on the CLI11 app in one register_* function, together with the code that runs each
// (Context::on_run); kCommands lists those functions once, in the order --help shows the
// subcommands. main.cpp parses the command line and runs the subcommand chosen; a subcommand throws
// (linformer::Error or std::exception) on failure.
#pragma once
#include <functional>
#include <string>

namespace CLI {
class App;
class Validator;
}

namespace linformer {
struct RunSettings;
}

namespace linformer::app {


// Where the work runs: `--threads N` and `--bf16`, declared on the command itself and on every
// compute subcommand.
struct ComputeOptions {
  int threads = 0;    // 0: OpenMP's default (OMP_NUM_THREADS or all cores); on a subcommand: the global one
  bool bf16 = false;  // matrix products with bf16 operands (linformer/precision.hpp)

  // Declares --threads and --bf16 on `cmd`, into this struct.
  void declare(CLI::App& cmd);
  // A subcommand's options over the global ones (given before the subcommand): its --threads when
  // above 0, else the global one; bf16 when either asks for it.
  ComputeOptions over(const ComputeOptions& global) const;
  // Applies them: omp_set_num_threads (when threads > 0) and the bf16 matmul precision (a
  // ConfigError on a CPU without bf16); returns the thread count that parallel regions will use.
  int apply() const;
};

// What the subcommands' registration shares: the global compute options and the command chosen.
class Context {
 public:
  enum class Ranks { one, many };  // many: the command runs data-parallel under an MPI launcher

  ComputeOptions compute;  // `linformer --threads N --bf16 SUBCOMMAND ...`

  // `run` runs when `cmd` is the subcommand given (recorded by a CLI11 callback, so only after the
  // whole command line parsed).
  void on_run(CLI::App* cmd, std::function<void()> run, Ranks ranks = Ranks::one);
  // Whether the subcommand given runs data-parallel (only pretrain and finetune do).
  bool chosen_runs_on_many_ranks() const { return chosen_ranks_ == Ranks::many; }
  void run_chosen() const;

 private:
  std::function<void()> chosen_;
  Ranks chosen_ranks_ = Ranks::one;
};

// The subcommands, one function per cmd_*.cpp.
void register_init(CLI::App& app, Context& ctx);          // init
void register_forward(CLI::App& app, Context& ctx);       // forward
void register_data(CLI::App& app, Context& ctx);          // data
void register_tokenizer(CLI::App& app, Context& ctx);     // tokenizer
void register_pretraining(CLI::App& app, Context& ctx);   // pretrain, fill-mask, eval-mlm
void register_task(CLI::App& app, Context& ctx);          // task
void register_bench(CLI::App& app, Context& ctx);         // bench
void register_finetuning(CLI::App& app, Context& ctx);    // finetune, eval, predict
void register_analysis(CLI::App& app, Context& ctx);      // spectrum, attention-map
void register_convert(CLI::App& app, Context& ctx);       // convert (runs tools/convert, a Python tool)
void register_serve(CLI::App& app, Context& ctx);         // serve
using Registrar = void (*)(CLI::App&, Context&);
inline constexpr Registrar kCommands[] = {register_init,        register_forward, register_data,
                                          register_tokenizer,   register_pretraining, register_task,
                                          register_bench,       register_finetuning,  register_analysis,
                                          register_convert,     register_serve};

// Option helpers several subcommands use (common.cpp).

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

}  // namespace linformer::app
