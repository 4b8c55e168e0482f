// linformer.pretrain and linformer.finetune: the training entry points (trainer.hpp, finetune.hpp)
// with the options of `linformer pretrain` / `linformer finetune` (as a dict or keyword arguments,
// the command's option names with _ for -), a progress callback (RunHooks, optimizer.hpp) and the
// summary and metrics returned as dicts.
//
// Ctrl-C: while the loop runs, SIGINT is the loop's own (it ends the step, saves a checkpoint and
// returns, as in the command line: the summary says 'interrupted'); the GIL is released meanwhile.
// A KeyboardInterrupt pending from before the loop started (Python's handler caught the signal) is
// seen at the next log step (PyErr_CheckSignals in the callback path) and stops the run the same
// way, as does a KeyboardInterrupt raised in the callback. Any other exception raised by the
// callback also stops the run cleanly and is raised again after.
#include <omp.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include <fmt/format.h>

#include "common.hpp"
#include "linformer/config.hpp"
#include "linformer/error.hpp"
#include "linformer/finetune.hpp"
#include "linformer/optimizer.hpp"
#include "linformer/trainer.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace linformer::python {

namespace {

// The options of one call: the dict and the keyword arguments, keys with '-' spelt '_'.
json gather_options(const char* command, py::handle options, const py::kwargs& kwargs) {
  json all = json::object();
  auto add = [&](py::handle dict, const char* from) {
    for (auto item : py::reinterpret_borrow<py::dict>(dict)) {
      if (!py::isinstance<py::str>(item.first))
        throw ConfigError(fmt::format("{}: option names are str, not {}", command, py::repr(item.first).cast<std::string>()));
      std::string key = item.first.cast<std::string>();
      for (char& c : key)
        if (c == '-') c = '_';
      if (all.contains(key)) throw ConfigError(fmt::format("{}: option '{}' given twice ({})", command, key, from));
      all[key] = from_python(item.second, fmt::format("{}: {}", command, key));
    }
  };
  if (!options.is_none()) {
    if (!py::isinstance<py::dict>(options))
      throw ConfigError(fmt::format("{}: options must be a dict, not {}", command,
                                    py::type::of(options).attr("__name__").cast<std::string>()));
    add(options, "in the options dict");
  }
  add(kwargs, "in the options dict and as a keyword argument");
  return all;
}

// Removes `key` from `o` and returns it (nullopt when absent or None).
std::optional<json> take(json& o, const char* key) {
  if (!o.contains(key)) return std::nullopt;
  json v = o[key];
  o.erase(key);
  if (v.is_null()) return std::nullopt;
  return v;
}

std::string take_string(json& o, const char* command, const char* key) {
  const auto v = take(o, key);
  if (!v) return "";
  if (!v->is_string()) throw ConfigError(fmt::format("{}: {} must be a str (a path), not {}", command, key, v->dump()));
  return v->get<std::string>();
}

// The CLI's spelling of a key of the options file: train -> train_tokens, valid -> valid_tokens,
// keep -> keep_checkpoints (both spellings are accepted, not both at once).
void rename(json& o, const char* command, const char* cli, const char* file_key) {
  if (!o.contains(cli)) return;
  if (o.contains(file_key)) throw ConfigError(fmt::format("{}: give {} or {}, not both", command, cli, file_key));
  o[file_key] = o[cli];
  o.erase(cli);
}

// Where and how a run computes: `threads` (this call's OpenMP threads, else set_num_threads's),
// `bf16` / `precision`.
struct RunCompute {
  int threads = 0;
  MatmulPrecision precision = MatmulPrecision::f32;
};

RunCompute take_compute(json& o, const char* command) {
  RunCompute c;
  c.precision = default_precision();
  if (auto t = take(o, "threads")) {
    if (!t->is_number_integer() || t->get<int64_t>() < 0 || t->get<int64_t>() > 4096)
      throw ConfigError(fmt::format("{}: threads = {} must be an integer from 0 to 4096", command, t->dump()));
    c.threads = t->get<int>();
  }
  const auto bf16 = take(o, "bf16");
  const auto precision = take(o, "precision");
  if (bf16 && !bf16->is_boolean()) throw ConfigError(fmt::format("{}: bf16 must be True or False", command));
  if (bf16 && precision) throw ConfigError(fmt::format("{}: give bf16 or precision, not both", command));
  if (bf16) c.precision = bf16->get<bool>() ? MatmulPrecision::bf16 : MatmulPrecision::f32;
  if (precision) {
    if (!precision->is_string()) throw ConfigError(fmt::format("{}: precision must be a str", command));
    c.precision = precision_from_name(precision->get<std::string>(), "precision");
  }
  check_precision_supported(c.precision, command);
  return c;
}

// With resume, the run keeps its options: any other than steps (and the compute ones) is refused,
// as the command line does.
void refuse_with_resume(const json& o, const char* command, const std::string& kept_in) {
  for (auto it = o.begin(); it != o.end(); ++it)
    if (it.key() != "steps")
      throw ConfigError(fmt::format("{}: {} cannot be used with resume (the run keeps the options in {}; only steps, "
                                    "threads, bf16 and precision may change)",
                                    command, it.key(), kept_in));
}

int64_t resumed_steps(const json& o, const char* command) {
  if (!o.contains("steps")) return 0;
  const json& s = o.at("steps");
  if (!s.is_number_integer() || s.get<int64_t>() < 1)
    throw ConfigError(fmt::format("{}: steps = {} must be an integer of at least 1", command, s.dump()));
  return s.get<int64_t>();
}

// The progress callback as RunHooks, and what it saw. Lives (and is destroyed) with the GIL held.
struct Callback {
  explicit Callback(py::object f) : fn(std::move(f)) {}
  py::object fn;  // None: only the signal check
  std::optional<py::error_already_set> error;  // raised by fn: raised again after the run
  bool keyboard_interrupt = false;             // a Ctrl-C that Python's handler caught stopped the run
  bool stopped = false;                        // fn returned False (or raised)

  RunHooks hooks() {
    RunHooks h;
    h.on_progress = [this](const json& line) -> bool {
      py::gil_scoped_acquire gil;
      if (PyErr_CheckSignals() != 0) {  // Ctrl-C caught by Python's own handler: stop cleanly
        PyErr_Clear();
        keyboard_interrupt = true;
        return false;
      }
      if (fn.is_none()) return true;
      try {
        const py::object r = fn(to_python(line));
        stopped = !(r.is_none() || PyObject_IsTrue(r.ptr()) == 1);
        if (PyErr_Occurred()) throw py::error_already_set();  // __bool__ raised
        return !stopped;
      } catch (py::error_already_set& e) {
        if (e.matches(PyExc_KeyboardInterrupt))  // Ctrl-C while the callback ran: a clean stop, as above
          keyboard_interrupt = true;
        else
          error.emplace(std::move(e));
        stopped = true;
        return false;
      }
    };
    return h;
  }
};

// Runs `body` with the GIL released under the run's compute settings; the OpenMP setting of the
// calling thread is restored afterwards.
template <class F>
auto run_released(const RunCompute& c, F body) {
  py::gil_scoped_release nogil;
  ComputeScope scope(c.precision);
  const int before = omp_get_max_threads();
  if (c.threads > 0) omp_set_num_threads(c.threads);
  struct Restore {
    int n;
    ~Restore() { omp_set_num_threads(n); }
  } restore{before};
  return body();
}

py::list read_metrics(const fs::path& file) {
  py::list out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      out.append(to_python(json::parse(line)));
    } catch (const json::exception&) {  // a line cut by a crash: metrics.jsonl drops it on resume too
    }
  }
  return out;
}

py::dict finish(Callback& cb, py::dict summary, const std::string& out) {
  if (cb.error) throw std::move(*cb.error);
  summary["out"] = out;
  // Who stopped an interrupted run: the callback, or a signal (Ctrl-C, SIGTERM).
  py::object by = py::none();
  if (summary["interrupted"].cast<bool>()) by = py::str(cb.stopped && !cb.keyboard_interrupt ? "callback" : "signal");
  summary["interrupted_by"] = by;
  summary["metrics"] = read_metrics(fs::path(out) / "metrics.jsonl");
  return summary;
}

py::dict pretrain_py(py::handle options, py::object callback, const py::kwargs& kwargs) {
  constexpr const char* cmd = "pretrain";
  json o = gather_options(cmd, options, kwargs);
  const RunCompute compute = take_compute(o, cmd);
  const std::string resume = take_string(o, cmd, "resume");
  Callback cb(std::move(callback));
  TrainSummary s;
  std::string out;
  if (!resume.empty()) {
    if (o.contains("out")) throw ConfigError("pretrain: give out (a new run) or resume (an existing one), not both");
    refuse_with_resume(o, cmd, resume + "/train.json and config.json");
    const int64_t steps = resumed_steps(o, cmd);
    const RunHooks hooks = cb.hooks();
    s = run_released(compute, [&] { return resume_pretraining(resume, steps, hooks); });
    out = resume;
  } else {
    const auto config = take(o, "config");
    out = take_string(o, cmd, "out");
    rename(o, cmd, "train", "train_tokens");
    rename(o, cmd, "valid", "valid_tokens");
    rename(o, cmd, "keep", "keep_checkpoints");
    if (!config || out.empty() || !o.contains("train_tokens") || !o.contains("valid_tokens"))
      throw ConfigError("pretrain: config, train, valid and out are required (or resume=DIR)");
    ModelConfig cfg;
    if (config->is_string())
      cfg = ModelConfig::from_file(config->get<std::string>());
    else if (config->is_object())
      cfg = ModelConfig::from_json(*config);
    else
      throw ConfigError(fmt::format("pretrain: config must be a dict or a path, not {}", config->dump()));
    const TrainOptions opt = TrainOptions::from_json(o);  // unknown keys: ConfigError naming them
    const RunHooks hooks = cb.hooks();
    s = run_released(compute, [&] { return pretrain(cfg, opt, out, hooks); });
  }
  py::dict d;
  d["steps_done"] = s.steps_done;
  d["initial_valid_loss"] = s.initial_valid_loss;
  d["final_valid_loss"] = s.final_valid_loss;
  d["tokens_per_second"] = s.tokens_per_second;
  d["seconds"] = s.seconds;
  d["checkpoint"] = s.checkpoint;
  d["interrupted"] = s.interrupted;
  return finish(cb, d, out);
}

py::dict finetune_py(py::handle options, py::object callback, const py::kwargs& kwargs) {
  constexpr const char* cmd = "finetune";
  json o = gather_options(cmd, options, kwargs);
  const RunCompute compute = take_compute(o, cmd);
  const std::string resume = take_string(o, cmd, "resume");
  Callback cb(std::move(callback));
  FinetuneSummary s;
  std::string out;
  if (!resume.empty()) {
    if (o.contains("out")) throw ConfigError("finetune: give out (a new run) or resume (an existing one), not both");
    refuse_with_resume(o, cmd, resume + "/finetune.json");
    const int64_t steps = resumed_steps(o, cmd);
    const RunHooks hooks = cb.hooks();
    s = run_released(compute, [&] { return resume_finetuning(resume, steps, hooks); });
    out = resume;
  } else {
    out = take_string(o, cmd, "out");
    rename(o, cmd, "keep", "keep_checkpoints");
    std::string model = take_string(o, cmd, "model");
    if (model == "none") model.clear();
    const auto config = take(o, "config");
    if (out.empty() || !o.contains("task"))
      throw ConfigError("finetune: task and out are required, with model (a pretrained model) or config (a model "
                        "from scratch); or resume=DIR");
    if (model.empty() && !config)
      throw ConfigError("finetune: give model (a pretrained run folder, checkpoint folder or model file) or config (a "
                        "model from scratch)");
    if (!model.empty() && config)
      throw ConfigError(fmt::format("finetune: config is for a model from scratch; the pretrained model {} keeps its "
                                    "own config",
                                    model));
    o["model"] = model;
    if (config) {
      if (config->is_string()) {
        o["config"] = *config;
      } else if (config->is_object()) {
        // A dict: checked, then written where the run keeps its config anyway (finetune() writes
        // the final one, with the task's num_labels, over it).
        ModelConfig::from_json(*config).validate();
        if (fs::exists(fs::path(out) / "latest"))
          throw IoError(fmt::format("{}: already holds a run; continue it with resume={} or choose another out", out,
                                    out));
        fs::create_directories(out);
        const fs::path file = fs::path(out) / "config.json";
        const std::string tmp = file.string() + ".tmp";
        {
          std::ofstream f(tmp, std::ios::binary);
          f << config->dump(2) << "\n";
          if (!f.good()) throw IoError(fmt::format("{}: cannot write", tmp));
        }
        fs::rename(tmp, file);
        o["config"] = file.string();
      } else {
        throw ConfigError(fmt::format("finetune: config must be a dict or a path, not {}", config->dump()));
      }
    }
    const FinetuneOptions opt = FinetuneOptions::from_json(o);  // unknown keys: ConfigError naming them
    const RunHooks hooks = cb.hooks();
    s = run_released(compute, [&] { return finetune(opt, out, hooks); });
  }
  py::dict d;
  d["steps_done"] = s.steps_done;
  d["initial_valid_accuracy"] = s.initial_valid_accuracy;
  d["final_valid_accuracy"] = s.final_valid_accuracy;
  d["final_valid_loss"] = s.final_valid_loss;
  d["tokens_per_second"] = s.tokens_per_second;
  d["seconds"] = s.seconds;
  d["checkpoint"] = s.checkpoint;
  d["interrupted"] = s.interrupted;
  return finish(cb, d, out);
}

}  // namespace

void register_training(py::module_& m) {
  m.def("pretrain", &pretrain_py, py::arg("options") = py::none(), py::kw_only(), py::arg("callback") = py::none(),
        R"doc(Masked-language-model pretraining, as `linformer pretrain` (docs/training.md).

Options (a dict, keyword arguments, or both; the command's names with _ for -): config (a dict or a
config file), train, valid (token files: Tokenizer.encode_corpus), out (a new run folder),
tokenizer (copied into the run, for fill_mask), steps, batch_size, accum, seq_len, eval_every,
eval_batches, lr, warmup, end_lr, power, beta1, beta2, eps, weight_decay, clip, save_every,
log_every, keep, seed; threads, bf16 (or precision='bf16'). Or resume=DIR (and optionally steps,
the new total) to continue a run.

callback(line) is called at each log step with the metrics.jsonl line of the step (step,
train_loss, lr, grad_norm, tokens_per_s, elapsed_s; valid_loss when the step evaluated); returning
False stops the run cleanly (a checkpoint is saved; resume it later). Ctrl-C does the same. An
exception from the callback stops the run cleanly and is raised again.

Returns {steps_done, initial_valid_loss, final_valid_loss, tokens_per_second, seconds, checkpoint,
interrupted, interrupted_by (None, 'callback' or 'signal'), out, metrics (every
metrics.jsonl line as a dict)}.)doc");
  m.def("finetune", &finetune_py, py::arg("options") = py::none(), py::kw_only(), py::arg("callback") = py::none(),
        R"doc(Fine-tunes a sequence classifier on a task folder, as `linformer finetune` (docs/finetune.md).

Options (a dict, keyword arguments, or both; the command's names with _ for -): model (a pretrained
run folder, checkpoint folder or model file) or config (a dict or a config file, for a model from
scratch), task (a task folder, docs/tasks.md), out (a new run folder), tokenizer, pooling ('first'
or 'mean'), truncate, class_weights ('none' or 'balanced'), group_by_length, steps, batch_size,
eval_every, eval_batch_size, lr, warmup, end_lr, power, beta1, beta2, eps, weight_decay, clip,
save_every, log_every, keep, seed; threads, bf16 (or precision='bf16'). Or resume=DIR (and
optionally steps).

callback: as for pretrain (the lines hold valid_loss and valid_accuracy when the step evaluated).
Returns {steps_done, initial_valid_accuracy, final_valid_accuracy, final_valid_loss,
tokens_per_second, seconds, checkpoint, interrupted, interrupted_by, out, metrics}; load the run
folder with linformer.load(out) to classify texts.)doc");
}

}  // namespace linformer::python
