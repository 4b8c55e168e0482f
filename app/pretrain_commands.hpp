// Options of the pretraining subcommands (cmd_pretrain.cpp).
#pragma once
#include <string>

#include "linformer/trainer.hpp"

namespace CLI {
class App;
}

namespace linformer::app {

// linformer pretrain --config C --train T --valid V --out DIR [...]  |  --resume DIR [--steps N]
struct PretrainOptions {
  std::string config, out, resume;
  TrainOptions train;
  bool steps_given = false;
  int threads = 0;             // --threads after the subcommand (0: the one before it, if any)
  CLI::App* cmd = nullptr;     // set by add_pretrain_command: which options were given
};
CLI::App* add_pretrain_command(CLI::App& app, PretrainOptions& o);
void run_pretrain(PretrainOptions& o, int threads);

// linformer fill-mask --model DIR --text "... <mask> ..."
struct FillMaskOptions {
  std::string model, tokenizer, text;
  int top_k = 5;
  int threads = 0;
};
CLI::App* add_fill_mask_command(CLI::App& app, FillMaskOptions& o);
void run_fill_mask(const FillMaskOptions& o, int threads);

// linformer eval-mlm --model DIR --data V
struct EvalMlmOptions {
  std::string model, data;
  int seq_len = 0, batch_size = 16, max_batches = 0;
  uint64_t seed = 1;
  int threads = 0;
};
CLI::App* add_eval_mlm_command(CLI::App& app, EvalMlmOptions& o);
void run_eval_mlm(const EvalMlmOptions& o, int threads);

}  // namespace linformer::app
