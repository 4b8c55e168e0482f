// linformer finetune / eval / predict: sequence-classification fine-tuning and using the result
// (docs/finetune.md).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "linformer/error.hpp"
#include "linformer/files.hpp"
#include "linformer/finetune.hpp"
#include "linformer/inference.hpp"
#include "linformer/model.hpp"
#include "linformer/parallel.hpp"
#include "registry.hpp"

namespace fs = std::filesystem;

namespace linformer::app {

namespace {

// linformer finetune --model PRETRAINED|none [--config C] --task DIR --out DIR [...]  |  --resume DIR [--steps N]
struct FinetuneCmdOptions {
  std::string model, out, resume;
  FinetuneOptions ft;
  bool steps_given = false;
  ComputeOptions compute;   // --threads and --bf16 after the subcommand
  CLI::App* cmd = nullptr;  // set by add_finetune_command: which options were given
};

// linformer eval --model RUN [--task DIR] [--split test] [--json FILE]
struct EvalOptions {
  std::string model, task, split = "test", json;
  bool truncate = false;
  int batch_size = 32;
  ComputeOptions compute;
};

// linformer predict --model RUN --input FILE [--format auto|text|jsonl] [--output FILE]
struct PredictOptions {
  std::string model, input, output, format = "auto", field = "text";
  bool truncate = false;
  int batch_size = 32;
  ComputeOptions compute;
};

CLI::App* add_finetune_command(CLI::App& app, FinetuneCmdOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "finetune", "Fine-tune a sequence classifier on a task folder, from a pretrained model or from scratch (resumable)");
  FinetuneOptions& f = o.ft;
  cmd->add_option("--model", o.model,
                  "Pretrained model: run folder (its latest checkpoint), checkpoint folder or .safetensors; "
                  "'none' for a model from scratch (needs --config)")
      ->type_name("PATH|none");
  cmd->add_option("--config", f.config, "Model config (JSON) for a model from scratch (--model none)")->type_name("FILE");
  cmd->add_option("--task", f.task, "Task folder (task.json, train.tsv, valid.tsv, test.tsv; docs/tasks.md)")
      ->type_name("DIR");
  cmd->add_option("--out", o.out, "Output run folder (checkpoints, metrics.jsonl, task.json)")->type_name("DIR");
  cmd->add_option("--resume", o.resume, "Continue the run in this folder from its latest checkpoint")->type_name("DIR");
  cmd->add_option("--tokenizer", f.tokenizer,
                  "SentencePiece model for sentencepiece tasks (default: tokenizer.model of the pretrained run "
                  "folder, or the task folder's tok.model)")
      ->type_name("FILE");
  cmd->add_option("--pooling", f.pooling, "Sequence representation for the head: first (<s>) or mean")
      ->check(CLI::IsMember({"first", "mean"}));
  cmd->add_flag("--truncate", f.truncate,
                "Cut sequences longer than the model's max_len (<s>, the first max_len-2 tokens, </s>) instead of "
                "stopping with an error");
  cmd->add_option("--class-weights", f.class_weights,
                  "none, or balanced: weight each example's loss by N / (classes x examples of its class in "
                  "train.tsv), for classes of very different sizes")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "balanced"}));
  cmd->add_flag("--group-by-length", f.group_by_length,
                "Batches of examples of similar length (sorted within pools of 50 batches): less padding, faster "
                "steps when lengths vary");
  cmd->add_option("--steps", f.steps, "Optimizer updates in total (with --resume: the new total)")
      ->capture_default_str()
      ->check(integer_at_least(1))
      ->each([&o](const std::string&) { o.steps_given = true; });
  cmd->add_option("--batch-size", f.batch_size, "Examples per update")->capture_default_str()->check(integer_at_least(1));
  cmd->add_option("--eval-every", f.eval_every, "Evaluate on valid.tsv every N steps")
      ->capture_default_str()
      ->check(integer_at_least(1));
  cmd->add_option("--eval-batch-size", f.eval_batch_size, "Examples per evaluation batch")
      ->capture_default_str()
      ->check(integer_at_least(1));
  add_run_settings_options(*cmd, f);
  cmd->add_option("--seed", f.seed, "Seed (head or model initialisation, example order, dropout)")->capture_default_str();
  o.compute.declare(*cmd);
  o.cmd = cmd;
  return cmd;
}

void run_finetune(FinetuneCmdOptions& o, const ComputeOptions& global) {
  const int nthreads = o.compute.over(global).apply();
  // Under mpirun only rank 0 prints (docs/distributed.md); "N threads" becomes "N threads x R ranks".
  const std::string ranks = parallel::size() > 1 ? fmt::format(" x {} ranks", parallel::size()) : "";
  FinetuneSummary s;
  if (!o.resume.empty()) {
    // A resumed run keeps its options (DIR/finetune.json): refuse options that would be ignored.
    refuse_options_with_resume(o.cmd, "finetune", o.resume + "/finetune.json");
    if (parallel::is_root()) fmt::print("finetune: resuming {} ({} threads{})\n", o.resume, nthreads, ranks);
    s = resume_finetuning(o.resume, o.steps_given ? o.ft.steps : 0);
    o.out = o.resume;
  } else {
    if (o.model.empty() || o.ft.task.empty() || o.out.empty())
      throw ConfigError("finetune: --model (a pretrained model, or 'none' with --config), --task and --out are "
                        "required (or --resume DIR)");
    if (o.model == "none") {
      if (o.ft.config.empty()) throw ConfigError("finetune: --model none (a model from scratch) needs --config FILE");
      o.ft.model.clear();
    } else {
      if (!o.ft.config.empty())
        throw ConfigError(fmt::format("finetune: --config is for a model from scratch (--model none); the pretrained "
                                      "model {} keeps its own config",
                                      o.model));
      o.ft.model = o.model;
    }
    o.ft.validate();
    if (parallel::is_root())
      fmt::print("finetune: {} on task {}, {} steps of {}{} examples, {} threads{} -> {}\n",
                 o.ft.model.empty() ? fmt::format("a new model ({})", o.ft.config) : o.ft.model, o.ft.task,
                 o.ft.steps, o.ft.batch_size, parallel::size() > 1 ? fmt::format("x{}", parallel::size()) : "", nthreads,
                 ranks, o.out);
    s = finetune(o.ft, o.out);
  }
  if (!parallel::is_root()) return;
  fmt::print("finetune: {} steps in {:.1f} s, {:.0f} tokens/s\n", s.steps_done, s.seconds, s.tokens_per_second);
  if (s.interrupted)
    fmt::print("finetune: interrupted at step {}; continue with: linformer finetune --resume {}\n", s.steps_done,
               o.out);
  if (!std::isnan(s.final_valid_accuracy)) {
    if (!std::isnan(s.initial_valid_accuracy))
      fmt::print("finetune: validation accuracy {:.2f}% before, {:.2f}% after (loss {:.4f})\n",
                 100 * s.initial_valid_accuracy, 100 * s.final_valid_accuracy, s.final_valid_loss);
    else
      fmt::print("finetune: validation accuracy {:.2f}% (loss {:.4f})\n", 100 * s.final_valid_accuracy,
                 s.final_valid_loss);
  }
  fmt::print("finetune: model in {}\n", s.checkpoint);
}

// ---------------------------------------------------------------- eval

CLI::App* add_eval_command(CLI::App& app, EvalOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "eval", "Accuracy, per-class precision/recall/F1 and the confusion matrix of a fine-tuned model on a task split");
  cmd->add_option("--model", o.model, "Fine-tuning run folder (its latest checkpoint) or one of its checkpoint folders")
      ->required()
      ->type_name("DIR");
  cmd->add_option("--task", o.task, "Task folder (default: the one the run was fine-tuned on)")->type_name("DIR");
  cmd->add_option("--split", o.split, "Split to evaluate")->capture_default_str()->check(
      CLI::IsMember({"train", "valid", "test"}));
  cmd->add_option("--json", o.json, "Also write the results as JSON to this file")->type_name("FILE");
  cmd->add_flag("--truncate", o.truncate, "Cut sequences longer than max_len (default: as the run was fine-tuned)");
  cmd->add_option("--batch-size", o.batch_size, "Examples per batch")->capture_default_str()->check(integer_at_least(1));
  o.compute.declare(*cmd);
  return cmd;
}

void run_eval(const EvalOptions& o, const ComputeOptions& global) {
  o.compute.over(global).apply();
  const InferenceModel c = InferenceModel::load_classifier(o.model);
  const std::string task = o.task.empty() ? c.info().trained_task : o.task;
  if (task.empty()) throw ConfigError(fmt::format("eval: {} does not name its task folder; pass --task DIR", o.model));
  ClassifyOptions co;
  co.truncate = o.truncate || c.info().trained_with_truncation;
  co.batch_size = o.batch_size;
  const ClassifierEval e = c.evaluate(task, o.split, co);
  const auto& labels = c.labels();
  if (e.examples == 0) throw InputError(fmt::format("eval: {}/{}.tsv holds no examples", task, o.split));
  fmt::print("eval: {} on {} ({}): {} examples, accuracy {:.2f}%, loss {:.4f}, macro-F1 {:.4f}\n", o.model, task,
             o.split, e.examples, 100 * e.accuracy, e.loss, e.macro_f1);
  size_t w = 5;
  for (const auto& l : labels) w = std::max(w, l.size());
  fmt::print("{:<{}}  {:>9}  {:>9}  {:>9}  {:>7}\n", "class", w, "precision", "recall", "f1", "support");
  for (size_t c2 = 0; c2 < labels.size(); ++c2)
    fmt::print("{:<{}}  {:>9.4f}  {:>9.4f}  {:>9.4f}  {:>7}\n", labels[c2], w, e.per_class[c2].precision,
               e.per_class[c2].recall, e.per_class[c2].f1, e.per_class[c2].support);
  fmt::print("confusion matrix (rows: true class, columns: predicted class):\n");
  size_t cw = 1;
  for (const auto& row : e.confusion)
    for (int64_t v : row) cw = std::max(cw, std::to_string(v).size());
  for (const auto& l : labels) cw = std::max(cw, l.size());
  fmt::print("{:<{}}", "", w);
  for (const auto& l : labels) fmt::print("  {:>{}}", l, cw);
  fmt::print("\n");
  for (size_t r = 0; r < labels.size(); ++r) {
    fmt::print("{:<{}}", labels[r], w);
    for (int64_t v : e.confusion[r]) fmt::print("  {:>{}}", v, cw);
    fmt::print("\n");
  }
  if (!o.json.empty()) {
    nlohmann::json j = to_json(e, labels);
    j["model"] = o.model;
    j["task"] = task;
    j["split"] = o.split;
    write_file_atomic(o.json, j.dump(2) + "\n");
    fmt::print("eval: results in {}\n", o.json);
  }
}

// ---------------------------------------------------------------- predict

CLI::App* add_predict_command(CLI::App& app, PredictOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "predict", "Classify texts with a fine-tuned model: one JSON line {\"label\", \"probs\"} per input line");
  cmd->add_option("--model", o.model, "Fine-tuning run folder (its latest checkpoint) or one of its checkpoint folders")
      ->required()
      ->type_name("DIR");
  cmd->add_option("--input", o.input,
                  "Input: one text per line, or JSON lines with a text field (.jsonl / --format jsonl)")
      ->required()
      ->type_name("FILE");
  cmd->add_option("--format", o.format, "Input format; auto: jsonl for a .jsonl file, else text")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "text", "jsonl"}));
  cmd->add_option("--field", o.field, "The text field of JSON lines")->capture_default_str();
  cmd->add_option("--output", o.output, "Write the predictions to this file (default: standard output)")
      ->type_name("FILE");
  cmd->add_flag("--truncate", o.truncate, "Cut texts longer than max_len (default: as the run was fine-tuned)");
  cmd->add_option("--batch-size", o.batch_size, "Texts per batch")->capture_default_str()->check(integer_at_least(1));
  o.compute.declare(*cmd);
  return cmd;
}

void run_predict(const PredictOptions& o, const ComputeOptions& global) {
  o.compute.over(global).apply();
  const InferenceModel c = InferenceModel::load_classifier(o.model);
  const bool jsonl = o.format == "jsonl" || (o.format == "auto" && fs::path(o.input).extension() == ".jsonl");
  const bool truncate = o.truncate || c.info().trained_with_truncation;
  const std::string data = read_file(o.input);
  // Every line is read and tokenized before anything is classified or written.
  std::vector<std::vector<int32_t>> seqs;
  size_t line_no = 0, pos = 0;
  while (pos < data.size()) {
    size_t end = data.find('\n', pos);
    if (end == std::string::npos) end = data.size();
    std::string line = data.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto where = [&] { return fmt::format("{}:{}", o.input, line_no); };
    std::string text = line;
    if (jsonl) {
      if (line.find_first_not_of(" \t") == std::string::npos)
        throw InputError(fmt::format("{}: empty line (every line is a JSON object with a \"{}\" field)", where(),
                                     o.field));
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {
        throw InputError(fmt::format("{}: invalid JSON: {}", where(), e.what()));
      }
      if (!j.is_object() || !j.contains(o.field) || !j[o.field].is_string())
        throw InputError(fmt::format("{}: no string field \"{}\"", where(), o.field));
      text = j[o.field].get<std::string>();
    }
    if (text.find_first_not_of(" \t\r\n") == std::string::npos)
      throw InputError(fmt::format("{}: empty {} (one text per line)", where(), jsonl ? "text" : "line"));
    try {
      seqs.push_back(c.encode(text, truncate));
    } catch (const InputError& e) {
      throw InputError(fmt::format("{}: {}", where(), e.what()));
    }
  }
  if (seqs.empty()) throw InputError(fmt::format("{}: no input lines", o.input));
  ClassifyOptions co;
  co.batch_size = o.batch_size;
  const std::vector<Classification> results = c.classify_ids(seqs, co);
  const auto& labels = c.labels();
  std::string out;
  for (const Classification& r : results) {
    nlohmann::ordered_json j;
    j["label"] = r.label;
    nlohmann::ordered_json pj;
    for (size_t k = 0; k < labels.size(); ++k) pj[labels[k]] = r.probs[k];
    j["probs"] = pj;
    out += j.dump() + "\n";
  }
  if (o.output.empty())
    fmt::print("{}", out);
  else
    write_file_atomic(o.output, out);
}

}  // namespace

void register_finetuning(CLI::App& app, Context& ctx) {
  auto finetune = std::make_shared<FinetuneCmdOptions>();
  ctx.on_run(add_finetune_command(app, *finetune), [finetune, &ctx] { run_finetune(*finetune, ctx.compute); },
             Context::Ranks::many);
  auto eval = std::make_shared<EvalOptions>();
  ctx.on_run(add_eval_command(app, *eval), [eval, &ctx] { run_eval(*eval, ctx.compute); });
  auto predict = std::make_shared<PredictOptions>();
  ctx.on_run(add_predict_command(app, *predict), [predict, &ctx] { run_predict(*predict, ctx.compute); });
}

}  // namespace linformer::app
