// What the subcommands share (registry.hpp): the compute options, the registration context and a
// few option helpers.
#include <omp.h>

#include <exception>
#include <string>

#include <CLI/CLI.hpp>

#include <fmt/core.h>

#include "registry.hpp"
#include "linformer/error.hpp"
#include "linformer/optimizer.hpp"
#include "linformer/precision.hpp"

namespace linformer::app {

void ComputeOptions::declare(CLI::App& cmd) {
  cmd.add_option("--threads", threads, "Number of OpenMP threads (0: OpenMP's default, OMP_NUM_THREADS or all cores)")
      ->check(CLI::Range(0, 4096))
      ->type_name("N");
  cmd.add_flag("--bf16", bf16,
               "Matrix products with bfloat16 operands and float32 accumulation: about 2x faster, slightly less "
               "accurate; needs a CPU with AVX512_BF16 (docs/BENCHMARKS.md, bf16 mode)");
}

ComputeOptions ComputeOptions::over(const ComputeOptions& global) const {
  return {threads > 0 ? threads : global.threads, bf16 || global.bf16};
}

int ComputeOptions::apply() const {
  if (bf16) set_matmul_precision(MatmulPrecision::bf16);
  if (threads > 0) omp_set_num_threads(threads);
  return omp_get_max_threads();
}

void Context::on_run(CLI::App* cmd, std::function<void()> run, Ranks ranks) {
  cmd->callback([this, run = std::move(run), ranks] {
    chosen_ = run;
    chosen_ranks_ = ranks;
  });
}

void Context::run_chosen() const {
  if (chosen_) chosen_();
}

void refuse_options_with_resume(const CLI::App* cmd, const std::string& command, const std::string& kept_in) {
  if (!cmd) return;
  for (const CLI::Option* opt : cmd->get_options()) {
    const std::string name = opt->get_name();
    if (opt->count() > 0 && name != "--resume" && name != "--steps" && name != "--threads" && name != "--bf16")
      throw ConfigError(fmt::format("{}: {} cannot be used with --resume (the run keeps the options in {}; only "
                                    "--steps, --threads and --bf16 may change)",
                                    command, name, kept_in));
  }
}

CLI::Validator integer_at_least(long long min) {
  return CLI::Validator(
      [min](std::string& s) -> std::string {
        size_t used = 0;
        long long v = 0;
        try {
          v = std::stoll(s, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used == 0 || used != s.size()) return fmt::format("'{}' is not an integer", s);
        if (v < min) return fmt::format("must be at least {}, not {}", min, v);
        return "";
      },
      "", "at_least");
}

void add_run_settings_options(CLI::App& cmd, RunSettings& s) {
  cmd.add_option("--lr", s.lr, "Peak learning rate")->capture_default_str();
  cmd.add_option("--warmup", s.warmup, "Linear warm-up steps")->capture_default_str()->check(integer_at_least(0));
  cmd.add_option("--end-lr", s.end_lr, "Learning rate at the last step")->capture_default_str();
  cmd.add_option("--power", s.power, "Decay exponent (1: linear, else polynomial)")->capture_default_str();
  cmd.add_option("--beta1", s.beta1, "AdamW beta1")->capture_default_str();
  cmd.add_option("--beta2", s.beta2, "AdamW beta2")->capture_default_str();
  cmd.add_option("--eps", s.eps, "AdamW epsilon")->capture_default_str();
  cmd.add_option("--weight-decay", s.weight_decay, "Decoupled weight decay (not on biases, norms, embeddings)")
      ->capture_default_str();
  cmd.add_option("--clip", s.clip, "Global gradient-norm clipping (0: off)")->capture_default_str();
  cmd.add_option("--save-every", s.save_every, "Checkpoint every N steps")->capture_default_str()->check(integer_at_least(1));
  cmd.add_option("--log-every", s.log_every, "Append train metrics every N steps")
      ->capture_default_str()
      ->check(integer_at_least(1));
  cmd.add_option("--keep", s.keep_checkpoints, "Checkpoints kept")->capture_default_str()->check(integer_at_least(1));
}

}  // namespace linformer::app
