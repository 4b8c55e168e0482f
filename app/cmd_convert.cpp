// linformer convert: models trained elsewhere (fairseq, Hugging Face RoBERTa / XLM-R, lucidrains' and
// tatp22's Linformer modules) into linformer model files (docs/convert.md).
//
// The conversion itself is a Python tool (tools/convert/linformer_convert): reading `.pt` files
// needs torch, which only Python has here. This subcommand finds the tool, runs it with Debian's
// /usr/bin/python3 (the one with torch and numpy) and passes every argument through unchanged, so
// `linformer convert --help` is the tool's own help. The tool is looked for in
// $LINFORMER_CONVERT_DIR, then in share/linformer/python beside the installed executable
// (../share/linformer/python), then in the source tree this executable was built from.
// $LINFORMER_PYTHON overrides the interpreter. The tool gets LINFORMER_BIN = this executable, so
// it can run `linformer init` for the tensors it initialises.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "linformer/error.hpp"
#include "registry.hpp"

extern char** environ;

namespace linformer::app {

namespace {

namespace fs = std::filesystem;

std::string self_path() {
  std::error_code ec;
  const fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : p.string();
}

// The folder holding linformer_convert/ (the Python package), or "" when there is none.
std::string find_tool_dir(const std::string& exe) {
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("LINFORMER_CONVERT_DIR"); env && *env) candidates.emplace_back(env);
  if (!exe.empty()) candidates.push_back(fs::path(exe).parent_path().parent_path() / "share" / "linformer" / "python");
#ifdef LINFORMER_CONVERT_SOURCE_DIR
  candidates.emplace_back(LINFORMER_CONVERT_SOURCE_DIR);
#endif
  for (const auto& dir : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(dir / "linformer_convert" / "__main__.py", ec)) return dir.string();
  }
  std::string tried;
  for (const auto& dir : candidates) tried += (tried.empty() ? "" : ", ") + dir.string();
  throw IoError(fmt::format("convert: the converter (linformer_convert, a Python package) is not installed; "
                            "looked in {} (set LINFORMER_CONVERT_DIR to the folder holding it)",
                            tried.empty() ? "nowhere" : tried));
}

// Runs the tool and returns its exit status (128 + signal when it was killed).
int run_tool(const std::vector<std::string>& args) {
  const std::string exe = self_path();
  const std::string dir = find_tool_dir(exe);
  const char* py_env = std::getenv("LINFORMER_PYTHON");
  const std::string python = py_env && *py_env ? py_env : "/usr/bin/python3";
  if (access(python.c_str(), X_OK) != 0)
    throw IoError(fmt::format("convert: {} is not installed (the converter needs Debian's python3 with "
                              "python3-torch and python3-numpy; set LINFORMER_PYTHON to another one)",
                              python));

  std::vector<std::string> argv = {python, "-m", "linformer_convert"};
  argv.insert(argv.end(), args.begin(), args.end());
  // The environment, with PYTHONPATH led by the tool's folder and LINFORMER_BIN set to us.
  std::vector<std::string> env;
  std::string pythonpath = dir;
  for (char** e = environ; *e; ++e) {
    const std::string var = *e;
    if (var.rfind("PYTHONPATH=", 0) == 0) {
      if (var.size() > 11) pythonpath += ":" + var.substr(11);
    } else if (var.rfind("LINFORMER_BIN=", 0) != 0 || exe.empty()) {
      env.push_back(var);
    }
  }
  env.push_back("PYTHONPATH=" + pythonpath);
  if (!exe.empty()) env.push_back("LINFORMER_BIN=" + exe);

  std::vector<char*> cargv, cenv;
  for (auto& s : argv) cargv.push_back(s.data());
  cargv.push_back(nullptr);
  for (auto& s : env) cenv.push_back(s.data());
  cenv.push_back(nullptr);
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = 0;
  if (const int rc = posix_spawn(&pid, python.c_str(), nullptr, nullptr, cargv.data(), cenv.data()); rc != 0)
    throw IoError(fmt::format("convert: cannot run {}: {}", python, std::strerror(rc)));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw IoError(fmt::format("convert: waiting for {}: {}", python, std::strerror(errno)));
  }
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

}  // namespace

void register_convert(CLI::App& app, Context& ctx) {
  CLI::App* cmd = app.add_subcommand(
      "convert", "Convert a fairseq / Hugging Face / lucidrains / tatp22 model into a model file (--help: its options)");
  // Everything after `convert` belongs to the Python tool, --help included.
  cmd->prefix_command();
  cmd->set_help_flag();
  ctx.on_run(cmd, [cmd] {
    const int status = run_tool(cmd->remaining());
    if (status != 0) {
      // The tool has printed its error; leave with its status rather than a second message.
      std::fflush(stdout);
      std::exit(status);
    }
  });
}

}  // namespace linformer::app
