// Sequence-classification fine-tuning (docs/finetune.md): from a pretrained MLM checkpoint (its
// encoder weights; a new classification head initialised from the seed) or from scratch (a model
// config), on a task folder (tasks.hpp), with the checkpoints, resume, metrics, progress, signal
// handling and NaN stop of pretraining (trainer.hpp).
//
// A fine-tuning run folder holds:
//   config.json       the model config (num_labels = the task's classes, pooling)
//   finetune.json     the options (FinetuneOptions)
//   task.json         copy of the task's task.json (class names, tokenizer kind)
//   tokenizer.model   copy of the SentencePiece model (sentencepiece tasks)
//   metrics.jsonl     train lines and evaluation lines (valid_loss, valid_accuracy)
//   ckpt-SSSSSSSS/    model.safetensors, optimizer.safetensors, state.json {step, epoch, cursor, dropout_counter}
//   latest            name of the newest complete checkpoint folder
// so that a run folder alone is enough to evaluate the model and to classify new texts.
//
// Typical use:
//   FinetuneOptions o; o.model = "runs/mlm"; o.task = "data/spam"; o.truncate = true;
//   FinetuneSummary s = finetune(o, "runs/spam");
//   Classifier c("runs/spam");
//   ClassifierEval e = c.evaluate("data/spam", "test");
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "linformer/cls_batcher.hpp"
#include "linformer/config.hpp"
#include "linformer/optimizer.hpp"
#include "linformer/tasks.hpp"

namespace linformer {

class Model;
class Tokenizer;

// The fine-tuning options: RunSettings (steps, optimizer, schedule, cadence; the seed drives the
// head or whole-model initialisation, example order and dropout) and these. lr defaults to 1e-4.
struct FinetuneOptions : RunSettings {
  FinetuneOptions() { lr = 1e-4f; }

  std::string model;      // pretrained run folder, checkpoint folder or .safetensors; empty: from scratch
  std::string config;     // model config (JSON) for a model from scratch; must be empty with `model`
  std::string task;       // task folder (docs/tasks.md)
  std::string tokenizer;  // SentencePiece model for sentencepiece tasks (default: the pretrained run
                          // folder's tokenizer.model, else the task folder's tok.model)
  std::string pooling;    // "first" | "mean"; empty: the config's (from scratch) or "first"
  bool truncate = false;  // cut sequences longer than max_len instead of refusing them
  // "none" | "balanced": weight each training example's loss by N / (classes * examples of its
  // class), so every class weighs the same in the loss however rare it is in train.tsv.
  std::string class_weights = "none";
  // Batches of examples of similar length (see group_by_length): less padding, so much faster
  // steps when lengths vary (ListOps: 500-2000 tokens), at the cost of less random batches.
  bool group_by_length = false;
  int batch_size = 16;    // examples per update (the last batch of an epoch may be shorter)
  int eval_batch_size = 32;  // examples per evaluation batch

  nlohmann::json to_json() const;
  static FinetuneOptions from_json(const nlohmann::json& j);  // unknown keys: ConfigError
  void validate() const;                                      // ConfigError naming the option
};

struct FinetuneSummary {
  int64_t steps_done = 0;
  double initial_valid_accuracy = 0, final_valid_accuracy = 0, final_valid_loss = 0;  // NaN: not evaluated
  double seconds = 0, tokens_per_second = 0;
  std::string checkpoint;
  bool interrupted = false;  // stopped by SIGINT/SIGTERM after saving a checkpoint
};

// Starts a fine-tuning run in out_dir (must not hold a run yet). Everything is checked before the
// folder is written: the options, the model or config, the task files (errors name file:line),
// the tokenizer, and the sequence lengths (a sequence longer than the model's max_len is an
// InputError naming file:line unless `truncate`). SIGINT/SIGTERM, NaN: as pretrain().
// `hooks`: optional (optimizer.hpp, RunHooks).
FinetuneSummary finetune(const FinetuneOptions& opt, const std::string& out_dir, const RunHooks& hooks = {});
// Continues the run in out_dir from its latest checkpoint (the task folder named in finetune.json
// must still hold the same classes); steps > 0 sets a new total. Same losses as an uninterrupted
// run with the same seed and thread count.
FinetuneSummary resume_finetuning(const std::string& out_dir, int64_t steps = 0, const RunHooks& hooks = {});

// balanced_class_weights, group_by_length and kLengthGroupBatches, the classification batches
// (ClsBatcher), are in cls_batcher.hpp (the data floor).

// Classification metrics. Precision, recall and F1 of a class with no prediction (or no example)
// are 0.
struct ClassMetrics {
  double precision = 0, recall = 0, f1 = 0;
  int64_t support = 0;    // examples of the class
  int64_t predicted = 0;  // examples predicted as the class
};
struct ClassifierEval {
  int64_t examples = 0;
  double accuracy = 0;  // NaN when there is no example
  double loss = 0;      // mean cross-entropy; NaN when there is no example
  double macro_f1 = 0;  // mean F1 over the classes
  std::vector<ClassMetrics> per_class;
  std::vector<std::vector<int64_t>> confusion;  // [true class][predicted class]
};
// Runs the model (eval mode, no dropout; its mode is restored) over the sequences in order, in
// batches of batch_size, and compares the argmax (ties: the lowest class) with the labels.
ClassifierEval evaluate_classifier(Model& model, const std::vector<std::vector<int32_t>>& seqs,
                                   const std::vector<int32_t>& labels, int batch_size = 32);
// Class probabilities (softmax of the logits) of every sequence, [seqs.size()][num_labels].
std::vector<std::vector<double>> classify(Model& model, const std::vector<std::vector<int32_t>>& seqs,
                                         int batch_size = 32);
// The JSON form of an evaluation: {"examples", "accuracy", "loss", "macro_f1",
// "per_class": [{"label", "precision", "recall", "f1", "support", "predicted"}], "labels",
// "confusion": [[...]] (rows: true class, columns: predicted)}.
nlohmann::json to_json(const ClassifierEval& e, const std::vector<std::string>& labels);

// A fine-tuned model with what it needs to read texts: the run folder's latest checkpoint (or a
// checkpoint folder inside a run folder), its task.json and tokenizer.model.
class Classifier {
 public:
  explicit Classifier(const std::string& run_dir);  // IoError naming what is missing
  ~Classifier();
  Model& model() { return *model_; }
  const TaskInfo& task() const { return info_; }
  // Whether the run was fine-tuned with truncation (finetune.json "truncate"); the default of
  // `linformer eval` and `predict`.
  bool truncates() const { return truncates_; }
  // The task folder the run was fine-tuned on (finetune.json "task"; empty if unknown).
  const std::string& trained_task() const { return task_dir_; }
  // <s> ids </s> of a text; InputError if longer than max_len unless `truncate` (then cut).
  std::vector<int32_t> tokenize(const std::string& text, bool truncate) const;
  // Loads the task folder's split and evaluates it (errors name file:line).
  ClassifierEval evaluate(const std::string& task_dir, const std::string& split, bool truncate, int batch_size = 32);

 private:
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tok_;
  TaskInfo info_;
  bool truncates_ = false;
  std::string task_dir_;
};

}  // namespace linformer
