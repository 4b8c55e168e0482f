// Crash safety of `linformer pretrain` (issue: reliability): the run is killed with SIGKILL at
// random moments, at least 20 times, half of them while a checkpoint is being written, and resumed
// after each kill. After every kill each checkpoint on disk must load, and the finished run must
// equal, bit for bit, an uninterrupted run with the same seed and thread count.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_test_util.hpp"
#include "linformer/checkpoint.hpp"
#include "linformer/model.hpp"

namespace {

using cli_test::CliTest;
using cli_test::RunResult;
using json = nlohmann::json;
namespace fs = std::filesystem;

class CliCrash : public CliTest {
 protected:
  CliCrash() : CliTest("linformer_test_cli_crash_") {}

  // Every checkpoint folder (ckpt-NNNNNNNN; not the ckpt-*.tmp being written) loads completely:
  // the model, the optimizer state and state.json; `latest` names one of them. Returns the step
  // `latest` names, or -1 (with a test failure) when something does not load.
  int64_t check_run_folder(const std::string& run, const std::string& when) const {
    const std::regex ckpt_re("ckpt-[0-9]{8}");
    int checked = 0;
    for (const auto& e : fs::directory_iterator(path(run))) {
      const std::string n = e.path().filename().string();
      if (!e.is_directory() || !std::regex_match(n, ckpt_re)) continue;
      try {
        (void)linformer::load_model((e.path() / "model.safetensors").string());
        const auto opt = linformer::read_safetensors((e.path() / "optimizer.safetensors").string());
        if (!opt.find("adamw.m") || !opt.find("adamw.v")) ADD_FAILURE() << when << ": " << n << ": optimizer state incomplete";
        (void)json::parse(pretrain_test::read_bytes((e.path() / "state.json").string())).at("step");
        ++checked;
      } catch (const std::exception& ex) {
        ADD_FAILURE() << when << ": checkpoint " << n << " does not load: " << ex.what();
        return -1;
      }
    }
    EXPECT_GE(checked, 1) << when << ": no checkpoint folder";
    std::string latest = read(run + "/latest");
    while (!latest.empty() && std::isspace((unsigned char)latest.back())) latest.pop_back();
    if (!std::regex_match(latest, ckpt_re) || !fs::is_directory(path(run + "/" + latest))) {
      ADD_FAILURE() << when << ": 'latest' names '" << latest << "', not a checkpoint folder";
      return -1;
    }
    return json::parse(read(run + "/" + latest + "/state.json")).at("step").get<int64_t>();
  }

  // A checkpoint is being written: a ckpt-*.tmp folder or a NAME.tmp.PID file created or changed
  // since `since` (older ones are leftovers of an earlier kill, removed by the next save).
  bool writing_checkpoint(const std::string& run, fs::file_time_type since = fs::file_time_type::min()) const {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(path(run), ec)) {
      if (e.path().filename().string().find(".tmp") == std::string::npos) continue;
      std::error_code ec2;
      const auto t = fs::last_write_time(e.path(), ec2);
      if (!ec2 && t >= since) return true;
    }
    return false;
  }
};

TEST_F(CliCrash, SigkillAtRandomMomentsThenResumeEqualsAnUninterruptedRun) {
  write("train.txt", pretrain_test::grammar_corpus(400, 1));
  write("valid.txt", pretrain_test::grammar_corpus(60, 2));
  ok("tokenizer train --input train.txt --vocab-size " + std::to_string(pretrain_test::kTokVocab) + " --out tok.model");
  ok("tokenizer encode --model tok.model --input train.txt --out train.tokens");
  ok("tokenizer encode --model tok.model --input valid.txt --out valid.tokens");
  write("cfg.json", pretrain_test::tiny_config_json("linformer"));

  // A checkpoint after every step, so that a kill often lands in the middle of a save.
  const int64_t total = 400;
  const std::string common = "--config cfg.json --train train.tokens --valid valid.tokens --steps " +
                             std::to_string(total) +
                             " --lr 2e-3 --warmup 10 --eval-every 25 --save-every 1 --keep 3 --threads 1 "
                             "--batch-size 4 --seq-len 32 --eval-batches 2 --log-every 1";
  ok("pretrain " + common + " --out straight");

  const int kKills = 24;
  std::mt19937 rng(20261128);
  int kills = 0, kills_in_save = 0, rounds = 0;
  int64_t last_step = 0;
  bool finished = false;
  while (!finished && rounds < 200) {
    ++rounds;
    const std::string args = rounds == 1 ? "pretrain " + common + " --out run" : "pretrain --resume run --threads 1";
    const auto started = fs::file_time_type::clock::now();
    const pid_t pid = start(args, "log.txt");
    ASSERT_GT(pid, 0);
    const auto t0 = std::chrono::steady_clock::now();
    auto ms = [&] { return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(); };
    int status = 0;
    bool exited = false;
    if (kills < kKills) {
      // Odd kills: the moment a checkpoint write is seen (ckpt-*.tmp or a *.tmp.PID file);
      // even kills: a random delay (start-up, a step, an evaluation or a save). The first round
      // waits for the first checkpoint so that there is something to resume from.
      const bool in_save = kills % 2 == 1;
      const double delay = std::uniform_real_distribution<double>(0, 150)(rng);
      while (ms() < 60000) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
          exited = true;
          break;
        }
        const bool ready = rounds > 1 || fs::exists(path("run/latest"));
        if (ready && (in_save ? writing_checkpoint("run", started) : ms() >= delay)) break;
        if (!in_save) std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      if (!exited) {
        const bool saving = writing_checkpoint("run", started);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        if (WIFSIGNALED(status)) {
          ++kills;
          kills_in_save += saving;
          const int64_t step = check_run_folder("run", "after kill " + std::to_string(kills));
          ASSERT_GE(step, 0) << "log of the killed run:\n" << read("log.txt");
          EXPECT_GE(step, last_step) << "the checkpoint went back in time";
          last_step = step;
          continue;
        }
        // else it finished just before the signal
      }
    } else {
      waitpid(pid, &status, 0);
    }
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "round " << rounds << ":\n" << read("log.txt");
    finished = true;
  }
  std::printf("SIGKILL: %d kills (%d during a checkpoint write) in %d rounds; every checkpoint loaded after each\n",
              kills, kills_in_save, rounds);
  ASSERT_TRUE(finished);
  EXPECT_GE(kills, kKills) << "the run finished before enough kills; make it longer";
  EXPECT_GE(kills_in_save, kKills / 2 - 2) << "too few kills landed in a checkpoint write";
  EXPECT_EQ(check_run_folder("run", "at the end"), total);

  // The interrupted run is the uninterrupted one: metrics and final weights bit for bit, and no
  // temporary file is left behind.
  pretrain_test::expect_same_metrics(path("straight/metrics.jsonl"), path("run/metrics.jsonl"));
  char final_model[64];
  std::snprintf(final_model, sizeof final_model, "/ckpt-%08lld/model.safetensors", (long long)total);
  EXPECT_TRUE(read(std::string("straight") + final_model) == read(std::string("run") + final_model))
      << "final weights differ";
  EXPECT_FALSE(writing_checkpoint("run")) << "temporary files left: "
                                          << ::testing::PrintToString(pretrain_test::listing(path("run")));
}

// A full disk, simulated with a file-size limit (ulimit -f; the tool ignores SIGXFSZ so that the
// write fails with EFBIG like on a full disk): a clear error, a non-zero exit, the file being
// replaced unchanged, and no temporary file or folder left.
TEST_F(CliCrash, FullDiskKeepsTheExistingFiles) {
  write("cfg.json", pretrain_test::tiny_config_json("linformer"));
  ok("init --config cfg.json --seed 1 --out m.safetensors");
  const std::string before = read("m.safetensors");
  const std::vector<std::string> files = pretrain_test::listing(dir_);
  // 40 blocks of 512 bytes: smaller than the model file (about 90 kB).
  RunResult r = run_with_file_size_limit(40, "init --config cfg.json --seed 2 --out m.safetensors");
  EXPECT_EQ(r.code, 1) << r.output;
  for (const char* m : {"m.safetensors", "write failed", "File too large"})
    EXPECT_NE(r.output.find(m), std::string::npos) << m << " not in:\n" << r.output;
  EXPECT_TRUE(read("m.safetensors") == before) << "the existing model file was changed";
  EXPECT_EQ(pretrain_test::listing(dir_), files);

  // Training: a few steps with checkpoints, then a resume whose next checkpoint cannot be written.
  write("train.txt", pretrain_test::grammar_corpus(200, 1));
  ok("tokenizer train --input train.txt --vocab-size " + std::to_string(pretrain_test::kTokVocab) + " --out tok.model");
  ok("tokenizer encode --model tok.model --input train.txt --out train.tokens");
  const std::string common = "--threads 1 --batch-size 4 --seq-len 32 --eval-batches 1 --log-every 1";
  ok("pretrain --config cfg.json --train train.tokens --valid train.tokens --out run --steps 4 --save-every 2 " + common);
  const std::string latest = read("run/latest"), model = read("run/ckpt-00000004/model.safetensors");
  const std::vector<std::string> run_files = pretrain_test::listing(path("run"));
  r = run_with_file_size_limit(40, "pretrain --resume run --steps 6 --threads 1");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("File too large"), std::string::npos) << r.output;
  EXPECT_EQ(read("run/latest"), latest);
  EXPECT_TRUE(read("run/ckpt-00000004/model.safetensors") == model);
  EXPECT_EQ(pretrain_test::listing(path("run")), run_files) << "a file or folder was left behind";
  EXPECT_EQ(check_run_folder("run", "after the failed save"), 4);
}

}  // namespace
