// Using a classifier: evaluation (accuracy, loss, precision/recall/F1 per class, the confusion
// matrix; shared out among the ranks of a data-parallel run), class probabilities, and the
// Classifier of a fine-tuning run folder. See finetune.hpp.
#include "train/classifier.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "linformer/cls_batcher.hpp"
#include "linformer/error.hpp"
#include "linformer/finetune.hpp"
#include "linformer/model.hpp"
#include "linformer/tokenizer.hpp"
#include "linformer/trainer.hpp"
#include "core/fs.hpp"
#include "dist/data_parallel.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace linformer {

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

}  // namespace

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
  return fit_to_max_len(tokenize_example(info_, text, tok_.get()), model_->config().max_len, truncate);
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
