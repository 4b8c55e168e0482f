// Fine-tuning (library API, include/linformer/finetune.hpp): a tiny classifier learns a trivially
// separable synthetic task, resume equals an uninterrupted run bit for bit (across an epoch
// boundary, dropout on), same seed => same run, the encoder weights of a pretrained MLM model are
// loaded exactly and the head comes from the seed, evaluate_classifier's metrics on forced
// predictions, the run folder layout, the NaN stop, and bad input (errors naming file:line,
// nothing written).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "finetune_test_util.hpp"
#include "linformer/checkpoint.hpp"
#include "linformer/config.hpp"
#include "linformer/error.hpp"
#include "linformer/finetune.hpp"
#include "linformer/model.hpp"
#include "linformer/tokenizer.hpp"
#include "linformer/trainer.hpp"
#include "pretrain_test_util.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace linformer;
using namespace pretrain_test;
using test_util::ckpt_name;
using test_util::expect_throw;
using test_util::Threads;
using namespace finetune_test;

namespace {




// A from-scratch run on the has7 task in `tmp`: task folder tmp/task, config tmp/cfg.json.
FinetuneOptions scratch_options(const TempDir& tmp, const std::string& attention = "linformer") {
  write_has7_task(tmp / "task");
  write_file(tmp / "cfg.json", has7_config_json(attention));
  FinetuneOptions o;
  o.config = tmp / "cfg.json";
  o.task = tmp / "task";
  o.steps = 20;
  o.batch_size = 16;
  o.lr = 3e-3f;
  o.warmup = 3;
  o.eval_every = 5;
  o.save_every = 7;
  o.log_every = 1;
  o.keep_checkpoints = 5;
  o.seed = 11;
  return o;
}

// Points `latest` of the finished run in `run` back at step `from`, drops the checkpoint of step
// `to` and resumes: the resumed run must end with the same weights.
void expect_resume_reproduces(const fs::path& run, int64_t from, int64_t to) {
  const fs::path final_ckpt = run / ckpt_name(to) / "model.safetensors";
  const std::string final_model = read_bytes(final_ckpt);
  write_file(run / "latest", ckpt_name(from) + "\n");
  fs::remove_all(run / ckpt_name(to));
  resume_finetuning(run);
  EXPECT_TRUE(read_bytes(final_ckpt) == final_model) << "resumed run " << run << " ends with other weights";
}

std::vector<float> tensor_values(const SafetensorsFile& f, const std::string& name) {
  const NamedTensor* t = f.find(name);
  if (!t) return {};
  std::vector<float> v(t->bytes.size() / sizeof(float));
  std::memcpy(v.data(), t->bytes.data(), t->bytes.size());
  return v;
}

}  // namespace

// ------------------------------------------------------------------ learning

class LearnTest : public ::testing::TestWithParam<std::string> {};

// 300 updates (~0.5 s): validation and test accuracy above 95 %, from about chance before.
TEST_P(LearnTest, TinyClassifierLearnsHas7) {
  Threads threads(1);
  TempDir tmp("linformer_test_finetune_");
  FinetuneOptions o = scratch_options(tmp, GetParam());
  o.steps = 300;
  o.warmup = 20;
  o.eval_every = 100;
  o.save_every = 300;
  o.pooling = "mean";
  const FinetuneSummary s = finetune(o, tmp / "run");
  EXPECT_EQ(s.steps_done, 300);
  EXPECT_FALSE(s.interrupted);
  EXPECT_LT(s.initial_valid_accuracy, 0.8);
  EXPECT_GT(s.final_valid_accuracy, 0.95);
  EXPECT_TRUE(std::isfinite(s.final_valid_loss));

  Classifier c(tmp / "run");
  EXPECT_EQ(c.task().labels, (std::vector<std::string>{"no", "yes"}));
  EXPECT_EQ(c.model().config().num_labels, 2);
  EXPECT_EQ(c.model().config().pooling, Pooling::Mean);
  const ClassifierEval e = c.evaluate(tmp / "task", "test", false);
  EXPECT_EQ(e.examples, 50);
  EXPECT_GT(e.accuracy, 0.95);
  EXPECT_GT(e.macro_f1, 0.95);
  int64_t total = 0;
  for (const auto& row : e.confusion)
    for (int64_t v : row) total += v;
  EXPECT_EQ(total, 50);
  // classify() agrees with the evaluation: a text with a 7 and one without.
  const auto p = classify(c.model(), {c.tokenize("1 2 7 3", false), c.tokenize("4 5 6 8", false)});
  ASSERT_EQ(p.size(), 2u);
  EXPECT_GT(p[0][1], 0.5);
  EXPECT_LT(p[1][1], 0.5);
  EXPECT_NEAR(p[0][0] + p[0][1], 1.0, 1e-9);
}

INSTANTIATE_TEST_SUITE_P(Finetune, LearnTest, ::testing::Values("linformer", "full"));

// ------------------------------------------------------------------ resume

// 20 steps, checkpoints at 7, 14, 20; 200 examples in batches of 16, so an epoch ends after step
// 13 (12 full batches and one of 8). Rewinding `latest` to step 7 and resuming crosses the epoch
// boundary and must reproduce steps 8..20 exactly: the metrics as the same JSON text, the model,
// the optimizer and state.json byte for byte (dropout is on).
TEST(Finetune, ResumeEqualsUninterrupted) {
  Threads threads(2);
  TempDir tmp("linformer_test_finetune_");
  const FinetuneOptions o = scratch_options(tmp);
  const std::string run = tmp / "run";
  const FinetuneSummary full = finetune(o, run);
  ASSERT_EQ(full.steps_done, 20);
  const fs::path c7 = fs::path(run) / ckpt_name(7), c14 = fs::path(run) / ckpt_name(14),
                 c20 = fs::path(run) / ckpt_name(20);
  ASSERT_TRUE(fs::is_directory(c7) && fs::is_directory(c14) && fs::is_directory(c20));
  const json s14 = json::parse(read_bytes((c14 / "state.json").string()));
  EXPECT_EQ(s14.at("step").get<int64_t>(), 14);
  EXPECT_EQ(s14.at("epoch").get<int64_t>(), 1);
  EXPECT_EQ(s14.at("cursor").get<int64_t>(), 16);
  EXPECT_GT(s14.at("dropout_counter").get<int64_t>(), 0);
  const json s7 = json::parse(read_bytes((c7 / "state.json").string()));
  EXPECT_EQ(s7.at("epoch").get<int64_t>(), 0);
  EXPECT_EQ(s7.at("cursor").get<int64_t>(), 7 * 16);

  const std::string model20 = read_bytes((c20 / "model.safetensors").string());
  const std::string adam20 = read_bytes((c20 / "optimizer.safetensors").string());
  const std::string state20 = read_bytes((c20 / "state.json").string());
  const std::vector<double> losses = train_losses(run + "/metrics.jsonl");
  ASSERT_EQ(losses.size(), 20u);
  EXPECT_NE(losses[6], losses[19]);

  write_file(run + "/latest", ckpt_name(7) + "\n");
  fs::remove_all(c14);
  fs::remove_all(c20);
  fs::copy_file(run + "/metrics.jsonl", tmp / "metrics_full.jsonl");
  const FinetuneSummary resumed = resume_finetuning(run);
  EXPECT_EQ(resumed.steps_done, 20);
  EXPECT_TRUE(std::isnan(resumed.initial_valid_accuracy));
  EXPECT_EQ(resumed.final_valid_accuracy, full.final_valid_accuracy);
  EXPECT_EQ(resumed.final_valid_loss, full.final_valid_loss);
  expect_same_metrics(tmp / "metrics_full.jsonl", run + "/metrics.jsonl");
  EXPECT_TRUE(read_bytes((c20 / "model.safetensors").string()) == model20) << "final weights differ";
  EXPECT_TRUE(read_bytes((c20 / "optimizer.safetensors").string()) == adam20) << "optimizer state differs";
  EXPECT_EQ(read_bytes((c20 / "state.json").string()), state20);

  // A finished run continues only to a larger total.
  expect_throw<ConfigError>([&] { resume_finetuning(run); }, {"already reached step 20 of 20", "--steps"});
  EXPECT_EQ(resume_finetuning(run, 23).steps_done, 23);
  EXPECT_EQ(json::parse(read_bytes(run + "/finetune.json")).at("steps").get<int64_t>(), 23);
}

TEST(Finetune, SameSeedSameRunOtherSeedDiffers) {
  Threads threads(1);
  TempDir tmp("linformer_test_finetune_");
  FinetuneOptions o = scratch_options(tmp);
  o.steps = 8;
  finetune(o, tmp / "a");
  finetune(o, tmp / "b");
  expect_same_metrics(tmp / "a/metrics.jsonl", tmp / "b/metrics.jsonl");
  EXPECT_TRUE(read_bytes(tmp / "a/ckpt-00000008/model.safetensors") ==
              read_bytes(tmp / "b/ckpt-00000008/model.safetensors"));
  o.seed = 12;
  finetune(o, tmp / "c");
  EXPECT_NE(train_losses(tmp / "a/metrics.jsonl"), train_losses(tmp / "c/metrics.jsonl"));
}

// ------------------------------------------------------------------ from a pretrained model

// An MLM model (no head) saved as a run folder's checkpoint and as a plain file. Fine-tuning one
// step whose learning rate is 0 (the first step of a warm-up) leaves the weights as loaded: every
// encoder and MLM tensor equals the pretrained one bit for bit, and the head equals that of a
// model of the fine-tuning config initialised from the seed.
TEST(Finetune, PretrainedEncoderWeightsAreLoaded) {
  Threads threads(1);
  TempDir tmp("linformer_test_finetune_");
  write_has7_task(tmp / "task");
  ModelConfig mlm_cfg = ModelConfig::from_json(json::parse(has7_config_json("linformer")));
  ASSERT_EQ(mlm_cfg.num_labels, 0);
  Model mlm(mlm_cfg);
  mlm.init(777);
  fs::create_directories(tmp / "mlm/ckpt-00000003");
  save_model(mlm, tmp / "mlm/ckpt-00000003/model.safetensors");
  write_file(tmp / "mlm/latest", "ckpt-00000003\n");
  const SafetensorsFile pre = read_safetensors(tmp / "mlm/ckpt-00000003/model.safetensors");

  for (const std::string& source : {tmp / "mlm", tmp / "mlm/ckpt-00000003/model.safetensors"}) {
    SCOPED_TRACE(source);
    const std::string run = tmp / "run";
    fs::remove_all(run);
    FinetuneOptions o;
    o.model = source;
    o.task = tmp / "task";
    o.steps = 1;
    o.warmup = 5;  // lr(0) = 0
    o.eval_every = 1;
    o.seed = 3;
    finetune(o, run);
    const SafetensorsFile ft = read_safetensors(run + "/ckpt-00000001/model.safetensors");
    const json cfg = json::parse(read_bytes(run + "/config.json"));
    EXPECT_EQ(cfg.at("num_labels"), 2);
    EXPECT_EQ(cfg.at("pooling"), "first");
    EXPECT_EQ(cfg.at("d_model"), mlm_cfg.d_model);
    int compared = 0;
    for (const NamedTensor& t : pre.tensors) {
      const NamedTensor* u = ft.find(t.name);
      ASSERT_NE(u, nullptr) << t.name;
      EXPECT_TRUE(u->bytes == t.bytes) << t.name << " differs from the pretrained model";
      ++compared;
    }
    EXPECT_GT(compared, 10);
    // The head: from the seed (the same values as a fresh model of this config), not zero.
    ModelConfig cls_cfg = mlm_cfg;
    cls_cfg.num_labels = 2;
    Model fresh(cls_cfg);
    fresh.init(3);
    for (const char* name : {"cls.dense.weight", "cls.out.weight"}) {
      const std::vector<float> got = tensor_values(ft, name);
      const int idx = fresh.params().find(name);
      ASSERT_GE(idx, 0) << name;
      ASSERT_EQ(got.size(), fresh.params().info(idx).numel) << name;
      EXPECT_EQ(std::memcmp(got.data(), fresh.params().data(idx), got.size() * sizeof(float)), 0) << name;
      double norm = 0;
      for (float v : got) norm += (double)v * v;
      EXPECT_GT(norm, 0.0) << name;
    }
  }
}

// load_weights_except: the model keeps its tensors under the prefix; every other one is copied;
// a file lacking a tensor outside the prefix is an error that leaves the model unchanged.
TEST(Finetune, LoadWeightsExceptPrefix) {
  TempDir tmp("linformer_test_finetune_");
  ModelConfig cfg = ModelConfig::from_json(json::parse(has7_config_json("full")));
  Model a(cfg);
  a.init(1);
  save_model(a, tmp / "a.safetensors");
  cfg.num_labels = 3;
  Model b(cfg);
  b.init(2);
  const int head = b.params().find("cls.out.weight"), emb = b.params().find("blk.0.attn_q.weight");
  ASSERT_GE(head, 0);
  ASSERT_GE(emb, 0);
  const std::vector<float> head_before(b.params().data(head), b.params().data(head) + b.params().info(head).numel);
  EXPECT_THROW(load_weights(b, tmp / "a.safetensors"), IoError);  // the exact load wants the head
  load_weights_except(b, tmp / "a.safetensors", "cls.");
  EXPECT_EQ(std::memcmp(b.params().data(emb), a.params().data(a.params().find("blk.0.attn_q.weight")),
                        b.params().info(emb).numel * sizeof(float)),
            0);
  EXPECT_EQ(std::memcmp(b.params().data(head), head_before.data(), head_before.size() * sizeof(float)), 0);
  // A fine-tuned file (with a 3-class head) into a 2-class model: its head is ignored.
  save_model(b, tmp / "b.safetensors");
  cfg.num_labels = 2;
  Model c(cfg);
  EXPECT_THROW(load_weights(c, tmp / "b.safetensors"), IoError);
  EXPECT_NO_THROW(load_weights_except(c, tmp / "b.safetensors", "cls."));
  // Another architecture: an error naming the file and tensor, and the model unchanged.
  ModelConfig other = ModelConfig::from_json(json::parse(has7_config_json("linformer")));
  Model d(other);
  d.init(4);
  const std::vector<float> before = d.params().all_data();
  expect_throw<IoError>([&] { load_weights_except(d, tmp / "a.safetensors", "cls."); }, {"a.safetensors", "attn_proj"});
  EXPECT_TRUE(d.params().all_data() == before);
}

// ------------------------------------------------------------------ evaluation metrics

// A head forced to predict class 1 (zero weights, bias [0, 5, 0]) on labels 0, 1, 1, 2: the
// accuracy, loss, per-class metrics and the confusion matrix are known exactly.
TEST(Finetune, EvaluateClassifierMetrics) {
  ModelConfig cfg = ModelConfig::from_json(json::parse(has7_config_json("full")));
  cfg.num_labels = 3;
  Model m(cfg);
  m.init(1);
  const int w = m.params().find("cls.out.weight"), b = m.params().find("cls.out.bias");
  std::fill(m.params().data(w), m.params().data(w) + m.params().info(w).numel, 0.0f);
  float* bias = m.params().data(b);
  bias[0] = 0;
  bias[1] = 5;
  bias[2] = 0;
  m.train();
  const std::vector<std::vector<int32_t>> seqs = {{1, 9, 2}, {1, 10, 11, 2}, {1, 12, 2}, {1, 13, 14, 15, 2}};
  const ClassifierEval e = evaluate_classifier(m, seqs, {0, 1, 1, 2}, 3);  // batches of 3 and 1
  EXPECT_TRUE(m.is_training()) << "the mode is restored";
  EXPECT_EQ(e.examples, 4);
  EXPECT_DOUBLE_EQ(e.accuracy, 0.5);
  const double lse = std::log(2.0 + std::exp(5.0));
  EXPECT_NEAR(e.loss, (lse + (lse - 5) + (lse - 5) + lse) / 4, 1e-6);
  EXPECT_EQ(e.confusion, (std::vector<std::vector<int64_t>>{{0, 1, 0}, {0, 2, 0}, {0, 1, 0}}));
  ASSERT_EQ(e.per_class.size(), 3u);
  EXPECT_EQ(e.per_class[1].support, 2);
  EXPECT_EQ(e.per_class[1].predicted, 4);
  EXPECT_DOUBLE_EQ(e.per_class[1].precision, 0.5);
  EXPECT_DOUBLE_EQ(e.per_class[1].recall, 1.0);
  EXPECT_NEAR(e.per_class[1].f1, 2.0 / 3.0, 1e-12);
  EXPECT_EQ(e.per_class[0].support, 1);
  EXPECT_EQ(e.per_class[0].predicted, 0);
  EXPECT_EQ(e.per_class[0].precision, 0.0);
  EXPECT_EQ(e.per_class[0].f1, 0.0);
  EXPECT_NEAR(e.macro_f1, 2.0 / 9.0, 1e-12);
  const json j = to_json(e, {"a", "b", "c"});
  EXPECT_EQ(j.at("per_class").at(1).at("label"), "b");
  EXPECT_EQ(j.at("confusion").at(1).at(1), 2);
  // The probabilities: softmax of [0, 5, 0] for every text.
  const auto p = classify(m, seqs, 2);
  ASSERT_EQ(p.size(), 4u);
  EXPECT_NEAR(p[3][1], std::exp(5.0) / (2 + std::exp(5.0)), 1e-6);
  EXPECT_THROW(evaluate_classifier(m, seqs, {0, 1, 1}), InputError);
  EXPECT_THROW(evaluate_classifier(m, seqs, {0, 1, 1, 3}), InputError);
  const ClassifierEval empty = evaluate_classifier(m, {}, {});
  EXPECT_EQ(empty.examples, 0);
  EXPECT_TRUE(std::isnan(empty.accuracy));
}

// ------------------------------------------------------------------ class weights

TEST(Finetune, BalancedClassWeights) {
  // 6 labels of 3 classes (3, 2, 1 examples) and a 4th class without any.
  const std::vector<float> w = balanced_class_weights({0, 1, 0, 2, 1, 0}, 4);
  ASSERT_EQ(w.size(), 4u);
  EXPECT_FLOAT_EQ(w[0], 6.0f / (4 * 3));
  EXPECT_FLOAT_EQ(w[1], 6.0f / (4 * 2));
  EXPECT_FLOAT_EQ(w[2], 6.0f / (4 * 1));
  EXPECT_EQ(w[3], 0.0f);
}

// --class-weights balanced is kept in finetune.json (so --resume keeps it) and changes training;
// its run resumes to the same weights as an uninterrupted one.
TEST(Finetune, BalancedRunDiffersAndResumes) {
  Threads threads(1);
  TempDir tmp("linformer_test_finetune_");
  FinetuneOptions o = scratch_options(tmp);
  {  // make the classes unequal: every "no", a third of the "yes"
    std::istringstream in(read_bytes(tmp / "task/train.tsv"));
    std::string kept;
    int yes = 0;
    for (std::string line; std::getline(in, line);)
      if (line.rfind("no\t", 0) == 0 || yes++ % 3 == 0) kept += line + "\n";
    write_file(tmp / "task/train.tsv", kept);
  }
  o.steps = 8;
  o.save_every = 4;
  finetune(o, tmp / "plain");
  o.class_weights = "balanced";
  finetune(o, tmp / "balanced");
  const json opts = json::parse(read_bytes(tmp / "balanced/finetune.json"));
  EXPECT_EQ(opts.at("class_weights"), "balanced");
  EXPECT_NE(train_losses(tmp / "plain/metrics.jsonl"), train_losses(tmp / "balanced/metrics.jsonl"));
  expect_resume_reproduces(tmp / "balanced", 4, 8);
}

// The grouped order is a permutation whose batches hold similar lengths, fixed by (seed, epoch);
// a short last batch stays last.
TEST(Finetune, GroupByLengthOrder) {
  const size_t n = 1000, batch = 16;
  std::vector<uint32_t> order(n);
  std::vector<size_t> lengths(n);
  for (size_t i = 0; i < n; ++i) {
    order[i] = (uint32_t)((i * 7919) % n);  // a fixed shuffle
    lengths[i] = 500 + (i * 2654435761u) % 1500;
  }
  const std::vector<uint32_t> g = group_by_length(order, lengths, batch, 5, 0);
  ASSERT_EQ(g.size(), n);
  EXPECT_TRUE(std::is_permutation(g.begin(), g.end(), order.begin()));
  EXPECT_EQ(g, group_by_length(order, lengths, batch, 5, 0));
  EXPECT_NE(g, group_by_length(order, lengths, batch, 5, 1));
  // Padding: the sum over batches of (batch size x longest) against the real lengths.
  auto padded = [&](const std::vector<uint32_t>& o) {
    size_t total = 0;
    for (size_t b = 0; b < n; b += batch) {
      size_t longest = 0;
      const size_t end = std::min(n, b + batch);
      for (size_t i = b; i < end; ++i) longest = std::max(longest, lengths[o[i]]);
      total += longest * (end - b);
    }
    return (double)total;
  };
  double real = 0;
  for (size_t l : lengths) real += (double)l;
  const double waste_plain = padded(order) / real - 1, waste_grouped = padded(g) / real - 1;
  std::printf("padding overhead: shuffled %.1f%%, grouped %.1f%%\n", 100 * waste_plain, 100 * waste_grouped);
  EXPECT_GT(waste_plain, 0.4);
  EXPECT_LT(waste_grouped, 0.05);
  // 1000 = 62 batches of 16 + 8: the 8 are the last 8 of the last pool (200 examples), sorted.
  std::vector<uint32_t> tail_sorted(order.begin() + 800, order.end());
  std::stable_sort(tail_sorted.begin(), tail_sorted.end(),
                   [&](uint32_t a, uint32_t b) { return lengths[a] > lengths[b]; });
  EXPECT_TRUE(std::equal(g.end() - 8, g.end(), tail_sorted.end() - 8));
  EXPECT_THROW(group_by_length(order, lengths, 0, 5, 0), ConfigError);
}

TEST(Finetune, GroupByLengthRunDiffersAndResumes) {
  Threads threads(1);
  TempDir tmp("linformer_test_finetune_");
  FinetuneOptions o = scratch_options(tmp);
  o.steps = 8;
  o.save_every = 4;
  finetune(o, tmp / "plain");
  o.group_by_length = true;
  finetune(o, tmp / "grouped");
  const json opts = json::parse(read_bytes(tmp / "grouped/finetune.json"));
  EXPECT_EQ(opts.at("group_by_length"), true);
  EXPECT_NE(train_losses(tmp / "plain/metrics.jsonl"), train_losses(tmp / "grouped/metrics.jsonl"));
  expect_resume_reproduces(tmp / "grouped", 4, 8);
}

// ------------------------------------------------------------------ the run folder

TEST(Finetune, RunFolderLayout) {
  Threads threads(1);
  TempDir tmp("linformer_test_finetune_");
  FinetuneOptions o = scratch_options(tmp);
  o.keep_checkpoints = 2;
  finetune(o, tmp / "run");
  EXPECT_EQ(listing(tmp / "run"), (std::vector<std::string>{"ckpt-00000014", "ckpt-00000020", "config.json",
                                                            "finetune.json", "latest", "metrics.jsonl", "task.json"}));
  EXPECT_EQ(read_bytes(tmp / "run/task.json"), read_bytes(tmp / "task/task.json"));
  EXPECT_EQ(read_bytes(tmp / "run/latest"), "ckpt-00000020\n");
  const json opts = json::parse(read_bytes(tmp / "run/finetune.json"));
  EXPECT_EQ(opts.at("task"), o.task);
  EXPECT_EQ(opts.at("pooling"), "first");
  EXPECT_EQ(FinetuneOptions::from_json(opts).to_json(), opts);
  // metrics.jsonl: an evaluation at 0, 5, 10, 15, 20 and a train line per step.
  int evals = 0, trains = 0;
  for (const json& j : read_metrics(tmp / "run/metrics.jsonl")) {
    if (j.contains("valid_accuracy")) {
      EXPECT_EQ(j.at("step").get<int64_t>() % 5, 0);
      EXPECT_TRUE(j.contains("valid_loss") && j.contains("valid_macro_f1"));
      ++evals;
    }
    if (j.contains("train_loss")) {
      for (const char* k : {"lr", "grad_norm", "epoch", "tokens_per_s", "elapsed_s"}) EXPECT_TRUE(j.contains(k)) << k;
      ++trains;
    }
  }
  EXPECT_EQ(evals, 5);
  EXPECT_EQ(trains, 20);
  // The checkpoint folder of a run is a model for Classifier too (it finds the run's task.json).
  EXPECT_NO_THROW(Classifier(tmp / "run/ckpt-00000014"));
  expect_throw<IoError>([&] { Classifier c(tmp / "task"); }, {"task", "run folder"});
}

// A huge (finite) weight in the latest checkpoint overflows the forward pass: resuming stops with
// "loss is nan", writes nothing, and `latest` is unchanged. (A NaN weight is refused at load.)
TEST(Finetune, NanLossStopsAndKeepsLatest) {
  Threads threads(1);
  TempDir tmp("linformer_test_finetune_");
  FinetuneOptions o = scratch_options(tmp);
  o.steps = 7;
  finetune(o, tmp / "run");
  const std::string model = tmp / "run/ckpt-00000007/model.safetensors";
  SafetensorsFile f = read_safetensors(model);
  for (NamedTensor& t : f.tensors)
    if (t.name == "emb_norm.weight") {
      const float huge = 3e38f;
      std::memcpy(t.bytes.data(), &huge, sizeof huge);
    }
  write_safetensors(model, f.tensors, f.metadata);
  const std::vector<std::string> files = listing(tmp / "run");
  const std::string before = read_bytes(model);
  expect_throw<Error>([&] { resume_finetuning(tmp / "run", 10); },
                      {"training stopped", "loss is nan", "at step 8", "ckpt-00000007"});
  EXPECT_EQ(listing(tmp / "run"), files);
  EXPECT_EQ(read_bytes(tmp / "run/latest"), "ckpt-00000007\n");
  EXPECT_TRUE(read_bytes(model) == before);
}

// ------------------------------------------------------------------ bad input

// Each mistake is refused before the run folder is created, with a message naming the file and
// line (or the option).
TEST(Finetune, BadInputIsRejectedBeforeAnythingIsWritten) {
  Threads threads(1);
  TempDir tmp("linformer_test_finetune_");
  const FinetuneOptions good = scratch_options(tmp);
  const std::string run = tmp / "run";
  auto refused = [&]<class E>(FinetuneOptions o, std::vector<std::string> needles) {
    expect_throw<E>([&] { finetune(o, run); }, needles);
    EXPECT_FALSE(fs::exists(run)) << "the run folder was created";
  };
  const std::string task = tmp / "task";
  const std::string train = read_bytes(task + "/train.tsv");

  // Task files.
  write_file(task + "/valid.tsv", "no\t1 2\nmaybe\t3 4\n");
  refused.operator()<InputError>(good, {"valid.tsv:2", "unknown label", "maybe"});
  write_file(task + "/valid.tsv", has7_split(50, 2));
  write_file(task + "/train.tsv", "yes\t7 1\n\nno\t1 2\n");
  refused.operator()<InputError>(good, {"train.tsv:2", "empty line"});
  write_file(task + "/train.tsv", "yes\t7 1\nno\t1 2\nno\t1 2 3 4 5 6 1 2 3 4 5 6 1 2 3 4 5 6\n");
  refused.operator()<InputError>(good, {"train.tsv:3", "sequence too long", "20 tokens", "max_len 16"});
  {
    FinetuneOptions o = good;  // with truncate the same file trains
    o.truncate = true;
    o.steps = 2;
    EXPECT_NO_THROW(finetune(o, tmp / "truncated"));
    EXPECT_TRUE(json::parse(read_bytes(tmp / "truncated/finetune.json")).at("truncate").get<bool>());
  }
  write_file(task + "/train.tsv", "yes\t7 ( 1\n");
  refused.operator()<InputError>(good, {"train.tsv:1", "unknown ListOps token"});
  write_file(task + "/train.tsv", train);

  // Options and the model.
  {
    FinetuneOptions o = good;
    o.model = tmp / "mlm";
    refused.operator()<ConfigError>(o, {"config", "from scratch"});
    o = good;
    o.config.clear();
    refused.operator()<ConfigError>(o, {"model", "config"});
    o = good;
    o.task = tmp / "nowhere";
    refused.operator()<IoError>(o, {"nowhere", "task.json"});
    o = good;
    o.pooling = "max";
    refused.operator()<ConfigError>(o, {"pooling", "max"});
    o = good;
    o.class_weights = "inverse";
    refused.operator()<ConfigError>(o, {"class_weights", "inverse", "balanced"});
    o = good;
    o.steps = 0;
    refused.operator()<ConfigError>(o, {"steps = 0"});
    o = good;
    o.model = tmp / "missing.safetensors";
    o.config.clear();
    refused.operator()<IoError>(o, {"missing.safetensors"});
    o = good;
    o.tokenizer = tmp / "tok.model";
    refused.operator()<ConfigError>(o, {"--tokenizer", "listops"});
  }
  write_file(tmp / "small.json", "{\"vocab_size\": 10, \"max_len\": 16, \"d_model\": 32, \"n_heads\": 2, \"d_ff\": 64, "
                                 "\"n_layers\": 1, \"attention\": \"full\"}\n");
  {
    FinetuneOptions o = good;
    o.config = tmp / "small.json";
    refused.operator()<ConfigError>(o, {"listops", "vocab_size 10"});
  }
  write_file(tmp / "three.json", "{\"vocab_size\": 20, \"max_len\": 16, \"d_model\": 32, \"n_heads\": 2, \"d_ff\": 64, "
                                 "\"n_layers\": 1, \"attention\": \"full\", \"num_labels\": 3}\n");
  {
    FinetuneOptions o = good;
    o.config = tmp / "three.json";
    refused.operator()<ConfigError>(o, {"three.json", "num_labels = 3", "2 classes"});
  }
  // A SentencePiece task without a tokenizer.
  fs::create_directories(tmp / "sp");
  write_file(tmp / "sp/task.json", "{\"name\": \"sp\", \"labels\": [\"a\", \"b\"], \"tokenizer\": \"sentencepiece\"}\n");
  write_file(tmp / "sp/train.tsv", "a\thello\n");
  write_file(tmp / "sp/valid.tsv", "");
  write_file(tmp / "sp/test.tsv", "");
  {
    FinetuneOptions o = good;
    o.task = tmp / "sp";
    refused.operator()<ConfigError>(o, {"SentencePiece", "--tokenizer"});
  }

  // A folder that holds a run; resume after the task's classes changed.
  FinetuneOptions o = good;
  o.steps = 2;
  finetune(o, run);
  expect_throw<IoError>([&] { finetune(o, run); }, {"already holds a run", "--resume"});
  write_file(task + "/task.json", "{\"name\": \"has7\", \"labels\": [\"no\", \"yes\", \"other\"], \"tokenizer\": "
                                  "\"listops\"}\n");
  expect_throw<ConfigError>([&] { resume_finetuning(run, 4); }, {"classes", "task.json"});
  expect_throw<IoError>([&] { resume_finetuning(tmp / "nothing"); }, {"nothing", "latest"});
}

// A SentencePiece task: the tokenizer comes from the task folder's tok.model (no --tokenizer), is
// copied into the run folder, and the Classifier of the run reads texts with it.
TEST(Finetune, SentencePieceTaskUsesAndKeepsItsTokenizer) {
  Threads threads(1);
  TempDir tmp("linformer_test_finetune_");
  const std::string task = tmp / "sp";
  fs::create_directories(task);
  const std::string corpus = grammar_corpus(200, 4);
  write_file(task + "/train.txt", corpus);
  Tokenizer::train({task + "/train.txt"}, kTokVocab, task + "/tok.model");
  std::string train, valid;
  std::istringstream in(corpus);
  std::string line;
  for (int i = 0; std::getline(in, line); ++i) {
    if (line.empty()) continue;
    (i % 5 == 0 ? valid : train) += std::string(line.find("cat") != std::string::npos ? "cat" : "other") + "\t" +
                                     line + "\n";
  }
  write_file(task + "/train.tsv", train);
  write_file(task + "/valid.tsv", valid);
  write_file(task + "/test.tsv", "");
  write_file(task + "/task.json",
             "{\"name\": \"cat\", \"labels\": [\"other\", \"cat\"], \"tokenizer\": \"sentencepiece\"}\n");
  write_file(tmp / "cfg.json", tiny_config_json("linformer"));
  FinetuneOptions o;
  o.config = tmp / "cfg.json";
  o.task = task;
  o.steps = 3;
  o.eval_every = 3;
  o.truncate = true;  // 40 pieces: a few sentences exceed max_len 32
  const FinetuneSummary s = finetune(o, tmp / "run");
  EXPECT_TRUE(std::isfinite(s.final_valid_accuracy));
  EXPECT_TRUE(read_bytes(tmp / "run/tokenizer.model") == read_bytes(task + "/tok.model"));
  Classifier c(tmp / "run");
  const Tokenizer tok(task + "/tok.model");
  std::vector<int32_t> want = tok.encode("the cat sees the bird .");
  want.insert(want.begin(), kBosId);
  want.push_back(kEosId);
  EXPECT_EQ(c.tokenize("the cat sees the bird .", false), want);
  EXPECT_TRUE(c.truncates());
  EXPECT_EQ(c.evaluate(task, "valid", true).examples, (int64_t)std::count(valid.begin(), valid.end(), '\n'));
  // An explicit tokenizer that does not load is an error naming it.
  write_file(tmp / "junk.model", "junk");
  o.tokenizer = tmp / "junk.model";
  expect_throw<IoError>([&] { finetune(o, tmp / "run2"); }, {"junk.model"});
  EXPECT_FALSE(fs::exists(tmp / "run2"));
}
