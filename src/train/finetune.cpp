// Sequence-classification fine-tuning: its options, the run's setup (model, task, tokenizer) and
// resume, and the classification task it plugs into the training loop (loop.hpp). See
// finetune.hpp and docs/finetune.md; evaluation and the Classifier are in classifier.cpp, the
// batches in src/data/cls_batcher.cpp.
#include "linformer/finetune.hpp"

#include <cmath>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "linformer/checkpoint.hpp"
#include "linformer/cls_batcher.hpp"
#include "linformer/error.hpp"
#include "linformer/model.hpp"
#include "linformer/optimizer.hpp"
#include "linformer/tokenizer.hpp"
#include "linformer/trainer.hpp"
#include "dist/communicator.hpp"
#include "train/classifier.hpp"
#include "train/loop.hpp"
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

namespace {

// The task, tokenized for the model.
struct TaskInputs {
  TaskData task;
  std::vector<std::vector<int32_t>> train, valid;
  std::vector<int32_t> train_labels, valid_labels;
};

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

// Fine-tuning as a task of the training loop (loop.hpp): the training examples in batches of
// batch_size x ranks (ClsBatcher; this rank's slice), the classification loss (class weights
// optional), accuracy, loss and macro-F1 on the valid split.
class ClsTask final : public TrainTask {
 public:
  ClsTask(const ModelConfig& cfg, const FinetuneOptions& o, const fs::path& dir, const TaskInputs& in)
      : o_(o), dir_(dir), in_(in), batcher_(in.train, in.train_labels, [&] {
          ClsOptions co;
          co.batch_size = o.batch_size;
          co.seed = o.seed;
          co.group_by_length = o.group_by_length;
          if (o.class_weights == "balanced") co.class_weights = balanced_class_weights(in.train_labels, cfg.num_labels);
          co.shards = dist::world().size();
          co.shard = dist::world().rank();
          return co;
        }()) {}

  uint64_t dropout_salt() const override { return 0xf17ef17eULL; }
  StateKeys state_keys() const override { return kFinetuneStateKeys; }
  void seek(DataPosition p) override {
    if (p.cursor >= in_.train.size())
      throw IoError(fmt::format("{}: the checkpoint's data position {} is past the {} training examples of {} (did "
                                "train.tsv change?)",
                                dir_.string(), p.cursor, in_.train.size(), o_.task));
    batcher_.set_state(p);
  }
  DataPosition position() const override { return batcher_.state(); }
  std::vector<uint64_t> data_sizes() const override { return {in_.train.size(), in_.valid.size()}; }
  const char* data_sizes_name() const override { return "examples"; }
  void next(MicroBatch& mb) override { batcher_.next(mb.batch, mb.labels, mb.weights); }
  float loss(Model& model, const MicroBatch& mb, int normaliser) override {
    return model.forward_cls(mb.batch, mb.labels, normaliser, mb.weights);
  }
  // Fine-tuning has always reported the step's loss rounded to float (metrics.jsonl keeps it so).
  double reported_loss(double mean) const override { return (float)mean; }
  void describe_position(json& line) const override {
    const DataPosition s = batcher_.state();
    line["epoch"] = (double)s.epoch + (double)s.cursor / (double)in_.train.size();
  }
  bool has_validation() const override { return !in_.valid.empty(); }
  Evaluation evaluate(Model& model) override {
    const ClassifierEval e =
        evaluate_classifier_on(dist::world(), model, in_.valid, in_.valid_labels, o_.eval_batch_size);
    return {json{{"valid_loss", e.loss}, {"valid_accuracy", e.accuracy}, {"valid_macro_f1", e.macro_f1}},
            fmt::format("validation accuracy {:.2f}%, loss {:.4f}, macro-F1 {:.4f}", 100 * e.accuracy, e.loss,
                        e.macro_f1),
            e.loss, e.accuracy};
  }

 private:
  const FinetuneOptions& o_;
  const fs::path dir_;
  const TaskInputs& in_;
  ClsBatcher batcher_;
};

FinetuneSummary run_finetuning(Model& model, AdamW& opt, const FinetuneOptions& o, const fs::path& dir,
                               const TaskInputs& in, LoopState st, const RunHooks& hooks) {
  ClsTask task(model.config(), o, dir, in);
  const LoopResult r = run_training(model, opt, o, task, dir, st, hooks);
  FinetuneSummary sum;
  const double nan = std::nan("");
  sum.steps_done = r.steps_done;
  sum.initial_valid_accuracy = r.initial ? r.initial->accuracy : nan;
  // NaN when an interrupted run stopped between evaluations.
  const bool final_eval = r.last && r.evaluated_last_step;
  sum.final_valid_accuracy = final_eval ? r.last->accuracy : nan;
  sum.final_valid_loss = final_eval ? r.last->loss : nan;
  sum.seconds = r.seconds;
  sum.tokens_per_second = r.tokens_per_second;
  sum.checkpoint = r.checkpoint;
  sum.interrupted = r.interrupted;
  return sum;
}

// The model file of a pretrained run folder, checkpoint folder or model file.
std::string pretrained_file(const std::string& path) {
  if (!fs::exists(path)) throw IoError(fmt::format("{}: no such file or folder (the pretrained model)", path));
  if (!fs::is_directory(path)) return path;
  if (fs::exists(fs::path(path) / "model.safetensors")) return (fs::path(path) / "model.safetensors").string();
  return (fs::path(latest_checkpoint(path)) / "model.safetensors").string();
}

}  // namespace

FinetuneSummary finetune(const FinetuneOptions& opt, const std::string& out_dir, const RunHooks& hooks) {
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
  return run_finetuning(model, adam, o, dir, in, LoopState{}, hooks);
}

FinetuneSummary resume_finetuning(const std::string& out_dir, int64_t steps, const RunHooks& hooks) {
  const fs::path dir(out_dir);
  const std::string ckpt = latest_checkpoint(out_dir);
  const auto cfg = read_run_json<ModelConfig>(dir / "config.json");
  auto o = read_run_json<FinetuneOptions>(dir / "finetune.json");
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
  const LoopState st = load_loop_state(ckpt, model, adam, kFinetuneStateKeys);
  if (set_resumed_total(out_dir, st.step, steps, o.steps) && dist::world().is_root())
    core::write_file_atomic(dir / "finetune.json", o.to_json().dump(2) + "\n");
  return run_finetuning(model, adam, o, dir, in, st, hooks);
}

}  // namespace linformer
