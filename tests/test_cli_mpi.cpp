// Data-parallel training under mpirun (docs/distributed.md): 2 ranks x 1 thread give the losses
// and weights of one process with the same global batch (to float tolerance: the sums are taken
// in another order), a signal to one rank stops every rank at the same step and resume continues
// the run bit for bit, a SIGKILLed rank ends the job (no hang) with its checkpoints loadable, a
// run continues with another number of ranks, fine-tuning works the same way, and ranks that
// start from different weights stop with a clear error.
//
// Needs Open MPI's mpirun on PATH (skipped without it). The root flags are set through the
// environment (OMPI_ALLOW_RUN_AS_ROOT...), harmless for other users.
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_test_util.hpp"
#include "finetune_test_util.hpp"
#include "linformer/checkpoint.hpp"
#include "linformer/trainer.hpp"
#include "linformer/model.hpp"

namespace {

using cli_test::CliTest;
using cli_test::RunResult;
using cli_test::shell_quote;
using json = nlohmann::json;
namespace fs = std::filesystem;

// One thread per rank (and for the single process it is compared with); root allowed; no core
// binding (the machine may be shared, and binding does not change the results).
const std::string kMpiEnv = "OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1";
const std::string kMpirun = "mpirun --oversubscribe --bind-to none";

// The tiny pretraining model without dropout: dropout masks are drawn per rank (docs/distributed.md),
// so only a run without dropout can equal a single process exactly.
std::string no_dropout_config(const std::string& attention) {
  std::string c = pretrain_test::tiny_config_json(attention);
  c.insert(c.rfind('}'), ", \"dropout\": 0, \"attention_dropout\": 0");
  return c;
}

class CliMpi : public CliTest {
 protected:
  CliMpi() : CliTest("linformer_test_cli_mpi_") {}

  void SetUp() override {
    CliTest::SetUp();
    if (std::system("command -v mpirun > /dev/null 2>&1") != 0) GTEST_SKIP() << "mpirun is not installed";
  }

  // `mpirun -np NP linformer ARGS` in the folder, with a time limit.
  RunResult mpirun(int np, const std::string& args) const {
    return run_in_shell(kMpiEnv + " timeout 120 " + kMpirun + " -np " + std::to_string(np) + " " + shell_quote(bin_) +
                        " " + args + " 2>&1");
  }
  void mpi_ok(int np, const std::string& args) const {
    const RunResult r = mpirun(np, args);
    ASSERT_EQ(r.code, 0) << "mpirun -np " << np << " linformer " << args << ":\n" << r.output;
  }
  // Starts `mpirun -np NP linformer ARGS > LOG 2>&1` in the background; returns mpirun's pid.
  pid_t start_mpirun(int np, const std::string& args, const std::string& log) const {
    const pid_t pid = fork();
    if (pid == 0) {
      if (chdir(dir_.c_str()) != 0) _exit(126);
      const std::string cmd = "exec env " + kMpiEnv + " " + kMpirun + " -np " + std::to_string(np) + " " +
                              shell_quote(bin_) + " " + args + " > " + log + " 2>&1";
      execl("/bin/sh", "sh", "-c", cmd.c_str(), (char*)nullptr);
      _exit(127);
    }
    return pid;
  }

  void make_data() const {
    write("train.txt", pretrain_test::grammar_corpus(400, 1));
    write("valid.txt", pretrain_test::grammar_corpus(60, 2));
    ok("tokenizer train --input train.txt --vocab-size " + std::to_string(pretrain_test::kTokVocab) +
       " --out tok.model");
    ok("tokenizer encode --model tok.model --input train.txt --out train.tokens");
    ok("tokenizer encode --model tok.model --input valid.txt --out valid.tokens");
    write("cfg.json", no_dropout_config("linformer"));
  }
};

// The pid of the process of rank `rank` started by mpirun `parent` (its OMPI_COMM_WORLD_RANK), or -1.
pid_t rank_pid(pid_t parent, int rank) {
  DIR* d = opendir("/proc");
  if (!d) return -1;
  pid_t found = -1;
  const std::string want = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
  while (dirent* e = readdir(d)) {
    const pid_t pid = (pid_t)std::atoi(e->d_name);
    if (pid <= 0) continue;
    const std::string proc = "/proc/" + std::string(e->d_name);
    std::ifstream stat(proc + "/stat");
    std::string comm_field, state;
    pid_t ppid = 0, self = 0;
    stat >> self >> comm_field >> state >> ppid;  // the command name has no space here (linformer)
    if (!stat || ppid != parent) continue;
    const std::string env = pretrain_test::read_bytes(proc + "/environ");
    size_t at = 0;
    while (at < env.size()) {
      const size_t end = env.find('\0', at);
      if (env.compare(at, (end == std::string::npos ? env.size() : end) - at, want) == 0) found = pid;
      if (end == std::string::npos) break;
      at = end + 1;
    }
    if (found > 0) break;
  }
  closedir(d);
  return found;
}

// Waits up to `limit` seconds for `pid`; returns its wait status, or -1 on a time-out (then kills it).
int wait_for(pid_t pid, double limit) {
  const auto t0 = std::chrono::steady_clock::now();
  int status = 0;
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < limit) {
    if (waitpid(pid, &status, WNOHANG) == pid) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

// Waits until `cond` holds (polling), at most `limit` seconds.
template <class Cond>
bool wait_until(Cond cond, double limit) {
  const auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < limit) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// Compares two metrics.jsonl files line by line: the same steps and keys, and every loss, norm,
// accuracy and learning rate within `rel` (relative). Prints and returns the worst difference.
double expect_close_metrics(const std::string& a, const std::string& b, double rel, const char* what) {
  const auto ma = pretrain_test::read_metrics(a), mb = pretrain_test::read_metrics(b);
  EXPECT_EQ(ma.size(), mb.size()) << a << " vs " << b;
  double worst = 0;
  std::string worst_at = "-";
  for (size_t i = 0; i < std::min(ma.size(), mb.size()); ++i) {
    EXPECT_EQ(ma[i].at("step"), mb[i].at("step")) << "line " << i + 1;
    for (const char* key : {"train_loss", "valid_loss", "grad_norm", "lr", "valid_accuracy"}) {
      EXPECT_EQ(ma[i].contains(key), mb[i].contains(key)) << "line " << i + 1 << ": " << key;
      if (!ma[i].contains(key) || !mb[i].contains(key)) continue;
      const double x = ma[i].at(key).get<double>(), y = mb[i].at(key).get<double>();
      const double d = std::abs(x - y) / std::max(std::abs(x), 1e-12);
      if (d > worst) {
        worst = d;
        worst_at = "step " + ma[i].at("step").dump() + " " + key;
      }
      EXPECT_LE(d, rel) << "line " << i + 1 << " (step " << ma[i].at("step") << "), " << key << ": " << x
                        << " vs " << y;
    }
  }
  std::printf("%s: %zu metrics lines, worst relative difference %.3g (%s)\n", what, ma.size(), worst,
              worst_at.c_str());
  return worst;
}

// Largest absolute difference between the weights of two model files (same config).
double max_weight_difference(const std::string& a, const std::string& b) {
  auto ma = linformer::load_model(a), mb = linformer::load_model(b);
  const auto& wa = ma->params().all_data();
  const auto& wb = mb->params().all_data();
  EXPECT_EQ(wa.size(), wb.size());
  double worst = 0;
  for (size_t i = 0; i < std::min(wa.size(), wb.size()); ++i) worst = std::max(worst, (double)std::abs(wa[i] - wb[i]));
  return worst;
}

json state_of(const std::string& run_dir) {
  std::string name = pretrain_test::read_bytes(run_dir + "/latest");
  while (!name.empty() && std::isspace((unsigned char)name.back())) name.pop_back();
  return json::parse(pretrain_test::read_bytes(run_dir + "/" + name + "/state.json"));
}

const std::string kTrain = "--config cfg.json --train train.tokens --valid valid.tokens --lr 2e-3 --warmup 5 "
                           "--seq-len 32 --eval-batches 2 --log-every 1 --threads 1 --seed 3";

// ------------------------------------------------------------------ equal to one process

// 2 ranks x 4 sequences x 2 micro-batches against 1 process x 8 x 2: the same global batches
// (each rank's slice of the same sequences, masks per sequence) and the same loss normalisation
// (over the labelled tokens of the whole batch), for 30 steps across three epochs of ~135
// sequences (so short batches at an epoch's end are included), for both attention kinds.
TEST_F(CliMpi, TwoRanksEqualOneProcessWithTheSameGlobalBatch) {
  make_data();
  for (const std::string attention : {"linformer", "full"}) {
    write("cfg.json", no_dropout_config(attention));
    const std::string common = kTrain + " --steps 30 --accum 2 --eval-every 10 --save-every 10";
    const RunResult single = run_in_shell("OMP_NUM_THREADS=1 " + shell_quote(bin_) + " pretrain " + common +
                                          " --batch-size 8 --out one_" + attention + " 2>&1");
    ASSERT_EQ(single.code, 0) << single.output;
    const RunResult r = mpirun(2, "pretrain " + common + " --batch-size 4 --out two_" + attention);
    ASSERT_EQ(r.code, 0) << r.output;
    // Only rank 0 prints: one summary line, naming the ranks.
    for (const char* m : {"1 threads x 2 ranks", "steps of 4x2x2 sequences"})
      EXPECT_NE(r.output.find(m), std::string::npos) << m << " not in:\n" << r.output;
    size_t summaries = 0;
    for (size_t at = 0; (at = r.output.find("pretrain: 30 steps in", at)) != std::string::npos; ++at) ++summaries;
    EXPECT_EQ(summaries, 1u) << r.output;

    expect_close_metrics(path("one_" + attention + "/metrics.jsonl"), path("two_" + attention + "/metrics.jsonl"),
                         1e-4, ("pretrain, " + attention + " attention, 1 process vs 2 ranks").c_str());
    const double dw = max_weight_difference(path("one_" + attention + "/ckpt-00000030/model.safetensors"),
                                            path("two_" + attention + "/ckpt-00000030/model.safetensors"));
    std::printf("pretrain, %s attention: worst weight difference after 30 steps %.3g\n", attention.c_str(), dw);
    EXPECT_LT(dw, 1e-4);
    // The data position is global: the same in both runs.
    EXPECT_EQ(state_of(path("one_" + attention)), state_of(path("two_" + attention)));
    // The train lines of a data-parallel run tell the ranks and the time spent communicating.
    int train_lines = 0;
    for (const json& line : pretrain_test::read_metrics(path("two_" + attention + "/metrics.jsonl"))) {
      if (!line.contains("train_loss")) continue;
      ++train_lines;
      EXPECT_EQ(line.value("ranks", 0), 2) << line.dump();
      EXPECT_GE(line.value("comm_s", -1.0), 0.0) << line.dump();
    }
    EXPECT_EQ(train_lines, 30);
  }
}

// ------------------------------------------------------------------ signals, kills, resume

// SIGTERM to one rank (not to mpirun): the ranks agree to stop after the same step, rank 0 saves a
// checkpoint, the job exits 0, and resuming under mpirun gives the uninterrupted run bit for bit.
TEST_F(CliMpi, SigtermToOneRankStopsAllAndResumeEqualsAnUninterruptedRun) {
  make_data();
  const std::string common = kTrain + " --steps 300 --batch-size 4 --eval-every 100 --save-every 1000";
  mpi_ok(2, "pretrain " + common + " --out straight");

  const pid_t mpirun_pid = start_mpirun(2, "pretrain " + common + " --out run", "log.txt");
  ASSERT_GT(mpirun_pid, 0);
  ASSERT_TRUE(wait_until([&] { return read("run/metrics.jsonl").find("train_loss") != std::string::npos; }, 60))
      << read("log.txt");
  const pid_t rank1 = rank_pid(mpirun_pid, 1);
  ASSERT_GT(rank1, 0) << "rank 1 not found";
  kill(rank1, SIGTERM);
  const int status = wait_for(mpirun_pid, 60);
  ASSERT_NE(status, -1) << "mpirun did not end within 60 s of SIGTERM to rank 1:\n" << read("log.txt");
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read("log.txt");
  const int64_t stopped = state_of(path("run")).at("step").get<int64_t>();
  EXPECT_NE(read("log.txt").find("interrupted: checkpoint saved at step " + std::to_string(stopped)), std::string::npos)
      << read("log.txt");
  ASSERT_LT(stopped, 300) << "the run finished before the signal; make it longer";

  mpi_ok(2, "pretrain --resume run --threads 1");
  pretrain_test::expect_same_metrics(path("straight/metrics.jsonl"), path("run/metrics.jsonl"));
  EXPECT_TRUE(read("straight/ckpt-00000300/model.safetensors") == read("run/ckpt-00000300/model.safetensors"))
      << "final weights differ";
}

// SIGKILL of one rank (rank 1, then, after a resume, rank 0 which writes the checkpoints): mpirun
// ends the job with a non-zero status instead of hanging, and the last checkpoint loads. The run
// then continues as a single process: the data position is global, so the next sequences follow
// on from where the 2 ranks stopped.
TEST_F(CliMpi, SigkillOfOneRankEndsTheJobAndTheCheckpointLoads) {
  make_data();
  const std::string common = kTrain + " --steps 100000 --batch-size 4 --eval-every 100000 --save-every 5";
  for (int round = 0; round < 2; ++round) {
    const std::string args = round == 0 ? "pretrain " + common + " --out run" : "pretrain --resume run --threads 1";
    const int victim = round == 0 ? 1 : 0;
    const int64_t before = round == 0 ? 0 : state_of(path("run")).at("step").get<int64_t>();
    const pid_t mpirun_pid = start_mpirun(2, args, "log.txt");
    ASSERT_GT(mpirun_pid, 0);
    ASSERT_TRUE(wait_until(
        [&] { return fs::exists(path("run/latest")) && state_of(path("run")).at("step").get<int64_t>() > before; }, 60))
        << "no new checkpoint:\n" << read("log.txt");
    const pid_t pid = rank_pid(mpirun_pid, victim);
    ASSERT_GT(pid, 0) << "rank " << victim << " not found";
    const auto t0 = std::chrono::steady_clock::now();
    kill(pid, SIGKILL);
    const int status = wait_for(mpirun_pid, 30);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_NE(status, -1) << "mpirun still running 30 s after rank " << victim << " was killed:\n" << read("log.txt");
    EXPECT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read("log.txt");
    EXPECT_NE(read("log.txt").find("signal 9"), std::string::npos) << read("log.txt");
    std::printf("SIGKILL of rank %d: mpirun exited with status %d after %.2f s\n", victim,
                WIFEXITED(status) ? WEXITSTATUS(status) : -1, secs);
    // The checkpoint `latest` names loads: model, optimizer state, state.json.
    const std::string ckpt = linformer::latest_checkpoint(path("run"));
    EXPECT_NO_THROW((void)linformer::load_model(ckpt + "/model.safetensors")) << ckpt;
    EXPECT_NO_THROW((void)linformer::read_safetensors(ckpt + "/optimizer.safetensors")) << ckpt;
  }
  // One process (batch 4) continues from the 2 ranks' position (batch 4 x 2 per step).
  const json st = state_of(path("run"));
  const int64_t step = st.at("step").get<int64_t>();
  const RunResult r = run_in_shell("OMP_NUM_THREADS=1 " + shell_quote(bin_) + " pretrain --resume run --threads 1 "
                                   "--steps " + std::to_string(step + 3) + " 2>&1");
  ASSERT_EQ(r.code, 0) << r.output;
  const json after = state_of(path("run"));
  EXPECT_EQ(after.at("step").get<int64_t>(), step + 3);
  // 3 more batches of 4 sequences (unless an epoch ended in between: then it restarts at 0).
  const uint64_t cursor = st.at("data_cursor").get<uint64_t>(), next = after.at("data_cursor").get<uint64_t>();
  if (after.at("data_epoch") == st.at("data_epoch")) EXPECT_EQ(next, cursor + 12);
  else EXPECT_LT(next, 12u);
}

// ------------------------------------------------------------------ fine-tuning

// Fine-tuning from scratch on the has7 task: 2 ranks x 8 examples against 1 process x 16. 50
// training examples = 3 x 16 + 2, so the last batch of each epoch leaves rank 1 nothing.
TEST_F(CliMpi, FinetuneTwoRanksEqualOneProcess) {
  finetune_test::write_has7_task(path("task"), 50, 40, 10);
  std::string cfg = finetune_test::has7_config_json();
  cfg.insert(cfg.rfind('}'), ", \"dropout\": 0, \"attention_dropout\": 0");
  write("cfg.json", cfg);
  const std::string common = "finetune --model none --config cfg.json --task task --steps 12 --lr 3e-3 --warmup 2 "
                             "--pooling mean --eval-every 4 --save-every 6 --log-every 1 --eval-batch-size 8 "
                             "--threads 1 --seed 5";
  const RunResult single =
      run_in_shell("OMP_NUM_THREADS=1 " + shell_quote(bin_) + " " + common + " --batch-size 16 --out one 2>&1");
  ASSERT_EQ(single.code, 0) << single.output;
  const RunResult r = mpirun(2, common + " --batch-size 8 --out two");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("1 threads x 2 ranks"), std::string::npos) << r.output;
  expect_close_metrics(path("one/metrics.jsonl"), path("two/metrics.jsonl"), 1e-4,
                       "finetune, 1 process vs 2 ranks");
  const double dw = max_weight_difference(path("one/ckpt-00000012/model.safetensors"),
                                          path("two/ckpt-00000012/model.safetensors"));
  std::printf("finetune: worst weight difference after 12 steps %.3g\n", dw);
  EXPECT_LT(dw, 1e-4);
  // Resume under mpirun with a new total.
  mpi_ok(2, "finetune --resume two --steps 14 --threads 1");
  EXPECT_EQ(state_of(path("two")).at("step"), 14);
}

// ------------------------------------------------------------------ errors

// Ranks that do not start from the same weights (here: another --seed on rank 1, through
// mpirun's MPMD syntax) stop at once with an error naming the check, and nothing is trained.
TEST_F(CliMpi, RanksWithDifferentWeightsStopWithAClearError) {
  make_data();
  const std::string args = "pretrain " + kTrain + " --steps 5 --batch-size 4 --out run";
  const std::string other_seed = std::regex_replace(args, std::regex("--seed 3"), "--seed 4");
  ASSERT_NE(other_seed, args);
  const RunResult r = run_in_shell(kMpiEnv + " timeout 60 " + kMpirun + " -np 1 " + shell_quote(bin_) + " " + args +
                                   " : -np 1 " + shell_quote(bin_) + " " + other_seed + " 2>&1");
  EXPECT_NE(r.code, 0) << r.output;
  for (const char* m : {"the weights at step 0: not the same on every rank", "on rank 1"})
    EXPECT_NE(r.output.find(m), std::string::npos) << m << " not in:\n" << r.output;
  EXPECT_FALSE(fs::exists(path("run/latest")));
}

// Commands other than pretrain and finetune refuse to run as several ranks (they would all write
// the same files).
TEST_F(CliMpi, OtherCommandsRefuseToRunAsSeveralRanks) {
  write("cfg.json", pretrain_test::tiny_config_json("linformer"));
  const RunResult r = mpirun(2, "init --config cfg.json --out m.safetensors");
  EXPECT_NE(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("only pretrain and finetune run data-parallel"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(path("m.safetensors")));
  // As one rank under mpirun, the same command works.
  const RunResult one = mpirun(1, "init --config cfg.json --out m.safetensors");
  EXPECT_EQ(one.code, 0) << one.output;
  EXPECT_TRUE(fs::exists(path("m.safetensors")));
}

}  // namespace
