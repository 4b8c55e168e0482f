// The `linformer` command: parses the command line (CLI11) and runs one subcommand.
// Every subcommand lives in its own file (cmd_<name>.cpp, declared in commands.hpp or
// data_commands.hpp).
// Errors from the library (linformer::Error) and the standard library are printed as
// `error: <message>` on stderr with exit status 1; CLI11's own parse errors keep its exit codes.
#include <csignal>
#include <exception>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "commands.hpp"
#include "data_commands.hpp"
#include "pretrain_commands.hpp"
#include "task_commands.hpp"
#include "bench_commands.hpp"
#include "finetune_commands.hpp"
#include "analysis_commands.hpp"
#include "linformer/error.hpp"

int main(int argc, char** argv) {
  using namespace linformer::app;
  // A file-size limit (ulimit -f) must show up as a failed write with a clear error, the way a full
  // disk does, not kill the process with SIGXFSZ in the middle of a file.
  std::signal(SIGXFSZ, SIG_IGN);

  CLI::App app{"linformer: train and run Linformer encoders (and the standard Transformer) on the CPU.",
               "linformer"};
  app.set_version_flag("--version", std::string("linformer ") + kVersion);
  app.require_subcommand(1);
  int threads = 0;
  add_threads_option(app, threads);

  InitOptions init_opt;
  CLI::App* init = add_init_command(app, init_opt);
  ForwardOptions forward_opt;
  CLI::App* forward = add_forward_command(app, forward_opt, threads);
  DataOptions data_opt;
  CLI::App* data = add_data_command(app, data_opt);
  TokenizerOptions tokenizer_opt;
  CLI::App* tokenizer = add_tokenizer_command(app, tokenizer_opt);
  PretrainOptions pretrain_opt;
  CLI::App* pretrain = add_pretrain_command(app, pretrain_opt);
  FillMaskOptions fill_mask_opt;
  CLI::App* fill_mask = add_fill_mask_command(app, fill_mask_opt);
  EvalMlmOptions eval_mlm_opt;
  CLI::App* eval_mlm = add_eval_mlm_command(app, eval_mlm_opt);
  TaskOptions task_opt;
  CLI::App* task = add_task_command(app, task_opt);
  BenchOptions bench_opt;
  CLI::App* bench = add_bench_command(app, bench_opt);
  FinetuneCmdOptions finetune_opt;
  CLI::App* finetune = add_finetune_command(app, finetune_opt);
  EvalOptions eval_opt;
  CLI::App* eval = add_eval_command(app, eval_opt);
  PredictOptions predict_opt;
  CLI::App* predict = add_predict_command(app, predict_opt);
  SpectrumOptions spectrum_opt;
  CLI::App* spectrum = add_spectrum_command(app, spectrum_opt);
  AttentionMapOptions attention_map_opt;
  CLI::App* attention_map = add_attention_map_command(app, attention_map_opt);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    if (init->parsed()) {
      run_init(init_opt);
    } else if (forward->parsed()) {
      run_forward(forward_opt, threads);
    } else if (data->parsed()) {
      run_data(data_opt);
    } else if (tokenizer->parsed()) {
      run_tokenizer(tokenizer_opt);
    } else if (pretrain->parsed()) {
      run_pretrain(pretrain_opt, threads);
    } else if (fill_mask->parsed()) {
      run_fill_mask(fill_mask_opt, threads);
    } else if (eval_mlm->parsed()) {
      run_eval_mlm(eval_mlm_opt, threads);
    } else if (task->parsed()) {
      run_task(task_opt);
    } else if (bench->parsed()) {
      run_bench(bench_opt, threads);
    } else if (finetune->parsed()) {
      run_finetune(finetune_opt, threads);
    } else if (eval->parsed()) {
      run_eval(eval_opt, threads);
    } else if (predict->parsed()) {
      run_predict(predict_opt, threads);
    } else if (spectrum->parsed()) {
      run_spectrum(spectrum_opt, threads);
    } else if (attention_map->parsed()) {
      run_attention_map(attention_map_opt, threads);
    }
  } catch (const linformer::Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
