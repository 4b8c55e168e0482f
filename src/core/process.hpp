// Running other programs (npm, gzip): posix_spawnp with the search on PATH, waiting through EINTR.
#pragma once
#include <string>
#include <vector>

namespace linformer::core {

// Runs argv (argv[0] searched on PATH) and waits; returns its exit status (128 + signal when it
// was killed). IoError "PROGRAM is not installed or not on PATH" (followed by `install_hint`, e.g.
// "(Debian: apt-get install nodejs npm)") when it cannot be found.
int run_program(const std::vector<std::string>& argv, const std::string& install_hint = "");

// Runs argv and returns what it wrote on stdout; IoError "WHAT: `PROGRAM` failed (exit status N)"
// when it exits non-zero.
std::string run_program_output(const std::vector<std::string>& argv, const std::string& what);

}  // namespace linformer::core
