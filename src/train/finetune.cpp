// Sequence-classification fine-tuning. See finetune.hpp and docs/finetune.md. The run-folder
// machinery (checkpoints, metrics, signals, NaN stop) is shared with pretraining (run_dir.hpp).
#include "linformer/finetune.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <numeric>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "linformer/checkpoint.hpp"
#include "linformer/error.hpp"
#include "linformer/model.hpp"
#include "linformer/optimizer.hpp"
#include "linformer/tokenizer.hpp"
#include "linformer/trainer.hpp"
#include "core/rng.hpp"
#include "dist/communicator.hpp"
#include "dist/data_parallel.hpp"
#include "train/progress.hpp"
#include "train/run_dir.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace linformer {

// ---------------------------------------------------------------- options

json FinetuneOptions::to_json() const {
  json j{{"model", model},           {"config", config},     {"task", task},
         {"tokenizer", tokenizer},   {"pooling", pooling},   {"truncate", truncate},
         {"batch_size", batch_size}, {"eval_batch_size", eval_batch_size}, {"class_weights", class_weights},
         {"group_by_length", group_by_length}};
  add_run_settings(j, *this);
  return j;
}

FinetuneOptions FinetuneOptions::from_json(const json& j) {
  constexpr const char* what = "finetune options";
  FinetuneOptions o;
  read_run_settings(j, o.to_json(), what, o);
  read_option(j, what, "model", o.model);
  read_option(j, what, "config", o.config);
  read_option(j, what, "task", o.task);
  read_option(j, what, "tokenizer", o.tokenizer);
  read_option(j, what, "pooling", o.pooling);
  read_option(j, what, "truncate", o.truncate);
  read_option(j, what, "batch_size", o.batch_size);
  read_option(j, what, "eval_batch_size", o.eval_batch_size);
  read_option(j, what, "class_weights", o.class_weights);
  read_option(j, what, "group_by_length", o.group_by_length);
  o.validate();
  return o;
}

void FinetuneOptions::validate() const {
  auto bad = [](const char* field, auto value, const char* why) {
    throw ConfigError(fmt::format("finetune options: {} = {} {}", field, value, why));
  };
  if (task.empty()) throw ConfigError("finetune options: task (the task folder) is required");
  if (model.empty() && config.empty())
    throw ConfigError("finetune options: give a pretrained model (model) or a model config for a model from scratch "
                      "(config)");
  if (!model.empty() && !config.empty())
    throw ConfigError(fmt::format("finetune options: config ({}) is only for a model from scratch; a pretrained model "
                                  "({}) keeps its own config",
                                  config, model));
  if (!pooling.empty() && pooling != "first" && pooling != "mean")
    throw ConfigError(fmt::format("finetune options: pooling = '{}' must be 'first' or 'mean'", pooling));
  if (class_weights != "none" && class_weights != "balanced")
    throw ConfigError(
        fmt::format("finetune options: class_weights = '{}' must be 'none' or 'balanced'", class_weights));
  validate_run_settings(*this, "finetune options");
  if (batch_size < 1) bad("batch_size", batch_size, "must be at least 1");
  if (eval_batch_size < 1) bad("eval_batch_size", eval_batch_size, "must be at least 1");
}

// ---------------------------------------------------------------- evaluation

namespace {

// Softmax of one row of logits, in double.
void softmax_row(const float* logits, int C, std::vector<double>& p) {
  p.resize(C);
  double mx = logits[0];
  for (int c = 1; c < C; ++c) mx = std::max(mx, (double)logits[c]);
  double z = 0;
  for (int c = 0; c < C; ++c) z += p[c] = std::exp((double)logits[c] - mx);
  for (int c = 0; c < C; ++c) p[c] /= z;
}

// Runs the model over seqs[first, last) in batches (eval mode) and calls fn(index, logits row) for each.
template <class Fn>
void for_each_logits(Model& model, const std::vector<std::vector<int32_t>>& seqs, size_t first, size_t last,
                     int batch_size, Fn fn) {
  if (model.config().num_labels <= 0)
    throw ConfigError("config: num_labels is 0, so the model has no classification head");
  if (batch_size < 1) throw ConfigError(fmt::format("evaluation batch size {} must be at least 1", batch_size));
  const int C = model.config().num_labels;
  InferenceScope inference(model);
  // Longest first, so each batch pads little and the buffers reach their largest size at once;
  // each result still goes to its own index.
  std::vector<size_t> by_length(last - first);
  std::iota(by_length.begin(), by_length.end(), first);
  std::stable_sort(by_length.begin(), by_length.end(),
                   [&](size_t a, size_t b) { return seqs[a].size() > seqs[b].size(); });
  std::vector<std::vector<int32_t>> chunk;
  for (size_t start = 0; start < by_length.size(); start += (size_t)batch_size) {
    const size_t end = std::min(by_length.size(), start + (size_t)batch_size);
    chunk.clear();
    for (size_t j = start; j < end; ++j) chunk.push_back(seqs[by_length[j]]);
    const float* logits = model.forward_cls_logits(Batch::from_sequences(chunk));
    for (size_t j = start; j < end; ++j) fn(by_length[j], logits + (j - start) * C);
  }
}

// evaluate_classifier, with the sequences shared out among the ranks of `comm` (each runs a
// contiguous part; the confusion matrices and losses are summed).
ClassifierEval evaluate_classifier_on(const dist::Communicator& comm, Model& model,
                                      const std::vector<std::vector<int32_t>>& seqs,
                                      const std::vector<int32_t>& labels, int batch_size) {
  const int C = model.config().num_labels;
  if (labels.size() != seqs.size())
    throw InputError(fmt::format("evaluate: {} labels for {} sequences", labels.size(), seqs.size()));
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] < 0 || labels[i] >= C)
      throw InputError(fmt::format("evaluate: label {} of example {} is outside [0, {})", labels[i], i, C));
  ClassifierEval e;
  e.examples = (int64_t)seqs.size();
  e.confusion.assign(std::max(C, 0), std::vector<int64_t>(std::max(C, 0), 0));
  double loss = 0;
  int64_t correct = 0;
  std::vector<double> p;
  const size_t per_rank = (seqs.size() + comm.size() - 1) / comm.size();
  const dist::Slice part = dist::rank_slice(seqs.size(), per_rank, comm.rank());
  for_each_logits(model, seqs, part.begin, part.begin + part.count, batch_size, [&](size_t i, const float* logits) {
    softmax_row(logits, C, p);
    const int pred = (int)(std::max_element(p.begin(), p.end()) - p.begin());  // first maximum
    // Cross-entropy as log-sum-exp minus the true logit (exact even when p underflows).
    double mx = logits[0];
    for (int c = 1; c < C; ++c) mx = std::max(mx, (double)logits[c]);
    double z = 0;
    for (int c = 0; c < C; ++c) z += std::exp((double)logits[c] - mx);
    loss += mx + std::log(z) - (double)logits[labels[i]];
    correct += pred == labels[i];
    ++e.confusion[labels[i]][pred];
  });
  if (comm.size() > 1) {  // sum the counts (exact in double up to 2^53) and the losses over the ranks
    std::vector<double> sums{loss, (double)correct};
    for (const auto& row : e.confusion) sums.insert(sums.end(), row.begin(), row.end());
    comm.allreduce_sum(sums.data(), sums.size());
    loss = sums[0];
    correct = (int64_t)sums[1];
    for (int a = 0; a < C; ++a)
      for (int b = 0; b < C; ++b) e.confusion[a][b] = (int64_t)sums[2 + (size_t)a * C + b];
  }
  const double nan = std::nan("");
  e.accuracy = e.examples ? (double)correct / (double)e.examples : nan;
  e.loss = e.examples ? loss / (double)e.examples : nan;
  e.per_class.resize(std::max(C, 0));
  double f1_sum = 0;
  for (int c = 0; c < C; ++c) {
    ClassMetrics& m = e.per_class[c];
    for (int o = 0; o < C; ++o) {
      m.support += e.confusion[c][o];
      m.predicted += e.confusion[o][c];
    }
    const double tp = (double)e.confusion[c][c];
    m.precision = m.predicted ? tp / (double)m.predicted : 0.0;
    m.recall = m.support ? tp / (double)m.support : 0.0;
    m.f1 = m.precision + m.recall > 0 ? 2 * m.precision * m.recall / (m.precision + m.recall) : 0.0;
    f1_sum += m.f1;
  }
  e.macro_f1 = C > 0 ? f1_sum / C : nan;
  return e;
}

}  // namespace

ClassifierEval evaluate_classifier(Model& model, const std::vector<std::vector<int32_t>>& seqs,
                                   const std::vector<int32_t>& labels, int batch_size) {
  const dist::Communicator single_process;
  return evaluate_classifier_on(single_process, model, seqs, labels, batch_size);
}

std::vector<std::vector<double>> classify(Model& model, const std::vector<std::vector<int32_t>>& seqs, int batch_size) {
  const int C = model.config().num_labels;
  std::vector<std::vector<double>> out(seqs.size());
  for_each_logits(model, seqs, 0, seqs.size(), batch_size,
                  [&](size_t i, const float* logits) { softmax_row(logits, C, out[i]); });
  return out;
}

json to_json(const ClassifierEval& e, const std::vector<std::string>& labels) {
  auto num = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  json per = json::array();
  for (size_t c = 0; c < e.per_class.size(); ++c) {
    const ClassMetrics& m = e.per_class[c];
    per.push_back({{"label", c < labels.size() ? labels[c] : std::to_string(c)},
                   {"precision", m.precision},
                   {"recall", m.recall},
                   {"f1", m.f1},
                   {"support", m.support},
                   {"predicted", m.predicted}});
  }
  return json{{"examples", e.examples}, {"accuracy", num(e.accuracy)}, {"loss", num(e.loss)},
              {"macro_f1", num(e.macro_f1)}, {"labels", labels}, {"per_class", per}, {"confusion", e.confusion}};
}

// ---------------------------------------------------------------- the run

namespace {

// What the loop needs between steps; saved in each checkpoint's state.json.
struct FtState {
  int64_t step = 0;
  uint64_t epoch = 0;   // epochs of the training split completed
  uint64_t cursor = 0;  // examples of this epoch's order already used (< number of training examples)
  uint64_t dropout_counter = 0;
};

json state_json(const FtState& st) {
  return json{{"step", st.step}, {"epoch", st.epoch}, {"cursor", st.cursor}, {"dropout_counter", st.dropout_counter}};
}

// The order of the training examples in an epoch: a Fisher-Yates shuffle driven by a splitmix64
// generator keyed by (seed, epoch), so any epoch's order is recomputed without replaying the run,
// identically on every platform.
using core::splitmix64;

std::vector<uint32_t> epoch_order(size_t n, uint64_t seed, uint64_t epoch) {
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  core::Rng rng(splitmix64(seed ^ splitmix64(0xF17E ^ splitmix64(epoch))));
  core::shuffle(order, rng);
  return order;
}

}  // namespace

std::vector<uint32_t> group_by_length(const std::vector<uint32_t>& order, const std::vector<size_t>& lengths,
                                      size_t batch, uint64_t seed, uint64_t epoch) {
  if (batch == 0) throw ConfigError("group_by_length: the batch size must be at least 1");
  std::vector<uint32_t> out;
  out.reserve(order.size());
  const size_t pool = batch * kLengthGroupBatches;
  core::Rng rng(splitmix64(seed ^ splitmix64(0x6B0C ^ splitmix64(epoch))));
  for (size_t begin = 0; begin < order.size(); begin += pool) {
    const size_t end = std::min(order.size(), begin + pool);
    std::vector<uint32_t> chunk(order.begin() + (std::ptrdiff_t)begin, order.begin() + (std::ptrdiff_t)end);
    // Longest first; ties keep the shuffled order, so the result depends only on (order, lengths).
    std::stable_sort(chunk.begin(), chunk.end(), [&](uint32_t a, uint32_t b) { return lengths[a] > lengths[b]; });
    // Shuffle the whole batches of the chunk (a short last batch of the epoch stays last), so the
    // batches do not run from long to short.
    const size_t full = chunk.size() / batch;
    std::vector<size_t> batches(full);
    std::iota(batches.begin(), batches.end(), size_t{0});
    core::shuffle(batches, rng);
    for (size_t b : batches)
      out.insert(out.end(), chunk.begin() + (std::ptrdiff_t)(b * batch),
                 chunk.begin() + (std::ptrdiff_t)((b + 1) * batch));
    out.insert(out.end(), chunk.begin() + (std::ptrdiff_t)(full * batch), chunk.end());
  }
  return out;
}

namespace {

// The task, tokenized for the model.
struct TaskInputs {
  TaskData task;
  std::vector<std::vector<int32_t>> train, valid;
  std::vector<int32_t> train_labels, valid_labels;
};

std::vector<int32_t> labels_of(const TaskSplit& s) {
  std::vector<int32_t> out;
  out.reserve(s.examples.size());
  for (const TaskExample& e : s.examples) out.push_back(e.label);
  return out;
}

// The tokenizer model file of a run: --tokenizer, else the pretrained run folder's (or, for a
// checkpoint folder, its run folder's) tokenizer.model, else the task folder's tok.model.
std::string find_tokenizer(const FinetuneOptions& o) {
  if (!o.tokenizer.empty()) return o.tokenizer;
  std::vector<fs::path> candidates;
  if (!o.model.empty() && fs::is_directory(o.model)) {
    candidates.push_back(fs::path(o.model) / "tokenizer.model");
    candidates.push_back(fs::path(o.model).parent_path() / "tokenizer.model");
  }
  if (o.model.empty()) candidates.push_back(fs::path(o.task) / "tok.model");
  for (const fs::path& p : candidates)
    if (fs::is_regular_file(p)) return p.string();
  throw ConfigError(fmt::format("finetune: task {} uses a SentencePiece tokenizer: pass --tokenizer FILE ({})",
                                o.task,
                                o.model.empty() ? fmt::format("none found as {}/tok.model", o.task)
                                                : fmt::format("no tokenizer.model next to {}", o.model)));
}

// Checks the model's vocabulary against the task's tokenizer and tokenizes train and valid.
TaskInputs prepare_inputs(const ModelConfig& cfg, TaskData task, const Tokenizer* tok, bool truncate) {
  const TaskInfo& info = task.info;
  if (info.tokenizer == TaskTokenizer::SentencePiece) {
    if (tok->vocab_size() > cfg.vocab_size)
      throw ConfigError(fmt::format("finetune: the tokenizer has {} pieces, more than the model's vocab_size {}",
                                    tok->vocab_size(), cfg.vocab_size));
  } else if (task_vocab_size(info.tokenizer) > cfg.vocab_size) {
    throw ConfigError(fmt::format("finetune: task {} uses the {} vocabulary ({} ids), more than the model's "
                                  "vocab_size {}",
                                  info.name, to_string(info.tokenizer), task_vocab_size(info.tokenizer),
                                  cfg.vocab_size));
  }
  TaskInputs in;
  in.train = tokenize_split(info, task.train, tok, cfg.max_len, truncate);
  in.valid = tokenize_split(info, task.valid, tok, cfg.max_len, truncate);
  in.train_labels = labels_of(task.train);
  in.valid_labels = labels_of(task.valid);
  in.task = std::move(task);
  return in;
}

}  // namespace

std::vector<float> balanced_class_weights(const std::vector<int32_t>& labels, int num_classes) {
  std::vector<size_t> count((size_t)std::max(num_classes, 0), 0);
  for (int32_t l : labels)
    if (l >= 0 && l < num_classes) ++count[(size_t)l];
  std::vector<float> w(count.size(), 0.0f);
  for (size_t c = 0; c < count.size(); ++c)
    if (count[c] > 0) w[c] = (float)((double)labels.size() / ((double)num_classes * (double)count[c]));
  return w;
}

namespace {

FinetuneSummary ft_loop(Model& model, const FinetuneOptions& o, const fs::path& dir, const TaskInputs& in, FtState st,
                        AdamW& opt) {
  // Data parallelism as in pretraining (trainer.cpp, docs/distributed.md): each rank takes its
  // slice of every batch, gradients and the step's scalars are summed, only rank 0 writes.
  const dist::Communicator& comm = dist::world();
  const bool root = comm.is_root();
  const size_t N = in.train.size();
  if (st.cursor >= N)
    throw IoError(fmt::format("{}: the checkpoint's data position {} is past the {} training examples of {} (did "
                              "train.tsv change?)",
                              dir.string(), st.cursor, N, o.task));
  const uint64_t dropout_seed = dist::rank_seed(o.seed ^ 0xf17ef17eULL, comm.rank());
  model.set_dropout_seed(dropout_seed, st.dropout_counter);
  dist::check_same_on_all_ranks(comm, dist::checksum(model.params().all_data()),
                                fmt::format("the weights at step {}", st.step));
  dist::check_same_on_all_ranks(comm, dist::checksum({(uint64_t)st.step, st.epoch, st.cursor, N, in.valid.size()}),
                                "the step, data position or number of examples");
  const Schedule sched = o.schedule();
  const fs::path metrics = dir / "metrics.jsonl";
  if (root) truncate_metrics(metrics, st.step);
  auto log = [&](const json& line) {
    if (root) append_metrics(metrics, line);
  };
  const bool has_valid = !in.valid.empty();
  auto eval = [&]() { return evaluate_classifier_on(comm, model, in.valid, in.valid_labels, o.eval_batch_size); };
  auto eval_line = [](int64_t step, const ClassifierEval& e) {
    return json{{"step", step}, {"valid_loss", e.loss}, {"valid_accuracy", e.accuracy}, {"valid_macro_f1", e.macro_f1}};
  };

  StopSignalGuard signals;  // from here on, SIGINT/SIGTERM stop cleanly after the current step
  FinetuneSummary sum;
  const double nan = std::nan("");
  sum.initial_valid_accuracy = sum.final_valid_accuracy = sum.final_valid_loss = nan;
  if (st.step == 0 && has_valid) {
    const ClassifierEval e = eval();
    log(eval_line(0, e));
    sum.initial_valid_accuracy = e.accuracy;
  }
  Progress progress(o.steps, st.step, root);
  // The examples of an epoch in batch order: shuffled, then (--group-by-length) grouped so that
  // each batch holds examples of similar length and pads less.
  const size_t global_batch = (size_t)o.batch_size * comm.size();
  std::vector<size_t> train_lengths;
  for (const std::vector<int32_t>& seq : in.train) train_lengths.push_back(seq.size());
  auto order_of_epoch = [&](uint64_t epoch) {
    std::vector<uint32_t> order = epoch_order(N, o.seed, epoch);
    return o.group_by_length ? group_by_length(order, train_lengths, global_batch, o.seed, epoch) : order;
  };
  std::vector<uint32_t> order = order_of_epoch(st.epoch);
  const std::vector<float> class_weight =
      o.class_weights == "balanced" ? balanced_class_weights(in.train_labels, model.config().num_labels)
                                    : std::vector<float>{};
  std::vector<std::vector<int32_t>> seqs;
  std::vector<int32_t> labels;
  std::vector<float> weights;
  double tokens = 0, comm_s = 0;
  const auto t0 = std::chrono::steady_clock::now();
  bool evaluated_last = false, saved_at_end = false;
  auto save = [&] {
    dist::check_same_on_all_ranks(comm, dist::checksum(model.params().all_data()),
                                  fmt::format("the weights after step {}", st.step));
    // Never let `latest` name a checkpoint with non-finite weights.
    if (!all_finite(model.params().all_data()))
      stop_training(dir, fmt::format("the weights are not finite after step {}", st.step));
    if (root) save_checkpoint(dir, st.step, model, opt, state_json(st), o.keep_checkpoints);
  };
  while (st.step < o.steps) {
    model.train();
    model.zero_grad();
    // The batch of the run (all ranks) may be short at the end of an epoch; this rank's slice of it.
    const size_t global = std::min<size_t>(global_batch, N - st.cursor);
    const dist::Slice part = dist::rank_slice(global, (size_t)o.batch_size, comm.rank());
    seqs.clear();
    labels.clear();
    weights.clear();
    for (size_t i = 0; i < part.count; ++i) {
      const uint32_t ex = order[st.cursor + part.begin + i];
      seqs.push_back(in.train[ex]);
      labels.push_back(in.train_labels[ex]);
      if (!class_weight.empty()) weights.push_back(class_weight[in.train_labels[ex]]);
    }
    // The step's scalars, summed over the ranks: loss, real tokens, stop requests.
    double step_sums[3] = {0, 0, stop_requested() ? 1.0 : 0.0};
    if (part.count > 0) {
      const Batch batch = Batch::from_sequences(seqs);
      // The loss is the mean over the whole batch: each rank divides its sum by `global`.
      step_sums[0] = model.forward_cls(batch, labels, (int)global, weights);
      model.backward();
      for (uint8_t m : batch.mask) step_sums[1] += m;
    } else {  // keep the dropout stream in step with the other ranks
      model.set_dropout_seed(dropout_seed, model.dropout_counter() + 1);
    }
    const double c0 = comm.comm_seconds();
    dist::allreduce_gradients(comm, model.params());
    comm.allreduce_sum(step_sums, 3);
    comm_s += comm.comm_seconds() - c0;
    const float loss = (float)step_sums[0];
    tokens += step_sums[1];
    if (!std::isfinite(loss)) {
      progress.finish();
      stop_training(dir, fmt::format("loss is {} at step {}", for_message(loss), st.step + 1));
    }
    const float gnorm = clip_grad_norm(model.params(), o.clip);
    if (!std::isfinite(gnorm)) {
      progress.finish();
      stop_training(dir, fmt::format("loss is {} but the gradient norm is {} at step {}", for_message(loss),
                                     for_message(gnorm), st.step + 1));
    }
    const float lr = sched.lr(st.step);
    opt.step(lr);
    ++st.step;
    st.cursor += global;
    if (st.cursor == N) {
      st.cursor = 0;
      ++st.epoch;
      order = order_of_epoch(st.epoch);
    }
    st.dropout_counter = model.dropout_counter();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double tps = tokens / std::max(secs, 1e-9);
    progress.update(st.step, loss, lr, tps);
    if (st.step % o.log_every == 0 || st.step == o.steps) {
      json line{{"step", st.step}, {"train_loss", loss}, {"lr", lr}, {"grad_norm", gnorm},
                {"epoch", (double)st.epoch + (double)st.cursor / (double)N},
                {"tokens_per_s", tps}, {"elapsed_s", secs}};
      if (comm.size() > 1) {
        line["ranks"] = comm.size();
        line["comm_s"] = comm_s;  // seconds in the step's reductions since the start, waiting included
      }
      log(line);
    }
    evaluated_last = false;
    if (has_valid && (st.step % o.eval_every == 0 || st.step == o.steps)) {
      const ClassifierEval e = eval();
      log(eval_line(st.step, e));
      sum.final_valid_accuracy = e.accuracy;
      sum.final_valid_loss = e.loss;
      evaluated_last = true;
      progress.message(fmt::format("step {}: validation accuracy {:.2f}%, loss {:.4f}, macro-F1 {:.4f}", st.step,
                                   100 * e.accuracy, e.loss, e.macro_f1));
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
  if (!evaluated_last) sum.final_valid_accuracy = sum.final_valid_loss = nan;  // interrupted between evaluations
  sum.steps_done = st.step;
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  sum.tokens_per_second = tokens / std::max(sum.seconds, 1e-9);
  sum.checkpoint = (dir / fmt::format("ckpt-{:08d}", st.step)).string();
  return sum;
}

// The model file of a pretrained run folder, checkpoint folder or model file.
std::string pretrained_file(const std::string& path) {
  if (!fs::exists(path)) throw IoError(fmt::format("{}: no such file or folder (the pretrained model)", path));
  if (!fs::is_directory(path)) return path;
  if (fs::exists(fs::path(path) / "model.safetensors")) return (fs::path(path) / "model.safetensors").string();
  return (fs::path(latest_checkpoint(path)) / "model.safetensors").string();
}

ModelConfig read_run_config(const fs::path& dir) {
  try {
    return ModelConfig::from_json(core::read_json(dir / "config.json"));
  } catch (const ConfigError& e) {
    throw IoError(fmt::format("{}: {}", (dir / "config.json").string(), e.what()));
  }
}

}  // namespace

FinetuneSummary finetune(const FinetuneOptions& opt, const std::string& out_dir) {
  opt.validate();
  const fs::path dir(out_dir);
  if (fs::exists(dir / "latest"))
    throw IoError(fmt::format("{}: already holds a run; continue it with --resume {} or choose another --out", out_dir,
                              out_dir));
  if (fs::exists(dir) && !fs::is_directory(dir)) throw IoError(fmt::format("{}: exists and is not a folder", out_dir));

  // Everything is checked before anything is written: task, model, tokenizer, lengths.
  TaskData task = load_task(opt.task);
  const int num_labels = (int)task.info.labels.size();
  FinetuneOptions o = opt;
  ModelConfig cfg;
  std::string pretrained;
  if (!o.model.empty()) {
    pretrained = pretrained_file(o.model);
    cfg = load_model(pretrained)->config();
    cfg.num_labels = num_labels;
    if (o.pooling.empty()) o.pooling = "first";
  } else {
    cfg = ModelConfig::from_file(o.config);
    if (cfg.num_labels != 0 && cfg.num_labels != num_labels)
      throw ConfigError(fmt::format("{}: num_labels = {} but task {} has {} classes (leave num_labels out: fine-tuning "
                                    "sets it)",
                                    o.config, cfg.num_labels, task.info.name, num_labels));
    cfg.num_labels = num_labels;
    if (o.pooling.empty()) o.pooling = to_string(cfg.pooling);
  }
  cfg.pooling = o.pooling == "mean" ? Pooling::Mean : Pooling::First;
  cfg.validate();
  std::unique_ptr<Tokenizer> tok;
  std::string tok_path;
  if (task.info.tokenizer == TaskTokenizer::SentencePiece) {
    tok_path = find_tokenizer(o);
    tok = std::make_unique<Tokenizer>(tok_path);
  } else if (!o.tokenizer.empty()) {
    throw ConfigError(fmt::format("finetune: task {} uses the fixed {} vocabulary; --tokenizer is only for "
                                  "sentencepiece tasks",
                                  task.info.name, to_string(task.info.tokenizer)));
  }
  const TaskInputs in = prepare_inputs(cfg, std::move(task), tok.get(), o.truncate);
  Model model(cfg);
  model.init(o.seed);  // the whole model from scratch, or the classification head of a pretrained one
  if (!pretrained.empty()) load_weights_except(model, pretrained, "cls.");

  if (dist::world().is_root()) {  // under MPI only rank 0 writes the run folder
    fs::create_directories(dir);
    if (tok) core::copy_file_atomic(tok_path, dir / "tokenizer.model");
    core::copy_file_atomic(fs::path(o.task) / "task.json", dir / "task.json");
    core::write_file_atomic(dir / "config.json", cfg.to_json().dump(2) + "\n");
    core::write_file_atomic(dir / "finetune.json", o.to_json().dump(2) + "\n");
    fs::remove(dir / "metrics.jsonl");
  }
  AdamW adam(model.params(), o.adamw());
  return ft_loop(model, o, dir, in, FtState{}, adam);
}

FinetuneSummary resume_finetuning(const std::string& out_dir, int64_t steps) {
  const fs::path dir(out_dir);
  const std::string ckpt = latest_checkpoint(out_dir);
  const ModelConfig cfg = read_run_config(dir);
  FinetuneOptions o;
  try {
    o = FinetuneOptions::from_json(core::read_json(dir / "finetune.json"));
  } catch (const ConfigError& e) {
    throw IoError(fmt::format("{}: {}", (dir / "finetune.json").string(), e.what()));
  }
  if (steps < 0) throw ConfigError(fmt::format("finetune options: steps = {} must be at least 1", steps));
  TaskData task = load_task(o.task);
  const TaskInfo run_info = read_task_info(out_dir);
  if (task.info.labels != run_info.labels || task.info.tokenizer != run_info.tokenizer)
    throw ConfigError(fmt::format("{}: the classes or tokenizer of task {} differ from those of the run ({}/task.json)",
                                  o.task, o.task, out_dir));
  std::unique_ptr<Tokenizer> tok;
  if (task.info.tokenizer == TaskTokenizer::SentencePiece)
    tok = std::make_unique<Tokenizer>((dir / "tokenizer.model").string());
  const TaskInputs in = prepare_inputs(cfg, std::move(task), tok.get(), o.truncate);
  Model model(cfg);
  AdamW adam(model.params(), o.adamw());
  const json s = load_checkpoint(ckpt, model, adam);
  FtState st;
  st.step = state_field<int64_t>(s, "step", ckpt);
  st.epoch = state_field<uint64_t>(s, "epoch", ckpt);
  st.cursor = state_field<uint64_t>(s, "cursor", ckpt);
  st.dropout_counter = state_field<uint64_t>(s, "dropout_counter", ckpt);
  const int64_t total = steps > 0 ? steps : o.steps;
  if (st.step >= total)
    throw ConfigError(fmt::format("{}: the run already reached step {} of {}; pass a larger --steps to continue",
                                  out_dir, st.step, total));
  if (total != o.steps) {
    o.steps = total;
    if (dist::world().is_root()) core::write_file_atomic(dir / "finetune.json", o.to_json().dump(2) + "\n");
  }
  return ft_loop(model, o, dir, in, st, adam);
}

// ---------------------------------------------------------------- using a fine-tuned model

Classifier::Classifier(const std::string& path) {
  fs::path run = path;
  if (!fs::is_directory(run))
    throw IoError(fmt::format("{}: not a fine-tuning run folder (a folder with task.json, config.json and checkpoints)",
                              path));
  if (!fs::exists(run / "latest") && fs::exists(run / "model.safetensors") && fs::exists(run.parent_path() / "latest"))
    run = run.parent_path();  // a checkpoint folder inside a run folder
  if (!fs::exists(run / "latest") || !fs::exists(run / "task.json"))
    throw IoError(fmt::format("{}: not a fine-tuning run folder (no {}; `linformer finetune --out DIR` makes one)",
                              path, fs::exists(run / "latest") ? "task.json" : "checkpoint 'latest'"));
  info_ = read_task_info(run.string());
  model_ = load_trained_model(path);
  if (model_->config().num_labels != (int)info_.labels.size())
    throw IoError(fmt::format("{}: the model has {} classes but {}/task.json names {}", path,
                              model_->config().num_labels, run.string(), info_.labels.size()));
  if (info_.tokenizer == TaskTokenizer::SentencePiece) {
    const fs::path tp = run / "tokenizer.model";
    if (!fs::exists(tp)) throw IoError(fmt::format("{}: missing (the task uses a SentencePiece tokenizer)", tp.string()));
    tok_ = std::make_unique<Tokenizer>(tp.string());
  }
  if (fs::exists(run / "finetune.json")) {
    const json j = core::read_json(run / "finetune.json");
    try {
      truncates_ = j.value("truncate", false);
      task_dir_ = j.value("task", std::string());
    } catch (const json::exception&) {
      throw IoError(fmt::format("{}: field 'truncate' or 'task' has the wrong type", (run / "finetune.json").string()));
    }
  }
}

Classifier::~Classifier() = default;

std::vector<int32_t> Classifier::tokenize(const std::string& text, bool truncate) const {
  std::vector<int32_t> ids = tokenize_example(info_, text, tok_.get());
  const int max_len = model_->config().max_len;
  if ((int64_t)ids.size() > max_len) {
    if (!truncate)
      throw InputError(fmt::format("sequence too long: {} tokens (with <s> and </s>) exceed max_len {} (--truncate "
                                   "cuts it)",
                                   ids.size(), max_len));
    ids.resize((size_t)max_len);
    ids.back() = kEosId;
  }
  return ids;
}

ClassifierEval Classifier::evaluate(const std::string& task_dir, const std::string& split, bool truncate,
                                    int batch_size) {
  TaskData task = load_task(task_dir);
  if (task.info.labels != info_.labels || task.info.tokenizer != info_.tokenizer)
    throw ConfigError(fmt::format("{}/task.json: its classes or tokenizer differ from those the model was fine-tuned "
                                  "on",
                                  task_dir));
  const TaskSplit& s = task.split(split);
  const auto seqs = tokenize_split(task.info, s, tok_.get(), model_->config().max_len, truncate);
  return evaluate_classifier(*model_, seqs, labels_of(s), batch_size);
}

}  // namespace linformer
