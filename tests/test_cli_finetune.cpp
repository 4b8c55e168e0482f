// End-to-end tests of `linformer finetune`, `eval` and `predict` (LINFORMER_BIN): a classifier
// from scratch learns the synthetic has7 task and eval/predict print what docs/finetune.md says
// (the JSON parsed), fine-tuning from a pretrained model file loads its weights, SIGINT (Ctrl-C) in the
// middle of a run (exit 0, a checkpoint, --resume gives the uninterrupted run), and bad input
// (non-zero exit, a message naming the file and line or the option, nothing written).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_test_util.hpp"
#include "finetune_test_util.hpp"
#include "linformer/checkpoint.hpp"
#include "pretrain_test_util.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace cli_test;
using namespace finetune_test;
using namespace pretrain_test;

namespace {

const std::string kFast = "--threads 1 --batch-size 16 --log-every 1";

class CliFinetune : public CliTest {
 protected:
  CliFinetune() : CliTest("linformer_test_cli_finetune_") {}
  void make_task() const {
    write_has7_task(path("task"));
    write("cfg.json", has7_config_json());
  }
  // task/ and run/: a model from scratch trained to high accuracy (~0.5 s).
  void make_run() const {
    make_task();
    const RunResult r = run("finetune --model none --config cfg.json --task task --out run --steps 300 --lr 3e-3 "
                            "--warmup 20 --pooling mean --eval-every 100 --save-every 100 --seed 11 " + kFast);
    ASSERT_EQ(r.code, 0) << r.output;
    for (const char* m : {"finetune: 300 steps", "validation accuracy", "before", "after", "run/ckpt-00000300"})
      EXPECT_NE(r.output.find(m), std::string::npos) << m << " not in:\n" << r.output;
  }
};

std::vector<json> json_lines(const std::string& text) {
  std::vector<json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      out.push_back(json::parse(line));
    } catch (const json::exception& e) {
      ADD_FAILURE() << "not JSON: '" << line << "': " << e.what();
    }
  }
  return out;
}

}  // namespace

// ------------------------------------------------------------------ finetune, eval, predict

TEST_F(CliFinetune, ScratchModelLearnsAndEvalPredictWork) {
  make_run();
  for (const char* f : {"config.json", "finetune.json", "task.json", "metrics.jsonl", "latest"})
    EXPECT_TRUE(fs::exists(path(std::string("run/") + f))) << f;
  EXPECT_EQ(read("run/task.json"), read("task/task.json"));

  // eval: the text report and the JSON file.
  const RunResult e = run("eval --model run --split test --json ev.json --threads 1");
  ASSERT_EQ(e.code, 0) << e.output;
  for (const char* m : {"50 examples", "accuracy", "macro-F1", "precision", "recall", "support",
                        "confusion matrix (rows: true class, columns: predicted class)", "\nno ", "\nyes "})
    EXPECT_NE(e.output.find(m), std::string::npos) << m << " not in:\n" << e.output;
  const json j = json::parse(read("ev.json"));
  EXPECT_EQ(j.at("examples"), 50);
  EXPECT_EQ(j.at("split"), "test");
  EXPECT_EQ(j.at("labels"), json({"no", "yes"}));
  EXPECT_GT(j.at("accuracy").get<double>(), 0.95);
  int64_t total = 0, diagonal = 0;
  for (int t = 0; t < 2; ++t)
    for (int p = 0; p < 2; ++p) {
      total += j.at("confusion").at(t).at(p).get<int64_t>();
      if (t == p) diagonal += j.at("confusion").at(t).at(p).get<int64_t>();
    }
  EXPECT_EQ(total, 50);
  EXPECT_DOUBLE_EQ(j.at("accuracy").get<double>(), (double)diagonal / 50);
  ASSERT_EQ(j.at("per_class").size(), 2u);
  EXPECT_EQ(j.at("per_class").at(1).at("label"), "yes");
  for (const char* k : {"precision", "recall", "f1", "support", "predicted"})
    EXPECT_TRUE(j.at("per_class").at(0).contains(k)) << k;
  // A checkpoint folder evaluates too, and --task names another copy of the task.
  fs::copy(path("task"), path("task2"));
  const RunResult e2 = run("eval --model run/ckpt-00000300 --task task2 --split test --threads 1");
  ASSERT_EQ(e2.code, 0) << e2.output;
  EXPECT_NE(e2.output.find("accuracy"), std::string::npos);

  // predict: text lines (CRLF accepted) and JSON lines; one JSON object per input line.
  write("in.txt", "1 2 7 3\r\n4 5 6 8\n7\n");
  const RunResult p = run("predict --model run --input in.txt --threads 1", true);
  ASSERT_EQ(p.code, 0) << p.output;
  const std::vector<json> preds = json_lines(p.output);
  ASSERT_EQ(preds.size(), 3u) << p.output;
  const char* expected[] = {"yes", "no", "yes"};
  for (size_t i = 0; i < preds.size(); ++i) {
    EXPECT_EQ(preds[i].at("label"), expected[i]) << preds[i].dump();
    const json& probs = preds[i].at("probs");
    ASSERT_EQ(probs.size(), 2u);
    const double pn = probs.at("no").get<double>(), py = probs.at("yes").get<double>();
    EXPECT_NEAR(pn + py, 1.0, 1e-9);
    EXPECT_EQ(preds[i].at("label"), py > pn ? "yes" : "no");
  }
  write("in.jsonl", "{\"id\": 1, \"text\": \"3 3 7\"}\n{\"text\": \"1 2\", \"extra\": [1]}\n");
  ok("predict --model run --input in.jsonl --output out.jsonl --threads 1");
  const std::vector<json> jp = json_lines(read("out.jsonl"));
  ASSERT_EQ(jp.size(), 2u);
  EXPECT_EQ(jp[0].at("label"), "yes");
  EXPECT_EQ(jp[1].at("label"), "no");
  // --format jsonl with another field name, on a file not named .jsonl.
  write("in.json.txt", "{\"body\": \"7 1\"}\n");
  const RunResult p2 = run("predict --model run --input in.json.txt --format jsonl --field body --threads 1", true);
  ASSERT_EQ(p2.code, 0) << p2.output;
  ASSERT_EQ(json_lines(p2.output).size(), 1u);
  EXPECT_EQ(json_lines(p2.output)[0].at("label"), "yes");

  // Resume: a finished run needs a larger --steps; other options are refused.
  expect_failure("finetune --resume run", {"already reached step 300 of 300", "--steps"});
  expect_failure("finetune --resume run --steps 310 --lr 1", {"--lr", "--resume"});
  ok("finetune --resume run --steps 305 --threads 1");
  EXPECT_EQ(checkpoint_step("run"), 305);
}

// A pretrained model file (linformer init) gives the fine-tuned model its weights: one step with
// learning rate 0 (the first of a warm-up) leaves every pretrained tensor bit for bit as it was.
TEST_F(CliFinetune, PretrainedModelFileIsLoaded) {
  make_task();
  ok("init --config cfg.json --seed 9 --out mlm.safetensors");
  ok("finetune --model mlm.safetensors --task task --out run --steps 1 --warmup 4 " + kFast);
  const linformer::SafetensorsFile pre = linformer::read_safetensors(path("mlm.safetensors"));
  const linformer::SafetensorsFile ft = linformer::read_safetensors(path("run/ckpt-00000001/model.safetensors"));
  ASSERT_NE(pre.find("blk.0.attn_q.weight"), nullptr);
  for (const auto& t : pre.tensors) {
    const auto* u = ft.find(t.name);
    ASSERT_NE(u, nullptr) << t.name;
    EXPECT_TRUE(u->bytes == t.bytes) << t.name;
  }
  EXPECT_NE(ft.find("cls.out.weight"), nullptr);
  EXPECT_EQ(json::parse(read("run/config.json")).at("num_labels"), 2);
}

// ------------------------------------------------------------------ SIGINT (Ctrl-C; SIGTERM: test_cli_pretrain)

TEST_F(CliFinetune, SigintSavesACheckpointAndResumeContinues) {
  make_task();
  const int64_t total = 2000;
  const std::string args = "finetune --model none --config cfg.json --task task --out run --steps " +
                           std::to_string(total) + " --lr 1e-3 --warmup 10 --eval-every 500 --save-every 100000 " +
                           "--threads 1 --batch-size 4 --log-every 1";
  const pid_t pid = start(args, "log.txt");
  ASSERT_GT(pid, 0);
  const Stopped stop = signal_once_started(pid, "run/metrics.jsonl", "train_loss", SIGINT);  // Ctrl-C
  ASSERT_TRUE(stop.error.empty()) << stop.error << ":\n" << read("log.txt");
  ASSERT_TRUE(stop.started) << "the run did not start:\n" << read("log.txt");
  ASSERT_TRUE(WIFEXITED(stop.status)) << read("log.txt");
  ASSERT_EQ(WEXITSTATUS(stop.status), 0) << read("log.txt");
  const std::string log = read("log.txt");
  EXPECT_NE(log.find("interrupted"), std::string::npos) << log;
  EXPECT_NE(log.find("--resume run"), std::string::npos) << log;
  const int64_t stopped = checkpoint_step("run");
  ASSERT_LT(stopped, total) << "the run finished before SIGINT arrived; nothing to resume";
  std::printf("SIGINT: the run stopped after step %lld of %lld\n", (long long)stopped, (long long)total);

  const RunResult r = run("finetune --resume run --threads 1");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(checkpoint_step("run"), total);
  ok(args.substr(0, args.find("--out run")) + "--out straight" + args.substr(args.find("--out run") + 9));
  expect_same_metrics(path("straight/metrics.jsonl"), path("run/metrics.jsonl"));
  const std::string final_model = "/ckpt-00002000/model.safetensors";
  EXPECT_TRUE(read("straight" + final_model) == read("run" + final_model)) << "final weights differ";
}

// ------------------------------------------------------------------ bad input

TEST_F(CliFinetune, BadInputGivesClearErrors) {
  make_task();
  const std::string train = read("task/train.tsv");
  const std::string base = "finetune --model none --config cfg.json --task task --out run --steps 2 " + kFast;

  // Task files: the message names the file and line; nothing is written.
  write("task/train.tsv", "yes\t7 1\nspam\t1 2\n");
  expect_failure(base, {"error:", "train.tsv:2", "unknown label", "spam"});
  write("task/train.tsv", "yes\t7 1\n\n");
  expect_failure(base, {"train.tsv:2", "empty line"});
  write("task/train.tsv", "yes\t7 1\nno\t1 2 3 4 5 6 1 2 3 4 5 6 1 2 3 4 5 6\n");
  expect_failure(base, {"train.tsv:2", "sequence too long", "max_len 16"});
  ok("finetune --model none --config cfg.json --task task --out truncated --steps 2 --truncate " + kFast);
  EXPECT_TRUE(fs::exists(path("truncated/latest")));
  fs::remove_all(path("truncated"));
  write("task/train.tsv", train);

  // Options.
  expect_failure("finetune --model none --task task --out run", {"--config"});
  expect_failure("finetune --model mlm.safetensors --config cfg.json --task task --out run", {"--config", "--model none"});
  expect_failure("finetune --config cfg.json --task task --out run", {"--model"});
  expect_failure(base + " --pooling max", {"--pooling", "max"});
  expect_failure(base + " --steps 0", {"--steps", "at least 1"});
  expect_failure(base + " --lr 0", {"lr = 0"});
  expect_failure("finetune --model missing.safetensors --task task --out run", {"missing.safetensors"});
  expect_failure("finetune --model none --config cfg.json --task nowhere --out run", {"nowhere", "task.json"});
  expect_failure("finetune --resume nowhere", {"nowhere", "latest"});

  // eval / predict.
  ok(base);
  expect_failure("eval --model task", {"task", "not a fine-tuning run folder"});
  expect_failure("eval --model run --split bogus", {"--split", "bogus"});
  write("empty.txt", "1 7\n\n3\n");
  expect_failure("predict --model run --input empty.txt", {"empty.txt:2", "empty line"});
  write("blank.txt", "1 7\n   \n");
  expect_failure("predict --model run --input blank.txt", {"blank.txt:2", "empty"});
  write("long.txt", "1 2\n1 2 3 4 5 6 1 2 3 4 5 6 1 2 3 4 5 6\n");
  expect_failure("predict --model run --input long.txt", {"long.txt:2", "too long", "--truncate"});
  const RunResult t = run("predict --model run --input long.txt --truncate", true);
  EXPECT_EQ(t.code, 0) << t.output;
  EXPECT_EQ(json_lines(t.output).size(), 2u);
  write("bad.txt", "1 ( 2\n");
  expect_failure("predict --model run --input bad.txt", {"bad.txt:1", "ListOps token"});
  write("bad.jsonl", "{\"txt\": \"1 2\"}\n");
  expect_failure("predict --model run --input bad.jsonl", {"bad.jsonl:1", "\"text\""});
  write("bad2.jsonl", "{\"text\": \"1 2\"}\nnot json\n");
  expect_failure("predict --model run --input bad2.jsonl", {"bad2.jsonl:2", "invalid JSON"});
  write("nothing.txt", "");
  expect_failure("predict --model run --input nothing.txt", {"nothing.txt", "no input lines"});
  expect_failure("predict --model run --input missing.txt", {"missing.txt"});
  expect_failure("predict --model run --input nothing.txt --output out.jsonl", {"nothing.txt"});
}
