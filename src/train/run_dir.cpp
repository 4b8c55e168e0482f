// The run-folder machinery shared by pretraining and fine-tuning. See run_dir.hpp.
#include "train/run_dir.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <regex>

#include "linformer/checkpoint.hpp"
#include "linformer/model.hpp"
#include "linformer/optimizer.hpp"
#include "linformer/trainer.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace linformer {

// ---------------------------------------------------------------- run settings

void add_run_settings(json& j, const RunSettings& s) {
  j.update(json{{"steps", s.steps}, {"lr", s.lr}, {"warmup", s.warmup}, {"end_lr", s.end_lr}, {"power", s.power},
                {"beta1", s.beta1}, {"beta2", s.beta2}, {"eps", s.eps}, {"weight_decay", s.weight_decay},
                {"clip", s.clip}, {"eval_every", s.eval_every}, {"save_every", s.save_every},
                {"log_every", s.log_every}, {"keep_checkpoints", s.keep_checkpoints}, {"seed", s.seed}});
}

void read_run_settings(const json& j, const json& known, const char* what, RunSettings& s) {
  if (!j.is_object()) throw ConfigError(fmt::format("{}: not a JSON object", what));
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!known.contains(it.key())) throw ConfigError(fmt::format("{}: unknown key '{}'", what, it.key()));
  read_option(j, what, "steps", s.steps);
  read_option(j, what, "lr", s.lr);
  read_option(j, what, "warmup", s.warmup);
  read_option(j, what, "end_lr", s.end_lr);
  read_option(j, what, "power", s.power);
  read_option(j, what, "beta1", s.beta1);
  read_option(j, what, "beta2", s.beta2);
  read_option(j, what, "eps", s.eps);
  read_option(j, what, "weight_decay", s.weight_decay);
  read_option(j, what, "clip", s.clip);
  read_option(j, what, "eval_every", s.eval_every);
  read_option(j, what, "save_every", s.save_every);
  read_option(j, what, "log_every", s.log_every);
  read_option(j, what, "keep_checkpoints", s.keep_checkpoints);
  read_option(j, what, "seed", s.seed);
}

void validate_run_settings(const RunSettings& s, const char* what) {
  auto bad = [what](const char* field, auto value, const char* why) {
    throw ConfigError(fmt::format("{}: {} = {} {}", what, field, value, why));
  };
  if (s.steps < 1) bad("steps", s.steps, "must be at least 1");
  if (!(s.lr > 0)) bad("lr", s.lr, "must be positive");
  if (s.warmup < 0) bad("warmup", s.warmup, "must be >= 0");
  if (!(s.end_lr >= 0)) bad("end_lr", s.end_lr, "must be >= 0");
  if (!(s.power > 0)) bad("power", s.power, "must be positive");
  if (!(s.beta1 >= 0 && s.beta1 < 1)) bad("beta1", s.beta1, "must be in [0, 1)");
  if (!(s.beta2 >= 0 && s.beta2 < 1)) bad("beta2", s.beta2, "must be in [0, 1)");
  if (!(s.eps > 0)) bad("eps", s.eps, "must be positive");
  if (!(s.weight_decay >= 0)) bad("weight_decay", s.weight_decay, "must be >= 0");
  if (!(s.clip >= 0)) bad("clip", s.clip, "must be >= 0 (0 disables clipping)");
  if (s.eval_every < 1) bad("eval_every", s.eval_every, "must be at least 1");
  if (s.save_every < 1) bad("save_every", s.save_every, "must be at least 1");
  if (s.log_every < 1) bad("log_every", s.log_every, "must be at least 1");
  if (s.keep_checkpoints < 1) bad("keep_checkpoints", s.keep_checkpoints, "must be at least 1");
}

bool set_resumed_total(const std::string& out_dir, int64_t reached, int64_t steps, int64_t& total) {
  const int64_t new_total = steps > 0 ? steps : total;
  if (reached >= new_total)
    throw ConfigError(fmt::format("{}: the run already reached step {} of {}; pass a larger --steps to continue",
                                  out_dir, reached, new_total));
  const bool changed = new_total != total;
  total = new_total;
  return changed;
}

namespace {

NamedTensor f32_tensor(std::string name, const std::vector<float>& v) {
  NamedTensor t;
  t.name = std::move(name);
  t.dtype = "F32";
  t.shape = {(int64_t)v.size()};
  t.bytes.resize(v.size() * sizeof(float));
  std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  return t;
}

void read_f32(const SafetensorsFile& f, const std::string& name, std::vector<float>& out, const std::string& path) {
  const NamedTensor* t = f.find(name);
  if (!t || t->dtype != "F32" || t->bytes.size() != out.size() * sizeof(float))
    throw IoError(fmt::format("{}: tensor '{}' missing or of the wrong size", path, name));
  std::memcpy(out.data(), t->bytes.data(), t->bytes.size());
}

// Removes a checkpoint folder so that no ckpt-NNNNNNNN folder is ever seen half deleted (a kill in
// the middle of remove_all would leave one without its model): rename it out of the pattern first
// (atomic), then delete. A kill after the rename leaves a ckpt-*.del folder, removed by the next save.
void remove_checkpoint_dir(const fs::path& ckpt) {
  fs::path doomed = ckpt;
  doomed += ".del";
  fs::remove_all(doomed);
  fs::rename(ckpt, doomed);
  fs::remove_all(doomed);
}
}  // namespace

fs::path save_checkpoint(const fs::path& dir, int64_t step, const Model& model, const AdamW& opt, const json& state,
                         int keep) {
  const std::string name = fmt::format("ckpt-{:08d}", step);
  const fs::path final_dir = dir / name;
  const fs::path tmp_dir = dir / (name + ".tmp");
  fs::remove_all(tmp_dir);
  fs::create_directories(tmp_dir);
  try {
    save_model(model, (tmp_dir / "model.safetensors").string());
    write_safetensors((tmp_dir / "optimizer.safetensors").string(),
                      {f32_tensor("adamw.m", opt.m()), f32_tensor("adamw.v", opt.v())},
                      {{"adamw.steps", std::to_string(opt.steps())}});
    core::write_file_atomic(tmp_dir / "state.json", state.dump(2) + "\n");
    core::fsync_dir(tmp_dir);
  } catch (...) {  // a full disk: leave nothing half written; `latest` still names the last good one
    std::error_code ec;
    fs::remove_all(tmp_dir, ec);
    throw;
  }
  if (fs::exists(final_dir)) remove_checkpoint_dir(final_dir);  // never the one `latest` names
  fs::rename(tmp_dir, final_dir);
  core::fsync_dir(dir);
  core::write_file_atomic(dir / "latest", name + "\n");
  core::fsync_dir(dir);
  // Tidy up, now that `latest` names the new checkpoint: drop what a killed process left (folders
  // ckpt-*.tmp and ckpt-*.del, temporary files NAME.tmp.PID.N of core::AtomicFile), checkpoints past this step
  // (left by a run that was rewound to an earlier checkpoint: they belong to a history that no
  // longer exists), and the oldest checkpoints beyond `keep`.
  const std::regex ckpt_re("ckpt-[0-9]{8}"), leftover_dir_re("ckpt-[0-9]{8}\\.(tmp|del)");
  std::vector<fs::path> leftovers, older, newer;
  for (auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (e.is_regular_file() && core::is_atomic_temp_name(n)) leftovers.push_back(e.path());
    if (!e.is_directory() || n == name) continue;
    if (std::regex_match(n, leftover_dir_re)) leftovers.push_back(e.path());
    if (std::regex_match(n, ckpt_re)) (n > name ? newer : older).push_back(e.path());
  }
  for (const fs::path& p : leftovers) fs::remove_all(p);
  for (const fs::path& p : newer) remove_checkpoint_dir(p);
  std::sort(older.begin(), older.end());
  for (size_t i = 0; (int)(older.size() - i) > keep - 1; ++i) remove_checkpoint_dir(older[i]);
  return final_dir;
}

json load_checkpoint(const fs::path& ckpt, Model& model, AdamW& opt) {
  load_weights(model, (ckpt / "model.safetensors").string());
  const std::string opath = (ckpt / "optimizer.safetensors").string();
  SafetensorsFile f = read_safetensors(opath);
  read_f32(f, "adamw.m", opt.m(), opath);
  read_f32(f, "adamw.v", opt.v(), opath);
  auto it = f.metadata.find("adamw.steps");
  if (it == f.metadata.end()) throw IoError(opath + ": metadata adamw.steps missing");
  try {
    opt.set_steps(std::stoll(it->second));
  } catch (const std::exception&) {
    throw IoError(fmt::format("{}: metadata adamw.steps '{}' is not an integer", opath, it->second));
  }
  return core::read_json(ckpt / "state.json");
}

std::string latest_checkpoint(const std::string& out_dir) {
  const fs::path p = fs::path(out_dir) / "latest";
  if (!fs::exists(p)) throw IoError(fmt::format("{}: no checkpoint (file 'latest' is missing)", out_dir));
  std::string name = core::read_file(p);
  while (!name.empty() && std::isspace((unsigned char)name.back())) name.pop_back();
  if (!std::regex_match(name, std::regex("ckpt-[0-9]{8}")))
    throw IoError(fmt::format("{}: 'latest' names '{}', not a checkpoint folder", out_dir, name));
  const fs::path dir = fs::path(out_dir) / name;
  if (!fs::is_directory(dir)) throw IoError(fmt::format("{}: checkpoint folder {} is missing", out_dir, name));
  return dir.string();
}

// ---------------------------------------------------------------- metrics

void append_metrics(const fs::path& path, const json& j) {
  std::ofstream out(path, std::ios::app);
  out << j.dump() << "\n";
  out.flush();
}

void truncate_metrics(const fs::path& path, int64_t step) {
  if (!fs::exists(path)) return;
  std::ifstream in(path);
  std::string line, kept;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      if (json::parse(line).value("step", (int64_t)0) <= step) kept += line + "\n";
    } catch (const json::exception&) {  // a line cut by a crash: drop it
    }
  }
  core::write_file_atomic(path, kept);
}

// ---------------------------------------------------------------- signals

namespace {
std::atomic<bool> g_stop_requested{false};
// The handler runs on a stack of its own (SA_ONSTACK): delivered on the stack of code in the
// middle of a oneDNN kernel, its frame was seen to corrupt the heap (in MPI ranks, where a SIGTERM
// during a step aborted about one run in three with "corrupted size vs. prev_size").
alignas(64) char g_signal_stack[1 << 16];
extern "C" void on_stop_signal(int sig) {
  g_stop_requested = true;
  std::signal(sig, SIG_DFL);  // async-signal-safe
}
}  // namespace

struct StopSignalGuard::Saved {
  struct sigaction old_int {}, old_term {};
  stack_t old_stack{};
};

StopSignalGuard::StopSignalGuard() : saved_(new Saved) {
  g_stop_requested = false;
  struct sigaction sa {};
  stack_t ss{};
  ss.ss_sp = g_signal_stack;
  ss.ss_size = sizeof g_signal_stack;
  sigaltstack(&ss, &saved_->old_stack);
  sa.sa_handler = on_stop_signal;
  sa.sa_flags = SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &saved_->old_int);
  sigaction(SIGTERM, &sa, &saved_->old_term);
}

StopSignalGuard::~StopSignalGuard() {
  sigaction(SIGINT, &saved_->old_int, nullptr);
  sigaction(SIGTERM, &saved_->old_term, nullptr);
  sigaltstack(&saved_->old_stack, nullptr);
  delete saved_;
}

bool stop_requested() { return g_stop_requested.load(); }

// ---------------------------------------------------------------- stopping on NaN

void stop_training(const fs::path& dir, const std::string& what) {
  std::string kept;
  try {
    kept = fmt::format("the last good checkpoint is {}", latest_checkpoint(dir.string()));
  } catch (const Error&) {
    kept = "no checkpoint was saved";
  }
  throw Error(fmt::format("training stopped: {}; {} (try a lower --lr or a longer --warmup)", what, kept));
}

bool all_finite(const std::vector<float>& v) {
  int bad = 0;
#pragma omp parallel for reduction(+ : bad) schedule(static)
  for (size_t i = 0; i < v.size(); ++i) bad += !std::isfinite(v[i]);
  return bad == 0;
}

}  // namespace linformer
