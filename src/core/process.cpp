// See process.hpp.
#include "core/process.hpp"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "linformer/error.hpp"

extern char** environ;

namespace linformer::core {

namespace {

pid_t spawn(const std::vector<std::string>& argv_s, posix_spawn_file_actions_t* actions, const std::string& hint) {
  if (argv_s.empty()) throw Error("run_program: no program given");
  std::vector<char*> argv;
  for (const std::string& a : argv_s) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid;
  const int err = posix_spawnp(&pid, argv[0], actions, nullptr, argv.data(), environ);
  if (err == ENOENT)
    throw IoError(fmt::format("{} is not installed or not on PATH{}{}", argv_s[0], hint.empty() ? "" : " ", hint));
  if (err != 0) throw IoError(fmt::format("cannot run {}: {}", argv_s[0], std::strerror(err)));
  return pid;
}

int wait_for(pid_t pid, const std::string& name) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) throw IoError(fmt::format("waiting for {} failed: {}", name, std::strerror(errno)));
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

}  // namespace

int run_program(const std::vector<std::string>& argv, const std::string& install_hint) {
  return wait_for(spawn(argv, nullptr, install_hint), argv[0]);
}

std::string run_program_output(const std::vector<std::string>& argv, const std::string& what) {
  int fds[2];
  if (pipe(fds) != 0) throw IoError(fmt::format("{}: pipe failed: {}", what, std::strerror(errno)));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  posix_spawn_file_actions_addclose(&actions, fds[1]);
  pid_t pid;
  try {
    pid = spawn(argv, &actions, "");
  } catch (...) {
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[0]);
    ::close(fds[1]);
    throw;
  }
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n > 0) out.append(buf, (size_t)n);
    else if (n == 0) break;
    else if (errno != EINTR) break;
  }
  ::close(fds[0]);
  const int rc = wait_for(pid, argv[0]);
  if (rc != 0) throw IoError(fmt::format("{}: `{}` failed (exit status {})", what, argv[0], rc));
  return out;
}

}  // namespace linformer::core
