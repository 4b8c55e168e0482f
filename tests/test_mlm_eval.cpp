// Masked-LM evaluation (include/linformer/trainer.hpp evaluate_mlm_scores) and its unigram
// baseline (include/linformer/data.hpp UnigramBaseline): the accuracies equal a computation from
// the full logits, the baseline's figures equal the token frequencies counted here, and the
// training-curve picture (analysis.hpp write_pretraining_curves) draws what metrics.jsonl holds.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "linformer/analysis.hpp"
#include "linformer/config.hpp"
#include "linformer/data.hpp"
#include "linformer/error.hpp"
#include "linformer/model.hpp"
#include "linformer/tokenizer.hpp"
#include "linformer/trainer.hpp"
#include "pretrain_test_util.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace linformer;
using namespace pretrain_test;
using test_util::expect_throw;
using test_util::TempDir;
using test_util::Threads;

namespace {

struct Files {
  TempDir dir{"linformer_test_mlm_eval"};
  std::string train, valid;
  Files() {
    write_file((dir / "train.txt"), grammar_corpus(200, 1));
    write_file((dir / "valid.txt"), grammar_corpus(40, 2));
    Tokenizer::train({(dir / "train.txt")}, kTokVocab, (dir / "tok.model"));
    const Tokenizer tok((dir / "tok.model"));
    train = (dir / "train.tokens");
    valid = (dir / "valid.tokens");
    encode_corpus(tok, {(dir / "train.txt")}, train);
    encode_corpus(tok, {(dir / "valid.txt")}, valid);
  }
};

const Files& files() {
  static const Files f;
  return f;
}

}  // namespace

TEST(UnigramBaseline, FrequenciesRanksAndSmoothing) {
  const TokenFile train(files().train);
  const UnigramBaseline u(train, kTokVocab);
  std::vector<double> counts(kTokVocab, 0);
  for (size_t i = 0; i < train.num_tokens(); ++i) ++counts[(size_t)train.tokens()[i]];
  double total_p = 0;
  for (int v = 0; v < kTokVocab; ++v) {
    EXPECT_NEAR(u.log_prob(v), std::log((counts[v] + 1) / ((double)train.num_tokens() + kTokVocab)), 1e-12) << v;
    total_p += std::exp(u.log_prob(v));
    // rank = the ids more frequent, plus the equally frequent with a lower id
    int above = 0;
    for (int w = 0; w < kTokVocab; ++w) above += counts[w] > counts[v] || (counts[w] == counts[v] && w < v);
    EXPECT_EQ(u.rank(v), above) << v;
  }
  EXPECT_NEAR(total_p, 1.0, 1e-9);
  expect_throw<InputError>([&] { UnigramBaseline(train, 5); }, {"train.tokens", "outside the vocabulary (5)"});
}

// The scores counted here from the full [B, n, vocab] logits and the labels of the same batcher.
TEST(MlmEvaluation, AccuraciesAndBaselineMatchAnIndependentCount) {
  Threads one(1);
  const ModelConfig cfg = ModelConfig::from_json(json::parse(tiny_config_json("linformer")));
  // A model that has learned something (an untrained one guesses almost nothing right).
  TempDir run_dir("linformer_test_mlm_eval_run");
  TrainOptions o;
  o.train_tokens = files().train;
  o.valid_tokens = files().valid;
  o.steps = 30;
  o.batch_size = 8;
  o.seq_len = 32;
  o.lr = 5e-3f;
  o.warmup = 3;
  o.eval_every = 30;
  o.eval_batches = 2;
  o.save_every = 30;
  o.log_every = 30;
  o.seed = 5;
  pretrain(cfg, o, (run_dir.path() / "run").string());
  auto model = load_trained_model((run_dir.path() / "run").string());
  const TokenFile train(files().train), valid(files().valid);
  const UnigramBaseline u(train, cfg.vocab_size);
  const int seq_len = 24, batch = 4, max_batches = 6;
  const uint64_t seed = 11;
  const MlmEvaluation e = evaluate_mlm_scores(*model, files().valid, seq_len, batch, max_batches, seed, &u);

  MlmOptions mo;
  mo.seq_len = seq_len;
  mo.batch_size = batch;
  mo.vocab_size = cfg.vocab_size;
  mo.seed = seed;
  mo.shuffle = false;
  MlmBatcher batcher(valid, mo);
  Batch b;
  std::vector<int32_t> labels;
  double n = 0, top1 = 0, top5 = 0, uloss = 0, utop1 = 0, utop5 = 0;
  InferenceScope eval_mode(*model);
  for (int i = 0; i < max_batches; ++i) {
    batcher.next(b, labels);
    const float* logits = model->forward_mlm_logits(b);
    for (size_t t = 0; t < labels.size(); ++t) {
      if (labels[t] == kIgnoreIndex) continue;
      const float* row = logits + t * cfg.vocab_size;
      int above = 0;
      for (int v = 0; v < cfg.vocab_size; ++v) above += row[v] > row[labels[t]];
      n += 1;
      top1 += above == 0;
      top5 += above < 5;
      uloss -= u.log_prob(labels[t]);
      utop1 += u.rank(labels[t]) == 0;
      utop5 += u.rank(labels[t]) < 5;
    }
  }
  ASSERT_GT(n, 20);
  EXPECT_GT(top1, 0) << "the trained model gets some tokens right";
  EXPECT_EQ(e.tokens, (int64_t)n);
  // The evaluation's head runs on the labelled rows only: its logits may round differently from
  // the full head's, so a near-tie may rank differently; allow one token of difference.
  std::printf("top-1 %.4f vs %.4f, top-5 %.4f vs %.4f over %.0f tokens\n", e.top1, top1 / n, e.top5, top5 / n, n);
  EXPECT_NEAR(e.top1, top1 / n, 1.01 / n);
  EXPECT_NEAR(e.top5, top5 / n, 1.01 / n);
  EXPECT_LE(e.top1, e.top5);
  EXPECT_NEAR(e.unigram_loss, uloss / n, 1e-9);
  EXPECT_DOUBLE_EQ(e.unigram_top1, utop1 / n);
  EXPECT_DOUBLE_EQ(e.unigram_top5, utop5 / n);
  // The loss is evaluate_mlm's; without a baseline its figures are NaN.
  EXPECT_EQ(e.loss, evaluate_mlm(*model, files().valid, seq_len, batch, max_batches, seed));
  const MlmEvaluation plain = evaluate_mlm_scores(*model, files().valid, seq_len, batch, max_batches, seed);
  EXPECT_EQ(plain.top1, e.top1);
  EXPECT_TRUE(std::isnan(plain.unigram_loss) && std::isnan(plain.unigram_top1));
  // A baseline of another vocabulary is refused.
  const UnigramBaseline other(train, cfg.vocab_size + 1);
  expect_throw<ConfigError>([&] { evaluate_mlm_scores(*model, files().valid, seq_len, batch, 1, seed, &other); },
                            {"unigram baseline", "vocabulary"});
}

TEST(PretrainingCurves, DrawsLossAccuracyAndBaselines) {
  TempDir dir("linformer_test_curves");
  std::string lines;
  for (int step : {0, 50, 100}) {
    lines += json{{"step", step}, {"train_loss", 5.0}}.dump() + "\n";
    lines += json{{"step", step}, {"valid_loss", 6.0 - step / 50.0}, {"valid_ppl", 1.0}, {"valid_top1", 0.05 + step / 500.0},
                  {"valid_top5", 0.2 + step / 400.0}, {"unigram_ppl", 400.0}, {"unigram_top1", 0.07},
                  {"unigram_top5", 0.21}}
                     .dump() +
             "\n";
  }
  write_file((dir / "metrics.jsonl"), lines);
  const std::string out = write_pretraining_curves(dir.path().string(), dir / "c.svg");
  EXPECT_EQ(out, (dir / "c.svg"));
  const std::string svg = test_util::read_bytes(out);
  for (const char* s : {"<svg", "Validation loss", "Masked-token accuracy", "model top-1", "model top-5", "unigram top-1",
                        "unigram top-5", "unigram baseline"})
    EXPECT_NE(svg.find(s), std::string::npos) << s;
  EXPECT_EQ(std::count(svg.begin(), svg.end(), '\n') > 10, true);

  write_file((dir / "one.jsonl"), json{{"step", 0}, {"valid_loss", 6.0}}.dump() + "\n");
  expect_throw<InputError>([&] { write_pretraining_curves((dir / "one.jsonl"), (dir / "x.svg")); },
                           {"one.jsonl", "fewer than two evaluations"});
  write_file((dir / "bad.jsonl"), "{\"step\": 0}\n{not json\n");
  expect_throw<IoError>([&] { write_pretraining_curves((dir / "bad.jsonl"), (dir / "x.svg")); }, {"bad.jsonl:2"});
  expect_throw<IoError>([&] { write_pretraining_curves((dir / "missing"), (dir / "x.svg")); }, {"missing"});
  EXPECT_FALSE(fs::exists((dir / "x.svg")));
}
