// The one training loop that pretraining (trainer.cpp) and fine-tuning (finetune.cpp) plug into.
// The loop owns everything a run does around its data and its loss: the replica checks of a
// data-parallel job, metrics.jsonl (truncated on resume), the SIGINT/SIGTERM guard, the progress
// bar, the step (zero_grad -> micro-batches -> all-reduce -> NaN stop -> gradient averaging ->
// clipping -> schedule -> AdamW::step), log lines, the evaluation and checkpoint cadence,
// interruption and the summary. A kind of run supplies a TrainTask: where its micro-batches come
// from, its loss, its evaluation, and how its data position is spelt in state.json.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "linformer/batch.hpp"
#include "linformer/data.hpp"  // DataPosition

namespace linformer {

class AdamW;
class Model;
struct RunHooks;
struct RunSettings;

// What the loop carries between steps; a checkpoint's state.json holds it.
struct LoopState {
  int64_t step = 0;
  DataPosition data;
  uint64_t dropout_counter = 0;
};

// How state.json spells the data position. Both kinds keep the keys they have always written, so
// that every run folder written before still resumes: {step, data_epoch, data_cursor,
// dropout_counter} for pretraining, {step, epoch, cursor, dropout_counter} for fine-tuning.
struct StateKeys {
  const char* epoch;
  const char* cursor;
};
inline constexpr StateKeys kPretrainStateKeys{"data_epoch", "data_cursor"};
inline constexpr StateKeys kFinetuneStateKeys{"epoch", "cursor"};

nlohmann::json state_json(const LoopState& st, StateKeys keys);
// Loads a checkpoint folder's weights and AdamW state (load_checkpoint) and returns its loop
// state; IoError naming state.json and the field when one is missing.
LoopState load_loop_state(const std::filesystem::path& ckpt, Model& model, AdamW& opt, StateKeys keys);

// One micro-batch: this rank's part of it (batch.B == 0 when the end of an epoch left this rank
// nothing), its labels (kIgnoreIndex: not predicted; MLM: one per token, classification: one per
// sequence) and optional per-item loss weights.
struct MicroBatch {
  Batch batch;
  std::vector<int32_t> labels;
  std::vector<float> weights;
};

// One evaluation on the validation data.
struct Evaluation {
  nlohmann::json metrics;  // the fields of its metrics.jsonl line, without "step"
  std::string message;     // printed as "step N: MESSAGE"
  double loss = 0;
  double accuracy = 0;  // NaN for a task without one
};

// A kind of run as the loop sees it.
class TrainTask {
 public:
  virtual ~TrainTask() = default;

  // Micro-batches per optimizer step (gradient accumulation); their gradients are averaged.
  virtual int micro_batches() const { return 1; }
  // The dropout seed of rank r is dist::rank_seed(seed ^ dropout_salt(), r).
  virtual uint64_t dropout_salt() const = 0;
  virtual StateKeys state_keys() const = 0;

  // The data position: set once before the first step (an Error naming the run when it does not
  // fit the data), read after every step.
  virtual void seek(DataPosition p) = 0;
  virtual DataPosition position() const = 0;
  // The sizes of the data, compared across the ranks with the step and position before the first
  // step, and their name in that check's message ("training sequences").
  virtual std::vector<uint64_t> data_sizes() const = 0;
  virtual const char* data_sizes_name() const = 0;

  // Fills `mb` with this rank's part of the next micro-batch.
  virtual void next(MicroBatch& mb) = 0;
  // Forward pass and loss of a non-empty micro-batch in training mode: the sum over its labelled
  // items divided by `normaliser`, the labelled items of the micro-batch over all ranks.
  virtual float loss(Model& model, const MicroBatch& mb, int normaliser) = 0;
  // The step's loss as the run reports it (log lines, progress, NaN message), from the mean of
  // the micro-batches' losses summed over the ranks.
  virtual double reported_loss(double mean) const { return mean; }
  // Adds fields describing the data position to a training log line.
  virtual void describe_position(nlohmann::json& /*line*/) const {}

  // Whether there is validation data; without it the run never evaluates.
  virtual bool has_validation() const { return true; }
  // Evaluates the model on the validation data (every rank takes part; eval mode).
  virtual Evaluation evaluate(Model& model) = 0;
};

struct LoopResult {
  int64_t steps_done = 0;
  double seconds = 0, tokens_per_second = 0;
  std::string checkpoint;    // the final checkpoint folder
  bool interrupted = false;  // stopped by SIGINT/SIGTERM after saving a checkpoint
  std::optional<Evaluation> initial;  // at step 0 (a new run with validation data)
  std::optional<Evaluation> last;     // the last evaluation of the loop's cadence in this call
  bool evaluated_last_step = false;   // whether `last` is of the last step done
};

// Runs the steps st.step + 1 .. o.steps of a run in `dir` (docs/training.md, docs/distributed.md).
// Data parallelism: every rank runs this loop on its slice of each batch; gradients and the step's
// scalars are summed over the ranks, so every rank takes the same decisions (NaN stop, clipping,
// signals) and applies the same update. Only rank 0 writes. `hooks` (optimizer.hpp): the caller's
// progress callback, called at each log step; false from it stops the run as a signal does.
LoopResult run_training(Model& model, AdamW& opt, const RunSettings& o, TrainTask& task,
                        const std::filesystem::path& dir, LoopState st, const RunHooks& hooks);

}  // namespace linformer
