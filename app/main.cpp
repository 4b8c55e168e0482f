// The `linformer` command: parses the command line (CLI11) and runs one subcommand.
// Every subcommand lives in its own file (cmd_<name>.cpp, declared in commands.hpp or
// data_commands.hpp).
// Errors from the library (linformer::Error) and the standard library are printed as
// `error: <message>` on stderr with exit status 1; CLI11's own parse errors keep its exit codes.
// Started by mpirun (docs/distributed.md), the process is one rank of a data-parallel job: MPI is
// initialised here, only pretrain and finetune run, and an error on any rank ends the whole job
// (MPI_Abort) rather than leaving the other ranks waiting in a collective.
#include <csignal>
#include <cstdio>
#include <exception>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "commands.hpp"
#include "linformer/version.hpp"
#include "data_commands.hpp"
#include "pretrain_commands.hpp"
#include "task_commands.hpp"
#include "bench_commands.hpp"
#include "finetune_commands.hpp"
#include "analysis_commands.hpp"
#include "dist/communicator.hpp"
#include "linformer/error.hpp"

int main(int argc, char** argv) {
  using namespace linformer::app;
  // A file-size limit (ulimit -f) must show up as a failed write with a clear error, the way a full
  // disk does, not kill the process with SIGXFSZ in the middle of a file.
  std::signal(SIGXFSZ, SIG_IGN);
  namespace dist = linformer::dist;
  try {
    dist::init_from_environment(&argc, &argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  const dist::Communicator& comm = dist::world();

  CLI::App app{"linformer: train and run Linformer encoders (and the standard Transformer) on the CPU.",
               "linformer"};
  app.set_version_flag("--version", fmt::format("linformer {} (model file format {})", linformer::kVersion,
                                              linformer::kModelFileFormatVersion));
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
    if (comm.size() == 1 || e.get_exit_code() == 0) {  // --help, --version: rank 0 prints
      const int code = comm.is_root() ? app.exit(e) : e.get_exit_code();
      dist::finalize();
      return code;
    }
    // Ranks may have different command lines (mpirun's "A : B" syntax): one that cannot start
    // must end the job rather than leave the others waiting for it.
    fmt::print(stderr, "error: rank {} of {}: {}\n", comm.rank(), comm.size(), e.what());
    std::fflush(stderr);
    comm.abort(e.get_exit_code());
  }

  try {
    if (comm.size() > 1 && !pretrain->parsed() && !finetune->parsed())
      throw linformer::ConfigError(fmt::format("only pretrain and finetune run data-parallel under an MPI launcher "
                                               "({} ranks here); run {} as a single process",
                                               comm.size(), app.get_subcommands().front()->get_name()));
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
  } catch (const std::exception& e) {  // linformer::Error and the standard library's
    if (comm.size() == 1) {
      fmt::print(stderr, "error: {}\n", e.what());
      dist::finalize();  // (mpirun -np 1) no other rank to wait for
      return 1;
    }
    // Other ranks may be waiting for this one in a collective: end them all. Usually every rank
    // meets the same error; each prints it, naming itself.
    fmt::print(stderr, "error: rank {} of {}: {}\n", comm.rank(), comm.size(), e.what());
    std::fflush(stderr);
    comm.abort(1);
  }
  dist::finalize();
  return 0;
}
