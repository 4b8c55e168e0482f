// Options of the fine-tuning subcommands (cmd_finetune.cpp): finetune, eval, predict
// (docs/finetune.md).
#pragma once
#include <string>

#include "linformer/finetune.hpp"

namespace CLI {
class App;
}

namespace linformer::app {

// linformer finetune --model PRETRAINED|none [--config C] --task DIR --out DIR [...]  |  --resume DIR [--steps N]
struct FinetuneCmdOptions {
  std::string model, out, resume;
  FinetuneOptions ft;
  bool steps_given = false;
  int threads = 0;          // --threads after the subcommand (0: the one before it, if any)
  CLI::App* cmd = nullptr;  // set by add_finetune_command: which options were given
};
CLI::App* add_finetune_command(CLI::App& app, FinetuneCmdOptions& o);
void run_finetune(FinetuneCmdOptions& o, int threads);

// linformer eval --model RUN [--task DIR] [--split test] [--json FILE]
struct EvalOptions {
  std::string model, task, split = "test", json;
  bool truncate = false;
  int batch_size = 32;
  int threads = 0;
};
CLI::App* add_eval_command(CLI::App& app, EvalOptions& o);
void run_eval(const EvalOptions& o, int threads);

// linformer predict --model RUN --input FILE [--format auto|text|jsonl] [--output FILE]
struct PredictOptions {
  std::string model, input, output, format = "auto", field = "text";
  bool truncate = false;
  int batch_size = 32;
  int threads = 0;
};
CLI::App* add_predict_command(CLI::App& app, PredictOptions& o);
void run_predict(const PredictOptions& o, int threads);

}  // namespace linformer::app
