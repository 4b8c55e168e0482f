// Options and helpers shared by several subcommands.
#include <omp.h>

#include <CLI/CLI.hpp>

#include "commands.hpp"

namespace linformer::app {

void add_threads_option(CLI::App& app, int& threads) {
  app.add_option("--threads", threads, "Number of OpenMP threads (0: OpenMP's default, OMP_NUM_THREADS or all cores)")
      ->check(CLI::Range(0, 4096))
      ->type_name("N");
}

int apply_threads(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
  return omp_get_max_threads();
}

}  // namespace linformer::app
