// The inference API (linformer/inference.hpp): loading a model file or run folder with its
// tokenizer and class names, the pool of worker models that share the weights, and the requests
// (forward, embed, classify, fill-mask, evaluation) with their input checks.
#include "linformer/inference.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <numeric>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "linformer/checkpoint.hpp"
#include "linformer/error.hpp"
#include "linformer/model.hpp"
#include "linformer/tasks.hpp"
#include "linformer/tokenizer.hpp"
#include "linformer/trainer.hpp"
#include "train/run_dir.hpp"

namespace fs = std::filesystem;

namespace linformer {

namespace {

enum class TextKind { None, SentencePiece, ListOps, Pixels };

const char* to_string(TextKind k) {
  switch (k) {
    case TextKind::SentencePiece: return "sentencepiece";
    case TextKind::ListOps: return "listops";
    case TextKind::Pixels: return "pixels";
    case TextKind::None: break;
  }
  return "";
}

// The calling thread's OpenMP thread count for one call (omp_set_num_threads acts on the calling
// thread only), restored at its end.
class ThreadCount {
 public:
  explicit ThreadCount(int n) {
    if (n > 0 && n != omp_get_max_threads()) {
      previous_ = omp_get_max_threads();
      omp_set_num_threads(n);
    }
  }
  ~ThreadCount() {
    if (previous_ > 0) omp_set_num_threads(previous_);
  }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  int previous_ = 0;
};

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

std::vector<int32_t> labels_of(const TaskSplit& s) {
  std::vector<int32_t> out;
  out.reserve(s.examples.size());
  for (const TaskExample& e : s.examples) out.push_back(e.label);
  return out;
}

void check_batch_size(const char* what, int batch_size) {
  if (batch_size < 1) throw ConfigError(fmt::format("{}: batch_size {} must be at least 1", what, batch_size));
}

}  // namespace

struct InferenceModel::Impl {
  std::shared_ptr<const Model> weights;
  std::unique_ptr<Tokenizer> tok;  // SentencePiece, when kind is SentencePiece
  TextKind kind = TextKind::None;
  bool has_task = false;
  TaskInfo task;  // a fine-tuning run's task.json
  ModelInfo info;
  int threads = 0;

  // The worker pool: models that read `weights` in place, each with its own buffers.
  int max_workers = 1;
  mutable std::mutex mu;
  mutable std::condition_variable cv;
  mutable std::vector<std::unique_ptr<Model>> idle;
  mutable int created = 0;

  // A worker for one call: an idle one, a new one while fewer than max_workers exist, else the
  // next one given back.
  class Lease {
   public:
    explicit Lease(const Impl& im) : im_(im) {
      std::unique_lock<std::mutex> lock(im_.mu);
      while (im_.idle.empty() && im_.created >= im_.max_workers) im_.cv.wait(lock);
      if (!im_.idle.empty()) {
        m_ = std::move(im_.idle.back());
        im_.idle.pop_back();
        return;
      }
      ++im_.created;  // reserve the slot; build the worker outside the lock
      lock.unlock();
      try {
        m_ = Model::sharing_weights_of(*im_.weights);
      } catch (...) {
        lock.lock();
        --im_.created;
        im_.cv.notify_one();
        throw;
      }
    }
    ~Lease() {
      {
        std::lock_guard<std::mutex> lock(im_.mu);
        im_.idle.push_back(std::move(m_));
      }
      im_.cv.notify_one();
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Model& operator*() const { return *m_; }
    Model* operator->() const { return m_.get(); }

   private:
    const Impl& im_;
    std::unique_ptr<Model> m_;
  };

  const ModelConfig& cfg() const { return weights->config(); }

  // Loading (below).
  void load_sentencepiece(const std::string& path);
  void own(std::unique_ptr<Model> m);
  void load_finetuned(const std::string& path, const fs::path& run, const InferenceOptions& opt);
  void finish(const InferenceOptions& opt);
  void check_classifier(const char* what) const;

  // Checks id sequences against the model (and cuts them with `truncate`); errors name the input.
  std::vector<std::vector<int32_t>> checked(const std::vector<std::vector<int32_t>>& ids, bool truncate,
                                            const char* what) const;
  // encode() of every text; errors name the input.
  std::vector<std::vector<int32_t>> encoded(const std::vector<std::string>& texts, bool truncate,
                                            const char* what) const;
  [[noreturn]] void no_tokenizer() const;
  std::vector<int32_t> tokenize(const std::string& text) const;
  std::vector<int32_t> encode(const std::string& text, bool truncate) const;
  std::vector<int32_t> truncate(const std::vector<int32_t>& ids) const;
  Embeddings embed(const std::vector<std::vector<int32_t>>& seqs, const EmbedOptions& opt) const;
  std::vector<Classification> classify(const std::vector<std::vector<int32_t>>& seqs, const ClassifyOptions& opt) const;
};

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
    const nlohmann::json j = read_json(run / "finetune.json");
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

// ---------------------------------------------------------------- text

void InferenceModel::Impl::no_tokenizer() const {
  throw ConfigError(fmt::format("{}: the model has no tokenizer, so it takes token ids only (load a run folder with a "
                                "tokenizer.model, or give InferenceOptions::tokenizer)",
                                info.source.empty() ? "inference" : info.source));
}

std::vector<int32_t> InferenceModel::Impl::tokenize(const std::string& text) const {
  switch (kind) {
    case TextKind::SentencePiece: return tok->encode(text);
    case TextKind::ListOps: return encode_listops(text);
    case TextKind::Pixels: return encode_pixels(text);
    case TextKind::None: break;
  }
  no_tokenizer();
}

std::vector<int32_t> InferenceModel::Impl::encode(const std::string& text, bool truncate) const {
  std::vector<int32_t> body = tokenize(text);
  std::vector<int32_t> ids;
  ids.reserve(body.size() + 2);
  ids.push_back(kBosId);
  ids.insert(ids.end(), body.begin(), body.end());
  ids.push_back(kEosId);
  const int max_len = cfg().max_len;
  if ((int64_t)ids.size() > max_len) {
    // The message `linformer predict` printed (Classifier::tokenize).
    if (!truncate)
      throw InputError(fmt::format("sequence too long: {} tokens (with <s> and </s>) exceed max_len {} (--truncate "
                                   "cuts it)",
                                   ids.size(), max_len));
    ids.resize((size_t)max_len);
    ids.back() = kEosId;
  }
  return ids;
}

std::vector<int32_t> InferenceModel::Impl::truncate(const std::vector<int32_t>& ids) const {
  const size_t max_len = (size_t)cfg().max_len;
  if (ids.size() <= max_len) return ids;
  std::vector<int32_t> out(ids.begin(), ids.begin() + (std::ptrdiff_t)max_len);
  if (ids.back() == kEosId) out.back() = kEosId;
  return out;
}

std::vector<std::vector<int32_t>> InferenceModel::Impl::checked(const std::vector<std::vector<int32_t>>& ids,
                                                                bool truncate_long, const char* what) const {
  const ModelConfig& c = cfg();
  if (ids.empty()) throw InputError(fmt::format("{}: no inputs", what));
  std::vector<std::vector<int32_t>> out;
  out.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::vector<int32_t>& s = ids[i];
    if (s.empty()) throw InputError(fmt::format("{}: input {} is empty", what, i));
    for (size_t t = 0; t < s.size(); ++t)
      if (s[t] < 0 || s[t] >= c.vocab_size)
        throw InputError(fmt::format("{}: input {}: token id {} at position {} is outside the vocabulary [0, {})", what,
                                     i, s[t], t, c.vocab_size));
    if ((int64_t)s.size() > c.max_len && !truncate_long)
      throw InputError(fmt::format("{}: input {}: {} ids exceed max_len {} (truncate cuts it)", what, i, s.size(),
                                   c.max_len));
    out.push_back(truncate(s));
  }
  return out;
}

std::vector<std::vector<int32_t>> InferenceModel::Impl::encoded(const std::vector<std::string>& texts, bool truncate,
                                                                const char* what) const {
  if (texts.empty()) throw InputError(fmt::format("{}: no inputs", what));
  std::vector<std::vector<int32_t>> out;
  out.reserve(texts.size());
  const int V = cfg().vocab_size;
  for (size_t i = 0; i < texts.size(); ++i) {
    try {
      out.push_back(encode(texts[i], truncate));
    } catch (const InputError& e) {
      throw InputError(fmt::format("{}: input {}: {}", what, i, e.what()));
    }
    for (int32_t id : out.back())  // a tokenizer larger than the model's vocabulary
      if (id >= V)
        throw InputError(fmt::format("{}: input {}: token id {} is outside the model's vocabulary [0, {}) (was the "
                                     "tokenizer made for another model?)",
                                     what, i, id, V));
  }
  return out;
}

std::vector<int32_t> InferenceModel::tokenize(const std::string& text) const { return impl_->tokenize(text); }

std::vector<int32_t> InferenceModel::encode(const std::string& text, bool truncate) const {
  return impl_->encode(text, truncate);
}

std::vector<int32_t> InferenceModel::truncate(const std::vector<int32_t>& ids) const { return impl_->truncate(ids); }

std::string InferenceModel::piece(int32_t id) const {
  static const char* specials[kNumSpecial] = {"<pad>", "<s>", "</s>", "<unk>", "<mask>"};
  switch (impl_->kind) {
    case TextKind::SentencePiece: return impl_->tok->piece(id);
    case TextKind::ListOps:
      if (id >= 0 && id < kNumSpecial) return specials[id];
      return decode_listops({id});
    case TextKind::Pixels:
      if (id >= 0 && id < kNumSpecial) return specials[id];
      if (id >= kPixelFirstId && id < kPixelsVocabSize) return std::to_string(id - kPixelFirstId);
      throw InputError(fmt::format("token id {} is outside the pixel vocabulary [0, {})", id, kPixelsVocabSize));
    case TextKind::None: break;
  }
  impl_->no_tokenizer();
}

std::string InferenceModel::decode(const std::vector<int32_t>& ids) const {
  if (impl_->kind == TextKind::None) impl_->no_tokenizer();
  if (impl_->kind == TextKind::SentencePiece) return impl_->tok->decode(ids);
  std::string out;  // fixed vocabularies: the tokens separated by spaces, as the task files write them
  for (int32_t id : ids) {
    if (!out.empty()) out += ' ';
    out += piece(id);
  }
  return out;
}

// ---------------------------------------------------------------- computations

ForwardResult InferenceModel::forward(const std::vector<std::vector<int32_t>>& ids, const ForwardOptions& opt) const {
  ForwardResult r;
  forward(ids, opt, r);
  return r;
}

void InferenceModel::forward(const std::vector<std::vector<int32_t>>& ids, const ForwardOptions& opt,
                             ForwardResult& r) const {
  const Impl& im = *impl_;
  const Batch batch = Batch::from_sequences(im.checked(ids, opt.truncate, "forward"));
  const ModelConfig& c = im.cfg();
  const size_t T = (size_t)batch.B * batch.n, logits_size = T * c.vocab_size;
  {
    ThreadCount threads(im.threads);
    Impl::Lease w(im);
    const float* hidden = opt.logits ? (w->forward_mlm_logits(batch), w->hidden()) : w->encode(batch);
    r.hidden.assign(hidden, hidden + T * c.d_model);
    if (opt.logits) {
      // Take the worker's logits buffer and give it r's old one (warm, when r is reused). A buffer
      // much larger than this batch's logits (grown by an earlier, larger batch) stays with the
      // worker: the result gets a copy of its own size.
      std::vector<float> taken;
      w->swap_mlm_logits(taken);
      if (taken.size() > 2 * logits_size) {
        r.logits.assign(taken.data(), taken.data() + logits_size);
        w->swap_mlm_logits(taken);
      } else {
        w->swap_mlm_logits(r.logits);  // the worker gets r's old buffer ...
        r.logits.swap(taken);          // ... and r this batch's logits
        r.logits.resize(logits_size);
      }
    } else {
      r.logits.clear();
    }
  }
  r.B = batch.B;
  r.n = batch.n;
  r.d_model = c.d_model;
  r.vocab_size = c.vocab_size;
  r.mask = batch.mask;
  r.ids = batch.ids;
}

namespace {

// Runs `model` over seqs in batches of batch_size, longest first (each batch pads little; the order
// of finetune.cpp's evaluation), and calls fn(index, hidden states [n, d] of that sequence, its
// mask [n], n).
template <class Fn>
void for_each_hidden(Model& model, const std::vector<std::vector<int32_t>>& seqs, int batch_size, Fn fn) {
  std::vector<size_t> by_length(seqs.size());
  std::iota(by_length.begin(), by_length.end(), (size_t)0);
  std::stable_sort(by_length.begin(), by_length.end(),
                   [&](size_t a, size_t b) { return seqs[a].size() > seqs[b].size(); });
  const int d = model.config().d_model;
  std::vector<std::vector<int32_t>> chunk;
  for (size_t start = 0; start < by_length.size(); start += (size_t)batch_size) {
    const size_t end = std::min(by_length.size(), start + (size_t)batch_size);
    chunk.clear();
    for (size_t j = start; j < end; ++j) chunk.push_back(seqs[by_length[j]]);
    const Batch b = Batch::from_sequences(chunk);
    const float* h = model.encode(b);
    for (size_t j = start; j < end; ++j) {
      const size_t row = j - start;
      fn(by_length[j], h + row * b.n * d, b.mask.data() + row * b.n, b.n);
    }
  }
}

}  // namespace

Embeddings InferenceModel::Impl::embed(const std::vector<std::vector<int32_t>>& seqs, const EmbedOptions& opt) const {
  const int d = cfg().d_model;
  Embeddings e;
  e.rows = (int)seqs.size();
  e.dim = d;
  e.values.assign((size_t)e.rows * d, 0.0f);
  ThreadCount threads(this->threads);
  Lease w(*this);
  for_each_hidden(*w, seqs, opt.batch_size, [&](size_t i, const float* h, const uint8_t* mask, int n) {
    float* o = e.values.data() + i * d;
    if (opt.pooling == Pooling::First) {
      std::memcpy(o, h, d * sizeof(float));
    } else {  // the mean over the real tokens, summed in order as the classification head's
      int len = 0;
      for (int t = 0; t < n; ++t) {
        if (!mask[t]) continue;
        ++len;
        for (int c = 0; c < d; ++c) o[c] += h[(size_t)t * d + c];
      }
      for (int c = 0; c < d; ++c) o[c] /= len;
    }
    if (opt.normalize) {
      double ss = 0;
      for (int c = 0; c < d; ++c) ss += (double)o[c] * o[c];
      const double norm = std::sqrt(ss);
      if (norm > 0)
        for (int c = 0; c < d; ++c) o[c] = (float)(o[c] / norm);
    }
  });
  return e;
}

Embeddings InferenceModel::embed(const std::vector<std::string>& texts, const EmbedOptions& opt) const {
  check_batch_size("embed", opt.batch_size);
  return impl_->embed(impl_->encoded(texts, opt.truncate, "embed"), opt);
}

Embeddings InferenceModel::embed_ids(const std::vector<std::vector<int32_t>>& ids, const EmbedOptions& opt) const {
  check_batch_size("embed", opt.batch_size);
  return impl_->embed(impl_->checked(ids, opt.truncate, "embed"), opt);
}

std::vector<Classification> InferenceModel::Impl::classify(const std::vector<std::vector<int32_t>>& seqs,
                                                           const ClassifyOptions& opt) const {
  std::vector<std::vector<double>> probs;
  {
    ThreadCount threads(this->threads);
    Lease w(*this);
    probs = linformer::classify(*w, seqs, opt.batch_size);  // what `linformer predict` ran
  }
  std::vector<Classification> out(probs.size());
  for (size_t i = 0; i < probs.size(); ++i) {
    out[i].label_index = (int)(std::max_element(probs[i].begin(), probs[i].end()) - probs[i].begin());
    out[i].label = info.labels[(size_t)out[i].label_index];
    out[i].probs = std::move(probs[i]);
  }
  return out;
}

void InferenceModel::Impl::check_classifier(const char* what) const {
  if (cfg().num_labels <= 0)
    throw ConfigError(fmt::format("{}: the model has no classification head (num_labels is 0); load a fine-tuning run "
                                  "folder",
                                  what));
}

std::vector<Classification> InferenceModel::classify(const std::vector<std::string>& texts,
                                                     const ClassifyOptions& opt) const {
  impl_->check_classifier("classify");
  check_batch_size("classify", opt.batch_size);
  return impl_->classify(impl_->encoded(texts, opt.truncate, "classify"), opt);
}

std::vector<Classification> InferenceModel::classify_ids(const std::vector<std::vector<int32_t>>& ids,
                                                         const ClassifyOptions& opt) const {
  impl_->check_classifier("classify");
  check_batch_size("classify", opt.batch_size);
  return impl_->classify(impl_->checked(ids, opt.truncate, "classify"), opt);
}

FillMaskResult InferenceModel::fill_mask(const std::string& text, int top_k) const {
  const Impl& im = *impl_;
  if (top_k < 1) throw ConfigError(fmt::format("fill-mask: top_k {} must be at least 1", top_k));
  // Split the text at each <mask>, encode the pieces, and join them with the mask id.
  FillMaskResult r;
  std::vector<int32_t>& ids = r.ids;
  ids.push_back(kBosId);
  const std::string marker = "<mask>";
  size_t start = 0;
  while (true) {
    const size_t at = text.find(marker, start);
    const std::vector<int32_t> enc =
        im.tokenize(text.substr(start, at == std::string::npos ? std::string::npos : at - start));
    ids.insert(ids.end(), enc.begin(), enc.end());
    if (at == std::string::npos) break;
    r.masks.push_back(MaskPrediction{(int)ids.size(), {}});
    ids.push_back(kMaskId);
    start = at + marker.size();
  }
  ids.push_back(kEosId);
  const ModelConfig& c = im.cfg();
  if (r.masks.empty()) throw InputError("fill-mask: the text has no <mask>");
  if ((int)ids.size() > c.max_len)
    throw InputError(fmt::format("fill-mask: the text is {} tokens, the model takes at most {}", ids.size(), c.max_len));
  const Batch b = Batch::from_sequences({ids});
  const int V = c.vocab_size;
  const int k = std::min(top_k, V);
  std::vector<int> idx(V);
  ThreadCount threads(im.threads);
  Impl::Lease w(im);
  const float* logits = w->forward_mlm_logits(b);
  for (MaskPrediction& m : r.masks) {
    const float* l = logits + (size_t)m.position * V;
    const float mx = *std::max_element(l, l + V);
    double z = 0;
    for (int v = 0; v < V; ++v) z += std::exp(l[v] - mx);
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                      [&](int a, int o) { return l[a] > l[o] || (l[a] == l[o] && a < o); });
    for (int i = 0; i < k; ++i)
      m.candidates.push_back(FillMaskCandidate{piece(idx[i]), idx[i], std::exp(l[idx[i]] - mx) / z});
  }
  return r;
}

AttentionMap InferenceModel::attention_map(const std::vector<int32_t>& ids, int layer, bool truncate) const {
  const Impl& im = *impl_;
  const ModelConfig& c = im.cfg();
  if (c.attention == AttentionKind::Tiled)
    throw ConfigError("attention_map: tiled attention keeps no probabilities; load the weights with attention \"full\" "
                      "(the same tensors) to see them");
  if (layer < 0 || layer >= c.n_layers)
    throw ConfigError(fmt::format("attention_map: layer {} is out of range [0, {})", layer, c.n_layers));
  const Batch batch = Batch::from_sequences(im.checked({ids}, truncate, "attention_map"));
  ThreadCount threads(im.threads);
  Impl::Lease w(im);
  // The eval-mode forward that keeps the probabilities; the worker is inference-only again after.
  struct Restore {
    Model& m;
    ~Restore() { m.set_inference_only(true); }
  } restore{*w};
  w->set_inference_only(false);
  w->encode(batch);
  const AttentionProbs p = w->attention_probs(layer);
  AttentionMap a;
  a.heads = p.heads;
  a.n = p.n;
  a.cols = p.cols;
  a.probs.assign(p.data, p.data + (size_t)p.heads * p.n * p.cols);
  return a;
}

// ---------------------------------------------------------------- evaluation

ClassifierEval InferenceModel::evaluate(const std::string& task_dir, const std::string& split,
                                        const ClassifyOptions& opt) const {
  const Impl& im = *impl_;
  im.check_classifier("evaluate");
  check_batch_size("evaluate", opt.batch_size);
  if (!im.has_task)
    throw ConfigError(fmt::format("evaluate: {} is not a fine-tuning run (no task.json), so its classes are unknown",
                                  im.info.source.empty() ? "the model" : im.info.source));
  // The checks of Classifier::evaluate.
  TaskData task = load_task(task_dir);
  if (task.info.labels != im.task.labels || task.info.tokenizer != im.task.tokenizer)
    throw ConfigError(fmt::format("{}/task.json: its classes or tokenizer differ from those the model was fine-tuned "
                                  "on",
                                  task_dir));
  const TaskSplit& s = task.split(split);
  const auto seqs = tokenize_split(task.info, s, im.tok.get(), im.cfg().max_len, opt.truncate);
  ThreadCount threads(im.threads);
  Impl::Lease w(im);
  return evaluate_classifier(*w, seqs, labels_of(s), opt.batch_size);
}

double InferenceModel::evaluate_mlm(const std::string& token_file, int seq_len, int batch_size, int max_batches,
                                    uint64_t seed) const {
  const Impl& im = *impl_;
  ThreadCount threads(im.threads);
  Impl::Lease w(im);
  return linformer::evaluate_mlm(*w, token_file, seq_len > 0 ? seq_len : im.cfg().max_len, batch_size, max_batches,
                                 seed);
}

}  // namespace linformer
