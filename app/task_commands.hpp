// Options of `linformer task ...` (cmd_task.cpp): prepare classification tasks (docs/tasks.md).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "linformer/datasets.hpp"

namespace CLI {
class App;
}

namespace linformer::app {

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
CLI::App* add_task_command(CLI::App& app, TaskOptions& o);
void run_task(TaskOptions& o);

}  // namespace linformer::app
