// The one training loop (see loop.hpp); the run-folder pieces it uses are in run_dir.cpp.
#include "train/loop.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "linformer/model.hpp"
#include "linformer/optimizer.hpp"
#include "dist/communicator.hpp"
#include "dist/data_parallel.hpp"
#include "train/progress.hpp"
#include "train/run_dir.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace linformer {

json state_json(const LoopState& st, StateKeys keys) {
  return json{{"step", st.step},
              {keys.epoch, st.data.epoch},
              {keys.cursor, st.data.cursor},
              {"dropout_counter", st.dropout_counter}};
}

LoopState load_loop_state(const fs::path& ckpt, Model& model, AdamW& opt, StateKeys keys) {
  const json s = load_checkpoint(ckpt, model, opt);
  LoopState st;
  st.step = state_field<int64_t>(s, "step", ckpt);
  st.data.epoch = state_field<uint64_t>(s, keys.epoch, ckpt);
  st.data.cursor = state_field<uint64_t>(s, keys.cursor, ckpt);
  st.dropout_counter = state_field<uint64_t>(s, "dropout_counter", ckpt);
  return st;
}

LoopResult run_training(Model& model, AdamW& opt, const RunSettings& o, TrainTask& task, const fs::path& dir,
                        LoopState st, const RunHooks& hooks) {
  const dist::Communicator& comm = dist::world();
  const bool root = comm.is_root();
  task.seek(st.data);
  const uint64_t dropout_seed = dist::rank_seed(o.seed ^ task.dropout_salt(), comm.rank());
  model.set_dropout_seed(dropout_seed, st.dropout_counter);
  // The ranks must start from the same weights and data position (a run folder or data file seen
  // differently by one host would otherwise train silently apart).
  dist::check_same_on_all_ranks(comm, dist::checksum(model.params().all_data()),
                                fmt::format("the weights at step {}", st.step));
  std::vector<uint64_t> where{(uint64_t)st.step, st.data.epoch, st.data.cursor};
  for (uint64_t size : task.data_sizes()) where.push_back(size);
  dist::check_same_on_all_ranks(comm, dist::checksum(where),
                                fmt::format("the step, data position or number of {}", task.data_sizes_name()));

  const Schedule sched = o.schedule();
  const fs::path metrics = dir / "metrics.jsonl";
  if (root) truncate_metrics(metrics, st.step);
  auto log = [&](const json& line) {
    if (root) append_metrics(metrics, line);
  };
  auto eval_line = [](int64_t step, const Evaluation& e) {
    json line = e.metrics;
    line["step"] = step;
    return line;
  };

  StopSignalGuard signals;  // from here on, SIGINT/SIGTERM stop cleanly after the current step
  LoopResult res;
  const bool has_valid = task.has_validation();
  if (st.step == 0 && has_valid) {
    res.initial = task.evaluate(model);
    log(eval_line(0, *res.initial));
  }
  Progress progress(o.steps, st.step, root);
  const int accum = task.micro_batches();
  std::vector<MicroBatch> mbs(accum);
  std::vector<double> counts(accum);  // labelled items of each micro-batch, over all ranks
  double tokens = 0, comm_s = 0;
  const auto t0 = std::chrono::steady_clock::now();
  bool saved_at_end = false;
  auto save = [&] {
    dist::check_same_on_all_ranks(comm, dist::checksum(model.params().all_data()),
                                  fmt::format("the weights after step {}", st.step));
    // Never let `latest` name a checkpoint with non-finite weights.
    if (!all_finite(model.params().all_data()))
      stop_training(dir, fmt::format("the weights are not finite after step {}", st.step));
    if (root) save_checkpoint(dir, st.step, model, opt, state_json(st, task.state_keys()), o.keep_checkpoints);
  };
  while (st.step < o.steps) {
    model.train();
    model.zero_grad();
    for (int a = 0; a < accum; ++a) {
      task.next(mbs[a]);
      counts[a] = (double)std::count_if(mbs[a].labels.begin(), mbs[a].labels.end(),
                                        [](int32_t l) { return l != kIgnoreIndex; });
    }
    const double c0 = comm.comm_seconds();
    comm.allreduce_sum(counts.data(), counts.size());
    // The step's scalars, summed over the ranks: loss, real tokens, stop requests.
    double step_sums[3] = {0, 0, stop_requested() ? 1.0 : 0.0};
    for (int a = 0; a < accum; ++a) {
      if (mbs[a].batch.B == 0) {  // keep the dropout stream in step with the other ranks
        model.set_dropout_seed(dropout_seed, model.dropout_counter() + 1);
        continue;
      }
      // Each rank's loss is its sum over the labelled items divided by the count over all ranks,
      // so the ranks' losses and gradients add up to those of the whole batch.
      step_sums[0] += task.loss(model, mbs[a], (int)counts[a]);
      model.backward();
      for (uint8_t m : mbs[a].batch.mask) step_sums[1] += m;
    }
    dist::allreduce_gradients(comm, model.params());
    comm.allreduce_sum(step_sums, 3);
    comm_s += comm.comm_seconds() - c0;
    const double loss = task.reported_loss(step_sums[0] / accum);
    tokens += step_sums[1];
    if (!std::isfinite(loss)) {
      progress.finish();
      stop_training(dir, fmt::format("loss is {} at step {}", for_message(loss), st.step + 1));
    }
    if (accum > 1)  // average the accumulated gradients over the micro-batches
      for (float& g : model.params().all_grad()) g /= (float)accum;
    const float gnorm = clip_grad_norm(model.params(), o.clip);
    if (!std::isfinite(gnorm)) {  // a finite loss with overflowing gradients: do not apply them
      progress.finish();
      stop_training(dir, fmt::format("loss is {} but the gradient norm is {} at step {}", for_message(loss),
                                     for_message(gnorm), st.step + 1));
    }
    const float lr = sched.lr(st.step);
    opt.step(lr);
    ++st.step;
    st.data = task.position();
    st.dropout_counter = model.dropout_counter();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double tps = tokens / std::max(secs, 1e-9);
    progress.update(st.step, loss, lr, tps);
    const bool log_step = st.step % o.log_every == 0 || st.step == o.steps;
    json line;
    if (log_step) {
      line = json{{"step", st.step}, {"train_loss", loss}, {"lr", lr}, {"grad_norm", gnorm},
                {"tokens_per_s", tps}, {"elapsed_s", secs}};
      task.describe_position(line);
      if (comm.size() > 1) {
        line["ranks"] = comm.size();
        line["comm_s"] = comm_s;  // seconds in the step's reductions since the start, waiting included
      }
      log(line);
    }
    res.evaluated_last_step = false;
    if (has_valid && (st.step % o.eval_every == 0 || st.step == o.steps)) {
      res.last = task.evaluate(model);
      res.evaluated_last_step = true;
      log(eval_line(st.step, *res.last));
      progress.message(fmt::format("step {}: {}", st.step, res.last->message));
    }
    bool hook_stop = false;  // the caller's progress hook asked to stop
    if (hooks.on_progress && log_step) {
      json report = line;
      if (res.evaluated_last_step) report.update(res.last->metrics);
      hook_stop = !hooks.on_progress(report);
      if (comm.size() > 1) {  // every rank takes the same decision
        double v = hook_stop ? 1.0 : 0.0;
        comm.allreduce_sum(&v, 1);
        hook_stop = v > 0;
      }
    }
    const bool stop = step_sums[2] > 0 || hook_stop;  // a signal reached one of the ranks, or the hook said so
    if (st.step % o.save_every == 0 || st.step == o.steps || stop) {
      save();
      saved_at_end = st.step == o.steps || stop;
    }
    if (stop) {
      res.interrupted = true;
      progress.message(fmt::format("interrupted: checkpoint saved at step {}; continue with --resume {}", st.step,
                                   dir.string()));
      break;
    }
  }
  progress.finish();
  if (!saved_at_end && st.step == o.steps) save();
  res.steps_done = st.step;
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  res.tokens_per_second = tokens / std::max(res.seconds, 1e-9);
  res.checkpoint = (dir / fmt::format("ckpt-{:08d}", st.step)).string();
  return res;
}

}  // namespace linformer
