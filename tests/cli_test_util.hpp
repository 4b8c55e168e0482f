// A fixture for end-to-end tests of the `linformer` command (test_cli*.cpp; tests/CMakeLists.txt
// sets LINFORMER_BIN for them): runs the binary in a fresh temporary folder and captures its
// output, checks failures (non-zero exit, the message, no file added or removed), and starts a
// command in the background for signal tests.
#pragma once
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "pretrain_test_util.hpp"

namespace cli_test {

namespace fs = std::filesystem;

struct RunResult {
  int code = -1;       // exit status (-1: killed by a signal)
  std::string output;  // stdout and stderr together
};

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

class CliTest : public ::testing::Test {
 protected:
  explicit CliTest(std::string prefix) : prefix_(std::move(prefix)) {}

  void SetUp() override {
    const char* bin = std::getenv("LINFORMER_BIN");
    ASSERT_NE(bin, nullptr) << "LINFORMER_BIN is not set (ctest sets it to the linformer binary)";
    bin_ = bin;
    ASSERT_TRUE(fs::exists(bin_)) << bin_;
    tmp_ = std::make_unique<pretrain_test::TempDir>(prefix_);
    dir_ = tmp_->path();
  }

  // Runs `linformer ARGS` in the temporary folder; stdout only when `stdout_only`.
  RunResult run(const std::string& args, bool stdout_only = false) const {
    return run_in_shell(shell_quote(bin_) + " " + args + (stdout_only ? " 2>/dev/null" : " 2>&1"));
  }
  // Runs `linformer ARGS` with a file-size limit of `blocks` x 512 bytes (ulimit -f).
  RunResult run_with_file_size_limit(int blocks, const std::string& args) const {
    return run_in_shell("ulimit -f " + std::to_string(blocks) + " && exec " + shell_quote(bin_) + " " + args + " 2>&1");
  }
  // Runs a shell command line in the temporary folder; captures its stdout.
  RunResult run_in_shell(const std::string& command) const {
    const std::string cmd = "cd " + shell_quote(dir_.string()) + " && " + command;
    RunResult r;
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) {
      ADD_FAILURE() << "popen failed: " << cmd;
      return r;
    }
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, got);
    const int status = pclose(p);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
  }
  void ok(const std::string& args) const {
    const RunResult r = run(args);
    ASSERT_EQ(r.code, 0) << "linformer " << args << ":\n" << r.output;
  }

  // Starts `linformer ARGS > log 2>&1` in the folder and returns its pid.
  pid_t start(const std::string& args, const std::string& log) const {
    const pid_t pid = fork();
    if (pid == 0) {
      if (chdir(dir_.c_str()) != 0) _exit(126);
      const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0) _exit(126);
      dup2(fd, 1);
      dup2(fd, 2);
      execl("/bin/sh", "sh", "-c", ("exec " + shell_quote(bin_) + " " + args).c_str(), (char*)nullptr);
      _exit(127);
    }
    return pid;
  }

  // For a process started with start(): waits until `marker` appears in the file `watch` (the
  // run has begun), sends `sig` (SIGTERM or SIGINT) and waits for the exit. `started` is false when the process
  // ended before the marker showed; `error` is set (and the process killed) when it did not stop
  // within two minutes.
  struct Stopped {
    bool started = false;
    int status = 0;  // as from waitpid
    std::string error;
  };
  Stopped signal_once_started(pid_t pid, const std::string& watch, const std::string& marker, int sig) const {
    const auto t0 = std::chrono::steady_clock::now();
    auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    Stopped s;
    while (seconds() < 60) {
      if (read(watch).find(marker) != std::string::npos) {
        s.started = true;
        break;
      }
      if (waitpid(pid, &s.status, WNOHANG) == pid) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    kill(pid, sig);
    while (seconds() < 120)
      if (waitpid(pid, &s.status, WNOHANG) == pid)
        return s;
      else
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    kill(pid, SIGKILL);
    waitpid(pid, &s.status, 0);
    s.error = "the process did not stop within a minute of signal " + std::to_string(sig);
    return s;
  }

  // The step of the latest checkpoint of a run folder (its state.json).
  int64_t checkpoint_step(const std::string& run) const {
    std::string name = read(run + "/latest");
    while (!name.empty() && std::isspace((unsigned char)name.back())) name.pop_back();
    return nlohmann::json::parse(read(run + "/" + name + "/state.json")).at("step").get<int64_t>();
  }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  void write(const std::string& name, const std::string& text) const {
    fs::create_directories(fs::path(path(name)).parent_path());
    pretrain_test::write_file(path(name), text);
  }
  std::string read(const std::string& name) const { return pretrain_test::read_bytes(path(name)); }

  // Runs a command that must fail: non-zero exit, a message that contains every one of
  // `needles`, and no file added or removed in the folder.
  void expect_failure(const std::string& args, const std::vector<std::string>& needles) const {
    const std::vector<std::string> before = pretrain_test::listing(dir_);
    const RunResult r = run(args);
    EXPECT_NE(r.code, 0) << "linformer " << args << " succeeded:\n" << r.output;
    for (const std::string& n : needles)
      EXPECT_NE(r.output.find(n), std::string::npos)
          << "linformer " << args << ": message does not mention '" << n << "':\n" << r.output;
    EXPECT_EQ(pretrain_test::listing(dir_), before) << "linformer " << args << " added or removed a file";
  }

  std::string prefix_, bin_;
  std::unique_ptr<pretrain_test::TempDir> tmp_;
  fs::path dir_;
};

}  // namespace cli_test
