// RunHooks (include/linformer/optimizer.hpp), the progress callback of a training run that the
// Python package uses: called at each log step with the metrics.jsonl train line (and the step's
// evaluation merged in), its `false` stops the run like SIGINT (checkpoint saved, summary
// interrupted, the run resumes), an exception from it propagates, and a hook that lets the run go
// on changes nothing: the same metrics and weights bit for bit as a run without one.
// Suites TrainerRunHooks / FinetuneRunHooks (so that `ctest -R 'Trainer|Finetune'` picks them up).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "finetune_test_util.hpp"
#include "linformer/config.hpp"
#include "linformer/data.hpp"
#include "linformer/finetune.hpp"
#include "linformer/optimizer.hpp"
#include "linformer/tokenizer.hpp"
#include "linformer/trainer.hpp"
#include "pretrain_test_util.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace linformer;
using namespace pretrain_test;
using test_util::ckpt_name;
using test_util::Threads;

namespace {

// A tokenizer and token files for a few pretraining steps, made in `tmp`.
struct Data {
  std::string train, valid;
};

Data make_data(const TempDir& tmp) {
  write_file(tmp / "train.txt", grammar_corpus(200, 1));
  write_file(tmp / "valid.txt", grammar_corpus(40, 2));
  Tokenizer::train({tmp / "train.txt"}, kTokVocab, tmp / "tok.model");
  const Tokenizer tok(tmp / "tok.model");
  Data d{tmp / "train.tokens", tmp / "valid.tokens"};
  encode_corpus(tok, {tmp / "train.txt"}, d.train);
  encode_corpus(tok, {tmp / "valid.txt"}, d.valid);
  return d;
}

TrainOptions options(const Data& d) {
  TrainOptions o;
  o.train_tokens = d.train;
  o.valid_tokens = d.valid;
  o.steps = 6;
  o.batch_size = 4;
  o.seq_len = 32;
  o.lr = 2e-3f;
  o.warmup = 2;
  o.eval_every = 4;
  o.eval_batches = 1;
  o.save_every = 100;
  o.log_every = 2;
  o.seed = 3;
  return o;
}

ModelConfig config() { return ModelConfig::from_json(json::parse(tiny_config_json("linformer"))); }

// The train lines of metrics.jsonl.
std::vector<json> train_lines(const std::string& metrics) {
  std::vector<json> out;
  for (const json& j : read_metrics(metrics))
    if (j.contains("train_loss")) out.push_back(j);
  return out;
}

}  // namespace

TEST(TrainerRunHooks, CalledAtEachLogStepWithTheMetricsLine) {
  Threads threads(1);
  TempDir tmp;
  const Data d = make_data(tmp);
  std::vector<json> seen;
  RunHooks hooks;
  hooks.on_progress = [&](const json& line) {
    seen.push_back(line);
    return true;
  };
  const TrainSummary s = pretrain(config(), options(d), tmp / "run", hooks);
  EXPECT_FALSE(s.interrupted);
  EXPECT_EQ(s.steps_done, 6);
  const std::vector<json> logged = train_lines(tmp / "run/metrics.jsonl");
  ASSERT_EQ(seen.size(), 3u);  // steps 2, 4, 6
  ASSERT_EQ(logged.size(), 3u);
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].at("step").get<int64_t>(), 2 * (int64_t)(i + 1));
    for (auto it = logged[i].begin(); it != logged[i].end(); ++it)  // the train line, value for value
      EXPECT_EQ(seen[i].at(it.key()).dump(), it.value().dump()) << it.key();
  }
  // Steps 4 and 6 evaluated (eval_every 4, and the last step): their validation loss is merged in.
  EXPECT_FALSE(seen[0].contains("valid_loss"));
  EXPECT_TRUE(seen[1].contains("valid_loss"));
  EXPECT_TRUE(seen[2].contains("valid_loss"));
}

TEST(TrainerRunHooks, AHookThatGoesOnChangesNothing) {
  Threads threads(1);
  TempDir tmp;
  const Data d = make_data(tmp);
  pretrain(config(), options(d), tmp / "plain");
  int calls = 0;
  RunHooks hooks;
  hooks.on_progress = [&](const json&) { return ++calls > 0; };
  pretrain(config(), options(d), tmp / "hooked", hooks);
  EXPECT_EQ(calls, 3);
  expect_same_metrics(tmp / "plain/metrics.jsonl", tmp / "hooked/metrics.jsonl");
  EXPECT_EQ(read_bytes(tmp / ("plain/" + ckpt_name(6) + "/model.safetensors")),
            read_bytes(tmp / ("hooked/" + ckpt_name(6) + "/model.safetensors")));
}

TEST(TrainerRunHooks, FalseStopsCleanlyAndTheRunResumes) {
  Threads threads(1);
  TempDir tmp;
  const Data d = make_data(tmp);
  TrainOptions o = options(d);
  o.log_every = 1;
  RunHooks stop_at_3;
  stop_at_3.on_progress = [](const json& line) { return line.at("step").get<int64_t>() < 3; };
  const TrainSummary s = pretrain(config(), o, tmp / "run", stop_at_3);
  EXPECT_TRUE(s.interrupted);
  EXPECT_EQ(s.steps_done, 3);
  EXPECT_EQ(s.checkpoint, tmp / ("run/" + ckpt_name(3)));
  EXPECT_TRUE(fs::exists(tmp / ("run/" + ckpt_name(3) + "/model.safetensors")));
  EXPECT_EQ(latest_checkpoint(tmp / "run"), tmp / ("run/" + ckpt_name(3)));
  // Resumed (with a hook that lets it go on), it ends as an uninterrupted run does.
  int calls = 0;
  RunHooks go_on;
  go_on.on_progress = [&](const json&) { return ++calls > 0; };
  const TrainSummary r = resume_pretraining(tmp / "run", 0, go_on);
  EXPECT_FALSE(r.interrupted);
  EXPECT_EQ(r.steps_done, 6);
  EXPECT_EQ(calls, 3);  // steps 4, 5, 6
  pretrain(config(), o, tmp / "plain");
  expect_same_metrics(tmp / "plain/metrics.jsonl", tmp / "run/metrics.jsonl");
}

TEST(TrainerRunHooks, AnExceptionFromTheHookPropagates) {
  Threads threads(1);
  TempDir tmp;
  const Data d = make_data(tmp);
  RunHooks hooks;
  hooks.on_progress = [](const json&) -> bool { throw std::runtime_error("callback failed"); };
  try {
    pretrain(config(), options(d), tmp / "run", hooks);
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "callback failed");
  }
}

TEST(FinetuneRunHooks, CalledWithAccuracyAndFalseStops) {
  Threads threads(1);
  TempDir tmp;
  finetune_test::write_has7_task(tmp / "task", 64, 16, 16);
  write_file(tmp / "cfg.json", finetune_test::has7_config_json());
  FinetuneOptions o;
  o.config = tmp / "cfg.json";
  o.task = tmp / "task";
  o.steps = 8;
  o.batch_size = 8;
  o.lr = 3e-3f;
  o.warmup = 2;
  o.eval_every = 2;
  o.save_every = 100;
  o.log_every = 1;
  o.seed = 4;
  std::vector<json> seen;
  RunHooks hooks;
  hooks.on_progress = [&](const json& line) {
    seen.push_back(line);
    return line.at("step").get<int64_t>() < 4;
  };
  const FinetuneSummary s = finetune(o, tmp / "run", hooks);
  EXPECT_TRUE(s.interrupted);
  EXPECT_EQ(s.steps_done, 4);
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_FALSE(seen[0].contains("valid_accuracy"));
  EXPECT_TRUE(seen[1].contains("valid_accuracy"));  // step 2 evaluated
  EXPECT_TRUE(seen[3].contains("valid_accuracy"));
  EXPECT_EQ(seen[3].at("valid_accuracy").get<double>(), s.final_valid_accuracy);
  const FinetuneSummary r = resume_finetuning(tmp / "run");
  EXPECT_FALSE(r.interrupted);
  EXPECT_EQ(r.steps_done, 8);
}
