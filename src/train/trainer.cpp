// Masked-language-model pretraining: its options, the MLM task it plugs into the training loop
// (loop.hpp), and the setup of a new or resumed run. See trainer.hpp for the output folder layout
// and guarantees.
#include "linformer/trainer.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "linformer/checkpoint.hpp"
#include "linformer/data.hpp"
#include "linformer/error.hpp"
#include "linformer/model.hpp"
#include "linformer/tokenizer.hpp"
#include "dist/communicator.hpp"
#include "train/loop.hpp"
#include "train/run_dir.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace linformer {

// ---------------------------------------------------------------- options

json TrainOptions::to_json() const {
  json j{{"train_tokens", train_tokens}, {"valid_tokens", valid_tokens}, {"tokenizer", tokenizer},
         {"batch_size", batch_size}, {"accum", accum}, {"seq_len", seq_len}, {"eval_batches", eval_batches},
         {"mask_prob", mask_prob}};
  add_run_settings(j, *this);
  return j;
}

TrainOptions TrainOptions::from_json(const json& j) {
  constexpr const char* what = "train options";
  TrainOptions o;
  read_run_settings(j, o.to_json(), what, o);
  read_option(j, what, "train_tokens", o.train_tokens);
  read_option(j, what, "valid_tokens", o.valid_tokens);
  read_option(j, what, "tokenizer", o.tokenizer);
  read_option(j, what, "batch_size", o.batch_size);
  read_option(j, what, "accum", o.accum);
  read_option(j, what, "seq_len", o.seq_len);
  read_option(j, what, "eval_batches", o.eval_batches);
  read_option(j, what, "mask_prob", o.mask_prob);  // absent in runs written before it existed: 0.15
  o.validate();
  return o;
}

void TrainOptions::validate() const {
  validate_run_settings(*this, "train options");
  auto bad = [](const char* field, auto value, const char* why) {
    throw ConfigError(fmt::format("train options: {} = {} {}", field, value, why));
  };
  if (batch_size < 1) bad("batch_size", batch_size, "must be at least 1");
  if (accum < 1) bad("accum", accum, "must be at least 1");
  if (seq_len < 0 || seq_len == 1 || seq_len == 2) bad("seq_len", seq_len, "must be 0 (max_len) or at least 3");
  if (eval_batches < 0) bad("eval_batches", eval_batches, "must be >= 0");
  if (!(mask_prob > 0 && mask_prob < 1)) bad("mask_prob", mask_prob, "must be in (0, 1)");
}

// ---------------------------------------------------------------- the MLM task

namespace {

// The sequence length of a run, after checking it and the token files against the model.
int check_run_inputs(const ModelConfig& cfg, const TrainOptions& o) {
  const int seq_len = o.seq_len > 0 ? o.seq_len : cfg.max_len;
  if (seq_len > cfg.max_len)
    throw ConfigError(fmt::format("train options: seq_len = {} exceeds the model's max_len {}", seq_len, cfg.max_len));
  for (const std::string& path : {o.train_tokens, o.valid_tokens}) {
    if (path.empty()) throw ConfigError("train options: train_tokens and valid_tokens are required");
    TokenFile f(path);
    if (f.max_id() >= cfg.vocab_size)
      throw InputError(fmt::format("{}: token id {} is outside the model's vocabulary ({}); was it encoded with "
                                   "another tokenizer?",
                                   path, f.max_id(), cfg.vocab_size));
  }
  return seq_len;
}

// Where `label` ranks among a row of logits: how many tokens are more probable (ties: the lower id first).
int rank_of(const float* logits, int vocab, int32_t label) {
  const float l = logits[label];
  int above = 0;
  for (int v = 0; v < vocab; ++v) above += logits[v] > l || (logits[v] == l && v < label);
  return above;
}

// MLM scores over the first max_batches batches of batch_size x comm.size() sequences of a token
// file (fixed masks from seed, eval mode); each rank evaluates its slice of every batch.
MlmEvaluation evaluate_mlm_on(const dist::Communicator& comm, Model& model, const std::string& tokens, int seq_len,
                              int batch_size, int max_batches, uint64_t seed, const UnigramBaseline* baseline) {
  TokenFile file(tokens);
  const int V = model.config().vocab_size;
  if (file.max_id() >= V)
    throw InputError(fmt::format("{}: token id {} is outside the model's vocabulary ({})", tokens, file.max_id(), V));
  if (baseline && baseline->vocab_size() != V)
    throw ConfigError(fmt::format("unigram baseline: its vocabulary ({}) is not the model's ({})",
                                  baseline->vocab_size(), V));
  MlmOptions mo;
  mo.seq_len = seq_len;
  mo.batch_size = batch_size;
  mo.vocab_size = V;
  mo.seed = seed;
  mo.shuffle = false;
  mo.shards = comm.size();
  mo.shard = comm.rank();
  MlmBatcher batcher(file, mo);
  size_t nb = batcher.batches_per_epoch();
  if (max_batches > 0) nb = std::min(nb, (size_t)max_batches);
  InferenceScope inference(model);
  Batch batch;
  std::vector<int32_t> labels;
  // Sums over the labelled tokens: model loss, top-1, top-5 hits, count, then the baseline's three.
  double sums[7] = {0, 0, 0, 0, 0, 0, 0};
  for (size_t i = 0; i < nb; ++i) {
    batcher.next(batch, labels);
    std::vector<int32_t> targets;
    for (int32_t l : labels)
      if (l != kIgnoreIndex) targets.push_back(l);
    const long c = (long)targets.size();
    if (c == 0) continue;
    sums[0] += (double)model.forward_mlm(batch, labels) * c;  // weight by labelled tokens
    const float* logits = model.mlm_logits();                // [c, V]: the labelled rows in order
    for (long r = 0; r < c; ++r) {
      const int rank = rank_of(logits + (size_t)r * V, V, targets[(size_t)r]);
      sums[1] += rank == 0;
      sums[2] += rank < 5;
      if (baseline) {
        sums[4] -= baseline->log_prob(targets[(size_t)r]);
        sums[5] += baseline->rank(targets[(size_t)r]) == 0;
        sums[6] += baseline->rank(targets[(size_t)r]) < 5;
      }
    }
    sums[3] += (double)c;
  }
  comm.allreduce_sum(sums, 7);
  if (sums[3] == 0) throw InputError(fmt::format("{}: no tokens to evaluate", tokens));
  MlmEvaluation e;
  e.loss = sums[0] / sums[3];
  e.top1 = sums[1] / sums[3];
  e.top5 = sums[2] / sums[3];
  e.tokens = (int64_t)sums[3];
  if (baseline) {
    e.unigram_loss = sums[4] / sums[3];
    e.unigram_top1 = sums[5] / sums[3];
    e.unigram_top5 = sums[6] / sums[3];
  }
  return e;
}

// Pretraining as a task of the training loop (loop.hpp): masked-token batches of the train token
// file (this rank's slice), `accum` micro-batches per step, the MLM loss on the valid file.
class MlmTask final : public TrainTask {
 public:
  MlmTask(const ModelConfig& cfg, const TrainOptions& o)
      : o_(o), seq_len_(check_run_inputs(cfg, o)), train_file_(o.train_tokens), batcher_(train_file_, [&] {
          MlmOptions mo;
          mo.seq_len = seq_len_;
          mo.batch_size = o.batch_size;
          mo.vocab_size = cfg.vocab_size;
          mo.seed = o.seed;
          mo.mask_prob = o.mask_prob;
          mo.shards = dist::world().size();
          mo.shard = dist::world().rank();
          return mo;
        }()) {}

  int micro_batches() const override { return o_.accum; }
  uint64_t dropout_salt() const override { return 0xd0d0d0d0ULL; }
  StateKeys state_keys() const override { return kPretrainStateKeys; }
  void seek(DataPosition p) override { batcher_.set_state(p); }
  DataPosition position() const override { return batcher_.state(); }
  std::vector<uint64_t> data_sizes() const override { return {batcher_.num_sequences()}; }
  const char* data_sizes_name() const override { return "training sequences"; }
  void next(MicroBatch& mb) override { batcher_.next(mb.batch, mb.labels); }
  float loss(Model& model, const MicroBatch& mb, int normaliser) override {
    return model.forward_mlm(mb.batch, mb.labels, normaliser);
  }
  Evaluation evaluate(Model& model) override {
    if (!baseline_) baseline_.emplace(train_file_, model.config().vocab_size);  // once, on first use
    const MlmEvaluation e = evaluate_mlm_on(dist::world(), model, o_.valid_tokens, seq_len_, o_.batch_size,
                                            o_.eval_batches, o_.seed + 1, &*baseline_);
    const double vl = e.loss;
    return {json{{"valid_loss", vl},
                 {"valid_ppl", std::exp(vl)},
                 {"valid_top1", e.top1},
                 {"valid_top5", e.top5},
                 {"unigram_ppl", std::exp(e.unigram_loss)},
                 {"unigram_top1", e.unigram_top1},
                 {"unigram_top5", e.unigram_top5}},
            fmt::format("validation loss {:.4f}, perplexity {:.2f}, masked top-1 {:.1f}% top-5 {:.1f}% (unigram: "
                        "perplexity {:.0f}, top-1 {:.1f}%)",
                        vl, std::exp(vl), 100 * e.top1, 100 * e.top5, std::exp(e.unigram_loss),
                        100 * e.unigram_top1),
            vl, std::nan("")};
  }

 private:
  const TrainOptions& o_;
  const int seq_len_;
  TokenFile train_file_;
  MlmBatcher batcher_;
  std::optional<UnigramBaseline> baseline_;  // the train file's token frequencies
};

TrainSummary run_pretraining(Model& model, AdamW& opt, const TrainOptions& o, const fs::path& dir, LoopState st,
                             const RunHooks& hooks) {
  MlmTask task(model.config(), o);
  const LoopResult r = run_training(model, opt, o, task, dir, st, hooks);
  TrainSummary sum;
  sum.steps_done = r.steps_done;
  sum.initial_valid_loss = r.initial ? r.initial->loss : std::nan("");
  // The last evaluation of this call, even when an interrupted run stopped steps after it
  // (fine-tuning reports NaN then; kept as pretraining has always done).
  sum.final_valid_loss = r.last ? r.last->loss : std::nan("");
  if (r.last) {
    const json& m = r.last->metrics;
    sum.final_valid_top1 = m.at("valid_top1").get<double>();
    sum.final_valid_top5 = m.at("valid_top5").get<double>();
    sum.unigram_loss = std::log(m.at("unigram_ppl").get<double>());
    sum.unigram_top1 = m.at("unigram_top1").get<double>();
    sum.unigram_top5 = m.at("unigram_top5").get<double>();
  }
  sum.seconds = r.seconds;
  sum.tokens_per_second = r.tokens_per_second;
  sum.checkpoint = r.checkpoint;
  sum.interrupted = r.interrupted;
  return sum;
}

}  // namespace

std::unique_ptr<Model> load_trained_model(const std::string& path) {
  if (fs::is_directory(path)) {
    fs::path p = path;
    if (!fs::exists(p / "model.safetensors")) p = latest_checkpoint(path);
    return load_model((p / "model.safetensors").string());
  }
  return load_model(path);
}

double evaluate_mlm(Model& model, const std::string& tokens, int seq_len, int batch_size, int max_batches,
                    uint64_t seed) {
  return evaluate_mlm_scores(model, tokens, seq_len, batch_size, max_batches, seed).loss;
}

MlmEvaluation evaluate_mlm_scores(Model& model, const std::string& tokens, int seq_len, int batch_size,
                                  int max_batches, uint64_t seed, const UnigramBaseline* baseline) {
  const dist::Communicator single_process;
  return evaluate_mlm_on(single_process, model, tokens, seq_len, batch_size, max_batches, seed, baseline);
}

TrainSummary pretrain(const ModelConfig& cfg, const TrainOptions& opt, const std::string& out_dir,
                      const RunHooks& hooks) {
  opt.validate();
  cfg.validate();
  const fs::path dir(out_dir);
  if (fs::exists(dir / "latest"))
    throw IoError(fmt::format("{}: already holds a run; continue it with --resume {} or choose another --out",
                              out_dir, out_dir));
  // Check the data and the tokenizer before writing anything.
  check_run_inputs(cfg, opt);
  const bool root = dist::world().is_root();  // under MPI only rank 0 writes the run folder
  if (root && !opt.tokenizer.empty()) {
    const Tokenizer tok(opt.tokenizer);
    if (tok.vocab_size() > cfg.vocab_size)
      throw ConfigError(fmt::format("{}: the tokenizer has {} pieces, more than the model's vocab_size {}",
                                    opt.tokenizer, tok.vocab_size(), cfg.vocab_size));
  }
  if (fs::exists(dir) && !fs::is_directory(dir)) throw IoError(fmt::format("{}: exists and is not a folder", out_dir));
  TrainOptions o = opt;
  if (root) {
    fs::create_directories(dir);
    if (!o.tokenizer.empty()) {
      core::copy_file_atomic(o.tokenizer, dir / "tokenizer.model");
    }
    core::write_file_atomic(dir / "config.json", cfg.to_json().dump(2) + "\n");
    core::write_file_atomic(dir / "train.json", o.to_json().dump(2) + "\n");
    fs::remove(dir / "metrics.jsonl");
  }
  Model model(cfg);
  model.init(o.seed);
  AdamW adam(model.params(), o.adamw());
  return run_pretraining(model, adam, o, dir, LoopState{}, hooks);
}

TrainSummary resume_pretraining(const std::string& out_dir, int64_t steps, const RunHooks& hooks) {
  const fs::path dir(out_dir);
  const std::string ckpt = latest_checkpoint(out_dir);
  const auto cfg = read_run_json<ModelConfig>(dir / "config.json");
  auto o = read_run_json<TrainOptions>(dir / "train.json");
  if (steps < 0) throw ConfigError(fmt::format("train options: steps = {} must be at least 1", steps));
  Model model(cfg);
  AdamW adam(model.params(), o.adamw());
  const LoopState st = load_loop_state(ckpt, model, adam, kPretrainStateKeys);
  if (set_resumed_total(out_dir, st.step, steps, o.steps) && dist::world().is_root())
    core::write_file_atomic(dir / "train.json", o.to_json().dump(2) + "\n");
  return run_pretraining(model, adam, o, dir, st, hooks);
}

}  // namespace linformer
