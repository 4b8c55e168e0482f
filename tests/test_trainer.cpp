// Pretraining (library API, include/linformer/trainer.hpp): resume equals an uninterrupted run
// bit for bit (both attention kinds, dropout on), a tiny model learns a tiny corpus, a
// non-finite loss stops the run and leaves `latest` intact, the checkpoint folder layout
// (latest, keep, leftovers of a crash), metrics.jsonl, and the checks made before a run starts.
// The data is generated here: a small grammar corpus, a 40-piece tokenizer, token files.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "linformer/checkpoint.hpp"
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
using test_util::ckpt_name;
using test_util::expect_throw;
using test_util::Threads;

namespace {

// Token files made once for the whole program: train (400 grammar sentences), valid (60),
// tiny (8 fixed sentences), and the tokenizer that encoded them.
struct Data {
  fs::path dir;
  std::string tok, train, valid, tiny;
};

const Data& data() {
  static const Data d = [] {
    Data d;
    d.dir = fs::temp_directory_path() / ("linformer_test_trainer_data_" + std::to_string(::getpid()));
    fs::create_directories(d.dir);
    write_file((d.dir / "train.txt").string(), grammar_corpus(400, 1));
    write_file((d.dir / "valid.txt").string(), grammar_corpus(60, 2));
    write_file((d.dir / "tiny.txt").string(), tiny_corpus());
    d.tok = (d.dir / "tok.model").string();
    Tokenizer::train({(d.dir / "train.txt").string()}, kTokVocab, d.tok);
    const Tokenizer tok(d.tok);
    d.train = (d.dir / "train.tokens").string();
    d.valid = (d.dir / "valid.tokens").string();
    d.tiny = (d.dir / "tiny.tokens").string();
    encode_corpus(tok, {(d.dir / "train.txt").string()}, d.train);
    encode_corpus(tok, {(d.dir / "valid.txt").string()}, d.valid);
    encode_corpus(tok, {(d.dir / "tiny.txt").string()}, d.tiny);
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(fs::temp_directory_path() / ("linformer_test_trainer_data_" + std::to_string(::getpid())), ec);
    });
    return d;
  }();
  return d;
}

ModelConfig tiny_config(const std::string& attention) {
  return ModelConfig::from_json(json::parse(tiny_config_json(attention)));
}

TrainOptions small_options() {
  TrainOptions o;
  o.train_tokens = data().train;
  o.valid_tokens = data().valid;
  o.steps = 12;
  o.batch_size = 4;
  o.seq_len = 32;
  o.lr = 2e-3f;
  o.warmup = 3;
  o.eval_every = 4;
  o.eval_batches = 2;
  o.save_every = 6;
  o.log_every = 1;
  o.keep_checkpoints = 3;
  o.seed = 5;
  return o;
}




// Overwrites the first value of `tensor` in a model file with `value` (same layout, same metadata).
void poke_weight(const std::string& path, const std::string& tensor, float value) {
  SafetensorsFile f = read_safetensors(path);
  bool found = false;
  for (NamedTensor& t : f.tensors)
    if (t.name == tensor) {
      std::memcpy(t.bytes.data(), &value, sizeof value);
      found = true;
    }
  ASSERT_TRUE(found) << tensor;
  write_safetensors(path, f.tensors, f.metadata);
}

bool finite(const std::vector<float>& v) {
  for (float x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

}  // namespace

// ------------------------------------------------------------------ resume == uninterrupted

struct ResumeCase {
  std::string attention;
  int accum, threads;
};
void PrintTo(const ResumeCase& c, std::ostream* os) {
  *os << c.attention << ", accum " << c.accum << ", " << c.threads << " threads";
}

class ResumeTest : public ::testing::TestWithParam<ResumeCase> {};

// A 12-step run, checkpoints at 6 and 12. Rewinding `latest` to step 6 (what an interruption
// there leaves) and resuming must reproduce steps 7..12 exactly: every metric (train loss,
// lr, gradient norm, validation loss) as the same JSON text, and the same model and optimizer
// files byte for byte. Dropout is on, so this also checks that the dropout stream, the data
// position and the masks are restored.
TEST_P(ResumeTest, ResumeEqualsUninterrupted) {
  const ResumeCase c = GetParam();
  Threads threads(c.threads);
  TempDir tmp("linformer_test_trainer_");
  const std::string run = tmp / "run";
  TrainOptions o = small_options();
  o.accum = c.accum;
  const ModelConfig cfg = tiny_config(c.attention);
  ASSERT_GT(cfg.dropout, 0.0f);
  const TrainSummary full = pretrain(cfg, o, run);
  EXPECT_EQ(full.steps_done, 12);
  EXPECT_FALSE(full.interrupted);

  const fs::path c6 = fs::path(run) / ckpt_name(6), c12 = fs::path(run) / ckpt_name(12);
  ASSERT_TRUE(fs::is_directory(c6));
  ASSERT_TRUE(fs::is_directory(c12));
  const std::string model12 = read_bytes((c12 / "model.safetensors").string());
  const std::string adam12 = read_bytes((c12 / "optimizer.safetensors").string());
  const std::string state12 = read_bytes((c12 / "state.json").string());
  ASSERT_FALSE(model12.empty());
  // Not vacuous: training changed the model between the checkpoints, and the losses vary.
  ASSERT_NE(read_bytes((c6 / "model.safetensors").string()), model12);
  const std::vector<double> losses = train_losses(run + "/metrics.jsonl");
  ASSERT_EQ(losses.size(), 12u);
  EXPECT_NE(losses[5], losses[11]);

  // Rewind: what a run stopped right after step 6 leaves behind.
  write_file(run + "/latest", ckpt_name(6) + "\n");
  fs::remove_all(c12);
  fs::copy_file(run + "/metrics.jsonl", tmp / "metrics_full.jsonl");
  const TrainSummary resumed = resume_pretraining(run);
  EXPECT_EQ(resumed.steps_done, 12);
  EXPECT_TRUE(std::isnan(resumed.initial_valid_loss));
  EXPECT_EQ(resumed.final_valid_loss, full.final_valid_loss);
  EXPECT_EQ(latest_checkpoint(run), c12.string());

  expect_same_metrics(tmp / "metrics_full.jsonl", run + "/metrics.jsonl");
  EXPECT_EQ(read_metrics(run + "/metrics.jsonl").size(), read_metrics(tmp / "metrics_full.jsonl").size());
  EXPECT_TRUE(read_bytes((c12 / "model.safetensors").string()) == model12) << "final weights differ";
  EXPECT_TRUE(read_bytes((c12 / "optimizer.safetensors").string()) == adam12) << "optimizer state differs";
  EXPECT_EQ(read_bytes((c12 / "state.json").string()), state12);
}

INSTANTIATE_TEST_SUITE_P(Trainer, ResumeTest,
                         ::testing::Values(ResumeCase{"linformer", 1, 2}, ResumeCase{"full", 1, 2},
                                           ResumeCase{"linformer", 2, 1}),
                         [](const auto& info) {
                           return info.param.attention + "_accum" + std::to_string(info.param.accum) + "_threads" +
                                  std::to_string(info.param.threads);
                         });

// Run A: 6 steps of a 6-step run, then resumed with a new total of 12. Each step appears once in
// the metrics, train.json records the new total, and the lr follows the new schedule from step 7.
TEST(Trainer, ResumeWithALargerTotalContinues) {
  Threads threads(1);
  TempDir tmp("linformer_test_trainer_");
  const std::string run = tmp / "run";
  TrainOptions o = small_options();
  o.steps = 6;
  o.warmup = 0;
  pretrain(tiny_config("linformer"), o, run);
  const TrainSummary s = resume_pretraining(run, 12);
  EXPECT_EQ(s.steps_done, 12);
  std::vector<int64_t> steps;
  std::vector<double> lrs;
  for (const json& j : read_metrics(run + "/metrics.jsonl"))
    if (j.contains("train_loss")) {
      steps.push_back(j.at("step").get<int64_t>());
      lrs.push_back(j.at("lr").get<double>());
    }
  ASSERT_EQ(steps.size(), 12u);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(steps[i], i + 1);
  // Schedule of 12 steps without warm-up from step 7 on: lr(s) = peak * (1 - s/12), s = 6..11.
  EXPECT_NEAR(lrs[6], 2e-3 * (1 - 6.0 / 12), 1e-9);
  EXPECT_NEAR(lrs[11], 2e-3 * (1 - 11.0 / 12), 1e-9);
  EXPECT_EQ(json::parse(read_bytes(run + "/train.json")).at("steps").get<int64_t>(), 12);
  // Asking for fewer steps than done is an error that leaves train.json alone.
  expect_throw<ConfigError>([&] { resume_pretraining(run, 10); }, {run, "already reached step 12 of 10"});
  expect_throw<ConfigError>([&] { resume_pretraining(run); }, {"already reached step 12 of 12", "--steps"});
  EXPECT_EQ(json::parse(read_bytes(run + "/train.json")).at("steps").get<int64_t>(), 12);
}

// ------------------------------------------------------------------ learning

class LearnTest : public ::testing::TestWithParam<std::string> {};

// 300 steps on 8 fixed sentences: the loss must fall far. Measured (both kinds): the eval loss
// on the same text falls from ~3.9 to ~0.2, the mean of the last 20 train losses from ~3.9 to
// ~0.3-0.6. The bounds leave a wide margin but fail if the model does not learn.
TEST_P(LearnTest, TinyModelLearnsATinyCorpus) {
  Threads threads(1);
  TempDir tmp("linformer_test_trainer_");
  TrainOptions o = small_options();
  o.train_tokens = o.valid_tokens = data().tiny;
  o.steps = 300;
  o.lr = 1e-2f;
  o.warmup = 10;
  o.eval_every = 1000;
  o.eval_batches = 0;
  o.save_every = 1000;
  const TrainSummary s = pretrain(tiny_config(GetParam()), o, tmp / "run");
  const std::vector<double> l = train_losses(tmp / "run/metrics.jsonl");
  ASSERT_EQ(l.size(), 300u);
  double first = 0, last = 0;
  for (int i = 0; i < 5; ++i) first += l[i] / 5;
  for (int i = 280; i < 300; ++i) last += l[i] / 20;
  EXPECT_GT(first, std::log(20.0)) << "an untrained model should be near log(vocab)";
  EXPECT_LT(last, 0.4 * first) << "train loss: first 5 steps " << first << ", last 20 " << last;
  EXPECT_LT(s.final_valid_loss, 0.25 * s.initial_valid_loss)
      << "eval loss " << s.initial_valid_loss << " -> " << s.final_valid_loss;
  EXPECT_GT(s.tokens_per_second, 0);
}

INSTANTIATE_TEST_SUITE_P(Trainer, LearnTest, ::testing::Values("linformer", "full"));

// ------------------------------------------------------------------ non-finite loss

// A huge (finite) weight in the latest checkpoint overflows the forward pass: resuming stops at
// the first step with "loss is nan", writes no checkpoint, and `latest` still names the same, unchanged, loadable checkpoint.
TEST(Trainer, NanLossStopsAndKeepsLatest) {
  Threads threads(1);
  TempDir tmp("linformer_test_trainer_");
  const std::string run = tmp / "run";
  TrainOptions o = small_options();
  o.steps = 4;
  o.save_every = 2;
  pretrain(tiny_config("linformer"), o, run);
  const fs::path c4 = fs::path(run) / ckpt_name(4);
  poke_weight((c4 / "model.safetensors").string(), "emb_norm.weight", 3e38f);  // a NaN is refused at load
  const std::string latest = read_bytes(run + "/latest");
  const std::string model = read_bytes((c4 / "model.safetensors").string());
  const std::string adam = read_bytes((c4 / "optimizer.safetensors").string());
  const std::string state = read_bytes((c4 / "state.json").string());
  const std::vector<std::string> files = listing(run);

  const std::string msg = expect_throw<Error>([&] { resume_pretraining(run, 8); },
                                              {"training stopped", "loss is", "nan", "at step 5", ckpt_name(4)});
  EXPECT_EQ(read_bytes(run + "/latest"), latest);
  EXPECT_EQ(listing(run), files) << "a checkpoint (or a temporary folder) was written";
  EXPECT_TRUE(read_bytes((c4 / "model.safetensors").string()) == model);
  EXPECT_TRUE(read_bytes((c4 / "optimizer.safetensors").string()) == adam);
  EXPECT_EQ(read_bytes((c4 / "state.json").string()), state);
  EXPECT_NO_THROW(load_trained_model(run));
  // No train metrics past the last good step.
  for (const json& j : read_metrics(run + "/metrics.jsonl")) EXPECT_LE(j.at("step").get<int64_t>(), 4);
}

// An absurd learning rate makes the loss overflow within a few steps. The run stops with a
// clear message, and every checkpoint it left (save_every 1) holds finite weights.
TEST(Trainer, HugeLearningRateStopsWithFiniteCheckpoints) {
  Threads threads(1);
  TempDir tmp("linformer_test_trainer_");
  const std::string run = tmp / "run";
  TrainOptions o = small_options();
  o.steps = 50;
  o.lr = 1e6f;
  o.warmup = 0;
  o.save_every = 1;
  o.keep_checkpoints = 50;
  expect_throw<Error>([&] { pretrain(tiny_config("linformer"), o, run); }, {"training stopped", " is ", "at step"});
  int64_t last_step = 0;
  for (const json& j : read_metrics(run + "/metrics.jsonl")) last_step = std::max(last_step, j.at("step").get<int64_t>());
  EXPECT_LT(last_step, 50);
  int checkpoints = 0;
  for (const auto& e : fs::directory_iterator(run)) {
    const std::string n = e.path().filename().string();
    EXPECT_EQ(n.find(".tmp"), std::string::npos) << n;
    if (n.rfind("ckpt-", 0) == 0) {
      ++checkpoints;
      auto m = load_model((e.path() / "model.safetensors").string());
      EXPECT_TRUE(finite(m->params().all_data())) << n << " holds non-finite weights";
    }
  }
  if (checkpoints > 0) EXPECT_NO_THROW(load_trained_model(run));
}

// ------------------------------------------------------------------ checkpoints and metrics

TEST(Trainer, CheckpointFolderLayout) {
  Threads threads(1);
  TempDir tmp("linformer_test_trainer_");
  const std::string run = tmp / "run";
  TrainOptions o = small_options();
  o.tokenizer = data().tok;
  o.steps = 10;
  o.save_every = 2;
  o.keep_checkpoints = 2;
  o.eval_every = 5;
  o.log_every = 3;
  const ModelConfig cfg = tiny_config("linformer");
  const TrainSummary s = pretrain(cfg, o, run);
  EXPECT_EQ(s.checkpoint, (fs::path(run) / ckpt_name(10)).string());

  EXPECT_EQ(listing(run), (std::vector<std::string>{ckpt_name(8), ckpt_name(10), "config.json", "latest",
                                                    "metrics.jsonl", "tokenizer.model", "train.json"}));
  EXPECT_EQ(read_bytes(run + "/latest"), ckpt_name(10) + "\n");
  EXPECT_EQ(latest_checkpoint(run), (fs::path(run) / ckpt_name(10)).string());
  EXPECT_EQ(listing(fs::path(run) / ckpt_name(10)),
            (std::vector<std::string>{"model.safetensors", "optimizer.safetensors", "state.json"}));
  EXPECT_EQ(read_bytes(run + "/tokenizer.model"), read_bytes(data().tok));
  EXPECT_EQ(ModelConfig::from_json(json::parse(read_bytes(run + "/config.json"))).to_json(), cfg.to_json());
  EXPECT_EQ(TrainOptions::from_json(json::parse(read_bytes(run + "/train.json"))).to_json(), o.to_json());
  const json st = json::parse(read_bytes(run + "/" + ckpt_name(10) + "/state.json"));
  EXPECT_EQ(st.at("step").get<int64_t>(), 10);
  for (const char* k : {"data_epoch", "data_cursor", "dropout_counter"}) EXPECT_TRUE(st.contains(k)) << k;
  const SafetensorsFile adam = read_safetensors(run + "/" + ckpt_name(10) + "/optimizer.safetensors");
  EXPECT_EQ(adam.metadata.at("adamw.steps"), "10");

  // The run folder loads as its latest checkpoint's model.
  auto a = load_trained_model(run);
  auto b = load_model(run + "/" + ckpt_name(10) + "/model.safetensors");
  EXPECT_EQ(a->params().all_data(), b->params().all_data());
  auto c = load_trained_model(run + "/" + ckpt_name(8));
  EXPECT_NE(a->params().all_data(), c->params().all_data());

  // metrics.jsonl: the initial evaluation, train lines every log_every steps and at the end,
  // evaluations every eval_every steps (and at the end).
  std::vector<int64_t> train_steps, valid_steps;
  for (const json& j : read_metrics(run + "/metrics.jsonl")) {
    if (j.contains("train_loss")) {
      train_steps.push_back(j.at("step").get<int64_t>());
      for (const char* k : {"lr", "grad_norm", "tokens_per_s", "elapsed_s"}) EXPECT_TRUE(j.contains(k)) << k;
      EXPECT_TRUE(std::isfinite(j.at("train_loss").get<double>()));
    } else {
      valid_steps.push_back(j.at("step").get<int64_t>());
      EXPECT_NEAR(j.at("valid_ppl").get<double>(), std::exp(j.at("valid_loss").get<double>()), 1e-9);
    }
  }
  EXPECT_EQ(train_steps, (std::vector<int64_t>{3, 6, 9, 10}));
  EXPECT_EQ(valid_steps, (std::vector<int64_t>{0, 5, 10}));
  EXPECT_EQ(s.final_valid_loss, read_metrics(run + "/metrics.jsonl").back().at("valid_loss").get<double>());

  // A second pretrain into the same folder is refused.
  expect_throw<IoError>([&] { pretrain(cfg, o, run); }, {run, "already holds a run", "--resume"});
}

// A crash in the middle of a save leaves ckpt-XXXXXXXX.tmp: it is ignored, `latest` still loads,
// and the next save removes it. keep_checkpoints = 1 keeps only the newest.
TEST(Trainer, LeftoverTemporaryCheckpointIsIgnored) {
  Threads threads(1);
  TempDir tmp("linformer_test_trainer_");
  const std::string run = tmp / "run";
  TrainOptions o = small_options();
  o.steps = 4;
  o.save_every = 2;
  o.keep_checkpoints = 1;
  pretrain(tiny_config("full"), o, run);
  EXPECT_EQ(listing(run), (std::vector<std::string>{ckpt_name(4), "config.json", "latest", "metrics.jsonl",
                                                    "train.json"}));
  fs::create_directories(fs::path(run) / (ckpt_name(6) + ".tmp"));
  write_file(run + "/" + ckpt_name(6) + ".tmp/model.safetensors", "half a file");
  EXPECT_EQ(latest_checkpoint(run), (fs::path(run) / ckpt_name(4)).string());
  EXPECT_NO_THROW(load_trained_model(run));
  const TrainSummary s = resume_pretraining(run, 6);
  EXPECT_EQ(s.steps_done, 6);
  EXPECT_EQ(listing(run), (std::vector<std::string>{ckpt_name(6), "config.json", "latest", "metrics.jsonl",
                                                    "train.json"}));
  EXPECT_NO_THROW(load_trained_model(run));
}

TEST(Trainer, BrokenLatestIsAClearError) {
  TempDir tmp("linformer_test_trainer_");
  const std::string run = tmp / "run";
  fs::create_directories(run);
  expect_throw<IoError>([&] { latest_checkpoint(run); }, {run, "latest"});
  expect_throw<IoError>([&] { resume_pretraining(run); }, {run, "latest"});
  write_file(run + "/latest", "../../etc\n");
  expect_throw<IoError>([&] { latest_checkpoint(run); }, {run, "not a checkpoint folder"});
  write_file(run + "/latest", ckpt_name(3) + "\n");
  expect_throw<IoError>([&] { load_trained_model(run); }, {run, ckpt_name(3), "missing"});
}

// A resumed run reads train.json: a damaged one is an error naming the file.
TEST(Trainer, DamagedTrainJsonIsAClearError) {
  Threads threads(1);
  TempDir tmp("linformer_test_trainer_");
  const std::string run = tmp / "run";
  TrainOptions o = small_options();
  o.steps = 2;
  o.save_every = 2;
  pretrain(tiny_config("linformer"), o, run);
  json j = json::parse(read_bytes(run + "/train.json"));
  j["learning_rate"] = 1;
  write_file(run + "/train.json", j.dump());
  expect_throw<IoError>([&] { resume_pretraining(run, 4); }, {"train.json", "unknown key 'learning_rate'"});
  j.erase("learning_rate");
  j["batch_size"] = "big";
  write_file(run + "/train.json", j.dump());
  expect_throw<IoError>([&] { resume_pretraining(run, 4); }, {"train.json", "batch_size", "wrong type"});
  write_file(run + "/train.json", "{");
  expect_throw<IoError>([&] { resume_pretraining(run, 4); }, {"train.json", "invalid JSON"});
}

// ------------------------------------------------------------------ checks before a run

TEST(Trainer, BadInputIsRejectedBeforeAnythingIsWritten) {
  TempDir tmp("linformer_test_trainer_");
  const std::string run = tmp / "run";
  const ModelConfig cfg = tiny_config("linformer");
  TrainOptions o = small_options();

  o.train_tokens = tmp / "missing.tokens";
  expect_throw<IoError>([&] { pretrain(cfg, o, run); }, {"missing.tokens"});
  EXPECT_FALSE(fs::exists(run));

  o = small_options();
  o.valid_tokens = data().dir.string() + "/valid.txt";  // text, not a token file
  expect_throw<IoError>([&] { pretrain(cfg, o, run); }, {"valid.txt"});
  EXPECT_FALSE(fs::exists(run));

  o = small_options();
  ModelConfig small_vocab = cfg;
  small_vocab.vocab_size = 20;  // the token files hold ids up to ~39
  expect_throw<InputError>([&] { pretrain(small_vocab, o, run); }, {"train.tokens", "outside the model's vocabulary"});
  EXPECT_FALSE(fs::exists(run));

  o.seq_len = 64;  // max_len is 32
  expect_throw<ConfigError>([&] { pretrain(cfg, o, run); }, {"seq_len", "64", "max_len 32"});
  EXPECT_FALSE(fs::exists(run));

  o = small_options();
  o.tokenizer = tmp / "missing.model";
  expect_throw<Error>([&] { pretrain(cfg, o, run); }, {"missing.model"});
  EXPECT_FALSE(fs::exists(run));

  struct Bad {
    std::function<void(TrainOptions&)> set;
    std::string field;
  };
  const std::vector<Bad> bad = {
      {[](TrainOptions& t) { t.steps = 0; }, "steps = 0"},
      {[](TrainOptions& t) { t.batch_size = 0; }, "batch_size = 0"},
      {[](TrainOptions& t) { t.accum = 0; }, "accum = 0"},
      {[](TrainOptions& t) { t.seq_len = 2; }, "seq_len = 2"},
      {[](TrainOptions& t) { t.lr = 0; }, "lr = 0"},
      {[](TrainOptions& t) { t.lr = std::numeric_limits<float>::quiet_NaN(); }, "lr = nan"},
      {[](TrainOptions& t) { t.beta2 = 1; }, "beta2 = 1"},
      {[](TrainOptions& t) { t.clip = -1; }, "clip = -1"},
      {[](TrainOptions& t) { t.keep_checkpoints = 0; }, "keep_checkpoints = 0"},
      {[](TrainOptions& t) { t.save_every = 0; }, "save_every = 0"},
      // The schedule's end and exponent (RunSettings, checked alike for fine-tuning).
      {[](TrainOptions& t) { t.end_lr = -1e-4f; }, "end_lr = -0.0001"},
      {[](TrainOptions& t) { t.power = 0; }, "power = 0"},
      {[](TrainOptions& t) { t.mask_prob = 0; }, "mask_prob = 0"},
      {[](TrainOptions& t) { t.mask_prob = 1; }, "mask_prob = 1"},
  };
  for (const Bad& b : bad) {
    o = small_options();
    b.set(o);
    expect_throw<ConfigError>([&] { pretrain(cfg, o, run); }, {b.field});
    EXPECT_FALSE(fs::exists(run)) << b.field;
  }
  expect_throw<ConfigError>([&] { TrainOptions::from_json(json{{"stpes", 3}}); }, {"unknown key 'stpes'"});
  expect_throw<ConfigError>([&] { TrainOptions::from_json(json{{"lr", "fast"}}); }, {"'lr' has the wrong type"});
  expect_throw<ConfigError>([&] { TrainOptions::from_json(json::array({1, 2})); }, {"train options", "not a JSON object"});
}

// mask_prob: stored in train.json (a run written before it existed reads as 0.15), and a higher
// one gives another run; evaluations mask 0.15 whatever the training rate.
TEST(Trainer, MaskProbIsStoredAndUsed) {
  Threads threads(1);
  TempDir tmp("linformer_test_trainer_");
  TrainOptions o = small_options();
  o.steps = 4;
  o.eval_every = 4;
  pretrain(tiny_config("linformer"), o, tmp / "a");
  o.mask_prob = 0.4f;
  pretrain(tiny_config("linformer"), o, tmp / "b");
  const json ja = json::parse(read_bytes(tmp / "a/train.json")), jb = json::parse(read_bytes(tmp / "b/train.json"));
  EXPECT_FLOAT_EQ(ja.at("mask_prob").get<float>(), 0.15f);
  EXPECT_FLOAT_EQ(jb.at("mask_prob").get<float>(), 0.4f);
  json old = ja;
  old.erase("mask_prob");
  EXPECT_FLOAT_EQ(TrainOptions::from_json(old).mask_prob, 0.15f);
  const auto ma = read_metrics(tmp / "a/metrics.jsonl"), mb = read_metrics(tmp / "b/metrics.jsonl");
  // Step 0 evaluates the same model on the same masks; the training losses differ.
  EXPECT_EQ(ma.front().at("valid_loss"), mb.front().at("valid_loss"));
  EXPECT_NE(train_losses(tmp / "a/metrics.jsonl"), train_losses(tmp / "b/metrics.jsonl"));
}

// The same options and seed give the same run; another seed gives another one.
TEST(Trainer, SameSeedSameRun) {
  Threads threads(1);
  TempDir tmp("linformer_test_trainer_");
  TrainOptions o = small_options();
  o.steps = 5;
  pretrain(tiny_config("linformer"), o, tmp / "a");
  pretrain(tiny_config("linformer"), o, tmp / "b");
  o.seed = 6;
  pretrain(tiny_config("linformer"), o, tmp / "c");
  expect_same_metrics(tmp / "a/metrics.jsonl", tmp / "b/metrics.jsonl");
  const std::string ma = read_bytes(tmp / ("a/" + ckpt_name(5) + "/model.safetensors"));
  EXPECT_TRUE(ma == read_bytes(tmp / ("b/" + ckpt_name(5) + "/model.safetensors")));
  EXPECT_NE(train_losses(tmp / "a/metrics.jsonl"), train_losses(tmp / "c/metrics.jsonl"));
  EXPECT_FALSE(ma == read_bytes(tmp / ("c/" + ckpt_name(5) + "/model.safetensors")));
}
