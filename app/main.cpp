// The `linformer` command: parses the command line (CLI11) and runs one subcommand.
// The subcommands register themselves (registry.hpp: one register_* function per cmd_<name>.cpp).
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

#include "linformer/version.hpp"
#include "linformer/error.hpp"
#include "linformer/parallel.hpp"
#include "registry.hpp"

int main(int argc, char** argv) {
  using namespace linformer::app;
  // A file-size limit (ulimit -f) must show up as a failed write with a clear error, the way a full
  // disk does, not kill the process with SIGXFSZ in the middle of a file.
  std::signal(SIGXFSZ, SIG_IGN);
  namespace parallel = linformer::parallel;
  try {
    parallel::init_from_environment(&argc, &argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }

  CLI::App app{"linformer: train and run Linformer encoders (and the standard Transformer) on the CPU.",
               "linformer"};
  app.set_version_flag("--version", fmt::format("linformer {} (model file format {})", linformer::kVersion,
                                              linformer::kModelFileFormatVersion));
  app.require_subcommand(1);
  Context ctx;
  ctx.compute.declare(app);
  for (Registrar add_commands : kCommands) add_commands(app, ctx);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (parallel::size() == 1 || e.get_exit_code() == 0) {  // --help, --version: rank 0 prints
      const int code = parallel::is_root() ? app.exit(e) : e.get_exit_code();
      parallel::finalize();
      return code;
    }
    // Ranks may have different command lines (mpirun's "A : B" syntax): one that cannot start
    // must end the job rather than leave the others waiting for it.
    fmt::print(stderr, "error: rank {} of {}: {}\n", parallel::rank(), parallel::size(), e.what());
    std::fflush(stderr);
    parallel::abort(e.get_exit_code());
  }

  try {
    if (parallel::size() > 1 && !ctx.chosen_runs_on_many_ranks())
      throw linformer::ConfigError(fmt::format("only pretrain and finetune run data-parallel under an MPI launcher "
                                               "({} ranks here); run {} as a single process",
                                               parallel::size(), app.get_subcommands().front()->get_name()));
    ctx.run_chosen();
  } catch (const std::exception& e) {  // linformer::Error and the standard library's
    if (parallel::size() == 1) {
      fmt::print(stderr, "error: {}\n", e.what());
      parallel::finalize();  // (mpirun -np 1) no other rank to wait for
      return 1;
    }
    // Other ranks may be waiting for this one in a collective: end them all. Usually every rank
    // meets the same error; each prints it, naming itself.
    fmt::print(stderr, "error: rank {} of {}: {}\n", parallel::rank(), parallel::size(), e.what());
    std::fflush(stderr);
    parallel::abort(1);
  }
  parallel::finalize();
  return 0;
}
