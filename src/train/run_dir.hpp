// The machinery of a training run folder, used by the training loop (loop.cpp) and the setup of
// pretraining (trainer.cpp) and fine-tuning (finetune.cpp): checkpoints of model + AdamW + loop
// state with the `latest` pointer, the run's JSON files, metrics.jsonl, the SIGINT/SIGTERM guard
// and the NaN stop.
//
// A checkpoint folder DIR/ckpt-SSSSSSSS/ holds model.safetensors, optimizer.safetensors (AdamW
// moments `adamw.m`, `adamw.v`, metadata `adamw.steps`) and state.json (whatever the loop needs
// to continue: its step, data position, dropout counter). It is written as ckpt-SSSSSSSS.tmp/,
// renamed when complete, and only then does DIR/latest (replaced atomically) name it.
#pragma once
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/fs.hpp"
#include "linformer/error.hpp"
#include "linformer/optimizer.hpp"

namespace linformer {

class Model;
class AdamW;

// Saves the checkpoint of `step` in dir (see above); `state` is written as its state.json. Keeps
// the `keep` newest checkpoints, removes leftover ckpt-*.tmp folders and checkpoints past `step`
// (left by a run rewound to an older checkpoint). Returns the checkpoint folder.
std::filesystem::path save_checkpoint(const std::filesystem::path& dir, int64_t step, const Model& model,
                                      const AdamW& opt, const nlohmann::json& state, int keep);
// Loads a checkpoint folder's weights (exactly the model's tensors) and AdamW state into `model`
// and `opt`; returns its state.json.
nlohmann::json load_checkpoint(const std::filesystem::path& ckpt, Model& model, AdamW& opt);
// A field of a checkpoint's state.json; IoError naming the file and the field when it is missing
// or of the wrong type.
template <class T>
T state_field(const nlohmann::json& state, const char* key, const std::filesystem::path& ckpt) {
  try {
    return state.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw IoError(fmt::format("{}: field '{}' is missing or has the wrong type", (ckpt / "state.json").string(), key));
  }
}

// A run folder's JSON file read as T (ModelConfig, TrainOptions, FinetuneOptions: T::from_json);
// a ConfigError in it becomes an IoError naming the file.
template <class T>
T read_run_json(const std::filesystem::path& file) {
  try {
    return T::from_json(core::read_json(file));
  } catch (const ConfigError& e) {
    throw IoError(fmt::format("{}: {}", file.string(), e.what()));
  }
}

// The step total of a run resumed at step `reached`: `steps` when > 0, else `total` as planned.
// ConfigError when the run already reached it; otherwise sets `total` and returns whether it
// changed (the caller then rewrites the options file).
bool set_resumed_total(const std::string& out_dir, int64_t reached, int64_t steps, int64_t& total);

// The options files of a run (train.json, finetune.json) hold RunSettings' keys beside those of
// the run's kind; `what` names the options in errors ("train options").
void add_run_settings(nlohmann::json& j, const RunSettings& s);
// `key` of j into `field` when present; a wrong type is a ConfigError naming WHAT and the key.
template <class T>
void read_option(const nlohmann::json& j, const char* what, const char* key, T& field) {
  if (!j.contains(key)) return;
  try {
    j.at(key).get_to(field);
  } catch (const nlohmann::json::exception&) {
    throw ConfigError(fmt::format("{}: '{}' has the wrong type ({})", what, key, j.at(key).dump()));
  }
}
// Checks that j is an object with no key outside `known` (the options' own to_json()), then
// reads RunSettings' keys into s.
void read_run_settings(const nlohmann::json& j, const nlohmann::json& known, const char* what, RunSettings& s);
// ConfigError "WHAT: FIELD = VALUE must be ..." for the first setting out of range.
void validate_run_settings(const RunSettings& s, const char* what);

// metrics.jsonl: one JSON object per line, appended (and flushed) as the run goes.
void append_metrics(const std::filesystem::path& path, const nlohmann::json& line);
// Keeps only the lines whose "step" is at most `step` (a resumed run rewrites what follows) and
// drops a line cut by a crash. Rewrites the file atomically; nothing to do if it does not exist.
void truncate_metrics(const std::filesystem::path& path, int64_t step);

// SIGINT / SIGTERM while a guard lives: stop_requested() becomes true (the loop finishes its step,
// saves a checkpoint and returns); a second signal gets the default action (the process ends at
// once). The previous handlers are restored when the guard goes.
class StopSignalGuard {
 public:
  StopSignalGuard();
  ~StopSignalGuard();
  StopSignalGuard(const StopSignalGuard&) = delete;
  StopSignalGuard& operator=(const StopSignalGuard&) = delete;

 private:
  struct Saved;
  Saved* saved_;
};
bool stop_requested();

// Throws Error("training stopped: WHAT; the last good checkpoint is DIR/ckpt-... (try a lower
// --lr or a longer --warmup)") ("no checkpoint was saved" when there is none).
[[noreturn]] void stop_training(const std::filesystem::path& dir, const std::string& what);
// v for messages: a NaN prints as "nan" whatever its sign bit (fmt writes "-nan" otherwise).
inline double for_message(double v) { return std::isnan(v) ? std::fabs(v) : v; }

bool all_finite(const std::vector<float>& v);

}  // namespace linformer
