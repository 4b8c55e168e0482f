// InferenceModel's loading (linformer/inference.hpp): a model file, a pretraining or fine-tuning run
// folder (its latest checkpoint, tokenizer.model, task.json, finetune.json) or a model in memory;
// and what was loaded.
#include <algorithm>
#include <filesystem>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "api/inference_impl.hpp"
#include "linformer/checkpoint.hpp"
#include "linformer/error.hpp"
#include "linformer/trainer.hpp"
#include "core/fs.hpp"

namespace fs = std::filesystem;

namespace linformer {

using namespace api_detail;

namespace {

// A checkpoint folder inside a run folder stands for the run (its task.json, tokenizer.model).
fs::path run_folder_of(const fs::path& p) {
  if (!fs::exists(p / "latest") && fs::exists(p / "model.safetensors") && fs::exists(p.parent_path() / "latest"))
    return p.parent_path();
  return p;
}

// The model file of a run folder (its latest checkpoint's), a checkpoint folder or a model file,
// as load_trained_model finds it.
std::string model_file_of(const std::string& path) {
  if (!fs::is_directory(path)) return path;
  fs::path p = path;
  if (!fs::exists(p / "model.safetensors")) p = latest_checkpoint(path);
  return (p / "model.safetensors").string();
}

}  // namespace

// ---------------------------------------------------------------- loading

// The worker bound, the thread count and the class names, once the weights and tokenizer are in.
void InferenceModel::Impl::finish(const InferenceOptions& opt) {
  const ModelConfig& c = cfg();
  if (opt.max_workers < 0)
    throw ConfigError(fmt::format("inference options: max_workers {} must be at least 0", opt.max_workers));
  if (opt.threads < 0) throw ConfigError(fmt::format("inference options: threads {} must be at least 0", opt.threads));
  max_workers = opt.max_workers > 0 ? opt.max_workers : std::max(1, (int)std::thread::hardware_concurrency());
  threads = opt.threads;
  info.config = c;
  if (!opt.labels.empty()) {
    if ((int)opt.labels.size() != c.num_labels)
      throw ConfigError(fmt::format("inference options: {} labels given for a model with {} classes", opt.labels.size(),
                                    c.num_labels));
    info.labels = opt.labels;
  } else if (has_task) {
    info.labels = task.labels;
  } else {
    for (int k = 0; k < c.num_labels; ++k) info.labels.push_back(std::to_string(k));
  }
  info.tokenizer = to_string(kind);
}

void InferenceModel::Impl::load_sentencepiece(const std::string& path) {
  tok = std::make_unique<Tokenizer>(path);
  kind = TextKind::SentencePiece;
  info.tokenizer_file = path;
}

// Takes a loaded model over: only its weights are needed, not its gradient block.
void InferenceModel::Impl::own(std::unique_ptr<Model> m) {
  m->params().release_grad();
  weights = std::move(m);
}

// A fine-tuning run folder (task.json beside the checkpoints): the checks and their order are
// those of Classifier (finetune.hpp).
void InferenceModel::Impl::load_finetuned(const std::string& path, const fs::path& run, const InferenceOptions& opt) {
  has_task = true;
  task = read_task_info(run.string());
  info.task_name = task.name;
  info.model_file = model_file_of(path);
  std::unique_ptr<Model> m = load_model(info.model_file);
  if (m->config().num_labels != (int)task.labels.size())
    throw IoError(fmt::format("{}: the model has {} classes but {}/task.json names {}", path, m->config().num_labels,
                              run.string(), task.labels.size()));
  own(std::move(m));
  if (!opt.tokenizer.empty()) {
    load_sentencepiece(opt.tokenizer);
  } else if (task.tokenizer == TaskTokenizer::SentencePiece) {
    const fs::path tp = run / "tokenizer.model";
    if (!fs::exists(tp)) throw IoError(fmt::format("{}: missing (the task uses a SentencePiece tokenizer)", tp.string()));
    load_sentencepiece(tp.string());
  } else {
    kind = task.tokenizer == TaskTokenizer::ListOps ? TextKind::ListOps : TextKind::Pixels;
  }
  if (fs::exists(run / "finetune.json")) {
    const nlohmann::json j = core::read_json(run / "finetune.json");
    try {
      info.trained_with_truncation = j.value("truncate", false);
      info.trained_task = j.value("task", std::string());
    } catch (const nlohmann::json::exception&) {
      throw IoError(fmt::format("{}: field 'truncate' or 'task' has the wrong type", (run / "finetune.json").string()));
    }
  }
}

InferenceModel::InferenceModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
InferenceModel::InferenceModel(InferenceModel&&) noexcept = default;
InferenceModel& InferenceModel::operator=(InferenceModel&&) noexcept = default;
InferenceModel::~InferenceModel() = default;

InferenceModel InferenceModel::load(const std::string& path, const InferenceOptions& opt) {
  auto im = std::make_unique<Impl>();
  im->info.source = path;
  if (!fs::is_directory(path)) {
    // A model file. The tokenizer first, as `linformer fill-mask` always did.
    if (!opt.tokenizer.empty()) im->load_sentencepiece(opt.tokenizer);
    im->info.model_file = path;
    im->own(load_model(path));
  } else {
    const fs::path run = run_folder_of(path);
    im->info.run_dir = run.string();
    if (fs::exists(run / "task.json")) {
      im->load_finetuned(path, run, opt);
    } else {
      // A pretraining run folder (or a folder holding model.safetensors).
      const fs::path tp = run / "tokenizer.model";
      if (!opt.tokenizer.empty())
        im->load_sentencepiece(opt.tokenizer);
      else if (fs::is_regular_file(tp))
        im->load_sentencepiece(tp.string());
      im->info.model_file = model_file_of(path);
      im->own(load_model(im->info.model_file));
    }
  }
  im->finish(opt);
  return InferenceModel(std::move(im));
}

InferenceModel InferenceModel::load_classifier(const std::string& path, const InferenceOptions& opt) {
  // The messages of Classifier (finetune.hpp), which `linformer eval` and `predict` printed.
  fs::path run = path;
  if (!fs::is_directory(run))
    throw IoError(fmt::format("{}: not a fine-tuning run folder (a folder with task.json, config.json and checkpoints)",
                              path));
  run = run_folder_of(run);
  if (!fs::exists(run / "latest") || !fs::exists(run / "task.json"))
    throw IoError(fmt::format("{}: not a fine-tuning run folder (no {}; `linformer finetune --out DIR` makes one)",
                              path, fs::exists(run / "latest") ? "task.json" : "checkpoint 'latest'"));
  return load(path, opt);
}

InferenceModel InferenceModel::from_model(std::unique_ptr<Model> model, const InferenceOptions& opt) {
  if (!model) throw ConfigError("from_model: no model");
  auto im = std::make_unique<Impl>();
  if (!opt.tokenizer.empty()) im->load_sentencepiece(opt.tokenizer);
  im->own(std::move(model));
  im->finish(opt);
  return InferenceModel(std::move(im));
}

InferenceModel InferenceModel::from_model(std::shared_ptr<const Model> model, const InferenceOptions& opt) {
  if (!model) throw ConfigError("from_model: no model");
  auto im = std::make_unique<Impl>();
  if (!opt.tokenizer.empty()) im->load_sentencepiece(opt.tokenizer);
  im->weights = std::move(model);
  im->finish(opt);
  return InferenceModel(std::move(im));
}

// ---------------------------------------------------------------- information

const ModelInfo& InferenceModel::info() const { return impl_->info; }
const ModelConfig& InferenceModel::config() const { return impl_->cfg(); }
int InferenceModel::max_len() const { return impl_->cfg().max_len; }
int InferenceModel::vocab_size() const { return impl_->cfg().vocab_size; }
const std::vector<std::string>& InferenceModel::labels() const { return impl_->info.labels; }
bool InferenceModel::has_tokenizer() const { return impl_->kind != TextKind::None; }
bool InferenceModel::has_classifier() const { return impl_->cfg().num_labels > 0; }
const Model& InferenceModel::model() const { return *impl_->weights; }
int InferenceModel::max_workers() const { return impl_->max_workers; }
int InferenceModel::workers() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->created;
}

}  // namespace linformer
