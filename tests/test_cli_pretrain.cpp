// End-to-end tests of `linformer pretrain`, `fill-mask` and `eval-mlm` (LINFORMER_BIN, set by
// tests/CMakeLists.txt for test_cli*): the whole pipeline from text (tokenizer train, encode,
// pretrain, fill-mask, eval-mlm), SIGTERM in the middle of a run (exit 0, a checkpoint, and
// --resume gives the same run as an uninterrupted one), a non-finite loss (exit 1, `latest`
// unchanged), and bad input (non-zero exit, a message naming the file or option, nothing written).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_test_util.hpp"
#include "linformer/checkpoint.hpp"
#include "pretrain_test_util.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace cli_test;
using namespace pretrain_test;

namespace {

// Small and fast: one thread (the models are tiny), few evaluation batches.
const std::string kFast = "--threads 1 --batch-size 4 --seq-len 32 --eval-batches 2 --log-every 1";

class CliPretrain : public CliTest {
 protected:
  CliPretrain() : CliTest("linformer_test_cli_pretrain_") {}

  // train.txt, valid.txt -> tok.model (40 pieces), train.tokens, valid.tokens, cfg.json.
  void make_data(const std::string& attention = "linformer") const {
    write("train.txt", grammar_corpus(400, 1));
    write("valid.txt", grammar_corpus(60, 2));
    ok("tokenizer train --input train.txt --vocab-size " + std::to_string(kTokVocab) + " --out tok.model");
    ok("tokenizer encode --model tok.model --input train.txt --out train.tokens");
    ok("tokenizer encode --model tok.model --input valid.txt --out valid.tokens");
    write("cfg.json", tiny_config_json(attention));
  }
};

}  // namespace

// ------------------------------------------------------------------ the pipeline

TEST_F(CliPretrain, TextToModelToFillMask) {
  make_data();
  const RunResult r = run("pretrain --config cfg.json --train train.tokens --valid valid.tokens --tokenizer tok.model "
                          "--out run --steps 40 --lr 5e-3 --warmup 4 --eval-every 20 --save-every 20 " + kFast);
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* m : {"pretrain: 40 steps", "tokens/s", "validation perplexity", "before", "after", "run/ckpt-00000040"})
    EXPECT_NE(r.output.find(m), std::string::npos) << m << " not in:\n" << r.output;
  EXPECT_EQ(read("run/latest"), "ckpt-00000040\n");
  EXPECT_EQ(read("run/tokenizer.model"), read("tok.model"));
  // The validation perplexity fell (the grammar is easy to start on).
  const auto m = read_metrics(path("run/metrics.jsonl"));
  ASSERT_FALSE(m.empty());
  EXPECT_LT(m.back().at("valid_loss").get<double>(), m.front().at("valid_loss").get<double>());
  // Every evaluation has the masked-token accuracies and the unigram baseline on the same tokens;
  // the trained model guesses better than token frequencies do (at 40 steps:
  // top-5 and perplexity; top-1 is then often still the most frequent piece).
  for (const auto& j : m)
    if (j.contains("valid_loss"))
      for (const char* key : {"valid_top1", "valid_top5", "unigram_ppl", "unigram_top1", "unigram_top5"})
        EXPECT_TRUE(j.contains(key)) << key << " missing in " << j.dump();
  EXPECT_GT(m.back().at("valid_top5").get<double>(), m.back().at("unigram_top5").get<double>()) << m.back().dump();
  EXPECT_LT(m.back().at("valid_ppl").get<double>(), m.back().at("unigram_ppl").get<double>()) << m.back().dump();
  EXPECT_NE(r.output.find("masked-token accuracy top-1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("unigram baseline: perplexity"), std::string::npos) << r.output;

  // The curves of the run: loss and accuracy panels with the baseline.
  const RunResult c = run("curves --run run");
  ASSERT_EQ(c.code, 0) << c.output;
  EXPECT_NE(c.output.find("run/curves.svg"), std::string::npos) << c.output;
  const std::string svg = read("run/curves.svg");
  for (const char* s : {"<svg", "Masked-token accuracy", "unigram top-1", "Validation loss", "unigram baseline"})
    EXPECT_NE(svg.find(s), std::string::npos) << s;

  const RunResult f = run("fill-mask --model run --text 'the cat <mask> the bird .' --top-k 3 --threads 1");
  ASSERT_EQ(f.code, 0) << f.output;
  EXPECT_NE(f.output.find("<mask> #1:"), std::string::npos) << f.output;
  EXPECT_NE(f.output.find("%"), std::string::npos) << f.output;

  const RunResult e = run("eval-mlm --model run --data valid.tokens --seq-len 32 --max-batches 2 --threads 1");
  ASSERT_EQ(e.code, 0) << e.output;
  EXPECT_NE(e.output.find("perplexity"), std::string::npos) << e.output;
  EXPECT_NE(e.output.find("masked-token accuracy top-1"), std::string::npos) << e.output;
  const RunResult eb = run("eval-mlm --model run --data valid.tokens --seq-len 32 --max-batches 2 --threads 1 "
                           "--baseline train.tokens");
  ASSERT_EQ(eb.code, 0) << eb.output;
  EXPECT_NE(eb.output.find("unigram baseline (train.tokens): perplexity"), std::string::npos) << eb.output;
  const RunResult e2 = run("eval-mlm --model run/ckpt-00000040/model.safetensors --data valid.tokens --seq-len 32 "
                           "--max-batches 2 --threads 1");
  ASSERT_EQ(e2.code, 0) << e2.output;
  EXPECT_EQ(e.output, e2.output) << "a run folder evaluates as its latest checkpoint";

  // Resuming a finished run needs a larger --steps; with one it continues.
  expect_failure("pretrain --resume run", {"run", "already reached step 40 of 40", "--steps"});
  ok("pretrain --resume run --steps 44 --threads 1");
  EXPECT_EQ(checkpoint_step("run"), 44);
}

// ------------------------------------------------------------------ SIGTERM

// SIGTERM in the middle of a run: the step in progress finishes, a checkpoint is saved, the
// process exits 0. --resume then finishes the run, and the result equals an uninterrupted run
// (metrics and final weights bit for bit).
TEST_F(CliPretrain, SigtermSavesACheckpointAndResumeContinues) {
  make_data();
  const int64_t total = 400;
  const std::string args = "pretrain --config cfg.json --train train.tokens --valid valid.tokens --out run --steps " +
                           std::to_string(total) + " --lr 2e-3 --warmup 10 --eval-every 50 --save-every 1000 " + kFast;
  const pid_t pid = start(args, "log.txt");
  ASSERT_GT(pid, 0);
  // Stop the run once its first train step is in metrics.jsonl.
  const Stopped stop = signal_once_started(pid, "run/metrics.jsonl", "train_loss", SIGTERM);
  ASSERT_TRUE(stop.error.empty()) << stop.error << ":\n" << read("log.txt");
  ASSERT_TRUE(stop.started) << "the run did not start:\n" << read("log.txt");
  ASSERT_TRUE(WIFEXITED(stop.status)) << "killed by signal " << (WIFSIGNALED(stop.status) ? WTERMSIG(stop.status) : 0)
                                      << ":\n" << read("log.txt");
  ASSERT_EQ(WEXITSTATUS(stop.status), 0) << read("log.txt");
  const std::string log = read("log.txt");
  EXPECT_NE(log.find("interrupted"), std::string::npos) << log;
  EXPECT_NE(log.find("--resume run"), std::string::npos) << log;
  const int64_t stopped = checkpoint_step("run");
  EXPECT_GE(stopped, 1);
  ASSERT_LT(stopped, total) << "the run finished before SIGTERM arrived; nothing to resume";
  std::printf("SIGTERM: the run stopped after step %lld of %lld\n", (long long)stopped, (long long)total);
  EXPECT_NE(log.find("checkpoint saved at step " + std::to_string(stopped)), std::string::npos) << log;
  for (const json& j : read_metrics(path("run/metrics.jsonl"))) EXPECT_LE(j.at("step").get<int64_t>(), stopped);

  const RunResult r = run("pretrain --resume run --threads 1");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("resuming run"), std::string::npos) << r.output;
  EXPECT_EQ(checkpoint_step("run"), total);

  // The same run without the interruption.
  ok(args.substr(0, args.find("--out run")) + "--out straight" + args.substr(args.find("--out run") + 9));
  expect_same_metrics(path("straight/metrics.jsonl"), path("run/metrics.jsonl"));
  char final_ckpt[64];
  std::snprintf(final_ckpt, sizeof final_ckpt, "/ckpt-%08lld/model.safetensors", (long long)total);
  EXPECT_TRUE(read(std::string("straight") + final_ckpt) == read(std::string("run") + final_ckpt)) << "final weights differ";
}

// ------------------------------------------------------------------ non-finite loss

// A huge (finite) weight in the latest checkpoint overflows the forward pass: --resume exits 1
// with "loss is nan", `latest` and the checkpoint are unchanged and still load (eval-mlm runs on
// them). A NaN weight is refused at load (test_cli_bad_input.cpp).
TEST_F(CliPretrain, NanLossExitsNonZeroAndKeepsLatest) {
  make_data();
  ok("pretrain --config cfg.json --train train.tokens --valid valid.tokens --out run --steps 2 --save-every 2 " + kFast);
  const std::string model = path("run/ckpt-00000002/model.safetensors");
  linformer::SafetensorsFile f = linformer::read_safetensors(model);
  for (auto& t : f.tensors)
    if (t.name == "emb_norm.weight") {
      const float huge = 3e38f;
      std::memcpy(t.bytes.data(), &huge, sizeof huge);
    }
  linformer::write_safetensors(model, f.tensors, f.metadata);
  const std::string before = read_bytes(model);
  const std::vector<std::string> files = listing(path("run"));

  const RunResult r = run("pretrain --resume run --steps 5 --threads 1");
  EXPECT_EQ(r.code, 1) << r.output;
  for (const char* m : {"error: training stopped", "loss is", "nan", "step 3", "ckpt-00000002"})
    EXPECT_NE(r.output.find(m), std::string::npos) << m << " not in:\n" << r.output;
  EXPECT_EQ(read("run/latest"), "ckpt-00000002\n");
  EXPECT_EQ(listing(path("run")), files);
  EXPECT_TRUE(read_bytes(model) == before);
  const RunResult e = run("eval-mlm --model run --data valid.tokens --seq-len 32 --max-batches 1 --threads 1");
  EXPECT_EQ(e.code, 0) << e.output;  // loads (the loss is NaN, but the file is intact)
}

TEST_F(CliPretrain, HugeLearningRateExitsNonZero) {
  make_data();
  const RunResult r = run("pretrain --config cfg.json --train train.tokens --valid valid.tokens --out run --steps 50 "
                          "--lr 1e6 --warmup 0 --save-every 1 --keep 100 " + kFast);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("error: training stopped: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--lr"), std::string::npos) << r.output;  // the hint
  if (fs::exists(path("run/latest"))) {
    const RunResult e = run("eval-mlm --model run --data valid.tokens --seq-len 32 --max-batches 1 --threads 1");
    EXPECT_EQ(e.code, 0) << e.output;
  }
}

// ------------------------------------------------------------------ bad input

TEST_F(CliPretrain, BadInputGivesClearErrors) {
  make_data();
  const std::string base = "pretrain --config cfg.json --train train.tokens --valid valid.tokens ";
  expect_failure("pretrain --config cfg.json --train missing.tokens --valid valid.tokens --out run",
                 {"error:", "missing.tokens"});
  expect_failure("pretrain --config cfg.json --train train.txt --valid valid.tokens --out run", {"error:", "train.txt"});
  expect_failure("pretrain --config nope.json --train train.tokens --valid valid.tokens --out run", {"nope.json"});
  expect_failure("pretrain --train train.tokens --valid valid.tokens --out run", {"--config"});
  expect_failure(base + "--out run --bogus 3", {"--bogus"});
  expect_failure(base + "--out run --steps 0", {"--steps", "at least 1"});
  expect_failure(base + "--out run --batch-size 0", {"--batch-size", "at least 1"});
  expect_failure(base + "--out run --steps ten", {"--steps", "ten"});
  expect_failure(base + "--out run --keep 0", {"--keep"});
  expect_failure(base + "--out run --lr 0", {"lr = 0"});
  expect_failure(base + "--out run --seq-len 64", {"seq_len", "max_len 32"});
  expect_failure(base + "--out run --tokenizer missing.model", {"missing.model"});
  write("small.json", tiny_config_json("linformer", 20));
  expect_failure("pretrain --config small.json --train train.tokens --valid valid.tokens --out run",
                 {"train.tokens", "outside the model's vocabulary"});

  // --resume of a folder without a run, and options that a resumed run would ignore.
  fs::create_directories(path("empty"));
  expect_failure("pretrain --resume empty", {"empty", "latest"});
  expect_failure("pretrain --resume nowhere", {"nowhere", "latest"});
  ok(base + "--out run --steps 2 " + kFast);
  expect_failure("pretrain --resume run --lr 1e-3", {"--lr", "--resume"});
  expect_failure("pretrain --resume run --config cfg.json", {"--config"});
  expect_failure("pretrain --resume run --steps 0", {"--steps"});
  // --out into a folder that holds a run.
  expect_failure(base + "--out run --steps 2", {"run", "already holds a run", "--resume"});

  // fill-mask / eval-mlm.
  expect_failure("fill-mask --model run --tokenizer tok.model --text 'no mask here' --threads 1", {"<mask>"});
  expect_failure("fill-mask --model empty --text 'a <mask>'", {"tokenizer.model"});
  expect_failure("eval-mlm --model run --data missing.tokens", {"missing.tokens"});
  expect_failure("eval-mlm --model run --data valid.tokens --batch-size 0", {"--batch-size"});

  // Tokenizer input: an empty corpus, non-UTF-8 bytes.
  write("empty.txt", "");
  expect_failure("tokenizer train --input empty.txt --vocab-size 40 --out t.model", {"empty"});
  write("latin1.txt", grammar_corpus(50, 3) + "caf\xe9 au lait\n");
  expect_failure("tokenizer train --input latin1.txt --vocab-size 40 --out t.model",
                 {"latin1.txt", "UTF-8", "0xE9"});
  expect_failure("tokenizer encode --model tok.model --input latin1.txt --out t.tokens", {"latin1.txt", "UTF-8"});
}
