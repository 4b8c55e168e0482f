// InferenceModel's requests (linformer/inference.hpp): text <-> ids, forward, embed, classify,
// fill-mask, attention maps and evaluation, with their input checks, each on a worker borrowed
// from the pool (inference_impl.hpp).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <optional>

#include <fmt/format.h>

#include "api/inference_impl.hpp"
#include "linformer/data.hpp"
#include "linformer/error.hpp"
#include "linformer/finetune.hpp"
#include "linformer/trainer.hpp"

namespace linformer {

using namespace api_detail;

namespace {

void check_batch_size(const char* what, int batch_size) {
  if (batch_size < 1) throw ConfigError(fmt::format("{}: batch_size {} must be at least 1", what, batch_size));
}

}  // namespace

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
  return fit_to_max_len(std::move(ids), cfg().max_len, truncate);
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

MlmEvaluation InferenceModel::evaluate_mlm_scores(const std::string& token_file, int seq_len, int batch_size,
                                                  int max_batches, uint64_t seed,
                                                  const std::string& baseline_tokens) const {
  const Impl& im = *impl_;
  std::optional<UnigramBaseline> baseline;
  if (!baseline_tokens.empty()) {
    const TokenFile train(baseline_tokens);
    baseline.emplace(train, im.cfg().vocab_size);
  }
  ThreadCount threads(im.threads);
  Impl::Lease w(im);
  return linformer::evaluate_mlm_scores(*w, token_file, seq_len > 0 ? seq_len : im.cfg().max_len, batch_size,
                                        max_batches, seed, baseline ? &*baseline : nullptr);
}

}  // namespace linformer
