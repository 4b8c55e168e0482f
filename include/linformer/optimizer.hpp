// AdamW with decoupled weight decay over the model's flat parameter table, a learning-rate
// schedule (linear warm-up, then linear or polynomial decay), and global-norm gradient clipping.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "linformer/params.hpp"

namespace linformer {

struct AdamWOptions {
  float lr = 5e-4f;
  float beta1 = 0.9f, beta2 = 0.98f;  // RoBERTa's
  float eps = 1e-6f;
  float weight_decay = 0.01f;         // applied only to tensors with ParamInfo::decay
};

class AdamW {
 public:
  AdamW(ParamTable& params, AdamWOptions opt);
  // One update with learning rate `lr` (the schedule's value for this step). Same arithmetic as
  // torch.optim.AdamW: p -= lr*wd*p; m,v updated; p -= lr * m_hat / (sqrt(v_hat) + eps).
  // Precisely (t = steps() after the increment; scalars in double, rounded to float when applied):
  //   p *= 1 - lr*wd (decay tensors only); m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g;
  //   p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
  // Element-wise OpenMP loop; results do not depend on the thread count. Frozen tensors
  // (ParamInfo::trainable false) are skipped: their values and moments never change.
  void step(float lr);
  int64_t steps() const { return t_; }
  const AdamWOptions& options() const { return opt_; }
  // State for checkpoints: first and second moments (same layout as ParamTable data) and step.
  std::vector<float>& m() { return m_; }
  std::vector<float>& v() { return v_; }
  const std::vector<float>& m() const { return m_; }
  const std::vector<float>& v() const { return v_; }
  void set_steps(int64_t t) { t_ = t; }

 private:
  ParamTable& params_;
  AdamWOptions opt_;
  std::vector<float> m_, v_;
  std::vector<uint8_t> decay_;  // per float: weight decay applies
  std::vector<uint8_t> frozen_;  // per float: not trainable (ParamInfo::trainable false): left untouched
  int64_t t_ = 0;
};

struct Schedule {
  float peak_lr = 5e-4f;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  float end_lr = 0.0f;
  float power = 1.0f;  // 1 = linear decay; other values = polynomial decay (fairseq's polynomial_decay)
  // lr at step s (0-based: the lr used for the update number s+1). Computed in double, returned
  // as float; the same formula as transformers' get_polynomial_decay_schedule_with_warmup:
  //   s < 0                  : treated as s = 0
  //   s < warmup_steps       : peak_lr * s / warmup_steps           (so lr(0) = 0 when warming up)
  //   s >= total_steps       : end_lr                               (clamped from then on)
  //   otherwise              : end_lr + (peak_lr - end_lr) * (1 - (s - warmup_steps) /
  //                                                  (total_steps - warmup_steps))^power
  // so lr(warmup_steps) = peak_lr and the last update (s = total_steps - 1) still gets a
  // non-zero step when end_lr = 0. With warmup_steps >= total_steps the decay phase is empty.
  float lr(int64_t step) const;
};

// The optimizer, schedule and run-cadence settings every training run has: pretraining
// (TrainOptions) and fine-tuning (FinetuneOptions) derive from it, store it with these flat keys
// in their options file, and check it with the same rules (src/train/run_dir.hpp).
struct RunSettings {
  int64_t steps = 1000;  // optimizer updates in total
  float lr = 5e-4f;      // peak learning rate
  int64_t warmup = 100;  // linear warm-up steps
  float end_lr = 0.0f;   // learning rate at the last step
  float power = 1.0f;    // decay exponent: 1 linear
  float beta1 = 0.9f, beta2 = 0.98f, eps = 1e-6f, weight_decay = 0.01f;
  float clip = 1.0f;  // global gradient norm; 0 disables
  int64_t eval_every = 200;
  int64_t save_every = 200;
  int64_t log_every = 10;
  int keep_checkpoints = 2;
  uint64_t seed = 0;

  AdamWOptions adamw() const { return {lr, beta1, beta2, eps, weight_decay}; }
  Schedule schedule() const { return {lr, warmup, steps, end_lr, power}; }
};

// What a library caller (the Python package) may attach to a training run (pretrain,
// resume_pretraining, finetune, resume_finetuning). Without hooks a run is exactly the same.
struct RunHooks {
  // Called at each log step (every log_every steps and at the last step) after the step's
  // evaluation, if any, with the metrics.jsonl train line of the step ({"step", "train_loss", "lr",
  // "grad_norm", "tokens_per_s", "elapsed_s", ...}) and, when the step also evaluated, the
  // evaluation's fields ("valid_loss", "valid_accuracy", ...) merged in. Returning false stops the
  // run as SIGINT does: a checkpoint of the step is saved and the summary says `interrupted`.
  // An exception thrown here ends the run without that checkpoint and propagates. Under MPI it is
  // called on every rank; the run stops when any rank's call returns false.
  std::function<bool(const nlohmann::json& line)> on_progress;
};

// Scales all gradients so that their global L2 norm is at most max_norm (if max_norm > 0), as
// torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6); gradients are multiplied by
// coef when coef < 1 (i.e. norm + 1e-6 > max_norm). The norm is a double sum of fixed-size chunk
// partial sums added in order, so it does not depend on the thread count. A non-finite norm
// leaves the gradients untouched (the caller decides what to do). Returns the norm before clipping.
float clip_grad_norm(ParamTable& params, float max_norm);

}  // namespace linformer
