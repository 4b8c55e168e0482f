// Options and helpers shared by several subcommands.
#include <omp.h>

#include <exception>
#include <string>

#include <CLI/CLI.hpp>

#include <fmt/core.h>

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

}  // namespace linformer::app
