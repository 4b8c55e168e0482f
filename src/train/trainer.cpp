// The pretraining loop. See trainer.hpp for the output folder layout and guarantees.
#include "linformer/trainer.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <omp.h>

#include "linformer/checkpoint.hpp"
#include "linformer/data.hpp"
#include "linformer/error.hpp"
#include "linformer/model.hpp"
#include "linformer/tokenizer.hpp"
#include "dist/communicator.hpp"
#include "dist/data_parallel.hpp"
#include "train/progress.hpp"
#include "train/run_dir.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace linformer {

// ---------------------------------------------------------------- options

json TrainOptions::to_json() const {
  json j{{"train_tokens", train_tokens}, {"valid_tokens", valid_tokens}, {"tokenizer", tokenizer},
         {"batch_size", batch_size}, {"accum", accum}, {"seq_len", seq_len}, {"eval_batches", eval_batches}};
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
}

// ---------------------------------------------------------------- run state

namespace {

// Everything a run needs between steps; saved and restored as a whole (the checkpoint machinery,
// metrics, signals and the NaN stop are in run_dir.cpp, shared with fine-tuning).
struct RunState {
  int64_t step = 0;
  MlmBatcher::State data;
  uint64_t dropout_counter = 0;
};

void save_checkpoint(const fs::path& dir, const Model& model, const AdamW& opt, const RunState& st, int keep) {
  json s{{"step", st.step}, {"data_epoch", st.data.epoch}, {"data_cursor", st.data.cursor},
         {"dropout_counter", st.dropout_counter}};
  linformer::save_checkpoint(dir, st.step, model, opt, s, keep);
}

RunState load_run_state(const fs::path& ckpt, Model& model, AdamW& opt) {
  const json s = load_checkpoint(ckpt, model, opt);
  RunState st;
  st.step = state_field<int64_t>(s, "step", ckpt);
  st.data.epoch = state_field<uint64_t>(s, "data_epoch", ckpt);
  st.data.cursor = state_field<uint64_t>(s, "data_cursor", ckpt);
  st.dropout_counter = state_field<uint64_t>(s, "dropout_counter", ckpt);
  return st;
}

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

// Mean MLM loss over the first max_batches batches of batch_size x comm.size() sequences of a
// token file (fixed masks from seed, eval mode); each rank evaluates its slice of every batch.
double evaluate_mlm_on(const dist::Communicator& comm, Model& model, const std::string& tokens, int seq_len,
                       int batch_size, int max_batches, uint64_t seed) {
  TokenFile file(tokens);
  if (file.max_id() >= model.config().vocab_size)
    throw InputError(fmt::format("{}: token id {} is outside the model's vocabulary ({})", tokens, file.max_id(),
                                 model.config().vocab_size));
  MlmOptions mo;
  mo.seq_len = seq_len;
  mo.batch_size = batch_size;
  mo.vocab_size = model.config().vocab_size;
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
  double sums[2] = {0, 0};  // loss summed over the labelled tokens, their count
  for (size_t i = 0; i < nb; ++i) {
    batcher.next(batch, labels);
    long c = 0;
    for (int32_t l : labels) c += l != kIgnoreIndex;
    if (c == 0) continue;
    sums[0] += (double)model.forward_mlm(batch, labels) * c;  // weight by labelled tokens
    sums[1] += (double)c;
  }
  comm.allreduce_sum(sums, 2);
  if (sums[1] == 0) throw InputError(fmt::format("{}: no tokens to evaluate", tokens));
  return sums[0] / sums[1];
}

TrainSummary run_loop(Model& model, const TrainOptions& o, const fs::path& dir, RunState st, AdamW& opt) {
  // Data parallelism (docs/distributed.md): every rank runs this loop on its slice of each batch;
  // gradients and the step's scalars are summed over the ranks, so every rank takes the same
  // decisions (NaN stop, clipping, signals) and applies the same update. Only rank 0 writes.
  const dist::Communicator& comm = dist::world();
  const bool root = comm.is_root();
  const ModelConfig& cfg = model.config();
  const int seq_len = check_run_inputs(cfg, o);
  TokenFile train_file(o.train_tokens);
  MlmOptions mo;
  mo.seq_len = seq_len;
  mo.batch_size = o.batch_size;
  mo.vocab_size = cfg.vocab_size;
  mo.seed = o.seed;
  mo.shards = comm.size();
  mo.shard = comm.rank();
  MlmBatcher batcher(train_file, mo);
  batcher.set_state(st.data);
  model.set_dropout_seed(dist::rank_seed(o.seed ^ 0xd0d0d0d0ULL, comm.rank()), st.dropout_counter);
  // The ranks must start from the same weights and data position (a run folder or token file seen
  // differently by one host would otherwise train silently apart).
  dist::check_same_on_all_ranks(comm, dist::checksum(model.params().all_data()),
                                fmt::format("the weights at step {}", st.step));
  dist::check_same_on_all_ranks(
      comm, dist::checksum({(uint64_t)st.step, st.data.epoch, st.data.cursor, batcher.num_sequences()}),
      "the step, data position or number of training sequences");

  const Schedule sched = o.schedule();
  const fs::path metrics = dir / "metrics.jsonl";
  if (root) truncate_metrics(metrics, st.step);
  auto log = [&](const json& line) {
    if (root) append_metrics(metrics, line);
  };
  auto eval = [&]() {
    return evaluate_mlm_on(comm, model, o.valid_tokens, seq_len, o.batch_size, o.eval_batches, o.seed + 1);
  };

  StopSignalGuard signals;  // from here on, SIGINT/SIGTERM stop cleanly after the current step
  TrainSummary sum;
  if (st.step == 0) {
    double vl = eval();
    log({{"step", 0}, {"valid_loss", vl}, {"valid_ppl", std::exp(vl)}});
    sum.initial_valid_loss = vl;
  } else {
    sum.initial_valid_loss = std::nan("");
  }
  Progress progress(o.steps, st.step, root);
  std::vector<Batch> batches(o.accum);
  std::vector<std::vector<int32_t>> labels(o.accum);
  std::vector<double> counts(o.accum);  // labelled tokens of each micro-batch, over all ranks
  double tokens = 0, comm_s = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double last_valid = std::nan("");
  bool saved_at_end = false;
  auto save = [&] {
    dist::check_same_on_all_ranks(comm, dist::checksum(model.params().all_data()),
                                  fmt::format("the weights after step {}", st.step));
    // Never let `latest` name a checkpoint with non-finite weights.
    if (!all_finite(model.params().all_data()))
      stop_training(dir, fmt::format("the weights are not finite after step {}", st.step));
    if (root) save_checkpoint(dir, model, opt, st, o.keep_checkpoints);
  };
  while (st.step < o.steps) {
    model.train();
    model.zero_grad();
    for (int a = 0; a < o.accum; ++a) {
      batcher.next(batches[a], labels[a]);
      counts[a] = (double)std::count_if(labels[a].begin(), labels[a].end(),
                                        [](int32_t l) { return l != kIgnoreIndex; });
    }
    const double c0 = comm.comm_seconds();
    comm.allreduce_sum(counts.data(), counts.size());
    // The step's scalars, summed over the ranks: loss, real tokens, stop requests.
    double step_sums[3] = {0, 0, stop_requested() ? 1.0 : 0.0};
    for (int a = 0; a < o.accum; ++a) {
      if (batches[a].B == 0) {  // an epoch's last batch left this rank nothing: keep the dropout stream in step
        model.set_dropout_seed(dist::rank_seed(o.seed ^ 0xd0d0d0d0ULL, comm.rank()), model.dropout_counter() + 1);
        continue;
      }
      // Each rank's loss is its sum over the labelled tokens divided by the count over all ranks,
      // so the ranks' losses and gradients add up to those of the whole batch.
      step_sums[0] += model.forward_mlm(batches[a], labels[a], (int)counts[a]);
      model.backward();
      for (uint8_t m : batches[a].mask) step_sums[1] += m;
    }
    dist::allreduce_gradients(comm, model.params());
    comm.allreduce_sum(step_sums, 3);
    comm_s += comm.comm_seconds() - c0;
    const double loss = step_sums[0] / o.accum;
    tokens += step_sums[1];
    if (!std::isfinite(loss)) {
      progress.finish();
      stop_training(dir, fmt::format("loss is {} at step {}", for_message(loss), st.step + 1));
    }
    if (o.accum > 1)  // average the accumulated gradients over the micro-batches
      for (float& g : model.params().all_grad()) g /= (float)o.accum;
    const float gnorm = clip_grad_norm(model.params(), o.clip);
    if (!std::isfinite(gnorm)) {  // a finite loss with overflowing gradients: do not apply them
      progress.finish();
      stop_training(dir, fmt::format("loss is {} but the gradient norm is {} at step {}", for_message(loss),
                                     for_message(gnorm), st.step + 1));
    }
    const float lr = sched.lr(st.step);
    opt.step(lr);
    ++st.step;
    st.data = batcher.state();
    st.dropout_counter = model.dropout_counter();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double tps = tokens / std::max(secs, 1e-9);
    progress.update(st.step, loss, lr, tps);
    if (st.step % o.log_every == 0 || st.step == o.steps) {
      json line{{"step", st.step}, {"train_loss", loss}, {"lr", lr}, {"grad_norm", gnorm},
                {"tokens_per_s", tps}, {"elapsed_s", secs}};
      if (comm.size() > 1) {
        line["ranks"] = comm.size();
        line["comm_s"] = comm_s;  // seconds in the step's reductions since the start, waiting included
      }
      log(line);
    }
    if (st.step % o.eval_every == 0 || st.step == o.steps) {
      last_valid = eval();
      log({{"step", st.step}, {"valid_loss", last_valid}, {"valid_ppl", std::exp(last_valid)}});
      progress.message(fmt::format("step {}: validation loss {:.4f}, perplexity {:.2f}", st.step, last_valid,
                                   std::exp(last_valid)));
    }
    const bool stop = step_sums[2] > 0;  // a signal reached one of the ranks
    if (st.step % o.save_every == 0 || st.step == o.steps || stop) {
      save();
      saved_at_end = st.step == o.steps || stop;
    }
    if (stop) {
      sum.interrupted = true;
      progress.message(fmt::format("interrupted: checkpoint saved at step {}; continue with --resume {}", st.step,
                                   dir.string()));
      break;
    }
  }
  progress.finish();
  if (!saved_at_end && st.step == o.steps) save();
  sum.steps_done = st.step;
  // An interrupted run does not evaluate again (it should end quickly): NaN unless it just did.
  sum.final_valid_loss = std::isnan(last_valid) && !sum.interrupted ? eval() : last_valid;
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  sum.tokens_per_second = tokens / std::max(sum.seconds, 1e-9);
  sum.checkpoint = (dir / fmt::format("ckpt-{:08d}", st.step)).string();
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
  const dist::Communicator single_process;
  return evaluate_mlm_on(single_process, model, tokens, seq_len, batch_size, max_batches, seed);
}

TrainSummary pretrain(const ModelConfig& cfg, const TrainOptions& opt, const std::string& out_dir) {
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
  return run_loop(model, o, dir, RunState{}, adam);
}

TrainSummary resume_pretraining(const std::string& out_dir, int64_t steps) {
  const fs::path dir(out_dir);
  const std::string ckpt = latest_checkpoint(out_dir);
  ModelConfig cfg;
  try {
    cfg = ModelConfig::from_json(core::read_json(dir / "config.json"));
  } catch (const ConfigError& e) {
    throw IoError(fmt::format("{}: {}", (dir / "config.json").string(), e.what()));
  }
  TrainOptions o;
  try {
    o = TrainOptions::from_json(core::read_json(dir / "train.json"));
  } catch (const ConfigError& e) {
    throw IoError(fmt::format("{}: {}", (dir / "train.json").string(), e.what()));
  }
  if (steps < 0) throw ConfigError(fmt::format("train options: steps = {} must be at least 1", steps));
  Model model(cfg);
  AdamW adam(model.params(), o.adamw());
  RunState st = load_run_state(ckpt, model, adam);
  const int64_t total = steps > 0 ? steps : o.steps;
  if (st.step >= total)
    throw ConfigError(fmt::format("{}: the run already reached step {} of {}; pass a larger --steps to continue",
                                  out_dir, st.step, total));
  if (total != o.steps) {  // only once the new total is known to be valid
    o.steps = total;
    if (dist::world().is_root()) core::write_file_atomic(dir / "train.json", o.to_json().dump(2) + "\n");
  }
  return run_loop(model, o, dir, st, adam);
}

}  // namespace linformer
