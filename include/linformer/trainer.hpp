// Masked-language-model pretraining: the loop, evaluation, metrics, checkpoints and resume.
//
// An output folder holds (docs/training.md):
//   config.json        the model config          train.json   these options
//   tokenizer.model    copy of the tokenizer (when given)
//   metrics.jsonl      one JSON object per logged step and per evaluation
//   ckpt-SSSSSSSS/     model.safetensors, optimizer.safetensors, state.json (step, data position, RNG)
//   latest             name of the newest complete checkpoint folder (replaced atomically)
// A checkpoint folder is written under a temporary name and renamed when complete, and `latest`
// only then points to it, so a crash never leaves `latest` naming a broken checkpoint.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "linformer/config.hpp"
#include "linformer/optimizer.hpp"

namespace linformer {

class Model;
class UnigramBaseline;

// The pretraining options: RunSettings (steps, optimizer, schedule, cadence, seed) and these.
struct TrainOptions : RunSettings {
  std::string train_tokens, valid_tokens;  // token files (linformer tokenizer encode)
  std::string tokenizer;                   // optional: copied into the output folder
  int batch_size = 16;                     // sequences per micro-batch
  int accum = 1;                           // micro-batches per update
  int seq_len = 0;                         // 0: the model's max_len
  int eval_batches = 50;  // validation batches per evaluation (0: the whole validation set)
  // Share of the training tokens selected for prediction (of those 80% <mask>, 10% random, 10%
  // kept). More than BERT's 0.15 gives more signal per step, which short runs need; validation
  // always masks 0.15, so evaluations stay comparable between runs.
  float mask_prob = 0.15f;

  nlohmann::json to_json() const;
  static TrainOptions from_json(const nlohmann::json& j);
  void validate() const;  // throws ConfigError naming the option
};

struct TrainSummary {
  int64_t steps_done = 0;
  double initial_valid_loss = 0, final_valid_loss = 0;
  // The last evaluation's masked-token accuracies and the unigram baseline's on the same tokens
  // (MlmEvaluation; NaN when final_valid_loss is).
  double final_valid_top1 = NAN, final_valid_top5 = NAN;
  double unigram_loss = NAN, unigram_top1 = NAN, unigram_top5 = NAN;
  double tokens_per_second = 0;
  double seconds = 0;
  std::string checkpoint;  // path of the final checkpoint folder
  bool interrupted = false;  // stopped early by SIGINT/SIGTERM (final_valid_loss is then NaN
                             // unless the last step was an evaluation step)
};

// Starts a run in out_dir (created; must not already hold a run: use resume_pretraining).
// The model config, options, token files and tokenizer are checked before anything is written.
// SIGINT/SIGTERM during the run: the current step ends, a checkpoint is saved and the function
// returns (TrainSummary::interrupted); a second signal ends the process at once.
// A non-finite loss or gradient norm (or weights, at a save) throws Error ("training stopped:
// loss is nan at step N; ...") before the update is applied and before any checkpoint of it is
// written: `latest` keeps naming the last checkpoint with finite weights.
// `hooks`: optional (optimizer.hpp, RunHooks).
TrainSummary pretrain(const ModelConfig& cfg, const TrainOptions& opt, const std::string& out_dir,
                      const RunHooks& hooks = {});
// Continues the run in out_dir from its latest checkpoint; steps > 0 overrides the total.
// Produces the same losses as an uninterrupted run with the same seed and thread count.
TrainSummary resume_pretraining(const std::string& out_dir, int64_t steps = 0, const RunHooks& hooks = {});

// The model of a run folder's latest checkpoint (or a .safetensors file).
std::unique_ptr<Model> load_trained_model(const std::string& path);
// Path of the newest complete checkpoint folder in out_dir; throws IoError if none.
std::string latest_checkpoint(const std::string& out_dir);

// Mean MLM loss over a token file with fixed masks (seed), eval mode. max_batches 0 = all.
double evaluate_mlm(Model& model, const std::string& tokens, int seq_len, int batch_size, int max_batches,
                    uint64_t seed);

// What a masked language model gets right on the labelled (masked) tokens of a token file, and
// what the unigram baseline (data.hpp) gets on the very same positions.
struct MlmEvaluation {
  double loss = 0;            // mean cross-entropy (perplexity = exp(loss))
  double top1 = 0, top5 = 0;  // share of labels that are the most probable token / among the 5 most probable (ties: lower id first)
  int64_t tokens = 0;         // labelled tokens evaluated
  // The unigram baseline on the same tokens; NaN without one.
  double unigram_loss = NAN, unigram_top1 = NAN, unigram_top5 = NAN;
};
// evaluate_mlm with the accuracies; `baseline` (may be null) is scored on the same positions.
MlmEvaluation evaluate_mlm_scores(Model& model, const std::string& tokens, int seq_len, int batch_size,
                                  int max_batches, uint64_t seed, const UnigramBaseline* baseline = nullptr);

}  // namespace linformer
